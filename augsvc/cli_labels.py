"""``augsvc label-subset``: a label-scarce child version (``pipelines.labelsubset``), e.g. a few labelled rows plus an
unlabelled transfer set for distillation, or a smaller labelled split for a curriculum comparison."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from augsvc.cli_store import JsonOpt, StoreOpt


def register(app: typer.Typer) -> None:
    """Add the ``label-subset`` command to ``app``."""

    @app.command("label-subset")
    def label_subset_cmd(
        ref: Annotated[str, typer.Argument(help="NAME[@VERSION] to derive from.")],
        labelled: Annotated[float, typer.Option(help="Fraction of the split's rows that keep their label.")],
        split: Annotated[str, typer.Option(help="Split whose labels are thinned (others pass through).")] = "train",
        unlabelled: Annotated[
            str, typer.Option(help="null: keep the other rows without a label (a transfer set); drop: leave them out.")
        ] = "null",
        unlabelled_keep: Annotated[float, typer.Option(help="Fraction of the unlabelled rows to keep.")] = 1.0,
        seed: Annotated[int, typer.Option(help="Seed of the stratified choice.")] = 0,
        output: Annotated[str | None, typer.Option(help="Dataset to publish into (default: the same).")] = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ):
        """Keep the labels of a stratified fraction of one split; the other rows lose theirs (or are dropped)."""
        from augsvc.api import label_subset

        r = label_subset(ref, labelled=labelled, seed=seed, split=split, unlabelled=unlabelled,
                         unlabelled_keep=unlabelled_keep, output=output, store=store)  # fmt: skip
        m = r.manifest
        n_lab = sum(m.splits.get(split, {}).values())
        info = {"dataset": m.dataset, "version": m.version, "up_to_date": r.up_to_date, "parent": m.parents[0],
                "labelled": n_lab, "unlabelled": m.rows_per_split.get(split, 0) - n_lab, "notes": r.notes}  # fmt: skip
        if as_json:
            typer.echo(json.dumps(info))
            return
        state = "up to date" if r.up_to_date else "published"
        typer.echo(f"{m.dataset}@{m.version} {state} (parent {m.parents[0]}): split {split!r} has {n_lab} labelled "
                   f"and {info['unlabelled']} unlabelled rows")  # fmt: skip
        for note in r.notes:
            typer.echo(f"  note: {note}")
