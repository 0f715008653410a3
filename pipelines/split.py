"""Stratified train/val/test split of a version into a child version.

Rows are carved out of the parent's ``train`` split only (existing ``val``/``test`` rows are kept as they are).
Byte-identical inputs (the manifest's duplicate groups) move together, so a duplicate never straddles two splits.
The assignment is a pure function of (seed, class, sorted sample ids): it does not depend on shard layout.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.ingest.encode import sample_id as sample_id_of
from pipelines.store import PublishResult, Store, fault_guard
from pipelines.storeshards import write_parquet
from schemas.errors import AugsvcError
from schemas.hashing import version_id

SPLIT_STREAM = 0x5B117  # a fixed SeedSequence entry so split draws never collide with augmentation draws


def assign(
    ids: list[str], labels: list[int], groups: list[list[str]], *, val: float, test: float, seed: int
) -> dict[str, str]:
    """sample_id -> "train" | "val" | "test" for the given training rows."""
    if val < 0 or test < 0 or val + test >= 1:
        raise AugsvcError(f"--val {val} and --test {test}: each must be >= 0 and together < 1")
    label_of = dict(zip(ids, labels, strict=True))
    group_of: dict[str, str] = {}
    for g in groups:
        members = sorted(sample_id_of(src) for src in g if sample_id_of(src) in label_of)
        for m in members:
            group_of[m] = members[0]
    by_class: dict[int, dict[str, list[str]]] = {}
    for sid in sorted(ids):
        head = group_of.get(sid, sid)
        by_class.setdefault(label_of[head], {}).setdefault(head, []).append(sid)
    out: dict[str, str] = {}
    for cls in sorted(by_class, key=lambda c: -1 if c is None else c):  # None: rows without a label, one group
        heads = sorted(by_class[cls])
        words = [seed, SPLIT_STREAM] + ([] if cls is None else [cls])
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
        order = [heads[i] for i in rng.permutation(len(heads))]
        n_test = round(test * len(order))
        n_val = round(val * len(order))
        for i, head in enumerate(order):
            split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            for sid in by_class[cls][head]:
                out[sid] = split
    return out


@fault_guard("split")
def split_version(store: Store, ref: str, *, val: float, test: float, seed: int) -> PublishResult:
    dataset, version = store.resolve(ref)
    with store.reading(dataset, version):  # a reader of its parent until published: 'augsvc rm' refuses it meanwhile
        return _split_version(store, dataset, version, val=val, test=test, seed=seed)


def _split_version(store: Store, dataset: str, version: str, *, val: float, test: float, seed: int) -> PublishResult:
    m = store.verified_manifest(dataset, version)  # never derive from a damaged parent
    if m.modality == "translation":
        raise AugsvcError(f"{dataset}@{version}: translation pairs have no labels to stratify; keep its own splits")
    present = set(m.splits) | set(m.rows_per_split)
    if "train" not in present:
        have = ", ".join(f"{k} {n}" for k, n in m.rows_per_split.items()) or "none"
        raise AugsvcError(
            f"{dataset}@{version} has no 'train' rows to split (its rows: {have}); split carves val/test out of "
            "train, so ingest the source again with --split train to make its rows training rows"
        )
    for name, frac in (("val", val), ("test", test)):
        if frac > 0 and name in present:
            raise AugsvcError(f"{dataset}@{version} already has a {name!r} split; pass --{name} 0 to keep it")
    keys = store.row_keys(m, "train")
    ids, labels = [k[0] for k in keys], [k[1] for k in keys]
    if not ids:
        raise AugsvcError(f"{dataset}@{version} has no 'train' rows to split")
    mapping = assign(ids, labels, m.duplicates, val=val, test=test, seed=seed)
    definition = {"kind": "split", "parent": f"{dataset}@{version}", "val": val, "test": test, "seed": seed}
    vid = version_id(definition)
    if store.exists(dataset, vid):  # before any write: a read-only store reports "up to date" too
        store.mark_latest(dataset, vid)
        return PublishResult(store.manifest(dataset, vid), up_to_date=True)
    staging = store.staging(dataset)
    try:
        for s in m.shards:
            table = store.read_shard(dataset, version, s.path)
            new = [
                mapping.get(sid, old)
                for sid, old in zip(table["sample_id"].to_pylist(), table["split"].to_pylist(), strict=True)
            ]
            table = table.set_column(
                table.schema.get_field_index("split"), table.schema.field("split"), pa.array(new, pa.string())
            )
            for name in ("train", "val", "test", *sorted(set(new) - {"train", "val", "test"})):
                part = table.filter(pc.equal(table["split"], name))
                if part.num_rows:
                    staging.add_shard_bytes(write_parquet(part), part.num_rows, name)
        return store.publish(
            staging,
            dataset=dataset,
            definition=definition,
            modality=m.modality,
            class_names=m.class_names,
            parents=[f"{dataset}@{version}"],
            seed=seed,
            quarantine=m.quarantine,
            extra=m.inherited(),
        )
    except BaseException:
        staging.discard()
        raise
