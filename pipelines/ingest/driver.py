"""Ingest driver: hash the input (pass 1), then decode and write shards in parallel (pass 2), then publish.

Pass 1 walks the source in its fixed order, hashes every item's content and collects labels, bad items and
duplicate groups. The version id follows from that (content + options), so an ingest that already exists is
reported up to date without starting Ray. Pass 2 cuts the same item stream into fixed-size chunks (one split
per chunk) and maps ``encode_chunk`` over them; shard boundaries depend only on the data.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from augsvc.errors import AugsvcError
from augsvc.hashing import version_id
from augsvc.store import Store
from pipelines.executor import ensure_ray, run_map
from pipelines.ingest.encode import Chunk, encode_chunk
from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, open_source
from pipelines.ingest.records import Bad, Record, payload_digest
from schemas.manifest import Manifest, QuarantineItem

DEFAULT_SHARD_ROWS = {"image": 512, "text": 20000, "tabular": 20000, "translation": 20000}
SKIP_HINT = "use --on-error skip to quarantine bad items and go on"


@dataclass
class IngestReport:
    manifest: Manifest
    up_to_date: bool
    seconds: float
    ray_start_seconds: float = 0.0
    quarantine: list[QuarantineItem] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)


def natural_classes(labels: set[str]) -> list[str]:
    """Sorted class names; numerically when every label is an integer."""
    if labels and all(lab.lstrip("-").isdigit() for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


@dataclass
class _Scan:
    keys: list[tuple[str, str]]  # (source, split) of every good record, in order
    digests: list[bytes]
    keep: list[bool]
    labels: set[str]
    bad: list[Bad]
    duplicates: list[list[str]]
    content: str


def _scan(src: Source, opts: IngestOptions) -> _Scan:
    h = hashlib.sha256()
    keys, digests, bad, labels = [], [], [], set()
    first_of: dict[bytes, int] = {}
    groups: dict[bytes, list[int]] = {}
    for item in src.items():
        if isinstance(item, Bad):
            if opts.on_error == "fail":
                raise AugsvcError(f"{item.describe()}; {SKIP_HINT}")
            bad.append(item)
            h.update(f"bad\0{item.source}\0{item.line}\0{item.reason}\n".encode())
            continue
        if not _accepted(item, opts):
            b = Bad(item.source, item.line, f"label {item.label!r} is not one of --classes")
            if opts.on_error == "fail":
                raise AugsvcError(f"{b.describe()}; {SKIP_HINT}")
            bad.append(b)
            continue
        d = payload_digest(item.payload)
        h.update(f"{item.source}\0{item.split}\0{item.label}\0".encode() + d)
        idx = len(keys)
        keys.append((item.source, item.split))
        digests.append(d)
        if item.label is not None:
            labels.add(item.label)
        if d in first_of:
            groups.setdefault(d, [first_of[d]]).append(idx)
        else:
            first_of[d] = idx
    keep = [True] * len(keys)
    dup_groups = []
    for idxs in groups.values():
        dup_groups.append([keys[i][0] for i in idxs])
        if opts.dedupe:
            for i in idxs[1:]:
                keep[i] = False
    return _Scan(keys, digests, keep, labels, bad, dup_groups, h.hexdigest())


def _accepted(item: Record | Bad, opts: IngestOptions) -> bool:
    if isinstance(item, Bad):
        return False
    return opts.classes is None or item.label is None or item.label in opts.classes


def _chunks(src: Source, scan: _Scan, opts: IngestOptions, shard_rows: int) -> Iterator[Chunk]:
    """Pass 2: the same item stream, checked against pass 1, cut into one-split chunks of ``shard_rows``."""
    buf: list[Record] = []
    digs: list[bytes] = []
    split = None
    index = 0
    i = 0
    for item in src.items():
        if not _accepted(item, opts):
            continue
        if i >= len(scan.keys) or scan.keys[i] != (item.source, item.split):
            raise AugsvcError(f"{item.source}: the input changed while the ingest was running; run it again")
        keep, d = scan.keep[i], scan.digests[i]
        i += 1
        if not keep:
            continue
        if buf and (item.split != split or len(buf) >= shard_rows):
            yield Chunk(index, split, buf, digs)
            index, buf, digs = index + 1, [], []
        split = item.split
        buf.append(item)
        digs.append(d)
    if buf:
        yield Chunk(index, split, buf, digs)


def ingest(
    path: str | Path,
    *,
    name: str,
    store: Store,
    options: IngestOptions | None = None,
    workers: int | None = None,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest ``path`` into ``store`` as dataset ``name``; returns the published (or existing) version.

    ``workers=0`` runs in this process without Ray; ``None`` uses all local cores on embedded Ray.
    """
    t0 = time.perf_counter()
    opts = options or IngestOptions()
    path = Path(path)
    src = open_source(path, opts)
    scan = _scan(src, opts)
    if not scan.keys:
        raise AugsvcError(f"{path}: no usable items found" + (f" ({len(scan.bad)} bad)" if scan.bad else ""))
    class_names = opts.classes or natural_classes(scan.labels)
    definition = {
        "kind": "ingest",
        "format": src.format,
        "modality": src.modality,
        "options": opts.model_copy(update={"format": src.format}).definition(),
        "features": src.features,
        "content_sha256": scan.content,
    }
    vid = version_id(definition)
    if store.exists(name, vid):
        store.set_tag(name, "latest", vid)
        m = store.manifest(name, vid)
        return IngestReport(m, True, time.perf_counter() - t0, 0.0, m.quarantine, m.duplicates)

    n_workers = (os.cpu_count() or 1) if workers is None else workers
    ray_s = 0.0
    if n_workers > 0 or address:
        t_ray = time.perf_counter()
        ensure_ray(n_workers, address)
        ray_s = time.perf_counter() - t_ray
    class_index = {c: i for i, c in enumerate(class_names)}
    shard_rows = opts.shard_rows or DEFAULT_SHARD_ROWS[src.modality]
    staging = store.staging(name)
    quarantine = [QuarantineItem(source=b.source, line=b.line, reason=b.reason) for b in scan.bad]
    splits: dict[str, dict[str, int]] = {}
    total = sum(scan.keep)
    done = 0
    try:
        args = ((c, src.modality, src.features, class_index, opts) for c in _chunks(src, scan, opts, shard_rows))
        for res in run_map(encode_chunk, args, workers=n_workers, address=address):
            for b in res.bad:
                if opts.on_error == "fail":
                    raise AugsvcError(f"{b.describe()}; {SKIP_HINT}")
                quarantine.append(QuarantineItem(source=b.source, line=b.line, reason=b.reason))
            if res.data is not None:
                split = res.split
                staging.add_shard_bytes(res.data, res.rows, split)
                per = splits.setdefault(split, {})
                for lab, n in sorted(res.label_counts.items()):
                    per[class_names[lab]] = per.get(class_names[lab], 0) + n
            done += res.rows + len(res.bad)
            if progress:
                progress(done, total)
        rows_per_class: dict[str, int] = {}
        for per in splits.values():
            for c, n in per.items():
                rows_per_class[c] = rows_per_class.get(c, 0) + n
        result = store.publish(
            staging,
            dataset=name,
            definition=definition,
            modality=src.modality,
            class_names=class_names,
            rows_per_class={c: rows_per_class.get(c, 0) for c in class_names},
            quarantine=quarantine,
            extra={
                "splits": splits,
                "features": src.features,
                "image_storage": opts.image_storage if src.modality == "image" else None,
                "duplicates": scan.duplicates,
                "duplicates_dropped": len(scan.keep) - total,
            },
        )
    except BaseException:
        staging.discard()
        raise
    return IngestReport(
        result.manifest, result.up_to_date, time.perf_counter() - t0, ray_s, quarantine, scan.duplicates
    )
