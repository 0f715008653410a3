"""``op`` stages: a per-row op (or composition) makes ``copies`` augmented copies of each selected row.

Consecutive op stages form one step (``fuses``): one task per part reads it, applies the stages in order (each kept
row, then its copies) and writes the new part, so rows never leave their part. Copy ``c`` of row ``s`` at stage
``k`` draws from ``rng_for(seed, k, c, s)``; its lineage step is ``{stage, name, copy, parent, op: <op record>}``.
Text stages run under the recipe's mutation cap (``pipelines/textcap.py``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pipelines.plan import BuildPlan, derived_id, make_plan, plan_op_stage
from pipelines.rng import rng_for
from pipelines.stages import register_stage_kind
from pipelines.stages.base import Row, StageKind, StepContext
from pipelines.tasks import PartOut, get_payload, read_part, set_payload, worker_recipe, worker_setup, write_rows
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe


def walk_ops(op: Any) -> list[Any]:
    """An op and every op nested in it (compositions), depth first."""
    kids = getattr(op, "ops", None) or []
    return [op, *[o for k in kids for o in walk_ops(k)]]


def label_invariant(op: Any) -> bool:
    """True when neither the op nor any op nested in it changes labels (so the stream may apply it)."""
    return all(getattr(o, "label_invariant", True) for o in walk_ops(op))


def apply_stage_op(recipe: Recipe, k: int, x: Any, rng: np.random.Generator, modality: str) -> tuple[Any, Any]:
    """Stage ``k``'s op on one payload -> (new payload, lineage record or None). Text chains run under the recipe's
    mutation cap (see docs/text_ops.md)."""
    return stage_op(recipe, k, modality)(x, rng)


def stage_op(recipe: Recipe, k: int, modality: str) -> Any:
    """Stage ``k``'s op as a callable ``(payload, rng) -> (new payload, record or None)``, looked up once: what
    :func:`apply_stage_op` calls, for loops over many samples (the stream's on-the-fly augmentation)."""
    op = recipe.stages[k].built
    if modality == "text" and recipe.max_mutation_fraction is not None:
        from functools import partial

        from pipelines.textcap import apply_capped

        return partial(_capped, apply_capped, op, recipe.max_mutation_fraction)
    return op


def _capped(apply_capped: Any, op: Any, fraction: float, x: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    return apply_capped(op, x, rng, max_fraction=fraction)


def augment_rows(plan: BuildPlan, rows: list[dict], recipe: Recipe | None = None) -> list[dict]:
    """Apply the plan's op stages to the rows of one part (in order: each kept row, then its copies)."""
    recipe = recipe or worker_recipe(plan)
    aug_splits = set(recipe.splits)
    for sp in plan.stages:
        out = []
        for row in rows:
            if sp.keep_originals:
                out.append(row)
            if row["split"] not in aug_splits or row["label"] not in sp.copies:
                continue
            n = sp.copies[row["label"]] + (1 if row["sample_id"] in sp.extra else 0)
            sid = row["sample_id"]
            steps = json.loads(row["lineage"]) if row["lineage"] else []
            for c in range(n):
                try:
                    x = get_payload(row, plan.modality)
                    y, rec = apply_stage_op(recipe, sp.index, x, rng_for(recipe.seed, sp.index, c, sid), plan.modality)
                except AugsvcError:
                    raise
                except Exception as e:  # noqa: BLE001  (name the sample and stage, whatever the op raised)
                    raise AugsvcError(
                        f"stage {sp.index} ({sp.name}) failed on sample {sid} (source {row['source']}, copy {c}): "
                        f"{type(e).__name__}: {e}"
                    ) from e
                new = dict(row)
                new["sample_id"] = derived_id(sid, sp.index, c)
                step = {"stage": sp.index, "name": sp.name, "copy": c, "parent": sid, "op": rec}
                new["lineage"] = json.dumps([*steps, step], separators=(",", ":"))
                set_payload(new, y, plan.modality)
                out.append(new)
        rows = out
    return rows


def rows_task(plan: BuildPlan, key: str, files: list[str]) -> PartOut:
    """An op step on one part: read it, apply the step's op stages, return the new part."""
    worker_setup()
    return write_rows(plan, key, augment_rows(plan, read_part(files).to_pylist()))


class OpStage(StageKind):
    key = "op"
    description = "per-row op or composition (a list is a sequence): copies of each selected row; see augsvc ops"
    fuses = True
    streamable = True

    def parse(self, spec: Any) -> Any:
        from pipelines.transforms.compose import build_op

        if isinstance(spec, list):
            if not spec:
                raise AugsvcError("an empty op list does nothing; give at least one op")
            spec = {"op": "sequence", "ops": spec}
        return build_op(spec)

    def check(self, recipe: Recipe, k: int, manifest: Manifest) -> None:
        st = recipe.stages[k]
        if st.classes or st.target_per_class is not None:
            from pipelines.unlabelled import require_labels

            require_labels(manifest, f"stages[{k}] ({st.name or 'op'}: classes/target_per_class)")
        for op in walk_ops(recipe.stages[k].built):
            if op.modality not in ("any", "", manifest.modality):
                raise AugsvcError(
                    f"stages[{k}]: op {op.name!r} works on {op.modality} rows, but {recipe.input} is "
                    f"{manifest.modality}"
                )

    def estimate(self, recipe: Recipe, k: int, rows: list[Row], class_names: list[str]) -> list[Row]:
        return plan_op_stage(recipe, k, rows, class_names)[1]

    def run(self, ctx: StepContext, ks: list[int], parts: list[list[str]]) -> list[list[str]]:
        rows = [r for meta in ctx.metas(parts) for r in meta]
        step_plan = make_plan(ctx.recipe, ctx.manifest, rows, only=set(ks))
        keys = [(f"s{ctx.step}-p{i}", (files,)) for i, files in enumerate(parts)]
        res = ctx.run(rows_task, step_plan, keys)
        return [res[k] for k, _ in keys]

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        meta = [(r["sample_id"], r["label"], r["split"]) for r in rows]
        return augment_rows(make_plan(ctx.recipe, ctx.manifest, meta, only={k}), rows, ctx.recipe)

    def replay(self, recipe: Recipe, step: dict[str, Any], original: Any, partner: Any = None) -> Any:
        if step["op"] is None:
            return original
        return recipe.stages[step["stage"]].built.apply(original, step["op"]["params"])

    def describe(self) -> dict[str, Any]:
        from pipelines.transforms.base import op_catalogue

        return {**super().describe(), "ops": op_catalogue()}


register_stage_kind(OpStage)
