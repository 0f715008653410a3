"""The Python API: what the CLI does, as functions that return typed results with a JSON form.

>>> import augsvc
>>> r = augsvc.ingest("data/flowers", name="flowers", store="augsvc-store", on_error="skip")  # doctest: +SKIP
>>> r.version, r.rows, r.model_dump_json()  # doctest: +SKIP

Every function takes ``store`` (a path, a URI such as ``s3://bucket/prefix``, a :class:`pipelines.store.Store`, or
None for ``$AUGSVC_STORE`` / ``./augsvc-store``) and raises :class:`schemas.errors.AugsvcError` with a one-line
message for anything the user can fix.

This module is the boundary between what users touch and the machinery: inside ``augsvc/`` only it (and the stream
family, ``augsvc/stream*.py``) imports the store, the runner and ingest (``tests/test_layers.py``). The CLI, the
HTTP service, the demo, the trainer, ``augsvc tune`` and ``augsvc models`` go through it:

- jobs: :func:`ingest`, :func:`split`, :func:`label_subset`, :func:`build` (the full check: the input's shards
  re-hashed), :func:`plan` (a dry run: the manifests checked, nothing re-hashed or written);
- reads: :func:`datasets`, :func:`versions`, :func:`tags`, :func:`resolve`, :func:`show` (a manifest),
  :func:`open_shard` / :func:`read_shard` (a shard checked against its manifest entry as it is read),
  :func:`verify`;
- names: :func:`tag`, :func:`check_name`; the store handle itself: :func:`open_store`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.ingest.options import FORMATS as FORMATS  # re-exported: the ingest formats, for every surface
from pipelines.ingest.options import IngestOptions as IngestOptions
from pipelines.ingest.options import format_list as format_list
from schemas.manifest import Manifest, ShardInfo

Progress = Callable[[int, int | None], None] | None
#: what every ``store`` argument takes: a path, a URI, a :class:`pipelines.store.Store`, or None (the default store)
StoreArg = Any


class Result(BaseModel):
    """Base of every API result: ``model_dump()`` / ``model_dump_json()`` give the JSON form the CLI prints."""

    model_config = ConfigDict(extra="forbid")


class IngestResult(Result):
    dataset: str
    version: str
    up_to_date: bool
    rows: int
    rows_per_class: dict[str, int]
    rows_per_split: dict[str, int]
    splits: dict[str, dict[str, int]]
    quarantined: int
    duplicate_groups: int
    duplicates_dropped: int
    notes: list[str] = Field(default_factory=list)  # how the input was read (e.g. one-hot labels as classes)
    seconds: float
    ray_start_seconds: float = 0.0
    manifest: Manifest = Field(exclude=True)


class SplitResult(Result):
    dataset: str
    version: str
    up_to_date: bool
    parent: str
    splits: dict[str, dict[str, int]]
    notes: list[str] = Field(default_factory=list)  # the manifest's notes (e.g. classes kept without rows)
    manifest: Manifest = Field(exclude=True)


class StagePlanInfo(Result):
    index: int
    name: str
    copies: dict[str, int]  # class -> copies per row
    extra_rows: int  # rows that get one copy more (per-class targets)
    keep_originals: bool


class BuildResult(Result):
    dataset: str
    version: str
    dry_run: bool
    up_to_date: bool
    rows_in: int
    rows_out: int
    counts_in: dict[str, dict[str, int]]
    counts_out: dict[str, dict[str, int]]
    stages: list[StagePlanInfo]
    stage_reports: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)  # the published manifest's notes (e.g. classes without rows)
    seconds: float
    ray_start_seconds: float
    reused_tasks: int = 0
    manifest: Manifest | None = Field(None, exclude=True)


class VerifyResult(Result):
    dataset: str
    version: str
    ok: bool
    problems: list[str]


def _label_key(kv: tuple) -> tuple:
    """Sort key of (label or None, copies): classes in order, unlabelled rows last."""
    return (kv[0] is None, kv[0] or 0)


def _label_name(names: list[str], k: int | None) -> str:
    return "(unlabelled)" if k is None else names[k]


def open_store(store: Any = None) -> Any:
    """A :class:`pipelines.store.Store` for ``store`` (see the module doc)."""
    from pipelines.store import Store

    return store if isinstance(store, Store) else Store(store)


def ingest(
    source: str | Path,
    name: str,
    *,
    store: Any = None,
    workers: int | None = None,
    address: str | None = None,
    progress: Progress = None,
    **options: Any,
) -> IngestResult:
    """Ingest ``source`` (a file or folder) as a new immutable version of ``name``; ``options`` are
    :class:`pipelines.ingest.IngestOptions` fields (``format``, ``on_error``, ``resize``, ...)."""
    from pydantic import ValidationError

    from pipelines.ingest import ingest as run_ingest
    from schemas.errors import AugsvcError

    try:
        opts = IngestOptions(**options)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "options"
            lines.append(f"{key} (--{key.replace('_', '-')}): {err['msg']}")
        raise AugsvcError("ingest: " + "; ".join(lines)) from None
    rep = run_ingest(source, name=name, store=open_store(store), options=opts, workers=workers, address=address,
                     progress=progress)  # fmt: skip
    m = rep.manifest
    return IngestResult(
        dataset=m.dataset, version=m.version, up_to_date=rep.up_to_date, rows=m.rows, rows_per_class=m.rows_per_class,
        rows_per_split=m.rows_per_split, splits=m.splits, quarantined=len(m.quarantine),
        duplicate_groups=len(m.duplicates), duplicates_dropped=m.duplicates_dropped, notes=list(rep.notes),
        seconds=round(rep.seconds, 3), ray_start_seconds=round(rep.ray_start_seconds, 3), manifest=m,
    )  # fmt: skip


def split(ref: str, *, val: float = 0.1, test: float = 0.2, seed: int = 0, store: Any = None) -> SplitResult:
    """A stratified child version of ``ref`` with ``val``/``test`` fractions carved out of train."""
    from pipelines.split import split_version

    r = split_version(open_store(store), ref, val=val, test=test, seed=seed)
    m = r.manifest
    return SplitResult(dataset=m.dataset, version=m.version, up_to_date=r.up_to_date, parent=m.parents[0],
                       splits=m.splits, notes=list(m.notes), manifest=m)  # fmt: skip


def load_recipe(recipe: Any) -> Any:
    """A validated recipe from a YAML path, a dict or a Recipe (every stage spec checked by its kind)."""
    from pipelines.recipes import load_recipe as load

    return load(recipe)


def build(
    recipe: Any,
    *,
    store: Any = None,
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    progress: Progress = None,
) -> BuildResult:
    """Build ``recipe`` (a YAML path, dict or Recipe): augment its input version and publish a new version
    (``dry_run``: plan and expected rows only, after every check the build would make)."""
    from pipelines.runner import build as run_build
    from pipelines.storeshards import counts_by_name

    r = load_recipe(recipe)
    rep = run_build(r, open_store(store), workers=workers, address=address, dry_run=dry_run, progress=progress)
    plan = rep.plan
    names = plan.class_names
    stage_info = [
        StagePlanInfo(
            index=st.index,
            name=st.name,
            copies={_label_name(names, k): v for k, v in sorted(st.copies.items(), key=_label_key)},
            extra_rows=len(st.extra),
            keep_originals=st.keep_originals,
        )  # fmt: skip
        for st in plan.stages
    ]
    # the plan's counts are an estimate where a stage's outcome depends on data; a published version has the facts
    counts_out = plan.counts_out if rep.manifest is None else counts_by_name(rep.manifest) or plan.counts_out
    return BuildResult(
        dataset=r.output, version=rep.version, dry_run=dry_run, up_to_date=rep.up_to_date, rows_in=rep.rows_in,
        rows_out=sum(sum(v.values()) for v in counts_out.values()), counts_in=plan.counts_in,
        counts_out=counts_out, stages=stage_info, stage_reports=rep.reports or {},
        notes=list(rep.manifest.notes) if rep.manifest else [],
        seconds=round(rep.seconds, 3), ray_start_seconds=round(rep.ray_start_seconds, 3),
        reused_tasks=rep.reused_shards, manifest=rep.manifest,
    )  # fmt: skip


def build_work(recipe: Any, *, store: StoreArg = None) -> tuple[str, str, int, bool]:
    """Where a build of ``recipe`` keeps its finished tasks until it publishes (an interrupted build resumes from
    them when run again): (version id, work folder, finished tasks there, published already). Cheap: the version id
    comes from the recipe and the input's id alone, no row is read."""
    from pipelines.runner import build_definition
    from schemas.hashing import version_id

    r = load_recipe(recipe)
    s = open_store(store)
    ds, v = s.resolve(r.input)
    vid = version_id(build_definition(r, f"{ds}@{v}"))
    work = s.root / r.output / ".staging" / f"build-{vid}" / "work"
    done = len(list(work.glob("*.json"))) if work.is_dir() else 0
    return vid, str(work), done, s.exists(r.output, vid)


def show(ref: str, *, store: Any = None) -> Manifest:
    """The manifest of ``ref`` (``NAME``, ``NAME@VERSION`` or ``NAME@TAG``)."""
    s = open_store(store)
    return s.manifest(*s.resolve(ref))


def verify(ref: str, *, store: Any = None) -> VerifyResult:
    """Re-hash every shard of ``ref`` against its manifest; ``ok`` is False with the problems named."""
    s = open_store(store)
    ds, v = s.resolve(ref)
    problems = s.verify(ds, v)
    return VerifyResult(dataset=ds, version=v, ok=not problems, problems=problems)


def plan(recipe: Any, *, store: StoreArg = None) -> BuildResult:
    """What :func:`build` would do with ``recipe``, without doing it: every check of the recipe against the input
    version's manifest, the version id, the rows per split and class after each stage (``dry_run`` true).

    The input's manifest is checked (it parses, names its version, hashes to its id, counts agree) but its shards
    are not re-hashed: a plan is cheap enough for a request path. The build itself re-hashes every input shard."""
    return build(recipe, store=store, dry_run=True)


def datasets(store: StoreArg = None, *, require_store: bool = False) -> list[str]:
    """The datasets of ``store`` that hold at least one version, sorted. With ``require_store``, a store root that
    does not exist is an ``AugsvcError`` (a mistyped ``--store``) instead of an empty list."""
    s = open_store(store)
    if require_store:
        s.require_present()
    return s.datasets()


def versions(name: str, *, store: StoreArg = None) -> list[str]:
    """The published version ids of dataset ``name``, sorted (``[]`` when it has none; ``AugsvcError`` for a
    name that is not valid)."""
    return open_store(store).versions(name)


def tags(name: str, *, store: StoreArg = None) -> dict[str, str]:
    """tag -> version id of every tag of dataset ``name``, sorted by tag."""
    return open_store(store).tags(name)


def resolve(ref: str, *, store: StoreArg = None) -> tuple[str, str]:
    """``NAME``, ``NAME@VERSION`` (or a unique prefix) or ``NAME@TAG`` -> (dataset, version id); ``AugsvcError``
    naming the closest dataset, version or tag when nothing matches."""
    return open_store(store).resolve(ref)


def check_name(name: str, what: str = "dataset name") -> None:
    """``AugsvcError`` unless ``name`` is a valid dataset or tag name (letters, digits, '.', '_', '-'; the whole
    string, so a trailing newline is refused too)."""
    from pipelines.store import check_name as check

    check(name, what)


def tag(ref: str, tag_name: str, *, store: StoreArg = None) -> tuple[str, str]:
    """Point ``tag_name`` at the version ``ref`` resolves to; returns (dataset, version)."""
    s = open_store(store)
    ds, v = s.resolve(ref)
    s.set_tag(ds, tag_name, v)
    return ds, v


def _shard_of(m: Manifest, shard: int | ShardInfo) -> ShardInfo:
    if isinstance(shard, ShardInfo):
        return shard
    from schemas.errors import AugsvcError

    if not 0 <= shard < len(m.shards):
        raise AugsvcError(f"{m.dataset}@{m.version} has {len(m.shards)} shard(s); there is no shard {shard}")
    return m.shards[shard]


def open_shard(ref: str, shard: int | ShardInfo, *, store: StoreArg = None) -> Any:
    """Shard ``shard`` (an index into the manifest's ``shards`` or one of its entries) of version ``ref`` as a
    ``pyarrow.parquet.ParquetFile`` over its bytes, after checking their size and sha256 and the footer's row
    count against the manifest; ``AugsvcError`` (one line) when it is missing or modified."""
    s = open_store(store)
    m = s.manifest(*s.resolve(ref))
    return s.open_shard(m.dataset, m.version, _shard_of(m, shard))


def open_shard_file(ref: str, shard: int | ShardInfo, *, store: StoreArg = None) -> Any:
    """Shard ``shard`` of version ``ref`` as a binary file object at offset 0 (``seek``/``read``; close it), for
    serving its bytes as they are (ranges, downloads): nothing is re-hashed, the reader checks the manifest's
    sha256. ``AugsvcError`` (one line) when the shard is missing, is not a regular file, or is a link that
    resolves outside a local store."""
    from pipelines import storefs
    from schemas.errors import AugsvcError

    s = open_store(store)
    ds, v = s.resolve(ref)
    info = shard if isinstance(shard, ShardInfo) else _shard_of(s.manifest(ds, v), shard)
    path = s.shard_ref(ds, v, info.path)  # the containment and regular-file checks of a local store
    try:
        if storefs.is_local(path):
            return open(path.removeprefix("file://"), "rb")  # noqa: SIM115 - the caller closes it
        fs, inner = storefs.resolve(path)
        return fs.open_input_file(inner)
    except OSError as e:
        raise AugsvcError(f"{ds}@{v}: shard {info.path} is missing or unreadable ({e.strerror or e}); run "
                          f"'augsvc verify {ds}@{v}'") from None  # fmt: skip


def read_shard(ref: str, shard: int | ShardInfo, columns: list[str] | None = None, *, store: StoreArg = None) -> Any:
    """:func:`open_shard`, read as a ``pyarrow.Table`` (``columns``: those to read; names the shard lacks are left
    out)."""
    s = open_store(store)
    m = s.manifest(*s.resolve(ref))
    return s.read_verified_shard(m.dataset, m.version, _shard_of(m, shard), columns)


def label_subset(
    ref: str,
    *,
    labelled: float,
    seed: int = 0,
    split: str = "train",
    unlabelled: str = "null",
    unlabelled_keep: float = 1.0,
    output: str | None = None,
    store: StoreArg = None,
) -> SplitResult:
    """A child version of ``ref`` in which a stratified ``labelled`` fraction of ``split`` keeps its labels and
    the other rows lose them (``unlabelled="null"``) or are left out (``"drop"``); see
    :func:`pipelines.labelsubset.label_subset`."""
    from pipelines.labelsubset import label_subset as run

    r = run(open_store(store), ref, labelled=labelled, seed=seed, split=split, unlabelled=unlabelled,
            unlabelled_keep=unlabelled_keep, output=output)  # fmt: skip
    m = r.manifest
    return SplitResult(dataset=m.dataset, version=m.version, up_to_date=r.up_to_date, parent=m.parents[0],
                       splits=m.splits, notes=list(m.notes), manifest=m)  # fmt: skip


def preview(recipe: Any, out: str | Path | None = None, *, store: Any = None, n: int = 16, copies: int = 4,
            cell: int = 96) -> str:  # fmt: skip
    """Render what ``recipe`` makes from a few rows: a PNG grid for images (written to ``out``, default
    preview.png; returns the path), else a Markdown/HTML table (returned, and written to ``out`` when given)."""
    from pipelines.preview import render_preview, render_table

    r = load_recipe(recipe)
    s = open_store(store)
    if s.manifest(*s.resolve(r.input)).modality == "image":
        return str(render_preview(r, s, out or "preview.png", n=n, copies=copies, cell=cell))
    return render_table(r, s, n=n, copies=copies, out=out)


def catalogue() -> dict[str, Any]:
    """Stage kinds with their parameters: ops, mix methods, generators, teacher (``augsvc ops --json``)."""
    from pipelines.stages import catalogue as kinds

    return {entry["kind"]: entry for entry in kinds()}


def stream(ref: str, **kwargs: Any) -> Any:
    """An :class:`augsvc.stream.Stream` over ``ref`` (numpy batches for a training loop)."""
    from augsvc.stream import Stream

    return Stream(ref, **kwargs)
