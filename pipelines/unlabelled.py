"""Versions without labels (an image folder with no class folders): how to tell, and the one refusal message.

An unlabelled version has no ``class_names`` and a null ``label`` in every row. Streams, op stages with plain
``copies`` and contrastive pretraining read it; everything that needs labels calls :func:`require_labels` and
refuses it in one line naming itself (``augsvc train``, mix and generator stages, op stages with ``classes`` or
``target_per_class``).
"""

from __future__ import annotations

from typing import Any

from schemas.errors import AugsvcError


def is_unlabelled(manifest: Any) -> bool:
    """True for a version with no classes whose rows carry no labels (translation pairs excepted: they never do)."""
    return not manifest.class_names and manifest.modality != "translation"


def require_labels(manifest: Any, who: str) -> None:
    """Raise AugsvcError naming ``who`` (e.g. ``"stages[1] (mix)"``) when ``manifest``'s version is unlabelled."""
    if is_unlabelled(manifest):
        raise AugsvcError(
            f"{who} needs labels, but {manifest.dataset}@{manifest.version} has none (ingested from a folder without "
            "class folders); use a labelled version here, or pretrain on this one ('pretrain:' in a train config)"
        )


def require_split_labels(manifest: Any, split: str, who: str) -> None:
    """Like :func:`require_labels`, and also refuse when ``split`` has rows but none of them labelled (from the
    manifest's ``splits``: split -> class -> labelled rows, and ``rows_per_split``), e.g. an image folder whose
    ``test/`` folder holds loose images. Versions that record no per-split counts pass."""
    require_labels(manifest, who)
    if manifest.modality == "translation" or not manifest.splits or not manifest.rows_per_split:
        return
    rows = manifest.rows_per_split.get(split, 0)
    if rows and not sum(manifest.splits.get(split, {}).values()):
        raise AugsvcError(
            f"{who} needs labels, but split {split!r} of {manifest.dataset}@{manifest.version} has {rows} rows and "
            "none labelled (images outside class folders, or labels removed by label-subset); use a labelled split "
            "or version"
        )
