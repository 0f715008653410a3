"""Build tasks: pure functions of (plan, part files) that run on Ray workers or in-process.

One family per step kind: ``rows_task`` (op stages over one part), ``scatter_task``/``mix_task`` (label mixing
across parts, with ``plan_pairs`` fixing the partners), ``gen_task`` (a generator per split and class) and
``teacher_task`` (a trained model's logits). Every random draw comes from ``rng_for(seed, stage, copy, sample_id)``
or a documented variant, so their bytes do not depend on worker count or scheduling.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import storefs
from pipelines.ingest.encode import write_parquet
from pipelines.plan import BuildPlan, derived_id
from pipelines.rng import rng_for, sample_key
from schemas import imagecodec
from schemas.arrow import schema_for
from schemas.errors import AugsvcError
from schemas.recipe import Recipe

MIX_TAG = 0x3A1C  # SeedSequence entry of mixing pair/coin draws (never collides with op draws)
RAW_MAX_PIXELS = 64 * 64
_RECIPES: dict[str, Recipe] = {}  # per worker process: plan.recipe validated once


def _recipe(plan: BuildPlan) -> Recipe:
    key = json.dumps(plan.recipe, sort_keys=True)
    if key not in _RECIPES:
        _RECIPES[key] = Recipe.model_validate(plan.recipe)
    return _RECIPES[key]


def _payload(row: dict, modality: str) -> Any:
    if modality == "image":
        if "_img" not in row:
            row["_img"] = imagecodec.decode(
                row["image"], row["image_format"], row["height"], row["width"], row["channels"]
            )
        return row["_img"]
    if modality == "text":
        return row["text"]
    if modality == "translation":
        return row["src"]
    raise AugsvcError(f"{modality} rows have no per-row ops yet")


def _set_payload(row: dict, value: Any, modality: str) -> None:
    if modality == "image":
        row["_img"] = value
        row["image"] = None
    elif modality == "text":
        row["text"] = value
    else:
        row["src"] = value


def apply_stage_op(recipe: Recipe, k: int, x: Any, rng: np.random.Generator, modality: str) -> tuple[Any, Any]:
    """Stage ``k``'s op on one payload. Text chains run under the recipe's mutation cap (see docs/text_ops.md)."""
    op = recipe.stages[k].built
    if modality == "text" and recipe.max_mutation_fraction is not None:
        from pipelines.textcap import apply_capped

        return apply_capped(op, x, rng, max_fraction=recipe.max_mutation_fraction)
    return op(x, rng)


def augment_rows(plan: BuildPlan, rows: list[dict]) -> list[dict]:
    """Apply every stage to the rows of one shard (in order: each kept row, then its copies)."""
    recipe = _recipe(plan)
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
                    x = _payload(row, plan.modality)
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
                _set_payload(new, y, plan.modality)
                out.append(new)
        rows = out
    return rows


def _encode_images(rows: list[dict], recipe: Recipe) -> None:
    for row in rows:
        if row.get("image") is not None:
            continue
        img = row["_img"]
        h, w, c = img.shape
        fmt = recipe.output_image_format
        if fmt == "auto":
            fmt = "raw" if h * w <= RAW_MAX_PIXELS else "jpeg"
        row.update(image=imagecodec.encode(img, fmt, jpeg_quality=recipe.jpeg_quality), image_format=fmt,
                   height=h, width=w, channels=c)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Execution: steps over parts


@dataclass
class Chunk:
    data: bytes
    rows: int
    split: str


@dataclass
class PartOut:
    """What a task returns: the chunks of one output part (each at most ``max_rows`` rows, one split)."""

    key: str
    chunks: list[Chunk] = field(default_factory=list)


def _read_part(files: list[str], columns: list[str] | None = None) -> pa.Table:
    tables = [storefs.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _write_rows(plan: BuildPlan, key: str, rows: list[dict]) -> PartOut:
    if plan.modality == "image":
        _encode_images(rows, _recipe(plan))
    schema = schema_for(plan.modality, plan.features)
    out = PartOut(key)
    for start in range(0, len(rows), plan.max_rows):
        chunk = rows[start : start + plan.max_rows]
        cols = {f.name: [r.get(f.name) for r in chunk] for f in schema}
        out.chunks.append(
            Chunk(write_parquet(pa.Table.from_pydict(cols, schema=schema)), len(chunk), chunk[0]["split"])
        )
    return out


def _worker_setup() -> None:
    import cv2

    cv2.setNumThreads(0)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def rows_task(plan: BuildPlan, key: str, files: list[str]) -> PartOut:
    """A row step on one part: read it, apply the step's op stages, return the new part."""
    _worker_setup()
    return _write_rows(plan, key, augment_rows(plan, _read_part(files).to_pylist()))


def build_shard(plan: BuildPlan, index: int, path: str) -> PartOut:
    """A single-step build of one input shard (kept for callers that build shard by shard)."""
    return rows_task(plan, f"p{index}", [path])


# -- mixing ------------------------------------------------------------------------------------------------------


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
    spec = st.mix
    aug = set(recipe.splits)
    selected = {class_names.index(c) for c in st.classes} if st.classes else None
    for c in st.classes or []:
        if c not in class_names:
            raise AugsvcError(f"stages[{k}].classes: unknown class {c!r}; classes are {', '.join(class_names)}")
    pool = sorted((sid, lab) for rows in metas for sid, lab, split in rows if split in aug)
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
            if split not in aug or (selected is not None and lab not in selected):
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
    table = _read_part(files)
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
    from pipelines.mixing import mix_labels, mix_pair, soft_of

    _worker_setup()
    base = plan.base
    recipe = _recipe(base)
    rows = _read_part(files).to_pylist()
    partners = {r["sample_id"]: r for f in partner_files for r in storefs.read_table(f).to_pylist()}
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
                    a, b = _payload(row, base.modality), _payload(prow, base.modality)
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
                _set_payload(new, mixed, base.modality)
            out.append(new)
    return _write_rows(base, key, out)


# -- generators --------------------------------------------------------------------------------------------------


@dataclass
class GenPlan:
    base: BuildPlan
    stage: int
    name: str
    params: Any  # generators.smote.SmoteParams


def gen_task(plan: GenPlan, key: str, all_files: list[str], split: str, label: int, n_new: int) -> PartOut:
    """Synthesise ``n_new`` rows of class ``label`` in ``split`` from every row of that split (kNN needs them)."""
    from generators import smote

    base = plan.base
    recipe = _recipe(base)
    tables = [storefs.read_table(f) for f in all_files]
    table = pa.concat_tables(tables)
    table = table.filter(pc.equal(table["split"], split))
    rows = table.to_pylist()
    y = np.array([r["label"] for r in rows])
    params = plan.params
    if base.modality == "tabular":
        feats = list(base.features)
        cat = [f for f in feats if base.features[f] == "categorical"]
        if cat and params.method != "smotenc":
            raise AugsvcError(
                f"stage {plan.stage} ({plan.name}): columns {', '.join(cat)} are categorical; use method smotenc"
            )
        if params.method == "smotenc":
            X = np.array([[r[f] for f in feats] for r in rows], dtype=object)
            mask = np.array([base.features[f] == "categorical" for f in feats])
        else:
            X = np.array([[np.nan if r[f] is None else r[f] for f in feats] for r in rows], dtype=np.float64)
            mask = None
            if np.isnan(X).any():
                raise AugsvcError(
                    f"stage {plan.stage} ({plan.name}): missing feature values; SMOTE needs complete rows"
                )
    elif base.modality == "image":
        imgs = [_payload(r, "image") for r in rows]
        shapes = {im.shape for im in imgs}
        if len(shapes) != 1:
            raise AugsvcError(
                f"stage {plan.stage} ({plan.name}): SMOTE on images needs one image size, found {len(shapes)} "
                "(ingest with --resize)"
            )
        shape = imgs[0].shape
        X = smote.images_to_features(np.stack(imgs))
        mask = None
    else:
        raise AugsvcError(
            f"stage {plan.stage} ({plan.name}): SMOTE works on tabular or image rows, not {base.modality}"
        )
    seed = int(np.random.SeedSequence([recipe.seed, plan.stage, label, sample_key(split)]).generate_state(1)[0])
    syn = smote.generate(X, y, target_class=label, n_new=n_new, params=params, seed=seed, categorical_mask=mask)
    out = []
    for i in range(len(syn.X_new)):  # ADASYN rounding and Borderline danger sets can differ from n_new
        a, b = int(syn.parent_a[i]), int(syn.parent_b[i])
        ra, rb = rows[a], rows[b]
        sid = hashlib.blake2b(
            f"{ra['sample_id']}/{rb['sample_id']}/{plan.stage}/{i}".encode(), digest_size=8
        ).hexdigest()
        new = {"sample_id": sid, "label": label, "soft_label": None, "split": split, "source": ra["source"]}
        step = {"stage": plan.stage, "name": plan.name, "generator": params.method,
                "parents": [ra["sample_id"], rb["sample_id"]], "gap": float(syn.gap[i])}  # fmt: skip
        prev = json.loads(ra["lineage"]) if ra["lineage"] else []
        new["lineage"] = json.dumps([*prev, step], separators=(",", ":"))
        if base.modality == "tabular":
            for j, f in enumerate(base.features):
                v = syn.X_new[i][j]
                new[f] = (None if v is None else float(v)) if base.features[f] == "numeric" else v
        else:
            new["_img"] = smote.features_to_images(syn.X_new[i : i + 1], shape)[0]
            new["image"] = None
        out.append(new)
    return _write_rows(base, key, out)


# -- teacher -----------------------------------------------------------------------------------------------------


@dataclass
class TeacherPlan:
    base: BuildPlan
    stage: int
    checkpoint: str
    batch_size: int


def teacher_task(plan: TeacherPlan, key: str, files: list[str]) -> PartOut:
    """Logits of a trained model for every row of one part, on the rows as they are at this stage (augmented
    inputs included); the model is loaded once per worker process."""
    from generators.nets.classifier import logits_for_rows

    _worker_setup()
    base = plan.base
    rows = _read_part(files).to_pylist()
    batch: dict[str, Any] = {"label": np.array([r["label"] for r in rows])}
    if base.modality == "image":
        imgs = [_payload(r, "image") for r in rows]
        if len({im.shape for im in imgs}) != 1:
            raise AugsvcError(f"stage {plan.stage} (teacher): images of several sizes; ingest with --resize")
        batch["image"] = np.stack(imgs)
    elif base.modality == "text":
        batch["text"] = np.array([r["text"] for r in rows], dtype=object)
    else:
        for f in base.features:
            batch[f] = np.array([r[f] for r in rows], dtype=object)
    logits = logits_for_rows(plan.checkpoint, batch, plan.batch_size) if rows else np.zeros((0, 0), np.float32)
    if logits.shape[1:] != (len(base.class_names),):
        raise AugsvcError(
            f"stage {plan.stage} (teacher): the model predicts {logits.shape[1]} classes but the data has "
            f"{len(base.class_names)}"
        )
    for r, lg in zip(rows, logits, strict=True):
        r["teacher_logits"] = lg.tolist()
    return _write_rows(base, key, rows)


# -- driver ------------------------------------------------------------------------------------------------------
