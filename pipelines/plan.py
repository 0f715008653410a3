"""Build plans: which rows every stage copies, mixes or generates, fixed from the manifest before any task runs.

``make_plan`` counts rows per split and class, applies each stage's ``copies``/``only_classes``/``target``
rules and returns a ``BuildPlan`` that every task receives (so tasks need no view of the whole dataset).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pipelines.storeshards import plan_counts
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe

OUT_SHARD_ROWS = {"image": 1024, "text": 20000, "tabular": 20000, "translation": 20000}


def derived_id(parent: str, stage: int, copy: int) -> str:
    """sample_id of copy ``copy`` of row ``parent`` made by stage ``stage``."""
    return hashlib.blake2b(f"{parent}/{stage}/{copy}".encode(), digest_size=8).hexdigest()


def _rank_key(seed: int, stage: int, sample_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}/{stage}/{sample_id}".encode(), digest_size=8).digest()


@dataclass
class StagePlan:
    index: int
    name: str
    copies: dict[int | None, int]  # label (None: unlabelled rows) -> copies per row (labels not listed get none)
    extra: frozenset[str]  # sample ids that get one copy more (per-class targets)
    keep_originals: bool


@dataclass
class BuildPlan:
    recipe: dict[str, Any]
    modality: str
    features: dict[str, str]
    class_names: list[str]
    stages: list[StagePlan]
    counts_in: dict[str, dict[str, int]]
    counts_out: dict[str, dict[str, int]]
    max_rows: int
    monolingual: bool = False  # translation: src is nullable (the input may hold target-only rows)


def make_plan(
    recipe: Recipe, manifest: Manifest, rows: list[tuple[str, int, str]], only: set[int] | None = None
) -> BuildPlan:
    """Decide the copies of op stages from (sample_id, label, split) of the rows that reach them.

    With ``only``, plan just those op stages (one op step of a build); without, simulate the whole recipe for a
    dry run: other kinds of stage give their estimate (``StageKind.estimate``).
    """
    from pipelines.stages import kind_of

    names = manifest.class_names
    counts_in = plan_counts(rows, names)
    stages = []
    for k, st in enumerate(recipe.stages):
        if only is not None and k not in only:
            continue
        if st.kind != "op":
            rows = kind_of(recipe, k).estimate(recipe, k, rows, names)
            continue
        sp, rows = plan_op_stage(recipe, k, rows, names)
        stages.append(sp)
    return BuildPlan(
        recipe=recipe.model_dump(mode="json"),
        modality=manifest.modality,
        features=manifest.features,
        class_names=names,
        stages=stages,
        counts_in=counts_in,
        counts_out=plan_counts(rows, names),
        max_rows=OUT_SHARD_ROWS[manifest.modality],
        monolingual=manifest.monolingual is not None,
    )


def plan_op_stage(
    recipe: Recipe, k: int, rows: list[tuple[str, int, str]], names: list[str]
) -> tuple[StagePlan, list[tuple[str, int, str]]]:
    """(copies per class and the rows that get one more, rows after the stage) for op stage ``k``.

    Per-class targets: ``need = target - rows kept``; every row of the class gets ``need // members`` copies and the
    ``need % members`` rows with the smallest blake2b(seed/stage/sample_id) one more."""
    from pipelines.stages.base import selected_labels

    st = recipe.stages[k]
    index = {c: i for i, c in enumerate(names)}
    # an unlabelled version (no classes, null labels): plain copies for every row (check_recipe refuses the rest)
    selected = selected_labels(recipe, k, names) if names else {None}
    aug = [r for r in rows if r[2] in recipe.splits and r[1] in selected]
    copies: dict[int, int] = {}
    extra: set[str] = set()
    if st.target_per_class is None:
        copies = dict.fromkeys(selected, st.copies)
        if not st.classes and any(r[1] is None for r in rows if r[2] in recipe.splits):
            copies[None] = st.copies  # unlabelled rows (a transfer set) get copies too, unless classes are picked
    else:
        targets = st.target_per_class
        if isinstance(targets, dict):
            for c in targets:
                if c not in index:
                    raise AugsvcError(
                        f"stages[{k}].target_per_class: unknown class {c!r}; classes are {', '.join(names)}"
                    )
            targets = {index[c]: t for c, t in targets.items()}
        for lab in sorted(selected):
            target = targets if isinstance(targets, int) else targets.get(lab)
            if target is None:
                continue
            members = sorted((r[0] for r in aug if r[1] == lab), key=lambda s: _rank_key(recipe.seed, k, s))
            have = len(members) if st.keep_originals else 0
            need = max(0, target - have)
            if need and not members:
                raise AugsvcError(f"stages[{k}]: class {names[lab]!r} has no rows in {recipe.splits} to copy")
            if not members:
                continue
            copies[lab] = need // len(members)
            extra.update(members[: need % len(members)])
    sp = StagePlan(k, st.name or f"stage-{k}", copies, frozenset(extra), st.keep_originals)
    nxt = []
    in_aug = set(recipe.splits)
    for sid, lab, split in rows:
        if st.keep_originals:
            nxt.append((sid, lab, split))
        if split in in_aug and lab in copies:
            n = copies[lab] + (1 if sid in extra else 0)
            nxt.extend((derived_id(sid, k, c), lab, split) for c in range(n))
    return sp, nxt


def label_counts(rows: list, split: str, k: int) -> list[int]:
    """Rows per class index in ``split``."""
    counts = [0] * k
    for _, lab, sp in rows:
        if sp == split and lab is not None:
            counts[lab] += 1
    return counts
