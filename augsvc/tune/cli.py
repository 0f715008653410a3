"""``augsvc tune SPACE.yaml``, added to the main typer app by ``register(app)`` (only typer imported here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to ``app``."""

    @app.command()
    def tune(
        space_path: Annotated[str, typer.Argument(metavar="SPACE.yaml", help="Search space (see docs/tune.md).")],
        out: Annotated[str | None, typer.Option("--out", help="Output folder (default: tune/SPACE-NAME).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the search stored in OUT.")] = False,
        test: Annotated[
            str | None,
            typer.Option("--test", metavar="SPLIT", help="Retrain winner and baseline, score once on SPLIT."),
        ] = None,
        seeds: Annotated[
            int | None, typer.Option("--seeds", min=1, max=100, help="--test: seeds per recipe (default 3).")
        ] = None,
        budget: Annotated[
            float | None, typer.Option("--budget", help="Stop starting/running trials after this many seconds.")
        ] = None,
        address: Annotated[
            str | None, typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else local).")
        ] = None,
        store: Annotated[str | None, typer.Option("--store", help="Store root.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    ):
        """Search augmentation recipes with Ray Tune (ASHA); write a ranked table, curves and the best recipe."""
        from augsvc.tune.search import tune_search
        from augsvc.tune.space import load_space

        space = load_space(space_path)
        out_dir = out if out is not None else str(Path("tune") / Path(space_path).stem)
        echo = (lambda s: None) if as_json else typer.echo
        from augsvc.interrupt import on_interrupt

        kept = f"the search so far is kept in {Path(out_dir) / 'search'} (finished trials, each trial's last.pt)"
        with on_interrupt(lambda: kept):
            summary = tune_search(space, out_dir, store=store, address=address, resume=resume, test_split=test,
                                  seeds=seeds, time_budget_s=budget, echo=echo)  # fmt: skip
        if as_json:
            typer.echo(json.dumps(summary, default=str))
        else:
            best = summary["best"]
            what = "best so far (PARTIAL search, see above)" if summary["partial"] else "best"
            typer.echo(f"{what}: {best['recipe']}: val acc {best['val_acc']:.4f} after {best['epochs']} epoch(s) "
                       f"({summary['trials']} trials in {summary['seconds']:.0f} s)")  # fmt: skip
            for k, f in summary["files"].items():
                typer.echo(f"  {k}: {f}")
        if summary["interrupted"]:  # 128 + SIGINT, as a shell reports an interrupted command
            raise typer.Exit(130)
