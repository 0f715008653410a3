"""``mix`` stages: label mixing (mixup, cutmix, average, tabular mixup) with soft labels, partners from the whole
dataset (``pipelines/mixing.py`` holds the maths).

The driver pairs every anchor with a partner from all rows of the augmented splits (:func:`plan_pairs`), then a
keyed shuffle: one *scatter* task per part writes the partner rows other parts need, and one *mix* task per part
reads its rows plus the partners delivered to it. Lambda and the CutMix box come from ``rng_for(seed, stage, copy,
anchor)``; the lineage step ``{stage, name, copy, parent, partner, mix: {method, lam, box...}}`` replays the row
from the anchor and partner (:func:`pipelines.mixing.apply_mix`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines import storefs
from pipelines.mixing import MixSpec, apply_mix, mix_labels, mix_pair, soft_of
from pipelines.plan import BuildPlan, derived_id
from pipelines.rng import rng_for, sample_key
from pipelines.stages import register_stage_kind
from pipelines.stages.base import Row, StageKind, StepContext, selected_labels, stage_name, validate_spec
from pipelines.storeshards import write_parquet
from pipelines.tasks import PartOut, get_payload, read_part, set_payload, worker_recipe, worker_setup, write_rows
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe

MIX_TAG = 0x3A1C  # SeedSequence entry of mixing pair/coin draws (never collides with op draws)
MODALITIES = {"mixup": ("image",), "cutmix": ("image",), "average": ("image",), "tabular_mixup": ("tabular",)}


@dataclass
class MixPlan:
    base: BuildPlan
    stage: int
    name: str
    spec: Any  # MixSpec
    keep_originals: bool
    aug_splits: list[str]


def plan_pairs(
    recipe: Recipe, k: int, metas: list[list[tuple[str, int, str]]], class_names: list[str]
) -> dict[int, list[tuple[str, int, str]]]:
    """Pairs of a mixing stage: dest part -> [(anchor sample_id, copy, partner sample_id)], in part row order.

    Partners come from every row of the augmented splits (any shard): for ``partner: any`` copy ``c`` uses a
    permutation of those rows sorted by sample id, seeded from ``SeedSequence([seed, stage, c, MIX_TAG])``; for
    ``different_class`` each anchor draws uniformly among the rows of the other classes with
    ``SeedSequence([seed, stage, c, key, MIX_TAG])``, which also draws the ``p`` coin. Neither depends on sharding.
    """
    st = recipe.stages[k]
    spec = st.built
    aug = set(recipe.splits)
    selected = selected_labels(recipe, k, class_names) if st.classes else None
    # rows without a label (a transfer set) are neither anchors nor partners: a mix needs both soft labels
    pool = sorted((sid, lab) for rows in metas for sid, lab, split in rows if split in aug and lab is not None)
    if len(pool) < 2:
        raise AugsvcError(f"stages[{k}] (mix): needs at least 2 rows in splits {recipe.splits}, found {len(pool)}")
    pos = {sid: i for i, (sid, _) in enumerate(pool)}
    by_class = sorted(range(len(pool)), key=lambda i: (pool[i][1], pool[i][0]))
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for j, i in enumerate(by_class):
        lab = pool[i][1]
        start.setdefault(lab, j)
        end[lab] = j + 1
    if spec.partner == "different_class" and len(start) < 2:
        raise AugsvcError(f"stages[{k}] (mix): partner different_class needs rows of at least 2 classes")
    perms = []
    for c in range(st.copies):
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([recipe.seed, k, c, MIX_TAG])))
        perms.append(g.permutation(len(pool)) if spec.partner == "any" else None)
    out: dict[int, list[tuple[str, int, str]]] = {}
    for part, rows in enumerate(metas):
        pairs = out.setdefault(part, [])
        for sid, lab, split in rows:
            if split not in aug or lab is None or (selected is not None and lab not in selected):
                continue
            i = pos[sid]
            for c in range(st.copies):
                g = np.random.Generator(
                    np.random.PCG64(np.random.SeedSequence([recipe.seed, k, c, sample_key(sid), MIX_TAG]))
                )
                if spec.p < 1.0 and g.random() >= spec.p:
                    continue
                if spec.partner == "any":
                    j = int(perms[c][i])
                    if j == i:
                        j = int(perms[c][(i + 1) % len(pool)])
                    partner = pool[j][0]
                else:
                    n_other = len(pool) - (end[lab] - start[lab])
                    j = int(g.integers(0, n_other))
                    j = j if j < start[lab] else j + (end[lab] - start[lab])
                    partner = pool[by_class[j]][0]
                pairs.append((sid, c, partner))
    return out


def scatter_task(plan: MixPlan, key: str, files: list[str], needs: dict[str, list[int]]) -> dict[int, bytes]:
    """Send the partner rows held by one part to the parts that need them: dest part -> Parquet bytes."""
    table = read_part(files)
    ids = table.column("sample_id").to_pylist()
    by_dest: dict[int, list[int]] = {}
    for i, sid in enumerate(ids):
        for d in needs.get(sid, ()):
            by_dest.setdefault(d, []).append(i)
    return {d: write_parquet(table.take(pa.array(idx))) for d, idx in sorted(by_dest.items())}


def mix_task(
    plan: MixPlan, key: str, files: list[str], partner_files: list[str], pairs: list[tuple[str, int, str]]
) -> PartOut:
    """Mix the rows of one part with their partners (gathered by ``scatter_task``)."""
    worker_setup()
    rows = read_part(files).to_pylist()
    partners = {r["sample_id"]: r for f in partner_files for r in storefs.read_table(f).to_pylist()}
    return write_rows(plan.base, key, _mix_rows(plan, worker_recipe(plan.base), rows, partners, pairs))


def _mix_rows(
    plan: MixPlan, recipe: Recipe, rows: list[dict], partners: dict[str, dict], pairs: list[tuple[str, int, str]]
) -> list[dict]:
    """The rows of one part (kept ones, each followed by its mixed copies) mixed with their partners."""
    base = plan.base
    todo: dict[str, list[tuple[int, str]]] = {}
    for sid, c, psid in pairs:
        todo.setdefault(sid, []).append((c, psid))
    k, spec, n_cls = plan.stage, plan.spec, len(base.class_names)
    out = []
    for row in rows:
        if plan.keep_originals or row["split"] not in plan.aug_splits:
            out.append(row)
        sid = row["sample_id"]
        for c, psid in todo.get(sid, ()):
            prow = partners.get(psid)
            if prow is None:
                raise AugsvcError(f"stage {k} ({plan.name}): partner {psid} of sample {sid} was not delivered")
            try:
                if base.modality == "tabular":
                    a = {f: row[f] for f in base.features}
                    b = {f: prow[f] for f in base.features}
                else:
                    a, b = get_payload(row, base.modality), get_payload(prow, base.modality)
                mixed, lam, rec = mix_pair(spec, a, b, rng_for(recipe.seed, k, c, sid), base.features)
            except AugsvcError:
                raise
            except Exception as e:  # noqa: BLE001
                raise AugsvcError(
                    f"stage {k} ({plan.name}) failed mixing sample {sid} (source {row['source']}) with {psid}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            eps = spec.label_smoothing
            soft, label = mix_labels(
                soft_of(row["label"], row["soft_label"], n_cls, eps),
                soft_of(prow["label"], prow["soft_label"], n_cls, eps),
                lam,
            )
            new = {key_: v for key_, v in row.items() if key_ != "_img"}
            new.update(sample_id=derived_id(sid, k, c), label=label, soft_label=soft.tolist())
            steps = json.loads(row["lineage"]) if row["lineage"] else []
            step = {"stage": k, "name": plan.name, "copy": c, "parent": sid, "partner": psid, "mix": rec}
            new["lineage"] = json.dumps([*steps, step], separators=(",", ":"))
            if base.modality == "tabular":
                new.update(mixed)
            else:
                set_payload(new, mixed, base.modality)
            out.append(new)
    return out


def _scatter_entry(plan: MixPlan, key: str, files: list[str], needs: dict[str, list[int]]) -> tuple:
    """scatter_task as a run() item: (key, Parquet bytes per dest part, dest parts); saved as ``<key>-d<dest>``."""
    by_dest = scatter_task(plan, key, files, needs)
    return key, [by_dest[d] for d in sorted(by_dest)], sorted(by_dest)


class MixStage(StageKind):
    key = "mix"
    description = "label mixing with soft labels: pairs rows across the whole dataset (mixup, cutmix, average)"
    mixes_labels = True
    task_rounds = 2  # scatter partners, then mix
    stage_keys = frozenset({"copies", "keep_originals", "classes"})
    stage_keys_hint = "a mix stage makes `copies` mixed rows per row of the selected classes"
    needs_labels = True

    def parse(self, spec: Any) -> MixSpec:
        return validate_spec(MixSpec, spec, "{method: mixup, alpha: 0.4}")

    def canonical(self, built: MixSpec, spec: Any) -> Any:
        return built.model_dump(mode="json")

    def check(self, recipe: Recipe, k: int, manifest: Manifest) -> None:
        method = recipe.stages[k].built.method
        if manifest.modality not in MODALITIES[method]:
            raise AugsvcError(f"stages[{k}]: mix method {method!r} does not work on {manifest.modality} rows")
        selected_labels(recipe, k, manifest.class_names)

    def estimate(self, recipe: Recipe, k: int, rows: list[Row], class_names: list[str]) -> list[Row]:
        st = recipe.stages[k]
        aug = set(recipe.splits)
        selected = selected_labels(recipe, k, class_names)
        out = [r for r in rows if st.keep_originals or r[2] not in aug]
        for sid, lab, split in rows:
            if split in aug and lab in selected:
                out.extend((derived_id(sid, k, c), lab, split) for c in range(st.copies))
        return out

    def _plan(self, ctx: StepContext, k: int) -> MixPlan:
        st = ctx.recipe.stages[k]
        return MixPlan(ctx.plan, k, stage_name(ctx.recipe, k), st.built, st.keep_originals, list(ctx.recipe.splits))

    def run(self, ctx: StepContext, ks: list[int], parts: list[list[str]]) -> list[list[str]]:
        k, si = ks[0], ctx.step
        metas = ctx.metas(parts)
        pairs = plan_pairs(ctx.recipe, k, metas, ctx.manifest.class_names)
        where = {sid: i for i, meta in enumerate(metas) for sid, _, _ in meta}
        needs: dict[int, dict[str, list[int]]] = {}
        for d, plist in pairs.items():
            for _, _, psid in plist:
                needs.setdefault(where[psid], {}).setdefault(psid, []).append(d)
        mplan = self._plan(ctx, k)
        scattered = ctx.run(
            _scatter_entry, mplan, [(f"s{si}-x{j}", (parts[j], needs.get(j, {}))) for j in range(len(parts))]
        )
        delivered: dict[int, list[str]] = {}
        for j in range(len(parts)):
            for f in scattered[f"s{si}-x{j}"]:
                d = int(storefs.basename(f).removesuffix(".parquet").rsplit("-d", 1)[1])
                delivered.setdefault(d, []).append(f)
        keys = [(f"s{si}-p{i}", (parts[i], sorted(delivered.get(i, [])), pairs.get(i, []))) for i in range(len(parts))]
        res = ctx.run(mix_task, mplan, keys)
        return [res[key] for key, _ in keys]

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        meta = [(r["sample_id"], r["label"], r["split"]) for r in rows]
        pairs = plan_pairs(ctx.recipe, k, [meta], ctx.manifest.class_names).get(0, [])
        mplan = self._plan(ctx, k)
        return _mix_rows(mplan, ctx.recipe, rows, {r["sample_id"]: r for r in rows}, pairs)

    def replay(self, recipe: Recipe, step: dict[str, Any], original: Any, partner: Any = None) -> Any:
        if partner is None:
            raise AugsvcError(f"step {step['stage']} mixed sample {step['parent']} with {step['partner']}: "
                              "replay it with the partner's payload")  # fmt: skip
        return apply_mix(recipe.stages[step["stage"]].built, original, partner, step["mix"])

    def describe(self) -> dict[str, Any]:
        from schemas.catalogue import params_of

        methods = {m: {"modalities": list(v)} for m, v in MODALITIES.items()}
        return {**super().describe(), "methods": methods, "params": params_of(MixSpec)}


register_stage_kind(MixStage)
