"""``augsvc train``, ``augsvc evaluate`` and ``augsvc compare``, added to the main typer app by ``register(app)``.

Only typer is imported here; torch and the trainer load inside the commands, so ``augsvc --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def kept_by_run(run: Path, epochs: int) -> str:
    """What an interrupted ``augsvc train`` leaves in ``run``: the last finished epoch (``last.pt``, written after
    every epoch), or how far pretraining got (``pretrain/last.pt``)."""
    from augsvc.interrupt import checkpoint_epoch

    if (run / "last.pt").is_file() and (e := checkpoint_epoch(run / "last.pt")) is not None:
        return f"{run / 'last.pt'} holds epoch {e + 1} of {epochs} (best.pt: the best so far)"
    pre = run / "pretrain" / "last.pt"
    if pre.is_file() and (e := checkpoint_epoch(pre)) is not None:
        return f"{pre} holds pretraining epoch {e + 1}; no fine-tuning epoch had finished"
    return f"no epoch had finished, nothing to resume from in {run}"


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``evaluate`` and ``compare`` commands to ``app``."""

    @app.command()
    def train(
        config: Annotated[str, typer.Argument(metavar="CONFIG.yaml", help="Training config (see docs/trainer.md).")],
        out: Annotated[str | None, typer.Option("--out", help="Run directory (default: runs/CONFIG-NAME).")] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue the run in OUT (refused if the config changed).")
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Start the run in OUT again (its files are removed).")
        ] = False,
        store: Annotated[str | None, typer.Option("--store", help="Store root.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary, no progress bar.")] = False,
    ):
        """Train a classifier on a version; writes metrics, best checkpoint and a validation plot to OUT."""
        from augsvc.api import open_store
        from augsvc.interrupt import on_interrupt
        from augsvc.trainer.loop import load_config
        from augsvc.trainer.loop import train as run_train

        run_dir = out or str(Path("runs") / Path(config).stem)
        cfg = load_config(config)
        with on_interrupt(lambda: kept_by_run(Path(run_dir), cfg.epochs)):
            summary = run_train(
                cfg, open_store(store), run_dir, resume=resume, overwrite=overwrite, progress=not as_json
            )
        if as_json:
            typer.echo(json.dumps(summary))
        elif "best_val_acc" not in summary:  # epochs: 0 with pretrain: pretraining alone
            pre = summary["pretrain"]
            typer.echo(f"pretrained {pre['epochs']} epoch(s), loss {pre['first_loss']:.4f} -> {pre['final_loss']:.4f}; "
                       f"encoder {pre['encoder']}")  # fmt: skip
        else:
            typer.echo(
                f"best val acc {summary['best_val_acc']:.4f} at epoch {summary['best_epoch']} of {summary['epochs']} "
                "(best.pt holds that epoch) "
                f"({summary['parameters']:,} parameters); run in {run_dir}"
            )

    @app.command()
    def evaluate(
        run: Annotated[str, typer.Argument(metavar="RUN", help="Run directory of 'augsvc train' (its best.pt).")],
        split: Annotated[str, typer.Option("--split", help="Split to score on.")] = "test",
        data: Annotated[
            str | None, typer.Option("--data", help="Version to score on (default: the one the run trained on).")
        ] = None,
        store: Annotated[str | None, typer.Option("--store", help="Store root.")] = None,
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable scores.")] = False,
    ):
        """Score a finished run's best checkpoint on a split: accuracy, macro-F1 and per-class precision/recall."""
        from augsvc.api import open_store
        from augsvc.trainer.loop import score_run
        from augsvc.trainer.reports import format_scores

        result = score_run(run, open_store(store), data, split, device=device)
        typer.echo(json.dumps(result) if as_json else format_scores(result))

    @app.command()
    def compare(
        runs: Annotated[list[str], typer.Argument(help="Run directories of 'augsvc train'.")],
        out: Annotated[str, typer.Option("--out", help="PNG plot to write.")] = "compare.png",
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable table.")] = False,
    ):
        """Put several runs in one plot and one table (baseline vs augmented vs distilled)."""
        from augsvc.trainer.reports import compare as run_compare
        from augsvc.trainer.reports import format_table

        rows = run_compare(runs, out)
        if as_json:
            typer.echo(json.dumps(rows))
            return
        typer.echo(format_table(rows))
        typer.echo(f"plot: {out}")
