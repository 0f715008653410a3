"""``generator`` stages: any registered generator (``generators/``: SMOTE family, and model-backed ones) adds
synthetic rows per augmented split and class.

Per augmented split the driver counts rows per class and asks the generator how many new rows each class gets
(``Generator.targets``). One task per split gathers every row of that split (kNN and models fit on all of them),
fits the generator once and generates each class in class order from ``np.random.default_rng(seed)`` with ``seed``
drawn from ``SeedSequence([recipe seed, stage, class, key(split)])``. Model-backed generators run in a pool of Ray
actors that load their model once (``Generator.load``), on a GPU when the cluster has one. New rows get
``sample_id = blake2b("/".join(parent ids) + f"/{stage}/{i}")`` (or of the stage, split and class when a row has no
parent) and the lineage step ``{stage, name, generator, parents, **info}``; each class's rows form their own part
(after the existing parts), so shard boundaries depend only on the data.

Translation versions (``backtranslate``): the rows form one group (no classes). The input must hold monolingual
rows (``src`` null, ingested with ``--monolingual``) in an augmented split. By default the stage passes on the
split's genuine pairs and the synthetic ones and drops the monolingual rows, which trained nothing as they were:
the split's task writes the genuine pairs first, then the synthetic pairs, into its part. ``keep_monolingual: true``
(a generator parameter) passes them on as well; ``keep_originals: false`` passes on the synthetic pairs alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import storefs
from pipelines.plan import BuildPlan, label_counts
from pipelines.rng import sample_key
from pipelines.stages import register_stage_kind
from pipelines.stages.base import Row, StageKind, StepContext, stage_name
from pipelines.tasks import PartOut, get_payload, split_of, worker_recipe, worker_setup, write_rows
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe


@dataclass
class GenPlan:
    base: BuildPlan
    stage: int
    name: str
    params: Any  # a generators.base.Generator
    genuine_only: bool = False  # translation: the task writes its split's genuine pairs (monolingual rows dropped)


def drops_monolingual(base: BuildPlan, gen: Any, keep_originals: bool) -> bool:
    """True when a stage on a translation version that may hold monolingual rows passes on its splits' genuine
    pairs but not those rows (the default; the generator's ``keep_monolingual: true`` passes them on too)."""
    return (
        base.modality == "translation"
        and base.monolingual
        and keep_originals
        and not getattr(gen, "keep_monolingual", False)
    )


def genuine(rows: list[dict]) -> list[dict]:
    """The rows that are sentence pairs (a monolingual row has a null ``src``)."""
    return [r for r in rows if r.get("src") is not None]


def split_targets(gen: Any, rows: list[Row], split: str, class_names: list[str]) -> dict[int, int]:
    """New rows per class index for one split (empty when the split has no rows)."""
    if not class_names:  # translation: one group
        n = sum(1 for r in rows if r[2] == split)
        return {-1: sum(gen.targets({"": n}).values())} if n else {}
    counts = {class_names[i]: n for i, n in enumerate(label_counts(rows, split, len(class_names)))}
    if not any(counts.values()):
        return {}
    return {class_names.index(c): n for c, n in gen.targets(counts).items() if n > 0}


def class_rng(seed: int, stage: int, label: int, split: str) -> np.random.Generator:
    """The generator of one (stage, class, split): the same whatever runs it."""
    s = int(np.random.SeedSequence([seed, stage, label % (1 << 32), sample_key(split)]).generate_state(1)[0])
    return np.random.default_rng(s)


def fit_data(plan: GenPlan, rows: list[dict], cache_dir: str | None = None) -> Any:
    """The rows of one split as the generator's :class:`generators.base.FitData`."""
    from generators.base import FitData

    base = plan.base
    gen = plan.params
    if base.modality == "image":
        imgs = [get_payload(r, "image") for r in rows]
        shapes = {im.shape for im in imgs}
        if len(shapes) > 1:
            raise AugsvcError(
                f"stage {plan.stage} ({plan.name}): generator {gen.method} needs one image size, found "
                f"{len(shapes)} ({', '.join('x'.join(map(str, s)) for s in sorted(shapes)[:3])}...); "
                "ingest with --resize"
            )
        X = np.stack(imgs) if imgs else np.zeros((0, 1, 1, 1), np.uint8)
    elif base.modality == "tabular":
        X = np.array([[r[f] for f in base.features] for r in rows], dtype=object).reshape(len(rows), len(base.features))
    elif base.modality == "text":
        X = np.array([r["text"] for r in rows], dtype=object)
    else:
        X = np.array([[r["src"], r["tgt"]] for r in rows], dtype=object).reshape(len(rows), 2)
    y = np.array([-1 if r["label"] is None else r["label"] for r in rows], dtype=np.int64)
    embedding = None
    col = getattr(gen, "feature_column", None)
    if col is not None and col not in base.features:
        values = [r.get(col) for r in rows]
        if any(v is None for v in values):
            raise AugsvcError(f"stage {plan.stage} ({plan.name}): feature_column {col!r} is empty in some rows")
        embedding = np.asarray(values, dtype=np.float64)
    return FitData(X, y, list(base.class_names), base.modality, dict(base.features),
                   [r["source"] for r in rows], embedding, cache_dir)  # fmt: skip


def _new_rows(plan: GenPlan, rows: list[dict], label: int, split: str, gen_out: Any) -> list[dict]:
    base, k = plan.base, plan.stage
    recipe = worker_recipe(base)
    out = []
    for i in range(len(gen_out)):
        parents = [rows[j] for j in gen_out.parents[i]]
        pids = [p["sample_id"] for p in parents]
        key = "/".join(pids) if pids else f"gen/{recipe.seed}/{split}/{label}"
        sid = hashlib.blake2b(f"{key}/{k}/{i}".encode(), digest_size=8).hexdigest()
        first = parents[0] if parents else None
        new = {"sample_id": sid, "label": None if label < 0 else label, "soft_label": None, "split": split,
               "source": first["source"] if first else f"generated:{plan.name}/{i}"}  # fmt: skip
        step = {"stage": k, "name": plan.name, "generator": plan.params.method, "parents": pids, **gen_out.info[i]}
        prev = json.loads(first["lineage"]) if first and first["lineage"] else []
        new["lineage"] = json.dumps([*prev, step], separators=(",", ":"))
        x = gen_out.X[i]
        if base.modality == "tabular":
            for j, f in enumerate(base.features):
                v = x[j]
                new[f] = (None if v is None else float(v)) if base.features[f] == "numeric" else v
        elif base.modality == "image":
            new["_img"] = np.asarray(x, dtype=np.uint8)
            new["image"] = None
        elif base.modality == "text":
            new["text"] = str(x)
        else:
            new["src"], new["tgt"] = x[0], x[1]
        out.append(new)
    return out


def generate_split(
    plan: GenPlan, key: str, all_files: list[str], split: str, needs: list[tuple[int, int]],
    cache_dir: str | None = None, model: Any = None,
) -> PartOut:  # fmt: skip
    """Fit the generator on every row of ``split`` and make ``n`` rows for each ``(label, n)`` of ``needs``; one
    part whose chunks hold each class's rows in turn."""
    worker_setup()
    base = plan.base
    recipe = worker_recipe(base)
    table = pa.concat_tables([storefs.read_table(f) for f in all_files])
    rows = table.filter(pc.equal(table["split"], split)).to_pylist()
    data = fit_data(plan, rows, cache_dir)
    try:
        fitted = plan.params.fit(data, model)
        out = PartOut(key)
        if plan.genuine_only:
            out.chunks += write_rows(base, key, genuine(rows)).chunks
        for label, n in needs:
            gen_out = fitted.generate(label, n, class_rng(recipe.seed, plan.stage, label, split))
            out.chunks += write_rows(base, key, _new_rows(plan, rows, label, split, gen_out)).chunks
        report = fitted.report()
    except AugsvcError as e:
        raise AugsvcError(f"stage {plan.stage} ({plan.name}), split {split}: {e}") from None
    out.report = {split: report} if report else None
    return out


class GeneratorHost:
    """Actor body of a model-backed generator: loads the model once, then generates split after split."""

    def __init__(self, plan: GenPlan) -> None:
        worker_setup()
        self.plan = plan
        self.model = plan.params.load()

    def __call__(self, key: str, all_files: list[str], split: str, needs: list, cache_dir: str | None) -> PartOut:
        return generate_split(self.plan, key, all_files, split, needs, cache_dir, self.model)


class GeneratorStage(StageKind):
    key = "generator"
    description = "synthesise rows per class from the whole split (SMOTE family, model-backed generators)"

    def parse(self, spec: Any) -> Any:
        from generators import build_generator

        return build_generator(spec)

    def identity(self, built: Any) -> dict[str, Any]:
        return built.identity()

    needs_labels = True
    stage_keys = frozenset({"keep_originals"})
    stage_keys_hint = "a generator's own sampling_strategy sets how many rows it adds (see e.g. augsvc ops smote)"

    def check(self, recipe: Recipe, k: int, manifest: Manifest) -> None:
        try:
            recipe.stages[k].built.check_data(manifest.modality, manifest.class_names, manifest.features)
        except AugsvcError as e:
            raise AugsvcError(f"stages[{k}].generator: {e}") from None
        if manifest.modality == "translation" and not any((manifest.monolingual or {}).get(s) for s in recipe.splits):
            raise AugsvcError(
                f"stages[{k}].generator: {recipe.input} has no monolingual (target-only) rows in split(s) "
                f"{', '.join(recipe.splits)} to back-translate; ingest target-language text with --monolingual"
            )

    def estimate(self, recipe: Recipe, k: int, rows: list[Row], class_names: list[str]) -> list[Row]:
        st = recipe.stages[k]
        aug = set(recipe.splits)
        out = [r for r in rows if st.keep_originals or r[2] not in aug]
        for split in recipe.splits:
            try:
                need = split_targets(st.built, rows, split, class_names)
            except AugsvcError as e:
                raise AugsvcError(f"stages[{k}].generator, split {split}: {e}") from None
            for lab, n in need.items():
                name = class_names[lab] if lab >= 0 else "-"
                out.extend((f"gen/{k}/{split}/{name}/{i}", None if lab < 0 else lab, split) for i in range(n))
        return out

    def run(self, ctx: StepContext, ks: list[int], parts: list[list[str]]) -> list[list[str]]:
        k, si, recipe = ks[0], ctx.step, ctx.recipe
        st = recipe.stages[k]
        drop = drops_monolingual(ctx.plan, st.built, st.keep_originals)
        gplan = GenPlan(ctx.plan, k, stage_name(recipe, k), st.built, genuine_only=drop)
        metas = [r for mt in ctx.metas(parts) for r in mt]
        all_files = [f for files in parts for f in files]
        items = []
        for split in recipe.splits:
            try:
                need = split_targets(st.built, metas, split, ctx.manifest.class_names)
            except AugsvcError as e:
                raise AugsvcError(f"stages[{k}].generator, split {split}: {e}") from None
            if need:
                key = f"s{si}-g-{split}"
                items.append((key, (all_files, split, sorted(need.items()), ctx.cache_dir(key))))
        if st.built.model_backed:
            res = ctx.run_actors(GeneratorHost, gplan, items)
        else:
            res = ctx.run(generate_split, gplan, items)
        if not st.keep_originals or drop:  # (drop: each task wrote its split's genuine pairs itself)
            parts = [[f for f in files if split_of(f) not in recipe.splits] for files in parts]
        reports = {}
        for key, _ in items:
            reports.update(ctx.task_reports.get(key) or {})
        if reports:
            ctx.reports[stage_name(recipe, k)] = reports
        return parts + [res[key] for key, _ in items]

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        st = ctx.recipe.stages[k]
        gplan = GenPlan(ctx.plan, k, stage_name(ctx.recipe, k), st.built)
        meta = [(r["sample_id"], r["label"], r["split"]) for r in rows]
        model = st.built.load() if st.built.model_backed else None
        out = list(rows) if st.keep_originals else [r for r in rows if r["split"] not in ctx.recipe.splits]
        if drops_monolingual(ctx.plan, st.built, st.keep_originals):
            out = [r for r in out if r["split"] not in ctx.recipe.splits or r.get("src") is not None]
        for split in ctx.recipe.splits:
            need = split_targets(st.built, meta, split, ctx.manifest.class_names)
            if not need:
                continue
            split_rows = [r for r in rows if r["split"] == split]
            fitted = st.built.fit(fit_data(gplan, split_rows), model)
            for label, n in sorted(need.items()):
                g = fitted.generate(label, n, class_rng(ctx.recipe.seed, k, label, split))
                out += _new_rows(gplan, split_rows, label, split, g)
        return out

    def describe(self) -> dict[str, Any]:
        from generators import generator_catalogue

        return {**super().describe(), "generators": generator_catalogue()}


register_stage_kind(GeneratorStage)
