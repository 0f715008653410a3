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

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines import stages
from pipelines.executor import choose_workers, run_actor_map, run_map, start_workers
from pipelines.plan import BuildPlan, make_plan
from pipelines.stages.base import StepContext
from pipelines.store import Store, fault_guard
from pipelines.storework import part_keys
from pipelines.tasks import PartOut
from schemas.errors import AugsvcError
from schemas.hashing import version_id
from schemas.manifest import Manifest
from schemas.recipe import Recipe
from schemas.version import PACKAGE_VERSION

# bump whenever an op's output bytes change for the same recipe and seed. 6: gaussian_noise draws from a counter-based
# generator (kernels/noise.py), blur and random_resized_crop sample with scalar random() draws (issue 31: speed)
BUILD_FORMAT_VERSION = 6

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
    # a build never derives from a damaged parent (every shard re-hashed); a dry run checks the manifest only
    m = store.manifest(dataset, version) if dry_run else store.verified_manifest(dataset, version)
    check_recipe(recipe, m)
    rows = store.row_keys(m)
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
    work = store.work_files(staging, shared=bool(address))
    rows_out = sum(sum(v.values()) for v in plan.counts_out.values())
    in_bytes = sum(s.bytes for s in m.shards)
    n, why = choose_workers(len(m.shards) * len(stages.steps(recipe)), in_bytes, workers, address, rows_out)
    on_cluster = bool(address or os.environ.get("RAY_ADDRESS"))
    n_workers, ray_s = start_workers(workers if on_cluster else n, address, why)  # on a cluster: its CPUs
    parts: list[list[str]] = [[ref] for ref in store.shard_refs(m)]
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
        ctx = StepContext(recipe, m, plan, si, run, run_actors, part_keys, work.cache_dir, reports, task_reports)
        parts = kind.run(ctx, ks, parts)
    # publish: the last step's files, in order, become the shards (tallied as they are added)
    for f in (f for files in parts for f in files):
        staging.add_file(f)
    work.clear()
    soft = m.soft_labels or any(stages.kind_of(recipe, k).mixes_labels for k in range(len(recipe.stages)))
    result = store.publish(
        staging,
        dataset=recipe.output,
        definition=definition,
        modality=m.modality,
        class_names=m.class_names,
        parents=[f"{dataset}@{version}"],
        seed=recipe.seed,
        extra={
            "features": m.features,
            "image_storage": recipe.output_image_format if m.modality == "image" else None,
            "soft_labels": soft,
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
