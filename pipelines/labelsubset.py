"""Label-scarce child versions: keep the labels of a stratified subset of one split, and drop the other rows'
labels (``unlabelled="null"``: they stay as unlabelled rows, e.g. a transfer set for distillation) or the rows
themselves (``unlabelled="drop"``: a smaller labelled split).

The subset is a pure function of (seed, class, sorted sample ids): per class, a permutation seeded from
``SeedSequence([seed, LABEL_SUBSET, class])`` over the class's sample ids in sorted order; the first
``round(fraction * n_class)`` keep their label. Other splits pass through unchanged. An unlabelled row has a null
``label`` and ``soft_label``; the stream yields label -1 for it, the trainer leaves it out of the hard-label loss.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.store import PublishResult, Store, fault_guard
from pipelines.storeshards import write_parquet
from schemas.errors import AugsvcError

LABEL_SUBSET = 0x1AB5E7  # a fixed SeedSequence entry, apart from split and augmentation draws


def choose_labelled(ids: list[str], labels: list[int | None], *, fraction: float, seed: int) -> set[str]:
    """The sample ids (of rows that have a label) that keep it: ``round(fraction * n)`` per class."""
    by_class: dict[int, list[str]] = {}
    for sid, lab in zip(ids, labels, strict=True):
        if lab is not None:
            by_class.setdefault(int(lab), []).append(sid)
    keep: set[str] = set()
    for cls in sorted(by_class):
        members = sorted(by_class[cls])
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, LABEL_SUBSET, cls])))
        n = round(fraction * len(members))
        keep.update(members[i] for i in rng.permutation(len(members))[:n])
    return keep


def _kept(seed: int, sample_id: str, fraction: float) -> bool:
    """A seeded coin per sample id: True for about ``fraction`` of the ids."""
    h = hashlib.blake2b(f"{seed}/{LABEL_SUBSET}/{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") < fraction * 2**64


@fault_guard("label subset")
def label_subset(
    store: Store,
    ref: str,
    *,
    labelled: float,
    seed: int = 0,
    split: str = "train",
    unlabelled: str = "null",
    unlabelled_keep: float = 1.0,
    output: str | None = None,
) -> PublishResult:
    """Publish a child version of ``ref`` (in dataset ``output``, default the same) where only a stratified
    ``labelled`` fraction (0 < labelled <= 1) of ``split``'s labelled rows keep their label; the others lose it
    (``unlabelled="null"``) or are left out (``"drop"``). ``unlabelled_keep`` < 1 keeps only that fraction of the
    unlabelled rows (a smaller transfer set; chosen by a seeded hash of the sample id). AugsvcError for a missing
    split or a bad argument."""
    if not 0 < labelled <= 1:
        raise AugsvcError(f"--labelled {labelled}: the fraction of labelled rows to keep must be in (0, 1]")
    if not 0 <= unlabelled_keep <= 1:
        raise AugsvcError(f"--unlabelled-keep {unlabelled_keep}: the fraction of unlabelled rows to keep is in [0, 1]")
    if unlabelled not in ("null", "drop"):
        raise AugsvcError(f"--unlabelled {unlabelled!r}: use 'null' (keep the rows, without labels) or 'drop'")
    if unlabelled == "drop" and unlabelled_keep != 1.0:
        raise AugsvcError("--unlabelled-keep thins the rows kept without labels; with --unlabelled drop none are kept")
    dataset, version = store.resolve(ref)
    with store.reading(dataset, version):  # a reader of its parent until published: 'augsvc rm' refuses it meanwhile
        return _label_subset(store, dataset, version, labelled=labelled, seed=seed, split=split,
                             unlabelled=unlabelled, unlabelled_keep=unlabelled_keep, output=output)  # fmt: skip


def _label_subset(store: Store, dataset: str, version: str, *, labelled: float, seed: int, split: str,
                  unlabelled: str, unlabelled_keep: float, output: str | None) -> PublishResult:  # fmt: skip
    m = store.verified_manifest(dataset, version)
    if m.modality == "translation":
        raise AugsvcError(f"{dataset}@{version}: translation pairs have no class labels to subsample")
    if not m.rows_per_split.get(split):
        have = ", ".join(f"{k} {n}" for k, n in m.rows_per_split.items()) or "none"
        raise AugsvcError(f"{dataset}@{version} has no rows in split {split!r} (its rows: {have})")
    keys = store.row_keys(m, split)
    ids, labels = [k[0] for k in keys], [k[1] for k in keys]
    keep = choose_labelled(ids, labels, fraction=labelled, seed=seed)
    if not keep:
        n = sum(lab is not None for lab in labels)
        raise AugsvcError(
            f"{dataset}@{version}: --labelled {labelled} keeps no label of the {n} labelled row(s) in split {split!r} "
            "(round(fraction x rows) per class); give a larger fraction"
        )
    definition = {"kind": "label_subset", "parent": f"{dataset}@{version}", "split": split, "labelled": labelled,
                  "unlabelled": unlabelled, "unlabelled_keep": unlabelled_keep, "seed": seed}  # fmt: skip
    out = output or dataset
    staging = store.staging(out)
    try:
        for s in m.shards:
            table = store.read_shard(dataset, version, s.path)
            in_split = np.array([sp == split for sp in table["split"].to_pylist()], bool)
            chosen = np.array([sid in keep for sid in table["sample_id"].to_pylist()], bool)
            drop_label = in_split & ~chosen
            if unlabelled == "null" and unlabelled_keep < 1:  # a smaller transfer set
                thin = np.array([not _kept(seed, sid, unlabelled_keep) for sid in table["sample_id"].to_pylist()])
                table = table.filter(pa.array(~(drop_label & thin)))
                drop_label = drop_label[~(drop_label & thin)]
            if unlabelled == "drop":
                table = table.filter(pa.array(~drop_label))
            elif drop_label.any():
                mask = pa.array(drop_label)
                for name in ("label", "soft_label"):
                    if name in table.column_names:
                        i = table.schema.get_field_index(name)
                        col = pc.if_else(mask, pa.scalar(None, table.schema.field(name).type), table[name])
                        table = table.set_column(i, table.schema.field(name), col)
            if table.num_rows == 0:
                continue
            for name in sorted(set(table["split"].to_pylist())):
                part = table.filter(pc.equal(table["split"], name))
                staging.add_shard_bytes(write_parquet(part), part.num_rows, name)
        if not staging.shards:
            raise AugsvcError(f"{dataset}@{version}: no rows left; keep a larger labelled fraction")
        return store.publish(
            staging,
            dataset=out,
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
