"""Build runner: a recipe turns a source version into a new, augmented, immutable version.

The recipe's stages are grouped into *steps*: a run of consecutive per-row op stages is one step (one task per
part, rows never leave their part); a mixing stage is a step that pairs rows across the whole dataset (a keyed
scatter of partner rows, then one task per part); a generator stage gathers the rows it needs per class. A *part*
is an ordered list of Parquet files; the input's shards are the first parts, and every step maps parts to parts,
so output order and shard boundaries are fixed by the data. Tasks run on Ray core tasks via
``pipelines.executor.run_map`` (or in-process), each a pure function of its inputs and the plan: every random draw
comes from ``rng_for(seed, stage, copy, sample_id)`` (or a documented variant), so the bytes do not depend on worker
count or scheduling. Every task output is kept in ``.staging/build-<version>/work/`` with a sidecar, so an
interrupted build, run again, reuses finished work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from augsvc import __version__, storefs
from augsvc.errors import AugsvcError
from augsvc.hashing import version_id
from augsvc.store import Store
from pipelines import imagecodec
from pipelines.executor import ensure_ray, run_map
from pipelines.ingest.encode import write_parquet
from pipelines.rng import rng_for, sample_key
from schemas.arrow import schema_for
from schemas.manifest import Manifest, ShardInfo
from schemas.recipe import Recipe

BUILD_FORMAT_VERSION = 3
MIX_TAG = 0x3A1C  # SeedSequence entry of mixing pair/coin draws (never collides with op draws)
OUT_SHARD_ROWS = {"image": 1024, "text": 20000, "tabular": 20000, "translation": 20000}
RAW_MAX_PIXELS = 64 * 64


def derived_id(parent: str, stage: int, copy: int) -> str:
    """sample_id of copy ``copy`` of row ``parent`` made by stage ``stage``."""
    return hashlib.blake2b(f"{parent}/{stage}/{copy}".encode(), digest_size=8).hexdigest()


def _rank_key(seed: int, stage: int, sample_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}/{stage}/{sample_id}".encode(), digest_size=8).digest()


@dataclass
class StagePlan:
    index: int
    name: str
    copies: dict[int, int]  # label -> copies per row (labels not listed get none)
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


def _counts(rows: list[tuple[str, int, str]], class_names: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for _, lab, split in rows:
        per = out.setdefault(split, {})
        name = class_names[lab] if lab is not None else "-"
        per[name] = per.get(name, 0) + 1
    return {s: dict(sorted(per.items(), key=lambda kv: kv[0])) for s, per in sorted(out.items())}


def make_plan(
    recipe: Recipe, manifest: Manifest, rows: list[tuple[str, int, str]], only: set[int] | None = None
) -> BuildPlan:
    """Decide the copies of op stages from (sample_id, label, split) of the rows that reach them.

    With ``only``, plan just those stages (one row step of a build); without, simulate the whole recipe for a
    dry run, estimating mixing stages (every pair mixed, labelled as its anchor) and generator stages.
    """
    names = manifest.class_names
    index = {c: i for i, c in enumerate(names)}
    counts_in = _counts(rows, names)
    stages = []
    for k, st in enumerate(recipe.stages):
        if only is not None and k not in only:
            continue
        if st.kind != "op":
            rows = _estimate_global(recipe, k, rows, names)
            continue
        sname = st.name or f"stage-{k}"
        for c in st.classes or []:
            if c not in index:
                raise AugsvcError(f"stages[{k}].classes: unknown class {c!r}; classes are {', '.join(names)}")
        selected = {index[c] for c in st.classes} if st.classes else set(range(len(names)))
        aug = [r for r in rows if r[2] in recipe.splits and r[1] in selected]
        copies: dict[int, int] = {}
        extra: set[str] = set()
        if st.target_per_class is None:
            copies = dict.fromkeys(selected, st.copies)
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
        stages.append(StagePlan(k, sname, copies, frozenset(extra), st.keep_originals))
        nxt = []
        in_aug = set(recipe.splits)
        for sid, lab, split in rows:
            if st.keep_originals:
                nxt.append((sid, lab, split))
            if split in in_aug and lab in copies:
                n = copies[lab] + (1 if sid in extra else 0)
                nxt.extend((derived_id(sid, k, c), lab, split) for c in range(n))
        rows = nxt
    return BuildPlan(
        recipe=recipe.model_dump(mode="json"),
        modality=manifest.modality,
        features=manifest.features,
        class_names=names,
        stages=stages,
        counts_in=counts_in,
        counts_out=_counts(rows, names),
        max_rows=OUT_SHARD_ROWS[manifest.modality],
    )


def _estimate_global(recipe: Recipe, k: int, rows: list, names: list[str]) -> list:
    """Dry-run estimate of the rows after a mixing or generator stage."""
    st = recipe.stages[k]
    aug = set(recipe.splits)
    selected = {names.index(c) for c in st.classes} if st.classes else set(range(len(names)))
    if st.kind == "teacher":
        return rows
    out = [r for r in rows if st.keep_originals or r[2] not in aug]
    if st.kind == "mix":
        for sid, lab, split in rows:
            if split in aug and lab in selected:
                out.extend((derived_id(sid, k, c), lab, split) for c in range(st.copies))
        return out
    from generators.smote import plan as smote_plan

    for split in sorted(aug):
        counts = {names[i]: n for i, n in enumerate(_label_counts(rows, split, len(names)))}
        for cname, n_new in smote_plan(counts, st.built).items():
            lab = names.index(cname)
            out.extend((f"gen/{k}/{split}/{cname}/{i}", lab, split) for i in range(n_new))
    return out


def _label_counts(rows: list, split: str, k: int) -> list[int]:
    counts = [0] * k
    for _, lab, sp in rows:
        if sp == split and lab is not None:
            counts[lab] += 1
    return counts


_RECIPES: dict[str, Recipe] = {}


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
    from augsvc.trainer.teacher import logits_for_rows

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


@dataclass
class BuildReport:
    manifest: Manifest | None
    up_to_date: bool
    plan: BuildPlan
    version: str
    seconds: float = 0.0
    ray_start_seconds: float = 0.0
    rows_in: int = 0
    reused_shards: int = 0


def _input_rows(store: Store, dataset: str, version: str, m: Manifest) -> list[tuple[str, int, str]]:
    rows = []
    for s in m.shards:
        t = store.read_shard(dataset, version, s.path, ["sample_id", "label", "split"])
        rows += zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), t["split"].to_pylist(), strict=True)
    return rows


def _check_modality(recipe: Recipe, modality: str) -> None:
    def walk(op) -> list:
        kids = getattr(op, "ops", None) or []
        return [op, *[o for k in kids for o in walk(k)]]

    for k, st in enumerate(recipe.stages):
        if st.kind == "mix":
            ok = {"mixup": ("image",), "cutmix": ("image",), "average": ("image",), "tabular_mixup": ("tabular",)}
            if modality not in ok[st.mix.method]:
                raise AugsvcError(f"stages[{k}]: mix method {st.mix.method!r} does not work on {modality} rows")
            continue
        if st.kind != "op":
            continue
        for op in walk(st.built):
            if op.modality not in ("any", "", modality):
                raise AugsvcError(
                    f"stages[{k}]: op {op.name!r} works on {op.modality} rows, but {recipe.input} is {modality}"
                )


def _steps(recipe: Recipe) -> list[tuple[str, list[int]]]:
    steps: list[tuple[str, list[int]]] = []
    for k, st in enumerate(recipe.stages):
        if st.kind == "op" and steps and steps[-1][0] == "op":
            steps[-1][1].append(k)
        else:
            steps.append((st.kind, [k]))
    return steps


class _Work:
    """Task outputs under ``.staging/build-<version>/work``: files plus a sidecar written last (resume marker).

    ``root`` is a local folder, or a URI under a remote store when the build runs on a cluster (``--address``), so
    that tasks on any node read the files of the step before."""

    def __init__(self, root: str) -> None:
        self.root = root
        if storefs.is_local(root):
            Path(root).mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, data: bytes) -> None:
        if not storefs.is_local(self.root):
            storefs.write_bytes(storefs.join(self.root, name), data)  # one put: visible whole or not at all
            return
        tmp = Path(self.root) / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, Path(self.root) / name)

    def done(self, key: str) -> list[str] | None:
        side = storefs.join(self.root, f"{key}.json")
        if not storefs.exists(side):
            return None
        files = [storefs.join(self.root, f) for f in json.loads(storefs.read_bytes(side))["files"]]
        return files if all(storefs.exists(f) for f in files) else None

    def save(self, key: str, blobs: list[bytes], names: list[str] | None = None) -> list[str]:
        names = names or [f"{key}-{j:03d}.parquet" for j in range(len(blobs))]
        for n, b in zip(names, blobs, strict=True):
            self._write(n, b)
        self._write(f"{key}.json", json.dumps({"files": names}).encode())
        return [storefs.join(self.root, n) for n in names]

    def clear(self) -> None:
        if storefs.is_local(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            storefs.delete_dir(self.root)


def _metas(parts: list[list[str]]) -> list[list[tuple[str, int, str]]]:
    out = []
    for files in parts:
        rows: list[tuple[str, int, str]] = []
        for f in files:
            t = storefs.read_table(f, columns=["sample_id", "label", "split"])
            rows += zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), t["split"].to_pylist(), strict=True)
        out.append(rows)
    return out


def build(
    recipe: Recipe,
    store: Store,
    *,
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> BuildReport:
    t0 = time.perf_counter()
    dataset, version = store.resolve(recipe.input)
    m = store.manifest(dataset, version)
    _check_modality(recipe, m.modality)
    rows = _input_rows(store, dataset, version, m)
    plan = make_plan(recipe, m, rows)
    definition = {
        "kind": "build",
        "parents": [f"{dataset}@{version}"],
        "recipe": recipe.definition(),
        "seed": recipe.seed,
        "code": {"augsvc": __version__, "build_format": BUILD_FORMAT_VERSION},
    }
    vid = version_id(definition)
    if dry_run:
        return BuildReport(None, store.exists(recipe.output, vid), plan, vid, rows_in=len(rows))
    if store.exists(recipe.output, vid):
        store.set_tag(recipe.output, "latest", vid)
        return BuildReport(
            store.manifest(recipe.output, vid), True, plan, vid, time.perf_counter() - t0, 0.0, len(rows)
        )
    staging = store.staging_keyed(recipe.output, f"build-{vid}")
    # on a cluster with a remote store, intermediate files live in the store so every node can read them
    work_root = store.ref(recipe.output, ".staging", f"build-{vid}", "work") if address and not store.local else None
    work = _Work(work_root or str(staging.dir / "work"))
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    ray_s = 0.0
    if n_workers > 0 or address:
        t = time.perf_counter()
        ensure_ray(n_workers, address)
        ray_s = time.perf_counter() - t
    parts: list[list[str]] = [[store.shard_ref(dataset, version, s.path)] for s in m.shards]
    steps = _steps(recipe)
    reused = 0
    tasks_done = 0

    def run(fn, shared, items: list[tuple[str, tuple]]) -> dict[str, list[str]]:
        """Run tasks not finished before (by key); returns key -> output files."""
        nonlocal reused, tasks_done
        result: dict[str, list[str]] = {}
        todo = []
        for key, args in items:
            files = work.done(key)
            if files is not None:
                result[key] = files
                reused += 1
            else:
                todo.append((key, *args))
        for out in run_map(fn, todo, workers=n_workers, address=address, shared=shared):
            if isinstance(out, PartOut):
                result[out.key] = work.save(out.key, [c.data for c in out.chunks])
            else:
                key, blobs, dests = out
                result[key] = work.save(key, blobs, [f"{key}-d{d}.parquet" for d in dests])
            tasks_done += 1
            if progress:
                progress(tasks_done, None)
        return result

    for si, (kind, ks) in enumerate(steps):
        if kind == "op":
            step_plan = make_plan(recipe, m, [r for meta in _metas(parts) for r in meta], only=set(ks))
            keys = [(f"s{si}-p{i}", (files,)) for i, files in enumerate(parts)]
            res = run(rows_task, step_plan, keys)
            parts = [res[k] for k, _ in keys]
        elif kind == "mix":
            k = ks[0]
            metas = _metas(parts)
            pairs = plan_pairs(recipe, k, metas, m.class_names)
            where = {sid: i for i, meta in enumerate(metas) for sid, _, _ in meta}
            needs: dict[int, dict[str, list[int]]] = {}
            for d, plist in pairs.items():
                for _, _, psid in plist:
                    needs.setdefault(where[psid], {}).setdefault(psid, []).append(d)
            mplan = MixPlan(plan, k, recipe.stages[k].name or f"stage-{k}", recipe.stages[k].mix,
                            recipe.stages[k].keep_originals, list(recipe.splits))  # fmt: skip
            sc_items = [(f"s{si}-x{j}", (parts[j], needs.get(j, {}))) for j in range(len(parts))]
            scattered = run(_scatter_entry, mplan, sc_items)
            delivered: dict[int, list[str]] = {}
            for j in range(len(parts)):
                for f in scattered[f"s{si}-x{j}"]:
                    d = int(storefs.basename(f).removesuffix(".parquet").rsplit("-d", 1)[1])
                    delivered.setdefault(d, []).append(f)
            keys = [
                (f"s{si}-p{i}", (parts[i], sorted(delivered.get(i, [])), pairs.get(i, []))) for i in range(len(parts))
            ]
            res = run(mix_task, mplan, keys)
            parts = [res[key] for key, _ in keys]
        elif kind == "teacher":
            k = ks[0]
            tplan = TeacherPlan(plan, k, recipe.stages[k].teacher.checkpoint, recipe.stages[k].teacher.batch_size)
            keys = [(f"s{si}-p{i}", (files,)) for i, files in enumerate(parts)]
            res = run(teacher_task, tplan, keys)
            parts = [res[key] for key, _ in keys]
        else:
            k = ks[0]
            st = recipe.stages[k]
            gplan = GenPlan(plan, k, st.name or f"stage-{k}", st.built)
            from generators.smote import plan as smote_plan

            metas = _metas(parts)
            all_files = [f for files in parts for f in files]
            items = []
            for split in recipe.splits:
                counts = {
                    m.class_names[i]: n
                    for i, n in enumerate(_label_counts([r for mt in metas for r in mt], split, len(m.class_names)))
                }
                if not any(counts.values()):
                    continue
                for cname, n_new in smote_plan(counts, st.built).items():
                    if n_new > 0:
                        lab = m.class_names.index(cname)
                        items.append((f"s{si}-g-{split}-{lab}", (all_files, split, lab, n_new)))
            res = run(gen_task, gplan, items)
            if not st.keep_originals:
                parts = [[f for f in files if _split_of(f) not in recipe.splits] for files in parts]
            parts = parts + [res[key] for key, _ in items]
    # publish: the last step's files in order become the shards
    splits: dict[str, dict[str, int]] = {}
    soft = m.soft_labels or any(st.kind == "mix" for st in recipe.stages)
    final = [f for files in parts for f in files]
    for f in final:
        t = storefs.read_table(f, columns=["label", "split"])
        if t.num_rows == 0:
            continue
        rel = f"shards/part-{len(staging.shards):05d}.parquet"
        if storefs.is_local(f) and Path(f).is_relative_to(staging.dir):
            os.replace(f, staging.dir / rel)
        else:  # an input shard passed through untouched
            (staging.dir / rel).write_bytes(storefs.read_bytes(f))
        data = (staging.dir / rel).read_bytes()
        split = t["split"][0].as_py()
        staging.shards.append(
            ShardInfo(path=rel, rows=t.num_rows, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), split=split)
        )
        per = splits.setdefault(split, {})
        for lab in t["label"].to_pylist():
            name = m.class_names[lab]
            per[name] = per.get(name, 0) + 1
    work.clear()
    rows_per_class = {c: sum(per.get(c, 0) for per in splits.values()) for c in m.class_names}
    result = store.publish(
        staging,
        dataset=recipe.output,
        definition=definition,
        modality=m.modality,
        class_names=m.class_names,
        rows_per_class=rows_per_class,
        parents=[f"{dataset}@{version}"],
        seed=recipe.seed,
        extra={
            "splits": {k: {c: v[c] for c in m.class_names if c in v} for k, v in sorted(splits.items())},
            "features": m.features,
            "image_storage": recipe.output_image_format if m.modality == "image" else None,
            "soft_labels": soft,
        },
    )
    return BuildReport(
        result.manifest, result.up_to_date, plan, vid, time.perf_counter() - t0, ray_s, len(rows), reused
    )


def _scatter_entry(plan: MixPlan, key: str, files: list[str], needs: dict[str, list[int]]) -> tuple:
    """scatter_task as a run() item: (key, Parquet bytes per dest part, dest parts); saved as ``<key>-d<dest>``."""
    by_dest = scatter_task(plan, key, files, needs)
    return key, [by_dest[d] for d in sorted(by_dest)], sorted(by_dest)


def _split_of(f: str) -> str:
    t = storefs.read_table(f, columns=["split"])
    return t["split"][0].as_py() if t.num_rows else ""


def replay(recipe: Recipe, original: Any, lineage: str) -> Any:
    """Re-create an op-augmented payload from its original and its ``lineage`` column (audit / debugging)."""
    x = original
    for step in json.loads(lineage):
        if "op" not in step:
            raise AugsvcError(f"step {step.get('stage')} is a {('mix' if 'mix' in step else 'generator')} step; "
                              "replay it with its partner/parents")  # fmt: skip
        if step["op"] is not None:
            x = recipe.stages[step["stage"]].built.apply(x, step["op"]["params"])
    return x
