"""The ``augsvc`` command line. Heavy libraries are imported inside commands so ``--help`` stays fast."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from augsvc.cli_ingest import options_given, with_ingest_options
from schemas.errors import AugsvcError

app = typer.Typer(help="augsvc: build, version and serve augmented datasets.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        from schemas.version import PACKAGE_VERSION

        typer.echo(f"augsvc {PACKAGE_VERSION}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """augsvc: build, version and serve augmented datasets."""


StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store root: a path or URI such as s3://bucket/prefix (default: $AUGSVC_STORE or ./augsvc-store).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _store(uri: str | None):
    from augsvc.api import open_store

    return open_store(uri)


def split_lines(m) -> list[str]:
    """``  split: N rows (class n, ..., unlabelled n)`` per split of ``m``, with its monolingual note."""
    out = []
    for sp, n in m.rows_per_split.items():
        per = m.splits.get(sp) or {}
        parts = [f"{c} {k}" for c, k in per.items()]
        if per and n > sum(per.values()):
            parts.append(f"unlabelled {n - sum(per.values())}")
        out.append(f"  {sp}: {n} rows" + (f" ({', '.join(parts)})" if parts else "") + monolingual_note(m, sp))
    return out


@app.command("ls")
def ls_cmd(name: Annotated[str | None, typer.Argument()] = None, store: StoreOpt = None, as_json: JsonOpt = False):
    """List datasets (with their latest version), or the versions of NAME (rows, created, tags)."""
    from augsvc.cli_store import ls_lines

    s = _store(store)
    if as_json:
        s.require_present()
        typer.echo(json.dumps(s.versions(name) if name else s.datasets()))
        return
    for line in ls_lines(s, name):
        typer.echo(line)


@app.command()
def show(ref: str, store: StoreOpt = None, as_json: JsonOpt = False):
    """Show rows, splits, classes with counts, lineage, quarantine and shards of NAME[@VERSION]."""
    from augsvc.api import show as run_show

    m = run_show(ref, store=store)
    if as_json:
        typer.echo(m.model_dump_json(indent=2))
        return
    typer.echo(f"{m.dataset}@{m.version}  {m.modality}  {m.rows} rows  created {m.created}  augsvc {m.package_version}")
    typer.echo(f"definition: {m.definition.get('kind', '?')}   parents: {', '.join(m.parents) or '-'}")
    for line in split_lines(m):
        typer.echo(line)
    if m.class_names:
        typer.echo("classes: " + ", ".join(f"{c}: {m.rows_per_class.get(c, 0)}" for c in m.class_names))
    if m.features:
        typer.echo("features: " + ", ".join(f"{k} ({v})" for k, v in m.features.items()))
    if m.image_storage:
        typer.echo(f"image storage: {m.image_storage}")
    typer.echo(
        f"shards: {len(m.shards)} ({sum(x.bytes for x in m.shards) / 1e6:.1f} MB)   soft labels: {m.soft_labels}"
    )
    if m.duplicates:
        typer.echo(f"duplicate groups: {len(m.duplicates)} ({m.duplicates_dropped} dropped)")
    for note in m.notes:
        typer.echo(f"note: {note}")
    _print_quarantine(m.quarantine)


@app.command()
def verify(ref: str, store: StoreOpt = None, as_json: JsonOpt = False):
    """Re-hash every shard of NAME[@VERSION]; exit 1 naming any shard that differs."""
    from augsvc.api import verify as run_verify

    r = run_verify(ref, store=store)
    ds, v, problems = r.dataset, r.version, r.problems
    if as_json:
        typer.echo(r.model_dump_json())
    else:
        typer.echo(f"{ds}@{v}: " + ("ok" if not problems else "FAILED"))
        for p in problems:
            typer.echo(f"  {p}")
    if problems:
        raise typer.Exit(1)


@app.command()
def tag(ref: str, tag_name: str, store: StoreOpt = None):
    """Point TAG at NAME@VERSION (tags are the only mutable names)."""
    from augsvc.api import tag as run_tag

    ds, v = run_tag(ref, tag_name, store=store)
    typer.echo(f"{ds}@{tag_name} -> {v}")


def _progress(label: str, quiet: bool):
    """Progress on stderr: a bar on a terminal, plain lines otherwise, nothing under --json."""
    from augsvc.progress import progress

    return progress(label, quiet)


def monolingual_note(m, split: str) -> str:
    """The ingest/show line's tail for a translation version that may hold monolingual rows, else ''."""
    return f", of which {m.monolingual.get(split, 0)} monolingual (target only)" if m.monolingual is not None else ""


def _print_quarantine(items, limit: int = 10) -> None:
    if not items:
        return
    typer.echo(f"quarantined {len(items)} bad item(s):", err=True)
    for q in items[:limit]:
        where = f"{q.source}:{q.line}" if q.line is not None else q.source
        typer.echo(f"  {where}: {q.reason}", err=True)
    if len(items) > limit:
        typer.echo(f"  ... and {len(items) - limit} more (augsvc show --json lists all)", err=True)


@app.command()
@with_ingest_options
def ingest(
    source: Annotated[str, typer.Argument(help="File or folder to ingest.")],
    name: Annotated[str, typer.Option("--name", help="Dataset name in the store.")],
    workers: Annotated[
        int | None, typer.Option(help="Workers (0: in-process; default: in-process for small jobs, else all cores).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else local).")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    **options: Any,
):
    """Ingest SOURCE into the store as a new immutable version of NAME."""
    from augsvc.api import ingest as run_ingest

    raw = options_given(options)  # one flag per IngestOptions field (augsvc/cli_ingest.py)
    from augsvc.cli_store import latest_before, latest_note

    s = _store(store)
    before = latest_before(s, name)
    with _progress(f"ingest {name}", as_json) as bar:
        rep = run_ingest(source, name, store=store, workers=workers, address=address, progress=bar, **raw)
    m = rep.manifest
    from augsvc.advice import no_train_note

    for note in (latest_note(s, name, before, m.version), no_train_note(m)):
        if note and not as_json:
            typer.echo(note, err=True)
    if as_json:
        typer.echo(rep.model_dump_json())
        return
    state = "up to date" if rep.up_to_date else "published"
    typer.echo(f"{m.dataset}@{m.version} {state}: {m.rows} rows, {len(m.class_names)} classes ({rep.seconds:.1f} s)")
    for note in rep.notes:
        typer.echo(f"  note: {note}")
    for line in split_lines(m):
        typer.echo(line)
    if m.duplicates:
        extra = f", {m.duplicates_dropped} dropped" if m.duplicates_dropped else " (pass --dedupe to drop them)"
        typer.echo(f"  {len(m.duplicates)} group(s) of byte-identical inputs{extra}")
    _print_quarantine(m.quarantine)


@app.command("split")
def split_cmd(
    ref: Annotated[str, typer.Argument(help="NAME[@VERSION] to split.")],
    val: Annotated[float, typer.Option(help="Fraction of train rows for validation.")] = 0.1,
    test: Annotated[float, typer.Option(help="Fraction of train rows for test.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the stratified assignment.")] = 0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Make a stratified child version with val/test carved out of train (duplicates stay together)."""
    from augsvc.api import split as run_split

    r = run_split(ref, val=val, test=test, seed=seed, store=store)
    m = r.manifest
    if as_json:
        typer.echo(r.model_dump_json(exclude={"parent"}))
        return
    typer.echo(f"{m.dataset}@{m.version} {'up to date' if r.up_to_date else 'published'} (parent {m.parents[0]})")
    for note in r.notes:
        typer.echo(f"  note: {note}")
    for line in split_lines(m):
        typer.echo(line)


def _build_kept(s, recipe) -> str:
    """What an interrupted build leaves: nothing published, its finished tasks in the keyed staging folder (the
    same command reuses them)."""
    from augsvc.api import build_work

    vid, work, done, published = build_work(recipe, store=s)
    if published:
        return f"{recipe.output}@{vid} had been published already"
    return f"nothing was published; {done} finished task(s) kept in {work}"


@app.command()
def build(
    recipe_path: Annotated[str, typer.Argument(metavar="RECIPE.yaml", help="Recipe file.")],
    workers: Annotated[
        int | None, typer.Option(help="Workers (0: in-process; default: in-process for small jobs, else all cores).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else local).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and expected rows; build nothing.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Build the recipe: augment its input version and publish a new immutable version."""
    from augsvc.api import build as run_build
    from augsvc.api import load_recipe

    recipe = load_recipe(recipe_path)
    from augsvc.advice import leak_note
    from augsvc.cli_store import latest_before, latest_note

    s = _store(store)
    if not as_json and (note := leak_note(s.manifest(*s.resolve(recipe.input)), list(recipe.splits))):
        typer.echo(note, err=True)
    before = latest_before(s, recipe.output)
    from augsvc.interrupt import on_interrupt

    with on_interrupt(lambda: _build_kept(s, recipe), rerun=True):
        with _progress(f"build {recipe.output}", as_json or dry_run) as bar:
            rep = run_build(recipe, store=s, workers=workers, address=address, dry_run=dry_run, progress=bar)
    if not dry_run and not as_json and (note := latest_note(s, recipe.output, before, rep.version)):
        typer.echo(note, err=True)
    rows_out = rep.rows_out
    if as_json:
        typer.echo(rep.model_dump_json())
        return
    typer.echo(f"{recipe.input} -> {recipe.output}@{rep.version}")
    for st in rep.stages:
        copies = ", ".join(f"{c} x{v}" for c, v in st.copies.items())
        typer.echo(f"  stage {st.index} {st.name}: copies {copies or 'none'}"
                   + (f" (+1 for {st.extra_rows} rows)" if st.extra_rows else "")
                   + ("" if st.keep_originals else ", originals dropped"))  # fmt: skip
    names = list(rep.manifest.class_names) if rep.manifest else None
    for sp in sorted(set(rep.counts_in) | set(rep.counts_out)):
        a, b = rep.counts_in.get(sp, {}), rep.counts_out.get(sp, {})
        classes = (names or []) + sorted((set(a) | set(b)) - set(names or []))  # "-": rows without a label
        show = {"-": "unlabelled" if len(classes) > 1 else "rows"}  # only "-": pairs, which have no labels
        per = ", ".join(f"{show.get(c, c)} {a.get(c, 0)}->{b.get(c, 0)}" for c in classes)
        typer.echo(f"  {sp}: {sum(a.values())} -> {sum(b.values())} rows ({per})")
    from augsvc.stage_reports import report_lines

    for stage, report in rep.stage_reports.items():
        for line in report_lines(stage, report):
            typer.echo(line)
    for note in rep.notes:
        typer.echo(f"  note: {note}")
    if dry_run:
        typer.echo("dry run: nothing built" + (" (this version already exists)" if rep.up_to_date else ""))
        return
    if rep.up_to_date:
        typer.echo("up to date: this version already exists")
        return
    rate = rows_out / max(rep.seconds - rep.ray_start_seconds, 1e-9)
    reused = f", reused {rep.reused_tasks} finished task(s)" if rep.reused_tasks else ""
    typer.echo(f"published {rows_out} rows in {rep.seconds:.1f} s ({rate:.0f} rows/s after Ray start-up "
               f"{rep.ray_start_seconds:.1f} s{reused})")  # fmt: skip


@app.command()
def preview(
    recipe_path: Annotated[str, typer.Argument(metavar="RECIPE.yaml", help="Recipe file.")],
    out: Annotated[
        str | None, typer.Option("--out", help="Image recipes: PNG to write (default preview.png). Text: .md/.html.")
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Number of source images.")] = 16,
    copies: Annotated[int, typer.Option(help="Augmented copies shown beside each original.")] = 4,
    size: Annotated[int, typer.Option(help="Cell size in pixels.")] = 96,
    store: StoreOpt = None,
):
    """Show originals beside what the recipe derives from them (same seeds as a build): copies, mixed pairs and
    synthetic rows; a PNG grid for images, a table for text and tabular rows."""
    from augsvc.api import preview as run_preview

    result = run_preview(recipe_path, out, store=store, n=n, copies=copies, cell=size)
    typer.echo(f"wrote {out or result}" if (out or result.endswith(".png")) else result)


@app.command("ops")
def ops_cmd(
    name: Annotated[str | None, typer.Argument(help="Show one op, mix method or generator.")] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="all, or one stage kind: op, mix, generator, teacher (and registered kinds).")
    ] = "all",
    as_json: JsonOpt = False,
):
    """List what recipe stages can use: ops, mix methods, generators and the teacher stage, with their parameters
    and defaults."""
    from augsvc.api import catalogue
    from schemas.suggest import unknown_name

    cat = catalogue()
    if kind != "all" and kind not in cat:
        raise AugsvcError(unknown_name("stage kind", kind, cat))
    kinds = list(cat) if kind == "all" else [kind]
    entries: dict[str, dict] = {}  # kind -> name -> {doc, params, ...}
    for k in kinds:
        e = cat[k]
        if k == "op":
            entries[k] = e["ops"]
        elif k == "mix":
            entries[k] = {m: {**v, "doc": f"mix method {m}", "params": e["params"]} for m, v in e["methods"].items()}
        elif k == "generator":
            entries[k] = e["generators"]
        else:
            entries[k] = {k: {"doc": e["description"], "params": e.get("params", {})}}
    if name is not None:
        found = {k: v[name] for k, v in entries.items() if name in v}
        if not found:
            raise AugsvcError(
                unknown_name("op, mix method or generator", name, {n for v in entries.values() for n in v})
            )
        entries = {k: {name: v} for k, v in found.items()}
    if as_json:
        typer.echo(json.dumps(entries["op"] if kind == "op" else entries, indent=2))
        return
    for k, items in entries.items():
        typer.echo(f"== {k} stages ({cat[k]['description']})")
        for item, d in items.items():
            tags = d.get("modality") or ", ".join(d.get("modalities", []))
            typer.echo(f"{item}" + (f" [{tags}]" if tags else "") + f"  {d.get('doc', '')}")
            for f, p in d["params"].items():
                typer.echo(f"    {f} = {p['default']!r}  {p['description']}")


@app.command()
def demo(
    workdir: Annotated[str, typer.Option(help="Where the demo writes its inputs and store.")] = "./augsvc-demo",
    workers: Annotated[
        int | None, typer.Option(help="Workers (default: in-process for small jobs, else all cores).")
    ] = None,
):
    """Run the whole flow that exists on the bundled demo data (embedded local Ray)."""
    from augsvc.demo import run_demo

    run_demo(workdir, workers=workers, echo=typer.echo)


def _register_trainer() -> None:
    from augsvc.cli_store import register as register_store
    from augsvc.trainer.cli import register  # typer only; torch is imported inside the commands

    register(app)
    register_store(app)
    from augsvc.cli_labels import register as register_labels

    register_labels(app)


_register_trainer()


def _register_models() -> None:
    from augsvc.model_cli import register

    register(app)


_register_models()


def _register_service() -> None:
    from augsvc.service.cli import register  # typer only; FastAPI and uvicorn are imported when serve runs

    register(app)


_register_service()


def _register_tune() -> None:
    from augsvc.tune.cli import register  # typer only; Ray Tune, torch and matplotlib load when tune runs

    register(app)


_register_tune()


def main() -> None:
    try:
        app()
    except AugsvcError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
    except OSError as e:  # a fault outside a guarded job (tag, show on a vanished store): one line, no traceback
        where = f": {e.filename}" if e.filename else ""
        typer.echo(f"error: {e.strerror or e}{where}", err=True)
        raise SystemExit(2) from None
