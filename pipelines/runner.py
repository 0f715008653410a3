"""Build runner: a recipe turns a source version into a new, augmented, immutable version.

The driver plans (``make_plan``: which rows get how many copies at each stage, from sample ids and labels only),
then maps ``build_shard`` over the input shards (Ray core tasks via ``pipelines.executor.run_map``; one task per
input shard, output in input order), then publishes. Each task is a pure function of its input shard and the plan:
every random draw comes from ``rng_for(seed, stage, copy, sample_id)``, so the bytes do not depend on worker count,
batch size or scheduling. Finished shards are kept in ``.staging/build-<version>/`` so an interrupted build, run
again, reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from augsvc import __version__
from augsvc.errors import AugsvcError
from augsvc.hashing import version_id
from augsvc.store import Store
from pipelines import imagecodec
from pipelines.executor import ensure_ray, run_map
from pipelines.ingest.encode import write_parquet
from pipelines.rng import rng_for
from schemas.arrow import schema_for
from schemas.manifest import Manifest, ShardInfo
from schemas.recipe import Recipe

BUILD_FORMAT_VERSION = 1
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


def make_plan(recipe: Recipe, manifest: Manifest, rows: list[tuple[str, int, str]]) -> BuildPlan:
    """Decide the copies of every stage from (sample_id, label, split) of the input rows."""
    names = manifest.class_names
    index = {c: i for i, c in enumerate(names)}
    counts_in = _counts(rows, names)
    stages = []
    for k, st in enumerate(recipe.stages):
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


def augment_rows(plan: BuildPlan, rows: list[dict]) -> list[dict]:
    """Apply every stage to the rows of one shard (in order: each kept row, then its copies)."""
    recipe = _recipe(plan)
    aug_splits = set(recipe.splits)
    for sp, st in zip(plan.stages, recipe.stages, strict=True):
        op = st.built
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
                    y, rec = op(_payload(row, plan.modality), rng_for(recipe.seed, sp.index, c, sid))
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


@dataclass
class ShardOut:
    index: int
    parts: list[tuple[bytes, int, str]] = field(default_factory=list)  # (parquet bytes, rows, split)
    label_counts: dict[str, dict[int, int]] = field(default_factory=dict)  # split -> label -> rows


def build_shard(plan: BuildPlan, index: int, path: str) -> ShardOut:
    """Task body: read one input shard, augment it, return its output shard(s) as Parquet bytes."""
    import cv2

    cv2.setNumThreads(0)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    table = pq.read_table(path)
    rows = augment_rows(plan, table.to_pylist())
    if plan.modality == "image":
        _encode_images(rows, _recipe(plan))
    schema = schema_for(plan.modality, plan.features)
    out = ShardOut(index)
    for start in range(0, len(rows), plan.max_rows):
        chunk = rows[start : start + plan.max_rows]
        cols = {f.name: [r.get(f.name) for r in chunk] for f in schema}
        t = pa.Table.from_pydict(cols, schema=schema)
        out.parts.append((write_parquet(t), len(chunk), chunk[0]["split"]))
        for r in chunk:
            per = out.label_counts.setdefault(r["split"], {})
            per[r["label"]] = per.get(r["label"], 0) + 1
    return out


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
        t = pq.read_table(store.version_dir(dataset, version) / s.path, columns=["sample_id", "label", "split"])
        rows += zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), t["split"].to_pylist(), strict=True)
    return rows


def _check_modality(recipe: Recipe, modality: str) -> None:
    def walk(op) -> list:
        kids = getattr(op, "ops", None) or []
        return [op, *[o for k in kids for o in walk(k)]]

    for k, st in enumerate(recipe.stages):
        for op in walk(st.built):
            if op.modality not in ("any", "", modality):
                raise AugsvcError(
                    f"stages[{k}]: op {op.name!r} works on {op.modality} rows, but {recipe.input} is {modality}"
                )


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
    work = staging.dir / "work"
    work.mkdir(exist_ok=True)
    done: dict[int, dict] = {}
    for f in work.glob("in-*.json"):
        meta = json.loads(f.read_text())
        if all((work / p["file"]).is_file() for p in meta["parts"]):
            done[meta["index"]] = meta
    todo = [(i, str(store.version_dir(dataset, version) / s.path)) for i, s in enumerate(m.shards) if i not in done]
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    ray_s = 0.0
    if todo and (n_workers > 0 or address):
        t = time.perf_counter()
        ensure_ray(n_workers, address)
        ray_s = time.perf_counter() - t
    finished = len(done)
    if progress:
        progress(finished, len(m.shards))
    for res in run_map(build_shard, todo, workers=n_workers, address=address, shared=plan):
        parts = []
        for j, (data, nrows, split) in enumerate(res.parts):
            name = f"in-{res.index:05d}-{j:03d}.parquet"
            tmp = work / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, work / name)
            parts.append({"file": name, "rows": nrows, "split": split})
        meta = {"index": res.index, "parts": parts, "label_counts": res.label_counts}
        tmp = work / f".in-{res.index:05d}.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, work / f"in-{res.index:05d}.json")
        done[res.index] = json.loads(json.dumps(meta))
        finished += 1
        if progress:
            progress(finished, len(m.shards))
    splits: dict[str, dict[str, int]] = {}
    for i in sorted(done):
        for p in done[i]["parts"]:
            rel = f"shards/part-{len(staging.shards):05d}.parquet"
            os.replace(work / p["file"], staging.dir / rel)
            data = (staging.dir / rel).read_bytes()
            staging.shards.append(
                ShardInfo(
                    path=rel, rows=p["rows"], bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), split=p["split"]
                )
            )
        for split, per in done[i]["label_counts"].items():
            tgt = splits.setdefault(split, {})
            for lab, n in per.items():
                name = m.class_names[int(lab)]
                tgt[name] = tgt.get(name, 0) + n
    import shutil

    shutil.rmtree(work, ignore_errors=True)
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
            "splits": {k: dict(sorted(v.items())) for k, v in sorted(splits.items())},
            "features": m.features,
            "image_storage": recipe.output_image_format if m.modality == "image" else None,
            "soft_labels": m.soft_labels,
        },
    )
    return BuildReport(
        result.manifest,
        result.up_to_date,
        plan,
        vid,
        time.perf_counter() - t0,
        ray_s,
        len(rows),
        len(m.shards) - len(todo),
    )


def replay(recipe: Recipe, original: Any, lineage: str) -> Any:
    """Re-create an augmented payload from its original and its ``lineage`` column (audit / debugging)."""
    x = original
    for step in json.loads(lineage):
        op = recipe.stages[step["stage"]].built
        if step["op"] is not None:
            x = op.apply(x, step["op"]["params"])
    return x


def staged_dir(store: Store, output: str, vid: str) -> Path:
    return store.root / output / ".staging" / f"build-{vid}"
