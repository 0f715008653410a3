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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import storefs
from pipelines.executor import choose_workers, run_map, start_workers
from pipelines.plan import BuildPlan, _label_counts, make_plan
from pipelines.store import Store
from pipelines.tasks import (
    GenPlan,
    MixPlan,
    PartOut,
    TeacherPlan,
    apply_stage_op,
    gen_task,
    mix_task,
    plan_pairs,
    rows_task,
    scatter_task,
    teacher_task,
)
from schemas.errors import AugsvcError
from schemas.hashing import version_id
from schemas.manifest import Manifest, ShardInfo
from schemas.recipe import Recipe
from schemas.version import PACKAGE_VERSION

BUILD_FORMAT_VERSION = 4  # bump whenever an op's output bytes change for the same recipe and seed

__all__ = ["BuildPlan", "BuildReport", "apply_stage_op", "build", "make_plan", "plan_pairs", "replay"]


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
        "code": {"augsvc": PACKAGE_VERSION, "build_format": BUILD_FORMAT_VERSION},
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
    rows_out = sum(sum(v.values()) for v in plan.counts_out.values())
    in_bytes = sum(s.bytes for s in m.shards)
    n, why = choose_workers(len(m.shards) * len(_steps(recipe)), in_bytes, workers, address, rows_out)
    n_workers, ray_s = start_workers(n, address, why)
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
