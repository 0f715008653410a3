"""The ``augsvc`` command line. Heavy libraries are imported inside commands so ``--help`` stays fast."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from schemas.errors import AugsvcError

app = typer.Typer(help="augsvc: build, version and serve augmented datasets.", no_args_is_help=True)
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store root: a path or URI such as s3://bucket/prefix (default: $AUGSVC_STORE or ./augsvc-store).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _store(uri: str | None):
    from pipelines.store import Store

    return Store(uri)


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
    s = _store(store)
    m = s.manifest(*s.resolve(ref))
    if as_json:
        typer.echo(m.model_dump_json(indent=2))
        return
    typer.echo(f"{m.dataset}@{m.version}  {m.modality}  {m.rows} rows  created {m.created}  augsvc {m.package_version}")
    typer.echo(f"definition: {m.definition.get('kind', '?')}   parents: {', '.join(m.parents) or '-'}")
    for sp, n in m.rows_per_split.items():
        per = m.splits.get(sp, {})
        typer.echo(f"  {sp}: {n} rows" + (" (" + ", ".join(f"{c} {k}" for c, k in per.items()) + ")" if per else ""))
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
    _print_quarantine(m.quarantine)


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


def _progress(label: str, quiet: bool):
    """Progress on stderr: a bar on a terminal, plain lines otherwise, nothing under --json."""
    from augsvc.progress import progress

    return progress(label, quiet)


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
def ingest(
    source: Annotated[str, typer.Argument(help="File or folder to ingest.")],
    name: Annotated[str, typer.Option("--name", help="Dataset name in the store.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="auto, images, idx, npz, csv, tsv, jsonl, lines, tabular, parallel or parquet."),
    ] = "auto",
    text_column: Annotated[str | None, typer.Option(help="Text column (name, or index without header).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column (name, or index without header).")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="First line is a header.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding, e.g. latin-1.")] = "utf-8",
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter (default by format).")] = None,
    label_sep: Annotated[str, typer.Option(help="'lines' format: label/text separator.")] = " ",
    label_level: Annotated[str, typer.Option(help="'lines' format: coarse (DESC) or fine (DESC:manner).")] = "coarse",
    split: Annotated[str | None, typer.Option(help="Split name for a single-file source.")] = None,
    resize: Annotated[str | None, typer.Option(help="Resize images to HEIGHTxWIDTH (or one number).")] = None,
    image_storage: Annotated[str, typer.Option(help="auto, raw, jpeg, png or webp (see docs).")] = "auto",
    jpeg_quality: Annotated[int, typer.Option(help="Quality for jpeg/webp storage.")] = 95,
    labels_file: Annotated[str | None, typer.Option(help="Flat image folder: CSV/JSONL file -> label map.")] = None,
    x_key: Annotated[str, typer.Option(help="NPZ images array name.")] = "x",
    y_key: Annotated[str, typer.Option(help="NPZ labels array name.")] = "y",
    src_lang: Annotated[str | None, typer.Option(help="Parallel text: source language suffix.")] = None,
    tgt_lang: Annotated[str | None, typer.Option(help="Parallel text: target language suffix.")] = None,
    image_column: Annotated[str | None, typer.Option(help="Parquet source: column of encoded images.")] = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated class names in label order.")] = None,
    on_error: Annotated[str, typer.Option(help="fail: stop at the first bad item; skip: quarantine it.")] = "fail",
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Drop byte-identical duplicates.")] = False,
    shard_rows: Annotated[int | None, typer.Option(help="Rows per shard (default by modality).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Workers (0: in-process; default: in-process for small jobs, else all cores).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else local).")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Ingest SOURCE into the store as a new immutable version of NAME."""
    from pydantic import ValidationError

    from pipelines.ingest import IngestOptions
    from pipelines.ingest import ingest as run_ingest

    raw = dict(
        format=fmt, text_column=text_column, label_column=label_column, header=header, encoding=encoding,
        delimiter=delimiter, label_sep=label_sep, label_level=label_level, split=split, resize=resize,
        image_storage=image_storage, jpeg_quality=jpeg_quality, labels_file=labels_file, x_key=x_key, y_key=y_key,
        src_lang=src_lang, tgt_lang=tgt_lang, image_column=image_column,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        on_error=on_error, dedupe=dedupe, shard_rows=shard_rows,
    )  # fmt: skip
    try:
        opts = IngestOptions(**raw)
    except ValidationError as e:
        raise AugsvcError(_pydantic_message(e)) from None
    from augsvc.cli_store import latest_before, latest_note

    s = _store(store)
    before = latest_before(s, name)
    with _progress(f"ingest {name}", as_json) as bar:
        rep = run_ingest(source, name=name, store=s, options=opts, workers=workers, address=address, progress=bar)
    m = rep.manifest
    from augsvc.advice import no_train_note

    for note in (latest_note(s, name, before, m.version), no_train_note(m)):
        if note and not as_json:
            typer.echo(note, err=True)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "dataset": m.dataset,
                    "version": m.version,
                    "up_to_date": rep.up_to_date,
                    "rows": m.rows,
                    "rows_per_class": m.rows_per_class,
                    "rows_per_split": m.rows_per_split,
                    "splits": m.splits,
                    "quarantined": len(m.quarantine),
                    "duplicate_groups": len(m.duplicates),
                    "duplicates_dropped": m.duplicates_dropped,
                    "seconds": round(rep.seconds, 3),
                }
            )
        )
        return
    state = "up to date" if rep.up_to_date else "published"
    typer.echo(f"{m.dataset}@{m.version} {state}: {m.rows} rows, {len(m.class_names)} classes ({rep.seconds:.1f} s)")
    for sp, n in m.rows_per_split.items():
        per = m.splits.get(sp, {})
        typer.echo(f"  {sp}: {n} rows" + (" (" + ", ".join(f"{c} {k}" for c, k in per.items()) + ")" if per else ""))
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
    from pipelines.split import split_version

    r = split_version(_store(store), ref, val=val, test=test, seed=seed)
    m = r.manifest
    if as_json:
        typer.echo(
            json.dumps({"dataset": m.dataset, "version": m.version, "up_to_date": r.up_to_date, "splits": m.splits})
        )
        return
    typer.echo(f"{m.dataset}@{m.version} {'up to date' if r.up_to_date else 'published'} (parent {m.parents[0]})")
    for sp, per in m.splits.items():
        typer.echo(f"  {sp}: {sum(per.values())} rows (" + ", ".join(f"{c} {n}" for c, n in per.items()) + ")")


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
    from pipelines.runner import build as run_build
    from schemas.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    from augsvc.advice import leak_note
    from augsvc.cli_store import latest_before, latest_note

    s = _store(store)
    if not as_json and (note := leak_note(s.manifest(*s.resolve(recipe.input)), list(recipe.splits))):
        typer.echo(note, err=True)
    before = latest_before(s, recipe.output)
    with _progress(f"build {recipe.output}", as_json or dry_run) as bar:
        rep = run_build(recipe, s, workers=workers, address=address, dry_run=dry_run, progress=bar)
    if not dry_run and not as_json and (note := latest_note(s, recipe.output, before, rep.version)):
        typer.echo(note, err=True)
    plan = rep.plan
    rows_out = sum(sum(v.values()) for v in plan.counts_out.values())
    if as_json:
        out = {
            "dataset": recipe.output,
            "version": rep.version,
            "dry_run": dry_run,
            "up_to_date": rep.up_to_date,
            "rows_in": rep.rows_in,
            "rows_out": rows_out,
            "counts_in": plan.counts_in,
            "counts_out": plan.counts_out,
            "seconds": round(rep.seconds, 3),
            "ray_start_seconds": round(rep.ray_start_seconds, 3),
        }
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{recipe.input} -> {recipe.output}@{rep.version}")
    for st in plan.stages:
        copies = ", ".join(f"{plan.class_names[k]} x{v}" for k, v in sorted(st.copies.items()))
        typer.echo(f"  stage {st.index} {st.name}: copies {copies or 'none'}"
                   + (f" (+1 for {len(st.extra)} rows)" if st.extra else "")
                   + ("" if st.keep_originals else ", originals dropped"))  # fmt: skip
    for sp in sorted(set(plan.counts_in) | set(plan.counts_out)):
        a, b = plan.counts_in.get(sp, {}), plan.counts_out.get(sp, {})
        per = ", ".join(f"{c} {a.get(c, 0)}->{b.get(c, 0)}" for c in plan.class_names)
        typer.echo(f"  {sp}: {sum(a.values())} -> {sum(b.values())} rows ({per})")
    if dry_run:
        typer.echo("dry run: nothing built" + (" (this version already exists)" if rep.up_to_date else ""))
        return
    if rep.up_to_date:
        typer.echo("up to date: this version already exists")
        return
    rate = rows_out / max(rep.seconds - rep.ray_start_seconds, 1e-9)
    reused = f", reused {rep.reused_shards} finished shard(s)" if rep.reused_shards else ""
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
    """Show originals beside augmented copies (same seeds as a build): a PNG grid for images, a table for text."""
    from pipelines.preview import render_preview, render_text_preview
    from schemas.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    s = _store(store)
    if s.manifest(*s.resolve(recipe.input)).modality == "text":
        table = render_text_preview(recipe, s, n=n, copies=copies, out=out)
        typer.echo(f"wrote {out}" if out else table)
        return
    path = render_preview(recipe, s, out or "preview.png", n=n, copies=copies, cell=size)
    typer.echo(f"wrote {path}")


@app.command("ops")
def ops_cmd(
    name: Annotated[str | None, typer.Argument(help="Show one op.")] = None,
    as_json: JsonOpt = False,
):
    """List the registered ops with their parameters and defaults."""
    from pipelines.transforms.base import get_op_class, registry

    ops = {name: get_op_class(name)} if name else registry()
    info = {}
    for op_name, cls in ops.items():
        params = {}
        for f, fi in cls.model_fields.items():
            default = None if fi.is_required() else fi.get_default(call_default_factory=True)
            params[f] = {"default": _jsonable(default), "description": fi.description or ""}
        info[op_name] = {"modality": cls.modality, "doc": (cls.__doc__ or "").strip().split("\n")[0], "params": params}
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for op_name, d in info.items():
        typer.echo(f"{op_name} [{d['modality']}]  {d['doc']}")
        for f, p in d["params"].items():
            typer.echo(f"    {f} = {p['default']!r}  {p['description']}")


def _jsonable(v):
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(v)
    except Exception:  # noqa: BLE001
        return repr(v)


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


def _pydantic_message(e) -> str:
    lines = []
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"]) or "options"
        lines.append(f"--{key.replace('_', '-')}: {err['msg']}")
    return "; ".join(lines)


def _register_trainer() -> None:
    from augsvc.cli_store import register as register_store
    from augsvc.trainer.cli import register  # typer only; torch is imported inside the commands

    register(app)
    register_store(app)


_register_trainer()


def main() -> None:
    try:
        app()
    except AugsvcError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
