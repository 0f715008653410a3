"""``augsvc tune``: search augmentation recipes with Ray Tune, then (``--test``) prove the winner on held-out data.

Every trial trains the companion trainer (``augsvc.trainer.loop.train``) on the training split with its candidate
applied on the fly by the stream (no version is built per trial) and reports validation accuracy each epoch with
``tune.report``; ASHA stops weak trials at its rungs. Candidates come from Ray Tune's random search
(``BasicVariantGenerator`` seeded with the space's seed): first every policy once at its defaults, then random
draws. Every trial trains with the same seed, so trials differ only by the recipe. The experiment is stored under
``OUT/search`` and a stopped search continues with ``--resume`` (``Tuner.restore``); each trial checkpoints its
``last.pt`` every epoch, so an interrupted trial resumes where it stopped. Offline candidates (k fixed copies) cycle
one fixed view per epoch (``augment_cycle``), so every candidate trains the same optimizer steps per epoch, at each
ASHA rung and in the ``--test`` retraining. A search cut by ``--budget`` or interrupted (SIGINT) is marked partial
(``results.outcome``): its table, files and summary say so, ``--test`` is skipped, and ASHA's own stops
(``asha.RecordingASHA``) are told apart from trials that were cut or never ran.

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
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from augsvc.tune.candidates import (  # noqa: F401  (re-exported: the search's public names)
    METRIC,
    baseline,
    candidate,
    first_points,
    label,
    param_space,
    recipe_of,
    train_config,
)
from augsvc.tune.results import (  # noqa: F401
    ASHA_RECORD,
    NOT_RUN,
    asha_stopped,
    check_rows,
    collect,
    error_line,
    format_table,
    mean_se,
    outcome,
    partial_note,
    plot_curves,
    rank,
    trial_index,
    write_outputs,
)
from augsvc.tune.space import TuneSpace
from schemas.errors import AugsvcError


def run_trial(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """Ray Tune trainable: train one candidate, ``tune.report`` validation accuracy (and a checkpoint holding
    ``last.pt``) every epoch; with ``setup['test_split']`` also score the best epoch on that split at the end."""
    import tempfile

    from ray import tune

    from augsvc.api import open_store
    from augsvc.trainer.loop import evaluate_run, train

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    space = TuneSpace.model_validate(setup["space"])
    cand = config.get("candidate") or candidate(space, config)
    seed = int(config.get("seed", space.seed))
    cfg = train_config(space, cand, setup["ref"], seed)
    store = open_store(setup["store"])
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
    steps = [json.loads((run / "steps.json").read_text()) if (run / "steps.json").is_file() else 0]

    def on_epoch(row: dict) -> None:
        curve.append(row["val_acc"])
        spent[0] += row["seconds"]
        steps[0] += row["steps"]
        (run / "seconds.json").write_text(json.dumps(spent[0]))
        (run / "steps.json").write_text(json.dumps(steps[0]))
        metrics = {METRIC: row["val_acc"], "epoch": row["epoch"], "train_loss": row["train_loss"],
                   "best_val_acc": max(curve), "seconds": round(spent[0], 2), "curve": json.dumps(curve),
                   "steps": steps[0], "label": cand["label"], "candidate": json.dumps(cand),
                   "seed": seed}  # fmt: skip
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(run)))

    try:
        train(cfg, store, run, resume=resume, progress=False, on_epoch=on_epoch)
        if setup.get("test_split"):
            acc = evaluate_run(run, store, setup["ref"], setup["test_split"], device=cfg.device)
            tune.report({METRIC: max(curve), "epoch": len(curve), "test_acc": acc, "seconds": round(spent[0], 2),
                         "steps": steps[0],
                         "curve": json.dumps(curve), "label": cand["label"], "candidate": json.dumps(cand),
                         "best_val_acc": max(curve), "seed": seed})  # fmt: skip
    finally:
        shutil.rmtree(run, ignore_errors=True)


# -- the live table ----------------------------------------------------------------------------------------------
def live_callback(total: int, epochs: int, asha_record: str | Path | None = None) -> Any:
    """A Ray Tune callback that shows one row per trial (a rich live table on a terminal, else one line per
    finished trial) and keeps the rows for the summary. A trial that ends before ``epochs`` is "stopped (ASHA)"
    only when ASHA's record (``asha_record``) names it, else "cut short" (a budget or an interruption)."""
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
            if status == "done" and r.get("epoch") is None:
                status = NOT_RUN
            elif status == "done" and r["epoch"] < epochs:
                stopped = asha_record is not None and trial.trial_id in asha_stopped(asha_record)
                status = "stopped (ASHA)" if stopped else "cut short"
            r["status"] = status
            self._refresh()
            if not self.tty and status == "error":
                why = r.get("error") or "no error text"
                print(f"trial {trial.trial_id} failed: {why}", file=sys.stderr, flush=True)
            elif not self.tty:
                print(f"trial {trial.trial_id} {status}: best val acc {r.get('best', float('nan')):.3f} after "
                      f"{r.get('epoch') or 0} epoch(s), {r.get('seconds', 0):.0f} s: {r.get('label', '')}",
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
    from augsvc import api
    from pipelines.transforms.base import get_op_class

    m = api.show(space.data, store=store)
    ds, v = m.dataset, m.version
    ref = f"{ds}@{v}"
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


def _check_trainer(space: TuneSpace, ref: str, m: Any) -> None:
    """What every trial's ``train()`` would refuse, checked once before Ray starts with the trainer's own checks
    (``augsvc.trainer.checks``): the version has labels, ``train.model`` reads its modality and a
    ``train.hf_path`` is a usable classifier folder. AugsvcError (one line) otherwise."""
    from augsvc.trainer.checks import check_model
    from pipelines.unlabelled import require_labels

    require_labels(m, "augsvc tune (each trial trains a classifier on the labels of 'data')")
    check_model(train_config(space, baseline(), ref, space.seed), ref, m, prefix="train.")


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

    from augsvc.api import open_store
    from augsvc.tune.asha import RecordingASHA
    from pipelines import executor

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
    st = open_store(store)
    ref, _ = _resolve(space, st)
    out = Path(out).resolve()
    exp = out / "search"
    if exp.exists() and not resume:
        raise AugsvcError(f"{out} already holds a search: pass --resume to continue it, or another --out")
    if resume and not exp.exists():
        raise AugsvcError(f"{out}: no search to resume (no {exp.name}/ folder)")
    stored = out / "space.json"
    if resume and stored.is_file():
        from schemas.resume import config_changes, refuse_changed

        before = json.loads(stored.read_text())
        old = {**before.get("space", {}), "version": before.get("ref")}  # `data` pinned when the search started
        new = {**space.model_dump(mode="json"), "version": ref}
        refuse_changed(
            out,
            config_changes(old, new, ignore=("test_split", "seeds")),  # --test, --seeds may change on resume
            what="the search",
            advice="resume it with the same space file and data, or start a new search in another --out",
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "space.json").write_text(json.dumps({"ref": ref, "space": space.model_dump(mode="json")}, indent=2))
    executor.ensure_ray(None, address)
    setup = {"space": space.model_dump(mode="json"), "ref": ref, "store": st.uri}
    resources = {"cpu": space.cpus_per_trial, "gpu": space.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), resources)
    record = out / ASHA_RECORD
    if not resume:
        record.unlink(missing_ok=True)
    live = live_callback(space.n_trials(), space.epochs, record)
    run_config = tune.RunConfig(name="search", storage_path=str(out), verbose=0,
                                callbacks=[live, JsonLoggerCallback(), CSVLoggerCallback()],
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                failure_config=tune.FailureConfig(max_failures=0))  # fmt: skip
    t0 = time.perf_counter()
    try:
        if resume:
            tuner = tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=True)
        else:
            scheduler = RecordingASHA(record=record, time_attr="epoch", max_t=space.epochs, grace_period=space.grace(),
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
    elapsed = time.perf_counter() - t0
    rows, partial, interrupted = outcome(grid, space.epochs, space.n_trials(), asha_stopped(record), time_budget_s,
                                         elapsed)  # fmt: skip
    check_rows(rows, time_budget_s, interrupted=interrupted)
    files = write_outputs(space, ref, rows, out, partial=partial)
    summary: dict[str, Any] = {"ref": ref, "out": str(out), "trials": len(rows), "best": rows[0],
                               "complete": partial is None, "partial": partial, "interrupted": interrupted,
                               "seconds": round(elapsed, 1), "files": files}  # fmt: skip
    echo(format_table(rows))
    if partial:
        echo(f"PARTIAL SEARCH: {partial}" + ("; continue it with --resume" if interrupted else ""))
    if space.test_split and partial:
        echo(f"--test {space.test_split} skipped: the search is partial, its winner is not the search's answer")
    elif space.test_split:
        summary["test"] = run_test(space, ref, st, json.loads(rows[0]["candidate"]), out, echo)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def search_alg(space: TuneSpace) -> Any:
    """Ray Tune's random search seeded with ``space.seed``, the first points first, at most ``max_concurrent``
    trials at once (given here: Ray ignores ``TuneConfig.max_concurrent_trials`` next to a search_alg, and warns)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(points_to_evaluate=first_points(space), random_state=space.seed,
                                 max_concurrent=space.max_concurrent or 0)  # fmt: skip


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
