"""``augsvc train`` and ``augsvc compare`` (registered on the main typer app)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: Annotated[str, typer.Argument(metavar="CONFIG.yaml", help="Training config (see docs/trainer.md).")],
        out: Annotated[str, typer.Option("--out", help="Run directory to write.")] = "runs/run",
        resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt.")] = False,
        store: Annotated[str | None, typer.Option("--store", help="Store root.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    ):
        """Train a classifier on a version; writes metrics, best checkpoint and a validation plot to OUT."""
        from augsvc.store import Store
        from augsvc.trainer.loop import load_config
        from augsvc.trainer.loop import train as run_train

        summary = run_train(load_config(config), Store(store), out, resume=resume, progress=not as_json)
        typer.echo(json.dumps(summary) if as_json else f"best val acc {summary['best_val_acc']:.4f}; run in {out}")

    @app.command()
    def compare(
        runs: Annotated[list[str], typer.Argument(help="Run directories of 'augsvc train'.")],
        out: Annotated[str, typer.Option("--out", help="PNG plot to write.")] = "compare.png",
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable table.")] = False,
    ):
        """Put several runs in one plot and one table (baseline vs augmented vs distilled)."""
        from augsvc.trainer.loop import compare as run_compare

        rows = run_compare(runs, out)
        if as_json:
            typer.echo(json.dumps(rows))
            return
        typer.echo(f"{'run':24s} {'best val acc':>12s} {'epochs':>6s} {'params':>8s}  data")
        for r in rows:
            typer.echo(
                f"{r['run']:24s} {r['best_val_acc']:12.4f} {r['epochs']:6d} {r['parameters'] or 0:8d}  {r['data']}"
            )
        typer.echo(f"plot: {out}")
