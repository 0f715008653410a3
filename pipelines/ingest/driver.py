"""Ingest driver: hash the input (pass 1), then decode and write shards in parallel (pass 2), then publish.

Pass 1 walks the source in its fixed order, hashes every item's content and collects labels, bad items and
duplicate groups. The version id follows from that (content + options), so an ingest that already exists is
reported up to date without starting Ray. Pass 2 cuts the same item stream into fixed-size chunks (one split
per chunk) and maps ``encode_chunk`` over them; shard boundaries depend only on the data. Array inputs (IDX, NPZ)
take the same two passes over blocks of rows (``columnar.py``), and on Ray workers their rows are hashed by the
workers in pass 2 (see ``_workers_hash``); IDX rows are then read by the workers too, from the row ranges the driver
sends (``ranged.py``: pass 1 reads the labels only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.executor import choose_workers, run_map, start_workers, status
from pipelines.ingest.columnar import (
    ArrayBlock,
    array_chunks,
    block_digests,
    encode_array_chunks,
    good_rows,
    usable_rows,
)
from pipelines.ingest.encode import Chunk, encode_chunk
from pipelines.ingest.options import IngestOptions
from pipelines.ingest.ranged import InputChanged, RangedFile, encode_ranged_chunks, ranged_chunks, ranged_tasks
from pipelines.ingest.readers import Source, open_source
from pipelines.ingest.records import Bad, FileRef, Record, content_keys, record_digest
from pipelines.store import Store, fault_guard
from schemas.errors import AugsvcError
from schemas.hashing import version_id
from schemas.manifest import Manifest, QuarantineItem, empty_class_notes

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
    notes: list[str] = field(default_factory=list)  # how the reader read the input (e.g. one-hot labels)


def natural_classes(labels: set[str]) -> list[str]:
    """Sorted class names; numerically when every label is an integer."""
    if labels and all(lab.lstrip("-").isdigit() for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


class _Tally:
    """Content hash, labels and duplicate groups, accumulated in item order.

    content_sha256 = sha256(sha256(bad items in order) || sha256((source, split, label, digest) in order)).
    """

    def __init__(self) -> None:
        self.h_bad = hashlib.sha256()
        self.h_good = hashlib.sha256()
        self.bad: list[Bad] = []
        self.sources: list[str] = []
        self.labels: set[str] = set()
        self._first: dict[bytes, int] = {}
        self._groups: dict[bytes, list[int]] = {}

    def add_bad(self, b: Bad, opts: IngestOptions) -> None:
        if opts.on_error == "fail":
            raise AugsvcError(f"{b.describe()}; {SKIP_HINT}")
        self.bad.append(b)
        self.h_bad.update(f"{b.source}\0{b.line}\0{b.reason}\n".encode())

    def add(self, source: str, split: str, label: str | None, digest: bytes) -> int:
        self.h_good.update(f"{source}\0{split}\0{label}\0".encode() + digest)
        idx = len(self.sources)
        self.sources.append(source)
        if label is not None:
            self.labels.add(label)
        if digest in self._first:
            self._groups.setdefault(digest, [self._first[digest]]).append(idx)
        else:
            self._first[digest] = idx
        return idx

    def add_many(
        self, sources: list[str], split: str, labels: list[str], digests: list[bytes], keys: bytes | None = None
    ) -> None:
        """``add`` for each (source, label, digest) of one split, in order (one hash update, no per-row calls);
        ``keys``: their ``records.content_keys``, when a worker made them."""
        self.h_good.update(content_keys(sources, split, labels, digests) if keys is None else keys)
        base = len(self.sources)
        self.sources.extend(sources)
        self.labels.update(lab for lab in set(labels) if lab is not None)
        first, groups = self._first, self._groups
        for i, d in enumerate(digests, base):
            j = first.setdefault(d, i)
            if j != i:
                groups.setdefault(d, [j]).append(i)

    def duplicate_groups(self) -> list[list[int]]:
        return list(self._groups.values())

    def content(self) -> str:
        return hashlib.sha256(self.h_bad.digest() + self.h_good.digest()).hexdigest()


def _nothing_usable(path: Path, bad: list[Bad]) -> str:
    """The one-line refusal of an ingest in which no item became a row (nothing is published: no 0-row version)."""
    if not bad:
        return f"{path}: no usable items found"
    return (
        f"{path}: no usable items: all {len(bad)} items were bad, so nothing was published (first: {bad[0].describe()})"
    )


def _not_utf8(text: object) -> bool:
    """True for a str that cannot be written as UTF-8 (a lone surrogate: a file name that is not UTF-8, read
    with Python's surrogateescape, or a JSON escape such as \\ud800 without its pair)."""
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold written as escapes (for messages and the manifest)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _accepted(item: Record | Bad, opts: IngestOptions) -> Bad | None:
    """None when a record is usable, else why not (a bad item, a name or text UTF-8 cannot hold, or a label
    outside ``--classes``)."""
    if isinstance(item, Bad):
        return item if not _not_utf8(item.source) else Bad(_shown(item.source), item.line, item.reason)
    if _not_utf8(item.source):
        return Bad(_shown(item.source), item.line, "the file name is not valid UTF-8; rename the file")
    values = item.payload.values() if isinstance(item.payload, dict) else (
        item.payload if isinstance(item.payload, tuple) else (item.payload,))  # fmt: skip
    if _not_utf8(item.label) or any(_not_utf8(v) for v in values):
        return Bad(item.source, item.line, "text holds a lone surrogate (an unpaired \\ud800-style escape or "
                   "bytes that are not UTF-8); fix that row")  # fmt: skip
    if opts.classes is not None and item.label is not None and item.label not in opts.classes:
        return Bad(item.source, item.line, f"label {item.label!r} is not one of --classes")
    return None


def _scan(src: Source, opts: IngestOptions) -> tuple[_Tally, list[bytes], list[bool]]:
    """Pass 1 (two-pass mode): hash every item in the driver; decide what ``--dedupe`` drops."""
    tally, digests = _Tally(), []
    for item in src.items():
        bad = _accepted(item, opts)
        if bad is not None:
            tally.add_bad(bad, opts)
            continue
        d = record_digest(item)
        tally.add(item.source, item.split, item.label, d)
        digests.append(d)
    keep = [True] * len(digests)
    if opts.dedupe:
        for idxs in tally.duplicate_groups():
            for i in idxs[1:]:
                keep[i] = False
    return tally, digests, keep


_KEEP_BLOCK_BYTES = 256 << 20  # array inputs up to this size stay in memory between pass 1 and pass 2
_TASK_BYTES = 32 << 20  # columnar ingest: chunks of pixels sent to one worker task


@dataclass
class _BlockScan:
    """Pass 1 of the columnar path: per block, its usable rows, their digests and which of them ``--dedupe`` keeps;
    the blocks themselves when the input is small enough to keep (else pass 2 reads them again)."""

    rows: list  # per block: np.ndarray of usable row indices
    digests: list[list[bytes] | None]
    keep: list  # per block: np.ndarray of bool, one per usable row
    blocks: list[ArrayBlock] | None
    labels: set = field(default_factory=set)  # labels of the usable rows (when the rows are not hashed here)


class _OneShapePerSplit:
    """Array inputs: every item of one split has the same dtype and shape (a shard stores one pixel layout, and
    the rows of several files are cut into shards together). ``see`` raises a one-line AugsvcError naming both
    files when a file's items differ from those seen before in its split."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, tuple, str]] = {}

    def see(self, split: str, dtype: Any, shape: tuple, source: str) -> None:
        layout = (np.dtype(dtype).str, tuple(shape))
        seen = self.first.setdefault(split, (*layout, source))
        if seen[:2] != layout:

            def shown(d: str, sh: tuple) -> str:
                return f"{'x'.join(map(str, sh)) or 'scalar'} {np.dtype(d).name}"

            raise AugsvcError(
                f"{source.split('#')[0]}: items of {shown(*layout)}, but {seen[2].split('#')[0]} in the same split "
                f"({split!r}) holds {shown(*seen[:2])}; ingest files of one image shape and dtype per split (or "
                "ingest them as separate datasets)"
            )


def _scan_blocks(src: Source, opts: IngestOptions, hash_rows: bool = True) -> tuple[_Tally, _BlockScan]:
    """``_scan`` over array blocks: the same tally, digests and dedupe decisions, one block at a time.

    ``hash_rows=False`` (workers on Ray): only bad items and labels here; the workers hash the rows and the driver
    adds them to the tally in chunk order as results come back (``scan.digests`` holds None per block)."""
    tally = _Tally()
    scan = _BlockScan([], [], [], [])
    held = 0
    layouts = _OneShapePerSplit()
    for b in src.blocks():
        if isinstance(b, Bad):
            tally.add_bad(b, opts)
            continue
        if len(b.sources):
            layouts.see(b.split, b.images.dtype, b.images.shape[1:], b.sources[0])
        rows, bad = good_rows(b, opts)
        for item in bad:
            tally.add_bad(item, opts)
        idx = rows.tolist()
        digs = None
        if hash_rows:
            digs = block_digests(b, rows)
            tally.add_many([b.sources[j] for j in idx], b.split, [b.labels[j] for j in idx], digs)
        else:
            scan.labels.update(b.labels[j] for j in idx)
        scan.rows.append(rows)
        scan.digests.append(digs)
        held += b.images.nbytes
        if scan.blocks is not None and held <= _KEEP_BLOCK_BYTES:
            scan.blocks.append(b)
        else:
            scan.blocks = None
    dropped = set()
    if opts.dedupe:
        dropped = {i for idxs in tally.duplicate_groups() for i in idxs[1:]}
    first = 0
    for rows in scan.rows:
        scan.keep.append(np.array([first + i not in dropped for i in range(len(rows))], dtype=bool))
        first += len(rows)
    return tally, scan


def _scan_ranges(files: list[RangedFile], opts: IngestOptions) -> tuple[_Tally, _BlockScan]:
    """``_scan_blocks(hash_rows=False)`` for an input whose rows the workers read themselves (``ranged.py``): bad
    items and labels from the labels alone, the usable rows of each file."""
    tally = _Tally()
    scan = _BlockScan([], [], [], None)
    for f in files:
        rows, bad = usable_rows(f.names, f.reasons, opts, lambda j, rel=f.rel: f"{rel}#{j}")
        for item in bad:
            tally.add_bad(item, opts)
        names = f.names if len(rows) == len(f.names) else [f.names[j] for j in rows.tolist()]
        scan.labels.update(set(names))
        scan.rows.append(rows)
        scan.digests.append(None)
        scan.keep.append(np.ones(len(rows), dtype=bool))
    return tally, scan


def _each(groups: Iterator[list | str]) -> Iterator:
    """The results of tasks that each return a list of chunk results (or why a worker could not read its rows)."""
    for g in groups:
        if isinstance(g, str):
            raise InputChanged(g)
        yield from g


def _workers_hash(workers: int | None, address: str | None, opts: IngestOptions) -> bool:
    """Whether the workers hash an array input's rows as they encode them: when the caller asked for Ray workers (or a
    cluster) and no ``--dedupe`` (which needs every digest first). Hashing then runs in parallel instead of in the
    driver before any worker starts; as for image folders with known classes, the version id (so "up to date") is
    known at the end. In-process (the default for inputs this small) the driver hashes first, as before."""
    return bool(address or os.environ.get("RAY_ADDRESS") or (workers or 0) > 0) and not opts.dedupe


def _block_parts(src: Source, opts: IngestOptions, scan: _BlockScan):
    """Pass 2 of the columnar path: (block, kept rows, their digests), from memory or read again and checked."""
    blocks = scan.blocks if scan.blocks is not None else (b for b in src.blocks() if not isinstance(b, Bad))
    i = -1
    for i, b in enumerate(blocks):
        if i >= len(scan.rows) or (scan.blocks is None and not np.array_equal(good_rows(b, opts)[0], scan.rows[i])):
            raise AugsvcError(f"{b.sources[0]}: the input changed while the ingest was running; run it again")
        keep, digs = scan.keep[i], scan.digests[i]
        yield (
            b,
            scan.rows[i][keep],
            None if digs is None else [d for d, k in zip(digs, keep.tolist(), strict=True) if k],
        )
    if i + 1 != len(scan.rows):
        raise AugsvcError("the input changed while the ingest was running; run it again")


def _cut(records: Iterator[tuple[Record, bytes | None]], shard_rows: int) -> Iterator[Chunk]:
    """Cut a record stream into chunks of at most ``shard_rows`` records, one split per chunk."""
    buf: list[Record] = []
    digs: list[bytes | None] = []
    split = None
    index = 0
    for rec, d in records:
        if buf and (rec.split != split or len(buf) >= shard_rows):
            yield Chunk(index, split, buf, digs)
            index, buf, digs = index + 1, [], []
        split = rec.split
        buf.append(rec)
        digs.append(d)
    if buf:
        yield Chunk(index, split, buf, digs)


def _pass2_records(src: Source, opts: IngestOptions, digests: list[bytes], keep: list[bool]):
    """The same item stream as pass 1, checked against it, with the digests pass 1 computed."""
    i = 0
    for item in src.items():
        if _accepted(item, opts) is not None:
            continue
        if i >= len(digests):
            raise AugsvcError(f"{item.source}: the input changed while the ingest was running; run it again")
        d, k = digests[i], keep[i]
        i += 1
        if k:
            yield item, d


def _streaming_records(src: Source, opts: IngestOptions, tally: _Tally):
    """Single-pass mode: bad items go to the tally now; file digests are computed by the workers."""
    for item in src.items():
        bad = _accepted(item, opts)
        if bad is not None:
            tally.add_bad(bad, opts)
            continue
        yield item, (None if isinstance(item.payload, FileRef) else record_digest(item))


def input_bytes(path: Path) -> int:
    """Bytes on disk under ``path`` (a file, or every file below a folder): the planned work of an ingest."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


@fault_guard("ingest")
def ingest(
    path: str | Path,
    *,
    name: str,
    store: Store,
    options: IngestOptions | None = None,
    workers: int | None = None,
    address: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> IngestReport:
    """Ingest ``path`` into ``store`` as dataset ``name``; returns the published (or existing) version.

    ``workers=0`` runs in this process without Ray; ``None`` decides from the input's size
    (:func:`pipelines.executor.choose_workers`: small inputs in-process, large ones on all local cores).
    """
    t0 = time.perf_counter()
    try:
        return _ingest(path, name, store, options, workers, address, progress, t0, ranged=True)
    except InputChanged as e:  # a worker found a file shorter or corrupt: read over blocks, which reports it by item
        status(f"{e}: reading the input again in this process's order, block by block")
        return _ingest(path, name, store, options, workers, address, progress, t0, ranged=False)


def _ingest(
    path: str | Path,
    name: str,
    store: Store,
    options: IngestOptions | None,
    workers: int | None,
    address: str | None,
    progress: Callable[[int, int | None], None] | None,
    t0: float,
    ranged: bool,
) -> IngestReport:
    """:func:`ingest`; ``ranged=False`` never lets the workers read an array input's rows themselves."""
    opts = options or IngestOptions()
    path = Path(path)
    if opts.src_lang and opts.tgt_lang and opts.src_lang.lower() == opts.tgt_lang.lower():
        raise AugsvcError(
            f"{path}: --src-lang and --tgt-lang are both {opts.src_lang!r}; parallel text needs two languages"
        )
    src = open_source(path, opts)
    given = [f for f, v in (("--src-lang", opts.src_lang), ("--tgt-lang", opts.tgt_lang),
                            ("--monolingual", opts.monolingual)) if v]  # fmt: skip
    if given and src.modality != "translation":
        raise AugsvcError(
            f"{path}: {', '.join(given)} apply to parallel text (<split>.<lang> file pairs); this input is read "
            f"as {src.modality} ({src.format}): drop {'them' if len(given) > 1 else 'it'}"
        )
    shard_rows = opts.shard_rows or DEFAULT_SHARD_ROWS[src.modality]
    known_classes = opts.classes or src.class_names
    streaming = known_classes is not None and not opts.dedupe
    columnar = src.blocks is not None  # array inputs: per-block work (pipelines/ingest/columnar.py), same bytes
    deferred = columnar and _workers_hash(workers, address, opts)
    # the workers read the rows themselves when the reader can say where they lie (IDX; pipelines/ingest/ranged.py)
    files = src.ranges() if ranged and deferred and src.ranges is not None else None
    if files is not None:
        layouts = _OneShapePerSplit()
        for f in files:
            layouts.see(f.split, f.dtype, f.shape, f.rel)
    definition = {
        "kind": "ingest",
        "format": src.format,
        "modality": src.modality,
        "options": opts.model_copy(update={"format": src.format}).definition(),
        "features": src.features,
    }
    if streaming and not columnar:
        # One pass: listing, hashing and decoding overlap; the version id is known once every file was read.
        tally = _Tally()
        records = _streaming_records(src, opts, tally)
        class_names = list(known_classes)
        expected = None
    else:
        # Two passes: hash first, so an existing version is reported without starting Ray.
        # (array inputs always take this way, with class names as the record path decides them; when the workers
        # hash the rows, pass 1 only reads labels and bad items, and the version id comes at the end)
        if columnar:
            tally, scan = _scan_ranges(files, opts) if files is not None else _scan_blocks(src, opts, not deferred)
        else:
            tally, digests, keep = _scan(src, opts)
        labels = scan.labels if deferred else tally.labels
        if not (labels if deferred else tally.sources):
            raise AugsvcError(_nothing_usable(path, tally.bad))
        class_names = list(known_classes) if streaming else (opts.classes or natural_classes(labels))
        vid = (
            None
            if deferred
            else version_id(definition | {"content_sha256": tally.content(), "class_names": class_names})
        )
        if vid is not None and store.exists(name, vid):
            store.mark_latest(name, vid)
            m = store.manifest(name, vid)
            notes = _notes(src, m)
            return IngestReport(m, True, time.perf_counter() - t0, 0.0, m.quarantine, m.duplicates, notes)
        if columnar:
            records, expected = None, sum(int(k.sum()) for k in scan.keep)
        else:
            records = _pass2_records(src, opts, digests, keep)
            expected = sum(keep)

    # small inputs (or one chunk) run in-process unless --workers says otherwise: same bytes either way
    planned_tasks = None if expected is None else -(-expected // shard_rows)
    n_chosen, why = choose_workers(planned_tasks, input_bytes(path), workers, address, expected)
    on_cluster = bool(address or os.environ.get("RAY_ADDRESS"))
    n_workers, ray_s = start_workers(workers if on_cluster else n_chosen, address, why)  # on a cluster: its CPUs
    class_index = {c: i for i, c in enumerate(class_names)}
    try:
        staging = store.staging(name)
    except OSError:
        if not streaming:
            raise
        # a read-only store: hash the input (as the two-pass mode does) to report a version that is already there
        scanned, _, _ = _scan(src, opts)
        vid = version_id(definition | {"content_sha256": scanned.content(), "class_names": class_names})
        if not store.exists(name, vid):
            raise
        store.mark_latest(name, vid)
        m = store.manifest(name, vid)
        notes = _notes(src, m)
        return IngestReport(m, True, time.perf_counter() - t0, ray_s, m.quarantine, m.duplicates, notes)
    # Embedded Ray runs on this machine: workers write shards into the staging folder and the driver renames them
    # into place in order. On a cluster (--address) a worker may sit on another node, so shards come back as bytes.
    chunk_dir = staging.dir / "chunks"
    chunk_dir.mkdir()
    out_dir = None if address else str(chunk_dir)
    worker_bad: list[Bad] = []
    # per chunk: (source, split, label) of its records (the columnar path: only their count, as a range)
    chunk_keys: dict[int, Sequence] = {}
    done = 0

    def tasks():
        if files is not None:  # the workers read their rows: tasks name (file, rows), grouped as they follow files
            pixels = sum(len(r) * f.row_bytes for f, r in zip(files, scan.rows, strict=True))
            target = max(1 << 20, min(_TASK_BYTES, pixels // (4 * max(1, n_workers))))
            for group in ranged_tasks(ranged_chunks(files, scan.rows, shard_rows), files, target, n_workers):
                for c in group:
                    chunk_keys[c.index] = (c.sources(files), c.split, c.labels)
                yield (group, class_index, opts, out_dir)
            return
        if columnar:  # several chunks per task (one shard each): a task's overhead is paid per ~32 MB of pixels
            group: list = []
            for c in array_chunks(_block_parts(src, opts, scan), shard_rows):
                chunk_keys[c.index] = (c.sources, c.split, c.labels) if deferred else range(len(c.sources))
                group.append(c)
                if sum(g.images.nbytes for g in group) >= _TASK_BYTES:
                    yield (group, class_index, opts, out_dir)
                    group = []
            if group:
                yield (group, class_index, opts, out_dir)
            return
        for c in _cut(records, shard_rows):
            chunk_keys[c.index] = [(r.source, r.split, r.label) for r in c.records]
            yield (c, src.modality, src.features, class_index, opts, out_dir)

    try:
        if files is not None:  # the files go to the workers once, without their labels
            light = [dataclasses.replace(f, names=[], reasons={}) for f in files]
            results = run_map(encode_ranged_chunks, tasks(), workers=n_workers, address=address, shared=light)
        else:
            results = run_map(encode_array_chunks if columnar else encode_chunk, tasks(), workers=n_workers,
                              address=address)  # fmt: skip
        for res in _each(results) if columnar else results:
            keys = chunk_keys.pop(res.index)
            if streaming and not columnar:
                for (source, split_name, label), d in zip(keys, res.digests, strict=True):
                    tally.add(source, split_name, label, d)
            if deferred:  # rows hashed by the workers: the tally takes them in chunk order, as pass 1 would have
                tally.add_many(*keys, res.digests, keys=res.keys)
                keys = keys[0]
            for b in res.bad:
                if opts.on_error == "fail":
                    raise AugsvcError(f"{b.describe()}; {SKIP_HINT}")
                worker_bad.append(b)
            if res.path is not None or res.data is not None:
                if res.path is not None:
                    staging.adopt_file(res.path, res.rows, res.sha256, res.nbytes, res.split, res.counted)
                else:
                    staging.add_shard_bytes(res.data, res.rows, res.split)
            done += len(keys)
            if progress:
                progress(done, expected)
        if not tally.sources or not staging.shards:
            raise AugsvcError(_nothing_usable(path, tally.bad + worker_bad))
        chunk_dir.rmdir()
        vid_def = definition | {"content_sha256": tally.content(), "class_names": class_names}
        quarantine = [QuarantineItem(source=b.source, line=b.line, reason=b.reason) for b in tally.bad + worker_bad]
        groups = tally.duplicate_groups()
        result = store.publish(
            staging,
            dataset=name,
            definition=vid_def,
            modality=src.modality,
            class_names=class_names,
            quarantine=quarantine,
            notes=src.notes,
            extra={
                "features": src.features,
                "image_storage": opts.image_storage if src.modality == "image" else None,
                "duplicates": [[tally.sources[i] for i in g] for g in groups],
                "duplicates_dropped": sum(len(g) - 1 for g in groups) if opts.dedupe else 0,
                "soft_labels": src.soft_labels,
            },
        )
    except BaseException:
        staging.discard()
        raise
    m = result.manifest
    seconds = time.perf_counter() - t0
    return IngestReport(m, result.up_to_date, seconds, ray_s, m.quarantine, m.duplicates, _notes(src, m))


def _notes(src: Source, m: Manifest) -> list[str]:
    """The summary's notes: the manifest's (how the reader read the input, classes without rows); for a version
    published before manifests kept notes, the same notes made again."""
    return m.notes or src.notes + empty_class_notes(m.class_names, m.rows_per_class)
