"""A finished search's results: rows per trial, the ranking, the table, the output files and the curves plot."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from augsvc.tune.candidates import METRIC, recipe_of, train_config
from augsvc.tune.space import TuneSpace
from schemas.errors import AugsvcError

ASHA_RECORD = "asha_stopped.txt"  # in OUT: ids of the trials ASHA stopped early (augsvc/tune/asha.py writes it)
NOT_RUN = "not run"


def asha_stopped(record: str | Path) -> set[str]:
    """Trial ids ASHA stopped early, from the record file (empty when there is none)."""
    p = Path(record)
    return set(p.read_text().split()) if p.is_file() else set()


def check_rows(rows: list[dict[str, Any]], time_budget_s: float | None, *, interrupted: bool = False) -> None:
    """AugsvcError (one line) when no trial reported an epoch: every trial failed (the first error), the search was
    interrupted, or the ``--budget`` ran out before any trial finished an epoch."""
    if any(r["curve"] for r in rows):
        return
    errors = [r["error"] for r in rows if r["status"] == "error"]
    if rows and len(errors) == len(rows):
        raise AugsvcError(f"every trial failed; the first: {errors[0] or 'no error text'}")
    if interrupted:
        raise AugsvcError("the search was interrupted before any trial finished an epoch; nothing was written "
                          "(continue it with --resume)")  # fmt: skip
    if time_budget_s is not None:
        raise AugsvcError(f"no trial finished within the budget ({time_budget_s:g} s, {len(rows)} trial(s) started, "
                          f"none finished an epoch); give a larger --budget")  # fmt: skip
    raise AugsvcError(f"no trial reported a validation accuracy ({len(rows)} trial(s)); see {METRIC} in OUT/search")


def trial_index(trial_id: str) -> int:
    """The creation order of a Ray Tune trial from its id (``abc12_00003`` -> 3); a large number when absent."""
    tail = str(trial_id).rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 10**9


def _trial_id(res: Any) -> str:
    m = res.metrics or {}
    return str(m.get("trial_id") or Path(str(res.path)).name.removeprefix("trial_"))


def collect(grid: Any, epochs: int, asha: set[str] | None = None, cut: str = "stopped early") -> list[dict[str, Any]]:
    """One row per trial from the ResultGrid, ranked by best validation accuracy (errors last). Status: error,
    completed (``epochs`` epochs), stopped (ASHA) (its id in ``asha``), not run (no epoch reported), else ``cut``
    (what stopped it: ``cut (budget)``, ``interrupted``)."""
    rows = []
    asha = asha or set()
    for res in grid:
        m = res.metrics or {}
        trial = _trial_id(res)
        curve = json.loads(m["curve"]) if m.get("curve") else []
        if res.error:
            status = "error"
        elif len(curve) >= epochs:
            status = "completed"
        elif trial in asha:
            status = "stopped (ASHA)"
        else:
            status = cut if curve else NOT_RUN
        rows.append({"trial": trial, "recipe": m.get("label", ""), "val_acc": max(curve) if curve else float("nan"),
                     "last_val_acc": curve[-1] if curve else float("nan"), "epochs": len(curve),
                     "steps": m.get("steps", 0), "seconds": m.get("seconds", 0.0), "status": status, "curve": curve,
                     "candidate": m.get("candidate", ""),
                     "error": error_line(res.error) if res.error else ""})  # fmt: skip
    return rank(rows)


def outcome(
    grid: Any, epochs: int, n_trials: int, asha: set[str], time_budget_s: float | None, elapsed: float
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """(ranked rows, partial note or None, interrupted) of a finished ``Tuner.fit``.

    Ray Tune ends a search for three reasons: every trial finished (ASHA's stops included), the budget ran out, or
    SIGINT/SIGUSR1 (it stops the running trials and saves the experiment). It marks the trials TERMINATED in all
    three, so a trial counts as finished here only if it completed ``epochs``, failed, or ASHA's record (``asha``)
    names it. Anything else (a trial cut short, one that never reported an epoch, fewer trials than ``n_trials``)
    makes the search partial: cut by the budget when ``elapsed`` reached ``time_budget_s``, else interrupted."""
    budget_hit = time_budget_s is not None and elapsed >= time_budget_s
    rows = collect(grid, epochs, asha, cut="cut (budget)" if budget_hit else "interrupted")
    if len(rows) >= n_trials and not any(r["status"] in ("cut (budget)", "interrupted", NOT_RUN) for r in rows):
        return rows, None, False
    why = f"the budget ({time_budget_s:g} s) ran out" if budget_hit else "the search was interrupted"
    return rows, partial_note(rows, n_trials, why), not budget_hit


def partial_note(rows: list[dict[str, Any]], expected: int, reason: str) -> str:
    """One line saying why and how far a search is partial: ``reason`` (e.g. "the budget (60 s) ran out"), then
    the trials completed, stopped by ASHA, cut short, failed and never run (of ``expected``)."""
    counts: dict[str, int] = {}
    for r in rows:
        key = r["status"] if r["status"] in ("completed", "stopped (ASHA)", "error", NOT_RUN) else "cut short"
        counts[key] = counts.get(key, 0) + 1
    counts[NOT_RUN] = counts.get(NOT_RUN, 0) + max(0, expected - len(rows))
    parts = [
        f"{counts[k]} {k}" for k in ("completed", "stopped (ASHA)", "cut short", "error", NOT_RUN) if counts.get(k)
    ]
    return f"{reason}: of {expected} trials {', '.join(parts)}; the best is among the trials that ran"


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a curve by best validation accuracy, ties by trial order (the order candidates were drawn from
    the seeded search, so the same space ranks the same way; never by time), then rows without a curve."""
    ok = sorted((r for r in rows if r["curve"]), key=lambda r: (-r["val_acc"], trial_index(r["trial"]), r["trial"]))
    return ok + [r for r in rows if not r["curve"]]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The ranked table as text."""
    lines = [f"{'rank':>4} {'val acc':>7} {'epochs':>6} {'steps':>6} {'seconds':>7}  {'status':15} recipe"]
    for i, r in enumerate(rows, 1):
        lines.append(f"{i:4d} {r['val_acc']:7.4f} {r['epochs']:6d} {r.get('steps', 0):6d} {r['seconds']:7.0f}  "
                     f"{r['status']:15} {r['recipe'] or r['error']}")  # fmt: skip
    return "\n".join(lines)


def write_outputs(
    space: TuneSpace, ref: str, rows: list[dict[str, Any]], out: Path, partial: str | None = None
) -> dict[str, str]:
    """trials.csv, curves.png, best_recipe.yaml (when the winner augments) and best_train.yaml; a ``partial`` note
    (:func:`partial_note`) heads both YAML files, so a best of a cut search never reads as the search's answer."""
    import yaml

    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "trial", "recipe", "val_acc", "last_val_acc", "epochs", "steps", "seconds", "status",
                    "curve"])  # fmt: skip
        for i, r in enumerate(rows, 1):
            w.writerow([i, r["trial"], r["recipe"] or r["error"], f"{r['val_acc']:.4f}", f"{r['last_val_acc']:.4f}",
                        r["epochs"], r.get("steps", 0), r["seconds"], r["status"],
                        " ".join(f"{v:.4f}" for v in r["curve"])])  # fmt: skip
    plot_curves(rows, out / "curves.png")
    files = {"table": str(out / "trials.csv"), "plot": str(out / "curves.png")}
    best = json.loads(rows[0]["candidate"])
    recipe = recipe_of(space, best, ref)
    train_cfg = train_config(space, best, ref, space.seed).model_dump(mode="json", exclude_none=True)
    head = (f"# found by `augsvc tune` ({rows[0]['recipe']}): best val acc {rows[0]['val_acc']:.4f} on "
            f"{ref} split {space.val_split}\n")  # fmt: skip
    if partial:
        head += f"# PARTIAL SEARCH: {partial}\n"
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
