"""``augsvc tune``: search augmentation recipes with Ray Tune, then (``--test``) prove the winner on held-out data.

Every trial trains the companion trainer (``augsvc.trainer.loop.train``) on the training split with its candidate
applied on the fly by the stream (no version is built per trial) and reports validation accuracy each epoch with
``tune.report``; ASHA stops weak trials at its rungs. Candidates come from Ray Tune's random search
(``BasicVariantGenerator`` seeded with the space's seed): first every policy once at its defaults, then random
draws. Every trial trains with the same seed, so trials differ only by the recipe. The experiment is stored under
``OUT/search`` and a stopped search continues with ``--resume`` (``Tuner.restore``); each trial checkpoints its
``last.pt`` every epoch, so an interrupted trial resumes where it stopped.

Outputs in ``OUT``: ``trials.csv`` (ranked), ``curves.png``, ``best_recipe.yaml`` (a recipe ``augsvc build``
accepts and the trainer's ``augment:`` key takes), ``best_train.yaml`` (an ``augsvc train`` config using it),
``summary.json``; with ``--test``, ``test.csv`` and the test summary.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from augsvc.tune.space import MixChoice, Policy, Range, TuneSpace
from schemas.errors import AugsvcError

METRIC = "val_acc"


# -- candidates --------------------------------------------------------------------------------------------------
def param_space(space: TuneSpace) -> dict[str, Any]:
    """The Ray Tune search space: flat keys, one choice of policy/mix/mode plus every range (unused ones are
    ignored by the trial that does not pick their policy)."""
    from ray import tune

    def dist(r: Range) -> Any:
        return tune.randint(int(r.lo), int(r.hi) + 1) if r.integer else tune.uniform(r.lo, r.hi)

    ps: dict[str, Any] = {"policy": tune.choice(list(range(len(space.policies))))}
    for i, p in enumerate(space.parsed_policies()):
        for name, r in p.ranges.items():
            ps[f"p{i}.{name}"] = dist(r)
    ps["mix"] = tune.choice(list(range(len(space.mix))))
    for j, m in enumerate(space.parsed_mix()):
        if isinstance(m.alpha, Range):
            ps[f"mix{j}.alpha"] = dist(m.alpha)
    for key, v in (("label_smoothing", space.smoothing()), ("offline_copies", space.copies())):
        if isinstance(v, Range):
            ps[key] = dist(v)
    ps["augment"] = tune.choice(list(space.augment))
    return ps


def first_points(space: TuneSpace) -> list[dict[str, Any]]:
    """Every policy once, at the op's defaults where they lie in the range (RandAugment's n=2, magnitude=9),
    else the middle; no mixing, the lowest smoothing, the first augment mode."""
    from pipelines.transforms.base import get_op_class

    points = []
    for i, p in enumerate(space.parsed_policies()):
        pt: dict[str, Any] = {"policy": i, "mix": 0, "augment": space.augment[0]}
        for name, r in p.ranges.items():
            d = get_op_class(p.op).model_fields[name].default
            pt[f"p{i}.{name}"] = d if isinstance(d, int | float) and r.lo <= d <= r.hi else r.mid()
        for j, m in enumerate(space.parsed_mix()):
            if isinstance(m.alpha, Range):
                pt[f"mix{j}.alpha"] = m.alpha.mid()
        ls, cp = space.smoothing(), space.copies()
        if isinstance(ls, Range):
            pt["label_smoothing"] = ls.lo
        if isinstance(cp, Range):
            pt["offline_copies"] = int(cp.lo)
        points.append(pt)
    return points[: space.n_trials()]


def candidate(space: TuneSpace, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config -> the candidate it trains: ``{policy, params, stages, mix, alpha, label_smoothing,
    augment, copies, label}`` (JSON-able)."""
    i = int(config["policy"])
    p: Policy = space.parsed_policies()[i]
    params = {**p.fixed}
    for name, r in p.ranges.items():
        v = config[f"p{i}.{name}"]
        params[name] = int(v) if r.integer else round(float(v), 4)
    j = int(config.get("mix", 0))
    m: MixChoice = space.parsed_mix()[j]
    alpha = None
    if m.method != "none":
        alpha = round(float(config[f"mix{j}.alpha"]), 4) if isinstance(m.alpha, Range) else m.alpha
    ls, cp = space.smoothing(), space.copies()
    ls = round(float(config["label_smoothing"]), 4) if isinstance(ls, Range) else ls
    cp = int(config["offline_copies"]) if isinstance(cp, Range) else cp
    mode = config.get("augment", "on_the_fly") if p.kind != "none" else "on_the_fly"
    if p.kind == "op":
        stages = [{"name": p.name, "op": {"op": p.op, **params}}]
    else:
        stages = [dict(st) for st in p.stages]
    cand = {"policy": p.name, "params": params, "stages": stages, "mix": m.method, "alpha": alpha,
            "label_smoothing": ls, "augment": mode, "copies": cp if mode == "offline" else None}  # fmt: skip
    cand["label"] = label(cand)
    return cand


def baseline() -> dict[str, Any]:
    """No augmentation, no mixing, no smoothing."""
    cand = {"policy": "none", "params": {}, "stages": [], "mix": "none", "alpha": None, "label_smoothing": 0.0,
            "augment": "on_the_fly", "copies": None}  # fmt: skip
    cand["label"] = label(cand)
    return cand


def label(c: dict[str, Any]) -> str:
    """A short human form: ``rand_augment(n=2, magnitude=7.3) + mixup(0.3) + ls 0.05, offline x4``."""

    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list | dict) else str(v)

    parts = [c["policy"] + (f"({', '.join(f'{k}={fmt(v)}' for k, v in c['params'].items())})" if c["params"] else "")]
    if c["mix"] != "none":
        parts.append(f"{c['mix']}({fmt(c['alpha'])})")
    if c["label_smoothing"]:
        parts.append(f"ls {fmt(c['label_smoothing'])}")
    s = " + ".join(parts)
    return s + (f", offline x{c['copies']}" if c["augment"] == "offline" else "")


def recipe_of(space: TuneSpace, cand: dict[str, Any], ref: str) -> dict[str, Any] | None:
    """The candidate's op stages as a recipe (what ``augsvc build`` and the trainer's ``augment:`` read), or None
    for no augmentation. Offline candidates get ``copies`` on their stage (one stage) or the first stage."""
    if not cand["stages"]:
        return None
    stages = [dict(st) for st in cand["stages"]]
    if cand["augment"] == "offline":
        stages[0]["copies"] = cand["copies"]
        stages[0]["keep_originals"] = True
    dataset = ref.split("@")[0]
    return {"schema_version": 1, "input": ref, "output": f"{dataset}_tuned", "seed": space.seed,
            "splits": [space.train_split], "stages": stages}  # fmt: skip


def train_config(space: TuneSpace, cand: dict[str, Any], ref: str, seed: int) -> Any:
    """The ``TrainConfig`` of one trial (or one --test retrain)."""
    from augsvc.trainer.config import TrainConfig

    d: dict[str, Any] = {"device": "cpu" if not space.gpus_per_trial else "auto",
                         "threads": max(1, int(space.cpus_per_trial)), **space.train}  # fmt: skip
    d.update(data=ref, train_split=space.train_split, val_split=space.val_split, epochs=space.epochs, seed=seed,
             label_smoothing=cand["label_smoothing"], augment=recipe_of(space, cand, ref))  # fmt: skip
    if cand["augment"] == "offline" and d["augment"] is not None:
        d["augment_copies"] = cand["copies"]
    if cand["mix"] != "none":
        d["mix"] = {"method": cand["mix"], "alpha": cand["alpha"]}
    return TrainConfig.model_validate(d)


# -- the trial ---------------------------------------------------------------------------------------------------
def run_trial(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """Ray Tune trainable: train one candidate, ``tune.report`` validation accuracy (and a checkpoint holding
    ``last.pt``) every epoch; with ``setup['test_split']`` also score the best epoch on that split at the end."""
    import tempfile

    from ray import tune

    from augsvc.trainer.loop import evaluate_run, train
    from pipelines.store import Store

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    space = TuneSpace.model_validate(setup["space"])
    cand = config.get("candidate") or candidate(space, config)
    seed = int(config.get("seed", space.seed))
    cfg = train_config(space, cand, setup["ref"], seed)
    store = Store(setup["store"])
    run = Path(tempfile.mkdtemp(prefix="augsvc-tune-"))
    resume = False
    ck = tune.get_checkpoint()
    if ck is not None:
        with ck.as_directory() as d:
            for f in Path(d).iterdir():
                shutil.copy2(f, run / f.name)
        resume = (run / "last.pt").is_file()
    curve = [h["val_acc"] for h in json.loads((run / "metrics.json").read_text())] if resume else []
    spent = [json.loads((run / "seconds.json").read_text()) if (run / "seconds.json").is_file() else 0.0]

    def on_epoch(row: dict) -> None:
        curve.append(row["val_acc"])
        spent[0] += row["seconds"]
        (run / "seconds.json").write_text(json.dumps(spent[0]))
        metrics = {METRIC: row["val_acc"], "epoch": row["epoch"], "train_loss": row["train_loss"],
                   "best_val_acc": max(curve), "seconds": round(spent[0], 2), "curve": json.dumps(curve),
                   "label": cand["label"], "candidate": json.dumps(cand), "seed": seed}  # fmt: skip
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(run)))

    try:
        train(cfg, store, run, resume=resume, progress=False, on_epoch=on_epoch)
        if setup.get("test_split"):
            acc = evaluate_run(run, store, setup["ref"], setup["test_split"], device=cfg.device)
            tune.report({METRIC: max(curve), "epoch": len(curve), "test_acc": acc, "seconds": round(spent[0], 2),
                         "curve": json.dumps(curve), "label": cand["label"], "candidate": json.dumps(cand),
                         "best_val_acc": max(curve), "seed": seed})  # fmt: skip
    finally:
        shutil.rmtree(run, ignore_errors=True)


# -- the live table ----------------------------------------------------------------------------------------------
def live_callback(total: int, epochs: int) -> Any:
    """A Ray Tune callback that shows one row per trial (a rich live table on a terminal, else one line per
    finished trial) and keeps the rows for the summary."""
    from ray import tune

    class LiveTable(tune.Callback):
        def __init__(self) -> None:
            self.rows: dict[str, dict[str, Any]] = {}
            self.live: Any = None
            self.tty = sys.stderr.isatty()

        def _table(self) -> Any:
            from rich.table import Table

            t = Table(title=f"augsvc tune: {len(self.rows)}/{total} trials started, up to {epochs} epochs each")
            for col in ("trial", "recipe", "status", "epoch", "val acc", "best", "s"):
                t.add_column(col, justify="left" if col in ("trial", "recipe", "status") else "right")
            for tid, r in self.rows.items():
                t.add_row(tid, r.get("label", "")[:60], r["status"], str(r.get("epoch", "")),
                          f"{r[METRIC]:.3f}" if METRIC in r else "", f"{r['best']:.3f}" if "best" in r else "",
                          f"{r.get('seconds', 0):.0f}")  # fmt: skip
            return t

        def _refresh(self) -> None:
            if not self.tty:
                return
            if self.live is None:
                from rich.console import Console
                from rich.live import Live

                self.live = Live(self._table(), console=Console(stderr=True), refresh_per_second=2)
                self.live.start()
            else:
                self.live.update(self._table())

        def on_trial_start(self, iteration, trials, trial, **info):
            self.rows.setdefault(trial.trial_id, {"status": "running"})["status"] = "running"
            self._refresh()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            r = self.rows.setdefault(trial.trial_id, {"status": "running"})
            r.update(label=result.get("label", ""), epoch=result.get("epoch"), seconds=result.get("seconds", 0))
            r[METRIC] = result.get(METRIC, 0.0)
            r["best"] = max(r.get("best", 0.0), r[METRIC])
            self._refresh()

        def _end(self, trial: Any, status: str) -> None:
            r = self.rows.setdefault(trial.trial_id, {})
            if status == "done" and r.get("epoch", epochs) < epochs:
                status = "stopped (ASHA)"
            r["status"] = status
            self._refresh()
            if not self.tty and status == "error":
                why = r.get("error") or "no error text"
                print(f"trial {trial.trial_id} failed: {why}", file=sys.stderr, flush=True)
            elif not self.tty:
                print(f"trial {trial.trial_id} {status}: best val acc {r.get('best', float('nan')):.3f} after "
                      f"{r.get('epoch')} epoch(s), {r.get('seconds', 0):.0f} s: {r.get('label', '')}",
                      file=sys.stderr, flush=True)  # fmt: skip

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._end(trial, "done")

        def on_trial_error(self, iteration, trials, trial, **info):
            try:
                text = trial.get_error()
            except Exception:  # the error file is Ray's; a missing one must not hide the failure
                text = None
            self.rows.setdefault(trial.trial_id, {})["error"] = error_line(text)
            self._end(trial, "error")

        def on_experiment_end(self, trials, **info):
            self.stop()

        def stop(self) -> None:
            if self.live is not None:
                self.live.stop()
                self.live = None

    return LiveTable()


# -- running -----------------------------------------------------------------------------------------------------
def _resolve(space: TuneSpace, store: Any) -> tuple[str, Any]:
    """Pin ``data`` to a version and check the splits and the ops against it."""
    from pipelines.transforms.base import get_op_class

    ds, v = store.resolve(space.data)
    ref = f"{ds}@{v}"
    m = store.manifest(ds, v)
    have = m.rows_per_split or {}
    for key in ("train_split", "val_split") + (("test_split",) if space.test_split else ()):
        split = getattr(space, key)
        if not have.get(split):
            raise AugsvcError(f"{ref} has no rows in split {split!r} ({key}; has "
                              f"{', '.join(f'{k} {n}' for k, n in have.items()) or 'no splits'}): "
                              f"run `augsvc split {ds} --val 0.15 --test 0.2` first or name another split")  # fmt: skip
    for i, p in enumerate(space.parsed_policies()):
        if p.kind == "op":
            mod = get_op_class(p.op).modality
            if mod not in ("any", m.modality):
                raise AugsvcError(f"policies[{i}]: {p.op} is a {mod} op; {ref} is {m.modality}")
    if m.modality != "image" and any(mx.method != "none" for mx in space.parsed_mix()):
        raise AugsvcError(f"mix: batch mixing works on images; {ref} is {m.modality} (use mix: [none])")
    _check_trainer(space, ref, m)
    return ref, m


# model kinds of the companion trainer (generators/nets/prep.py build_model) and the modalities they read
MODEL_MODALITIES = {"cnn": ("image",), "text_cnn": ("text",), "mlp": ("tabular",), "hf": ("text", "image")}


def _check_trainer(space: TuneSpace, ref: str, m: Any) -> None:
    """What every trial's ``train()`` would refuse, checked once before Ray starts: the version has labels (the
    trainer's ``require_labels``), the trainer has a model for its modality (``default_kind``) and ``train.model``
    reads that modality. AugsvcError (one line) otherwise."""
    from generators.nets.prep import default_kind
    from pipelines.unlabelled import require_labels

    require_labels(m, "augsvc tune (each trial trains a classifier on the labels of 'data')")
    cfg = train_config(space, baseline(), ref, space.seed)
    kind = cfg.model or default_kind(m.modality)
    reads = MODEL_MODALITIES.get(kind)
    if reads is None:
        raise AugsvcError(f"train.model: unknown model kind {kind!r} ({', '.join(MODEL_MODALITIES)})")
    if m.modality not in reads:
        fits = [k for k, mods in MODEL_MODALITIES.items() if m.modality in mods]
        raise AugsvcError(f"train.model: {kind} reads {' or '.join(reads)} versions; {ref} is {m.modality} "
                          f"(use {' or '.join(fits) or 'another version'}, or leave model out)")  # fmt: skip


def error_line(text: Any) -> str:
    """The last line of an error or traceback text without Ray's wrapper and the AugsvcError class
    (``schemas.errors.AugsvcError: msg`` -> ``msg``; other exceptions keep their class); "" for None."""
    if text is None:
        return ""
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    last = re.sub(r"^[\w.]*RayTaskError\([^)]*\): ", "", lines[-1].strip())
    return re.sub(r"^(?:[\w.]+\.)?AugsvcError: ", "", last)  # other classes stay: KeyError: 'vocab' says more


def tune_search(
    space: TuneSpace,
    out: str | Path,
    *,
    store: str | None = None,
    address: str | None = None,
    resume: bool = False,
    test_split: str | None = None,
    seeds: int | None = None,
    time_budget_s: float | None = None,
    echo: Any = print,
) -> dict[str, Any]:
    """Run (or with ``resume`` continue) the search, write the outputs into ``out`` and return the summary
    (``best``, ``rows``, files, and ``test`` when ``test_split`` is given). AugsvcError on bad input."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # JSON and CSV below; no TensorBoard
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # num_to_keep=1 snapshots
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler

    from pipelines import executor
    from pipelines.store import Store

    if time_budget_s is not None and not time_budget_s > 0:
        raise AugsvcError(f"--budget {time_budget_s:g}: give a number of seconds above 0, or leave it out")
    if seeds is not None and not 1 <= seeds <= 100:
        raise AugsvcError(f"--seeds {seeds}: give 1 to 100 seeds per retrained recipe (default 3)")
    if not str(out).strip():
        raise AugsvcError("--out is empty: give an output folder, or leave --out out (default tune/SPACE-NAME)")
    if Path(out).exists() and not Path(out).is_dir():
        raise AugsvcError(f"--out {out} is a file, not a folder: give another --out (a new or existing folder)")
    if test_split:
        space = space.model_copy(update={"test_split": test_split})
    if seeds is not None:
        space = space.model_copy(update={"seeds": seeds})
    if space.test_split and space.test_split in (space.val_split, space.train_split):
        which = "val_split" if space.test_split == space.val_split else "train_split"
        raise AugsvcError(f"--test {space.test_split}: the search used split {space.test_split!r} ({which}); "
                          "score on a split it never read (e.g. --test test)")  # fmt: skip
    st = Store(store)
    ref, _ = _resolve(space, st)
    out = Path(out).resolve()
    exp = out / "search"
    if exp.exists() and not resume:
        raise AugsvcError(f"{out} already holds a search: pass --resume to continue it, or another --out")
    if resume and not exp.exists():
        raise AugsvcError(f"{out}: no search to resume (no {exp.name}/ folder)")
    stored = out / "space.json"
    if resume and stored.is_file():
        before = json.loads(stored.read_text())
        search_keys = {"test_split", "seeds"}  # --test may be added when resuming
        if (
            before.get("space", {}) | dict.fromkeys(search_keys)
            != space.model_dump(mode="json") | dict.fromkeys(search_keys)
            or before.get("ref") != ref
        ):
            raise AugsvcError(f"{out} holds a search of another space or version ({before.get('ref')}); "
                              "resume it with the same space file, or start a new search in another --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "space.json").write_text(json.dumps({"ref": ref, "space": space.model_dump(mode="json")}, indent=2))
    executor.ensure_ray(None, address)
    setup = {"space": space.model_dump(mode="json"), "ref": ref, "store": st.uri}
    resources = {"cpu": space.cpus_per_trial, "gpu": space.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), resources)
    live = live_callback(space.n_trials(), space.epochs)
    run_config = tune.RunConfig(name="search", storage_path=str(out), verbose=0,
                                callbacks=[live, JsonLoggerCallback(), CSVLoggerCallback()],
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                failure_config=tune.FailureConfig(max_failures=0))  # fmt: skip
    t0 = time.perf_counter()
    try:
        if resume:
            tuner = tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=True)
        else:
            scheduler = ASHAScheduler(time_attr="epoch", max_t=space.epochs, grace_period=space.grace(),
                                      reduction_factor=space.reduction_factor)  # fmt: skip
            search = search_alg(space)
            tuner = tune.Tuner(trainable, param_space=param_space(space), run_config=run_config,
                               tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler,
                                                           search_alg=search, num_samples=space.n_trials(),
                                                           time_budget_s=time_budget_s,
                                                           trial_dirname_creator=_dirname))  # fmt: skip
        # a trial stopped (by --budget) before its first report has no result files; Ray warns per trial while
        # building the ResultGrid, and check_rows below says it in one line instead
        quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            grid = tuner.fit()
        finally:
            quiet.setLevel(level)
    finally:
        live.stop()
    rows = collect(grid, space.epochs)
    check_rows(rows, time_budget_s)
    files = write_outputs(space, ref, rows, out)
    summary: dict[str, Any] = {"ref": ref, "out": str(out), "trials": len(rows), "best": rows[0],
                               "seconds": round(time.perf_counter() - t0, 1), "files": files}  # fmt: skip
    echo(format_table(rows))
    if space.test_split:
        summary["test"] = run_test(space, ref, st, json.loads(rows[0]["candidate"]), out, echo)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def search_alg(space: TuneSpace) -> Any:
    """Ray Tune's random search seeded with ``space.seed``, the first points first, at most ``max_concurrent``
    trials at once (given here: Ray ignores ``TuneConfig.max_concurrent_trials`` next to a search_alg, and warns)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(points_to_evaluate=first_points(space), random_state=space.seed,
                                 max_concurrent=space.max_concurrent or 0)  # fmt: skip


def check_rows(rows: list[dict[str, Any]], time_budget_s: float | None) -> None:
    """AugsvcError (one line) when no trial reported an epoch: every trial failed (the first error), or the
    ``--budget`` ran out before any trial finished an epoch."""
    if any(r["curve"] for r in rows):
        return
    errors = [r["error"] for r in rows if r["status"] == "error"]
    if rows and len(errors) == len(rows):
        raise AugsvcError(f"every trial failed; the first: {errors[0] or 'no error text'}")
    if time_budget_s is not None:
        raise AugsvcError(f"no trial finished within the budget ({time_budget_s:g} s, {len(rows)} trial(s) started, "
                          f"none finished an epoch); give a larger --budget")  # fmt: skip
    raise AugsvcError(f"no trial reported a validation accuracy ({len(rows)} trial(s)); see {METRIC} in OUT/search")


def trial_index(trial_id: str) -> int:
    """The creation order of a Ray Tune trial from its id (``abc12_00003`` -> 3); a large number when absent."""
    tail = str(trial_id).rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 10**9


def collect(grid: Any, epochs: int) -> list[dict[str, Any]]:
    """One row per trial from the ResultGrid, ranked by best validation accuracy (errors last)."""
    rows = []
    for res in grid:
        m = res.metrics or {}
        trial = m.get("trial_id") or Path(str(res.path)).name
        curve = json.loads(m["curve"]) if m.get("curve") else []
        status = "error" if res.error else ("completed" if len(curve) >= epochs else "stopped (ASHA)")
        rows.append({"trial": trial, "recipe": m.get("label", ""), "val_acc": max(curve) if curve else float("nan"),
                     "last_val_acc": curve[-1] if curve else float("nan"), "epochs": len(curve),
                     "seconds": m.get("seconds", 0.0), "status": status, "curve": curve,
                     "candidate": m.get("candidate", ""),
                     "error": error_line(res.error) if res.error else ""})  # fmt: skip
    return rank(rows)


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a curve by best validation accuracy, ties by trial order (the order candidates were drawn from
    the seeded search, so the same space ranks the same way; never by time), then rows without a curve."""
    ok = sorted((r for r in rows if r["curve"]), key=lambda r: (-r["val_acc"], trial_index(r["trial"]), r["trial"]))
    return ok + [r for r in rows if not r["curve"]]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The ranked table as text."""
    lines = [f"{'rank':>4} {'val acc':>7} {'epochs':>6} {'seconds':>7}  {'status':15} recipe"]
    for i, r in enumerate(rows, 1):
        lines.append(f"{i:4d} {r['val_acc']:7.4f} {r['epochs']:6d} {r['seconds']:7.0f}  {r['status']:15} "
                     f"{r['recipe'] or r['error']}")  # fmt: skip
    return "\n".join(lines)


def write_outputs(space: TuneSpace, ref: str, rows: list[dict[str, Any]], out: Path) -> dict[str, str]:
    """trials.csv, curves.png, best_recipe.yaml (when the winner augments) and best_train.yaml."""
    import yaml

    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "trial", "recipe", "val_acc", "last_val_acc", "epochs", "seconds", "status", "curve"])
        for i, r in enumerate(rows, 1):
            w.writerow([i, r["trial"], r["recipe"] or r["error"], f"{r['val_acc']:.4f}", f"{r['last_val_acc']:.4f}",
                        r["epochs"], r["seconds"], r["status"], " ".join(f"{v:.4f}" for v in r["curve"])])  # fmt: skip
    plot_curves(rows, out / "curves.png")
    files = {"table": str(out / "trials.csv"), "plot": str(out / "curves.png")}
    best = json.loads(rows[0]["candidate"])
    recipe = recipe_of(space, best, ref)
    train_cfg = train_config(space, best, ref, space.seed).model_dump(mode="json", exclude_none=True)
    head = (f"# found by `augsvc tune` ({rows[0]['recipe']}): best val acc {rows[0]['val_acc']:.4f} on "
            f"{ref} split {space.val_split}\n")  # fmt: skip
    if recipe is not None:
        (out / "best_recipe.yaml").write_text(
            head + "# build it: augsvc build best_recipe.yaml; or train with it on the fly: augsvc train "
            "best_train.yaml (copies apply to builds; on the fly each epoch draws a fresh view)\n"
            + yaml.safe_dump(recipe, sort_keys=False)
        )
        files["recipe"] = str(out / "best_recipe.yaml")
        train_cfg["augment"] = str(out / "best_recipe.yaml")
    defaults = {"threads", "device"}
    train_cfg = {k: v for k, v in train_cfg.items() if k not in defaults or k in space.train}
    (out / "best_train.yaml").write_text(head + yaml.safe_dump(train_cfg, sort_keys=False))
    files["train"] = str(out / "best_train.yaml")
    return files


def plot_curves(rows: list[dict[str, Any]], path: Path, top: int = 10) -> None:
    """Validation accuracy per epoch of every trial (matplotlib); the best ``top`` get a legend entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=100)
    for i, r in enumerate(rows):
        if not r["curve"]:
            continue
        x = range(1, len(r["curve"]) + 1)
        kw = {"label": f"#{i + 1} {r['recipe'][:50]}", "linewidth": 2.5 if i == 0 else 1.2} if i < top else {}
        ax.plot(x, r["curve"], marker="o", markersize=3, alpha=1.0 if i < top else 0.35,
                color=None if i < top else "grey", **kw)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("augsvc tune: validation accuracy per trial (ASHA stops weak trials early)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n); 0 for one value)."""
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1) / n)


def retrain_and_test(
    space: TuneSpace, ref: str, store: Any, cands: list[dict[str, Any]], out: Path, name: str = "test"
) -> dict[str, Any]:
    """Retrain each candidate with ``space.seeds`` seeds (``space.seed + 1`` on; full epochs, no early stopping) as
    one Ray Tune grid stored in ``out/name`` (resumable), score each run's best-validation epoch once on
    ``space.test_split``. Returns ``{split, seeds, recipes: {label: {mean, se, runs}}}`` and writes
    ``out/name.csv``. Candidates with the same label train once."""
    from ray import tune

    seeds = [space.seed + 1 + k for k in range(space.seeds)]
    cands = list({c["label"]: c for c in cands}.values())
    setup = {"space": space.model_dump(mode="json"), "ref": ref, "store": store.uri, "test_split": space.test_split}
    resources = {"cpu": space.cpus_per_trial, "gpu": space.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), resources)
    exp = out / name
    if exp.exists() and tune.Tuner.can_restore(str(exp)):
        tuner = tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=True)
    else:
        grid_space = {"candidate": tune.grid_search(cands), "seed": tune.grid_search(seeds)}
        from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

        run_config = tune.RunConfig(name=name, storage_path=str(out), verbose=0,
                                    callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), _retrain_lines()],
                                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1))  # fmt: skip
        tuner = tune.Tuner(trainable, param_space=grid_space, run_config=run_config,
                           tune_config=tune.TuneConfig(max_concurrent_trials=space.max_concurrent,
                                                       trial_dirname_creator=_dirname))  # fmt: skip
    grid = tuner.fit()
    per: dict[str, list[float]] = {c["label"]: [] for c in cands}
    rows = []
    for res in grid:
        m = res.metrics or {}
        if res.error or "test_acc" not in m:
            raise AugsvcError(f"a --test retrain failed: {error_line(res.error) or 'it reported no test accuracy'}")
        per[m["label"]].append(m["test_acc"])
        rows.append({"recipe": m["label"], "seed": m["seed"], "test_acc": m["test_acc"], "val_acc": m[METRIC]})
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["recipe", "seed", "test_acc", "val_acc"])
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: (r["recipe"], r["seed"])))
    result: dict[str, Any] = {"split": space.test_split, "seeds": seeds, "recipes": {}}
    for lab, xs in per.items():
        mean, se = mean_se(xs)
        result["recipes"][lab] = {"mean": mean, "se": se, "runs": xs}
    return result


def run_test(space: TuneSpace, ref: str, store: Any, best: dict[str, Any], out: Path, echo: Any) -> dict[str, Any]:
    """``--test``: the winner and the no-augmentation baseline through :func:`retrain_and_test`; prints both with
    their standard errors and the gain."""
    result = retrain_and_test(space, ref, store, [best, baseline()], out)
    b, w0 = result["recipes"][best["label"]], result["recipes"][baseline()["label"]]
    echo(f"test split {space.test_split!r}, {len(result['seeds'])} seeds, each run scored once:")
    echo(f"  tuned    {best['label']}: {b['mean']:.4f} +- {b['se']:.4f}")
    if best["label"] != baseline()["label"]:
        echo(f"  baseline (no augmentation): {w0['mean']:.4f} +- {w0['se']:.4f}")
        diff = b["mean"] - w0["mean"]
        result["gain"] = diff
        echo(f"  gain {diff * 100:+.1f} points (standard error of the difference about "
             f"{math.hypot(b['se'], w0['se']) * 100:.1f})")  # fmt: skip
    return result


def _retrain_lines() -> Any:
    """A Ray Tune callback printing one line (stderr) per finished retraining run."""
    from ray import tune

    class RetrainLines(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "test_acc" in result:
                line = (f"retrained {result['label']} seed {result['seed']}: best val acc {result[METRIC]:.4f}, "
                        f"test acc {result['test_acc']:.4f} ({result['seconds']:.0f} s)")  # fmt: skip
                print(line, file=sys.stderr, flush=True)

    return RetrainLines()


def _dirname(trial: Any) -> str:
    """Short trial folder names (Ray's default puts the whole config in the name)."""
    return f"trial_{trial.trial_id}"
