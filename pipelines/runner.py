"""Build runner: a recipe turns a source version into a new, augmented, immutable version.

The recipe's stages are grouped into *steps* (``pipelines.stages.steps``: consecutive op stages form one step) and
the runner is one loop over them: each step's stage kind (``pipelines/stages/``) schedules its work over the
*parts* through a :class:`~pipelines.stages.base.StepContext`. A part is an ordered list of Parquet files; the
input's shards are the first parts, and every step maps parts to parts, so output order and shard boundaries are
fixed by the data. Tasks run on Ray core tasks or actor pools via ``pipelines.executor`` (or in-process), each a
pure function of its inputs and the plan: every random draw comes from ``rng_for(seed, stage, copy, sample_id)``
(or a documented variant), so the bytes do not depend on worker count or scheduling. Every task output is kept in
``.staging/build-<version>/work/`` with a sidecar, so an interrupted build, run again, reuses finished work.
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

from pipelines import stages, storefs
from pipelines.executor import choose_workers, run_actor_map, run_map, start_workers
from pipelines.plan import BuildPlan, make_plan
from pipelines.stages.base import StepContext
from pipelines.store import Store, fault_guard
from pipelines.tasks import PartOut
from schemas.errors import AugsvcError
from schemas.hashing import version_id
from schemas.manifest import Manifest, ShardInfo
from schemas.recipe import Recipe
from schemas.version import PACKAGE_VERSION

BUILD_FORMAT_VERSION = 5  # bump whenever an op's output bytes change for the same recipe and seed

__all__ = ["BuildPlan", "BuildReport", "build", "build_definition", "check_recipe", "make_plan", "replay"]


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
    reports: dict | None = None  # stage name -> report (generators' quality gates)


def _input_rows(store: Store, dataset: str, version: str, m: Manifest) -> list[tuple[str, int, str]]:
    rows = []
    for s in m.shards:
        t = store.read_shard(dataset, version, s.path, ["sample_id", "label", "split"])
        rows += zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), t["split"].to_pylist(), strict=True)
    return rows


def check_recipe(recipe: Recipe, m: Manifest) -> None:
    """Everything a build would refuse about ``recipe`` on a version with manifest ``m``, before any work (dry runs
    too): the augmented splits exist, each stage's kind accepts the version, and the output name is valid."""
    from pipelines.store import check_name

    check_name(recipe.output, "output dataset name")
    have = set(m.rows_per_split or {}) or {s.split for s in m.shards if s.split}
    missing = [sp for sp in recipe.splits if sp not in have]
    if missing:
        raise AugsvcError(
            f"splits: {', '.join(map(repr, missing))} not in {recipe.input} "
            f"(it has {', '.join(sorted(have)) or 'none'})"
        )
    from pipelines.unlabelled import require_labels

    for k in range(len(recipe.stages)):
        kind = stages.kind_of(recipe, k)
        if kind.needs_labels:
            name = recipe.stages[k].name
            require_labels(m, f"stages[{k}] ({f'{name}: ' if name else ''}{kind.key} stage)")
        kind.check(recipe, k, m)


def build_definition(recipe: Recipe, parent: str) -> dict:
    """What a build's version id is derived from (see docs/architecture.md, "Version ids")."""
    definition = {
        "kind": "build",
        "parents": [parent],
        "recipe": recipe.definition(),
        "seed": recipe.seed,
        "code": {"augsvc": PACKAGE_VERSION, "build_format": BUILD_FORMAT_VERSION},
    }
    ident = stages.identity(recipe)
    if ident:  # model-backed stages: their models' content hashes
        definition["stage_identity"] = ident
    return definition


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

    def done(self, key: str) -> tuple[list[str], dict | None] | None:
        """(files, report) of a finished task, or None."""
        side = storefs.join(self.root, f"{key}.json")
        if not storefs.exists(side):
            return None
        meta = json.loads(storefs.read_bytes(side))
        files = [storefs.join(self.root, f) for f in meta["files"]]
        return (files, meta.get("report")) if all(storefs.exists(f) for f in files) else None

    def save(
        self, key: str, blobs: list[bytes], names: list[str] | None = None, report: dict | None = None
    ) -> list[str]:
        names = names or [f"{key}-{j:03d}.parquet" for j in range(len(blobs))]
        for n, b in zip(names, blobs, strict=True):
            self._write(n, b)
        self._write(f"{key}.json", json.dumps({"files": names, "report": report}).encode())
        return [storefs.join(self.root, n) for n in names]

    def cache_dir(self, name: str) -> str:
        """A folder under the work root for what a stage keeps across resumes (a fine-tuned model)."""
        path = storefs.join(self.root, f"cache-{name}")
        if storefs.is_local(path):
            Path(path).mkdir(parents=True, exist_ok=True)
        return path

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


@fault_guard("build")
def build(
    recipe: Recipe,
    store: Store,
    *,
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> BuildReport:
    dataset, version = store.resolve(recipe.input)
    with store.reading(dataset, version):  # a reader of its parent until published: 'augsvc rm' refuses it meanwhile
        return _build(recipe, store, dataset, version, workers, address, dry_run, progress)


def _build(
    recipe: Recipe,
    store: Store,
    dataset: str,
    version: str,
    workers: int | None,
    address: str | None,
    dry_run: bool,
    progress: Callable[[int, int | None], None] | None,
) -> BuildReport:
    t0 = time.perf_counter()
    m = store.verified_manifest(dataset, version)  # never derive from a damaged parent
    check_recipe(recipe, m)
    rows = _input_rows(store, dataset, version, m)
    plan = make_plan(recipe, m, rows)
    definition = build_definition(recipe, f"{dataset}@{version}")
    vid = version_id(definition)
    if plan.counts_out is not None and not any(n for per in plan.counts_out.values() for n in per.values()):
        raise AugsvcError("the recipe leaves no rows (copies 0 with keep_originals false?); nothing to publish")
    if dry_run:
        return BuildReport(None, store.exists(recipe.output, vid), plan, vid, rows_in=len(rows))
    staging = store.staging_keyed(recipe.output, f"build-{vid}", version=vid)  # waits for an identical build
    if staging is None:  # published, before or while this one waited
        store.mark_latest(recipe.output, vid)
        return BuildReport(
            store.manifest(recipe.output, vid), True, plan, vid, time.perf_counter() - t0, 0.0, len(rows)
        )
    # on a cluster with a remote store, intermediate files live in the store so every node can read them
    work_root = store.ref(recipe.output, ".staging", f"build-{vid}", "work") if address and not store.local else None
    work = _Work(work_root or str(staging.dir / "work"))
    rows_out = sum(sum(v.values()) for v in plan.counts_out.values())
    in_bytes = sum(s.bytes for s in m.shards)
    n, why = choose_workers(len(m.shards) * len(stages.steps(recipe)), in_bytes, workers, address, rows_out)
    on_cluster = bool(address or os.environ.get("RAY_ADDRESS"))
    n_workers, ray_s = start_workers(workers if on_cluster else n, address, why)  # on a cluster: its CPUs
    parts: list[list[str]] = [[store.shard_ref(dataset, version, s.path)] for s in m.shards]
    reused = 0
    tasks_done = 0  # tasks finished in this run
    counted = 0  # tasks of earlier calls (finished or reused), for the progress total
    step_steps = stages.steps(recipe)
    step_at = step_calls = 0
    task_reports: dict[str, dict | None] = {}

    def finish(items: list[tuple[str, tuple]], outputs) -> dict[str, list[str]]:
        """Run the tasks not finished before (by key) through ``outputs(todo)``; returns key -> output files.

        Progress is (tasks finished or reused, total): this call's tasks plus the earlier ones are known; each
        later round of tasks (a kind's ``task_rounds`` per step) is counted as one task per input shard until it
        plans its own."""
        nonlocal reused, tasks_done, counted, step_calls
        result: dict[str, list[str]] = {}
        todo = []
        for key, args in items:
            got = work.done(key)
            if got is not None:
                result[key], task_reports[key] = got
                reused += 1
            else:
                todo.append((key, *args))
        rounds_left = max(step_steps[step_at][0].task_rounds - step_calls - 1, 0)
        rounds_left += sum(kind.task_rounds for kind, _ in step_steps[step_at + 1 :])
        total = counted + len(items) + len(m.shards) * rounds_left
        here = len(items) - len(todo)
        if progress and here:
            progress(counted + here, total)
        for out in outputs(todo):
            if isinstance(out, PartOut):
                result[out.key] = work.save(out.key, [c.data for c in out.chunks], report=out.report)
                task_reports[out.key] = out.report
            else:
                key, blobs, dests = out
                result[key] = work.save(key, blobs, [f"{key}-d{d}.parquet" for d in dests])
            tasks_done += 1
            here += 1
            if progress:
                progress(counted + here, total)
        counted += len(items)
        step_calls += 1
        return result

    def run(fn, shared, items):
        return finish(items, lambda todo: run_map(fn, todo, workers=n_workers, address=address, shared=shared))

    def run_actors(cls, init, items):
        return finish(items, lambda todo: run_actor_map(cls, init, todo, workers=n_workers, address=address))

    reports: dict = {}
    for si, (kind, ks) in enumerate(step_steps):
        step_at, step_calls = si, 0
        ctx = StepContext(recipe, m, plan, si, run, run_actors, _metas, work.cache_dir, reports, task_reports)
        parts = kind.run(ctx, ks, parts)
    # publish: the last step's files in order become the shards
    splits: dict[str, dict[str, int]] = {}
    soft = m.soft_labels or any(stages.kind_of(recipe, k).mixes_labels for k in range(len(recipe.stages)))
    final = [f for files in parts for f in files]
    monolingual: dict[str, int] | None = None if m.monolingual is None else {}
    for f in final:
        t = storefs.read_table(f, columns=["label", "split", *(["src"] if monolingual is not None else [])])
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
            if lab is None:  # translation pairs and unlabelled rows (a transfer set): per split only
                continue
            name = m.class_names[lab]
            per[name] = per.get(name, 0) + 1
        if monolingual is not None:
            monolingual[split] = monolingual.get(split, 0) + t["src"].null_count
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
            "monolingual": None if monolingual is None else dict(sorted(monolingual.items())),
            **({"stage_reports": reports} if reports else {}),
        },
    )
    return BuildReport(
        result.manifest, result.up_to_date, plan, vid, time.perf_counter() - t0, ray_s, len(rows), reused, reports
    )


def replay(recipe: Recipe, original: Any, lineage: str, partners: dict[str, Any] | None = None) -> Any:
    """Re-create an augmented payload from its original and its ``lineage`` column (audit / debugging).

    ``partners`` maps the sample ids of mix partners to their payloads (as they were when mixed); a generator step
    cannot be replayed from one original."""
    x = original
    for step in json.loads(lineage):
        kind = stages.stage_kind(recipe.stages[step["stage"]].kind)
        partner = (partners or {}).get(step.get("partner")) if "partner" in step else None
        x = kind.replay(recipe, step, x, partner)
    return x
