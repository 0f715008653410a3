"""The ``augsvc`` command line (store commands; ingest and build come in later issues)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from augsvc.errors import AugsvcError

app = typer.Typer(help="augsvc: build, version and serve augmented datasets.", no_args_is_help=True)
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store root (default: $AUGSVC_STORE or ./augsvc-store).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _store(uri: str | None):
    from augsvc.store import Store

    return Store(uri)


@app.command("ls")
def ls_cmd(
    name: Annotated[str | None, typer.Argument()] = None, store: StoreOpt = None, as_json: JsonOpt = False
):
    """List datasets, or the versions of NAME."""
    s = _store(store)
    items = s.versions(name) if name else s.datasets()
    if as_json:
        typer.echo(json.dumps(items))
    else:
        for i in items:
            typer.echo(i)


@app.command()
def show(ref: str, store: StoreOpt = None, as_json: JsonOpt = False):
    """Show rows, classes with counts, lineage and shards of NAME[@VERSION]."""
    s = _store(store)
    m = s.manifest(*s.resolve(ref))
    if as_json:
        typer.echo(m.model_dump_json(indent=2))
        return
    typer.echo(f"{m.dataset}@{m.version}  {m.modality}  {m.rows} rows  created {m.created}")
    for c, n in m.rows_per_class.items():
        typer.echo(f"  {c}: {n}")
    typer.echo(
        f"parents: {', '.join(m.parents) or '-'}   shards: {len(m.shards)}   quarantined: {len(m.quarantine)}"
    )


@app.command()
def verify(ref: str, store: StoreOpt = None, as_json: JsonOpt = False):
    """Re-hash every shard of NAME[@VERSION]; exit 1 naming any shard that differs."""
    s = _store(store)
    ds, v = s.resolve(ref)
    problems = s.verify(ds, v)
    if as_json:
        typer.echo(json.dumps({"dataset": ds, "version": v, "ok": not problems, "problems": problems}))
    else:
        typer.echo(f"{ds}@{v}: " + ("ok" if not problems else "FAILED"))
        for p in problems:
            typer.echo(f"  {p}")
    if problems:
        raise typer.Exit(1)


@app.command()
def tag(ref: str, tag_name: str, store: StoreOpt = None):
    """Point TAG at NAME@VERSION (tags are the only mutable names)."""
    s = _store(store)
    ds, v = s.resolve(ref)
    s.set_tag(ds, tag_name, v)
    typer.echo(f"{ds}@{tag_name} -> {v}")


def main() -> None:
    try:
        app()
    except AugsvcError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
