"""Contrastive views for :class:`augsvc.stream.Stream` (``views=2``): independently augmented views of each sample.

SimCLR (Chen et al. 2020) trains an encoder to match two augmented views of one image against the views of the
other images of the batch. With ``views=V`` (V >= 2) and a ``recipe``, every batch gains a ``views`` column: view
``v`` of sample ``s`` is the sample passed through the recipe's label-invariant op stages in order, stage ``k``
drawing from ``SampleRngs(VIEWS, recipe seed, epoch, k, v)(sample_key(s))`` (Philox keyed by the draw and the
sample, :class:`augsvc.streamplan.SampleRngs`). So a view depends only on (recipe
seed, epoch, stage, view index, sample), never on its position, batch, DataLoader worker or rank: an epoch replays
exactly, a resumed stream yields the same views, and the views of one sample differ from each other (different
seeds) and from epoch to epoch.

A build has no separate option for this: an op stage with ``copies: 2, keep_originals: false`` already writes two
independently augmented copies of each row (copy ``c`` from ``rng_for(seed, stage, c, sample)``), linked to their
original by ``lineage``; the stream's ``views`` keeps the pair together in one batch, which a stored version of
independent rows cannot promise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from augsvc.streamplan import SampleRngs
from schemas.errors import AugsvcError

VIEWS = 0x5EE5  # purpose word of the views' seeds (the stream's other purposes are small ints in augsvc.streamplan)
PAYLOAD = {"image": "image", "text": "text"}


def check_views(views: int, aug_stages: list[int], mix: dict | None, modality: str) -> int:
    """``views`` validated for a stream: 1 (off) or at least 2 with augmenting stages; AugsvcError otherwise."""
    if not isinstance(views, int) or isinstance(views, bool) or views < 1:
        raise AugsvcError(f"views must be an integer >= 1 (2 for contrastive pairs), got {views!r}")
    if views == 1:
        return 1
    if modality not in PAYLOAD:
        raise AugsvcError(f"views work on image and text versions, not {modality}")
    if not aug_stages:
        raise AugsvcError(
            f"views={views} needs a recipe with label-invariant op stages (recipe=...): without augmentation every "
            "view would be the same sample"
        )
    if mix:
        raise AugsvcError("views and mix cannot be combined: mixing would blend the views of different samples")
    return views


def make_views(
    xs: list[Any], sample_ids: list[str], *, recipe: Any, stages: list[int], epoch: int, views: int, modality: str
) -> Any:
    """``views`` augmented copies of the payloads ``xs`` (one per sample id): uint8 (V, N, H, W, C) for images of
    one shape (else a list of V lists of HWC arrays), an object (V, N) array of strings for text."""
    from pipelines.rng import sample_key
    from pipelines.stages.op import stage_op

    keys = [sample_key(s) for s in sample_ids]
    out = []
    for v in range(views):
        ops = [(stage_op(recipe, k, modality), SampleRngs(VIEWS, recipe.seed, epoch, k, v)) for k in stages]
        vs = []
        for x, key in zip(xs, keys, strict=True):
            for op, rngs in ops:
                x, _ = op(x, rngs(key))
            vs.append(x)
        out.append(vs)
    if modality == "text":
        return np.array(out, dtype=object).reshape(views, len(xs))
    if len({np.shape(x) for vs in out for x in vs}) == 1 and xs:
        return np.stack([np.stack(vs) for vs in out])
    return out


def add_views(stream: Any, out: dict[str, Any]) -> None:
    """Put ``views`` into a collated batch of ``stream`` (its recipe, augmenting stages, epoch and ``views``)."""
    key = PAYLOAD[stream.manifest.modality]
    if key not in out:
        raise AugsvcError(f"views need the {key!r} column; add it to columns=")
    out["views"] = make_views(list(out[key]), list(out["sample_id"]), recipe=stream.recipe, stages=stream.aug_stages,
                              epoch=stream.epoch, views=stream.views, modality=stream.manifest.modality)  # fmt: skip


def _never_changes(t: Any) -> bool:
    """True when a built transform is applied with probability 0, or all of the transforms it combines are."""
    if getattr(t, "p", 1.0) == 0:
        return True
    children = getattr(t, "ops", None)
    return bool(children) and all(_never_changes(c) for c in children)


def check_view_recipe(recipe: Any, key: str) -> None:
    """Refuse, naming ``key`` (e.g. ``pretrain.augment``), a views recipe (path, mapping or Recipe) that has no
    label-invariant op stage (only mix, generator or teacher stages) or whose op stages all have ``p: 0``
    everywhere: the views of a sample would be identical. AugsvcError."""
    from augsvc.stream import _load_recipe

    r, stages = _load_recipe(recipe)
    if not stages:
        raise AugsvcError(
            f"{key}: no label-invariant op stage to make views from (mix, generator and teacher stages do not make "
            "views); give op stages such as random_resized_crop, hflip, color_jitter, or drop the key for the default"
        )
    if all(_never_changes(r.stages[k].built) for k in stages):
        raise AugsvcError(
            f"{key}: every op has p: 0, so views would be identical (nothing to learn); give ops with p > 0"
        )
