"""Advice a command prints before work that is allowed but probably not what the user wants."""

from __future__ import annotations

from schemas.manifest import Manifest


def leak_note(m: Manifest, augmented_splits: list[str]) -> str | None:
    """A warning when a build augments a version that has no val/test rows yet: any split made afterwards would
    put augmented or synthetic copies of one row on both sides (a leak that inflates evaluation scores)."""
    have = m.rows_per_split or {}
    if have.get("val") or have.get("test") or m.modality == "translation":
        return None
    return (
        f"warning: {m.dataset}@{m.version} has no val or test rows; a split made after this build would put "
        f"augmented copies of one row in both train and evaluation. Split first: augsvc split {m.dataset} "
        f"(then build from the split version; this recipe augments {', '.join(augmented_splits)})"
    )


def no_train_note(m: Manifest) -> str | None:
    """A note when an ingest put no rows in ``train`` (e.g. MNIST's t10k files land in ``test`` by their names):
    ``augsvc split`` and the trainer need training rows."""
    have = m.rows_per_split or {}
    if not have or have.get("train"):
        return None
    where = ", ".join(f"{k} {n}" for k, n in have.items())
    return (
        f"note: no rows in 'train' ({where}; split names come from file names); to train on them, ingest again "
        "with --split train, then 'augsvc split' carves val/test out of them"
    )
