"""Store housekeeping commands (``tags``, ``rm``, ``gc``) and the text of ``ls``; the logic is in Store, reached
through the handle ``augsvc.api.open_store`` gives."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from augsvc.api import open_store

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store root: a path or URI (default: $AUGSVC_STORE or ./augsvc-store)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def ls_lines(s: Any, name: str | None) -> list[str]:
    """``augsvc ls`` text: per dataset its version count and latest; per version its rows, creation time, tags."""
    s.require_present()
    if name is None:
        lines = []
        for ds in s.datasets():
            rows = s.version_table(ds)
            latest = s.tags(ds).get("latest")
            cur = next((r for r in rows if r["version"] == latest), None)
            about = f"latest {latest} ({cur['rows']} rows, created {cur['created']})" if cur else "no latest tag"
            lines.append(f"{ds}  {len(rows)} version(s)  {about}")
        return lines or [f"store {s.shown} holds no datasets yet"]
    if not s.versions(name):
        raise s.unknown_ref(name, name, "latest")
    out = []
    for r in s.version_table(name):
        tags = f"  [{', '.join(r['tags'])}]" if r["tags"] else ""
        seed = f"  seed {r['seed']}" if r["seed"] is not None else ""
        if r.get("damaged"):
            out.append(f"{r['version']}  (damaged: {r['damaged']}){tags}")
            continue
        out.append(f"{r['version']}  {r['kind'] or '?':6}  {r['rows']:>9} rows  {r['created']}{seed}{tags}")
    return out


def latest_note(s: Any, dataset: str, before: str | None, after: str) -> str | None:
    """ "latest moved from A to B" when a publish (or an up-to-date run) moved the tag, else None."""
    if before is None or before == after:
        return None
    try:
        old, new = s.manifest(dataset, before), s.manifest(dataset, after)
    except Exception:  # noqa: BLE001  (the old version may be gone; the note is still useful without details)
        return f"note: {dataset}@latest moved from {before} to {after}"
    why = f" (seed {old.seed} -> {new.seed})" if old.seed != new.seed else ""
    return f"note: {dataset}@latest moved from {before} to {after}{why}; 'augsvc tag {dataset}@{before} NAME' keeps a name for the old one"  # noqa: E501


def latest_before(s: Any, dataset: str) -> str | None:
    """The version ``latest`` points at now (None when the dataset or tag does not exist)."""
    try:
        return s.tags(dataset).get("latest")
    except Exception:  # noqa: BLE001  (an invalid name is reported by the command itself)
        return None


def register(app: typer.Typer) -> None:
    """Add ``tags``, ``rm`` and ``gc`` to the ``augsvc`` command."""

    @app.command("tags")
    def tags_cmd(name: str, store: StoreOpt = None, as_json: JsonOpt = False):
        """List the tags of dataset NAME and the versions they point at."""
        s = open_store(store)
        s.require_present()
        if not s.versions(name):
            raise s.unknown_ref(name, name, "latest")
        tags = s.tags(name)
        if as_json:
            typer.echo(json.dumps(tags))
            return
        for t, v in tags.items():
            typer.echo(f"{t}  {v}")

    @app.command("rm")
    def rm_cmd(
        ref: Annotated[str, typer.Argument(help="NAME@VERSION to delete (a tag or unique prefix works too).")],
        force: Annotated[bool, typer.Option("--force", help="Delete even if tags or child versions need it.")] = False,
        store: StoreOpt = None,
    ):
        """Delete one version (refused while a tag or a child version still needs it, unless --force)."""
        s = open_store(store)
        s.require_present()
        if "@" not in ref:
            raise typer.BadParameter("give NAME@VERSION (rm deletes one version, never a whole dataset by accident)")
        ds, v = s.resolve(ref)
        for note in s.remove_version(ds, v, force=force):
            typer.echo(f"  {note}")
        typer.echo(f"removed {ds}@{v}")

    @app.command("gc")
    def gc_cmd(
        min_age: Annotated[
            float, typer.Option(help="Only remove staging leftovers untouched for this many seconds.")
        ] = 3600.0,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed.")] = False,
        store: StoreOpt = None,
    ):
        """Remove what no version or tag references: old staging folders, orphan shard files, dangling tags."""
        s = open_store(store)
        s.require_present()
        items = s.gc(min_age_s=min_age, dry_run=dry_run)
        for line in items:
            typer.echo(line)
        typer.echo(("would remove" if dry_run else "removed") + f" {len(items)} item(s)")
