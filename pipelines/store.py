"""Dataset store: immutable, content-addressed versions published atomically.

Layout (a public contract, readable by any Parquet tool)::

    <store>/<dataset>/<version>/manifest.json
    <store>/<dataset>/<version>/shards/part-NNNNN.parquet
    <store>/<dataset>/tags/<tag>            (a file holding a version id)

A version is visible if and only if its ``manifest.json`` exists. Locally a version is written into
``<store>/<dataset>/.staging/`` and made visible by one directory rename; a concurrent publish of the same
version loses the rename race harmlessly (the content is identical by construction).

A remote store (``s3://bucket/prefix``, any URI of :mod:`pipelines.storefs`) stages on local disk (``AUGSVC_STAGING``,
default ``~/.cache/augsvc/staging``), then uploads the shards and writes ``manifest.json`` last, in one put: a crash
before that put leaves shard objects that no reader lists (the next publish of that version overwrites them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import storefs
from schemas.errors import AugsvcError
from schemas.hashing import sha256_bytes, version_id
from schemas.manifest import Manifest, QuarantineItem, ShardInfo
from schemas.version import PACKAGE_VERSION

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DEFAULT_STORE = "./augsvc-store"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def resolve_store_uri(uri: str | None) -> str:
    """The store root from ``--store``, else ``AUGSVC_STORE``, else ``./augsvc-store``."""
    return uri or os.environ.get("AUGSVC_STORE") or DEFAULT_STORE


def _staging_root(uri: str) -> Path:
    base = Path(os.environ.get("AUGSVC_STAGING") or Path.home() / ".cache" / "augsvc" / "staging")
    return base / hashlib.sha256(uri.encode()).hexdigest()[:16]


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise AugsvcError(f"{kind} {name!r} is not valid: use letters, digits, '.', '_' and '-'")


@dataclass
class PublishResult:
    manifest: Manifest
    up_to_date: bool


@dataclass
class Staging:
    """Shards being written for a version that is not visible yet."""

    dir: Path
    shards: list[ShardInfo] = field(default_factory=list)

    def write_shard(self, table: pa.Table, split: str | None = None) -> ShardInfo:
        """Write a table as the next ``part-NNNNN.parquet`` (zstd); ``split`` when every row has that split."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        return self.add_shard_bytes(sink.getvalue().to_pybytes(), table.num_rows, split)

    def add_shard_bytes(self, data: bytes, rows: int, split: str | None = None) -> ShardInfo:
        """Write shard bytes produced elsewhere (a worker) as the next ``part-NNNNN.parquet``."""
        rel = f"shards/part-{len(self.shards):05d}.parquet"
        (self.dir / rel).write_bytes(data)
        info = ShardInfo(path=rel, rows=rows, bytes=len(data), sha256=sha256_bytes(data), split=split)
        self.shards.append(info)
        return info

    def adopt_file(self, path: str | Path, rows: int, sha256: str, nbytes: int, split: str | None = None) -> ShardInfo:
        """Move a shard a worker wrote inside this staging folder into place as the next ``part-NNNNN.parquet``.

        The hash is the worker's; ``Store.publish`` re-hashes every shard before the version becomes visible."""
        rel = f"shards/part-{len(self.shards):05d}.parquet"
        os.replace(path, self.dir / rel)
        info = ShardInfo(path=rel, rows=rows, bytes=nbytes, sha256=sha256, split=split)
        self.shards.append(info)
        return info

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Store:
    """A store root holding datasets, their versions and tags: a local folder or a remote URI."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.uri = resolve_store_uri(str(root) if root is not None else None)
        self.local = storefs.is_local(self.uri)
        #: the local root folder (remote stores: their local staging folder)
        self.root = Path(self.uri.removeprefix("file://")) if self.local else _staging_root(self.uri)
        self.shown = storefs.display(self.uri)  # for messages: secrets in the query string masked
        self._writable = self.local

    def __repr__(self) -> str:
        return f"Store({self.shown!r})"

    # -- references --------------------------------------------------------------------------------------------
    def ref(self, *parts: str) -> str:
        """A path (local) or URI (remote) under the store root that any process can read with :mod:`storefs`."""
        return str(self.root.joinpath(*parts)) if self.local else storefs.join(self.uri, *parts)

    def shard_ref(self, dataset: str, version: str, rel: str) -> str:
        return self.ref(dataset, version, rel)

    def read_shard(self, dataset: str, version: str, rel: str, columns: list[str] | None = None) -> pa.Table:
        return storefs.read_table(self.shard_ref(dataset, version, rel), columns)

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """(pyarrow filesystem, root path inside it): for tools that take a filesystem (Ray Data, DuckDB)."""
        return storefs.resolve(self.ref())

    def version_dir(self, dataset: str, version: str) -> Path:
        """The local folder of a version (local stores only; use :meth:`shard_ref` for either kind)."""
        if not self.local:
            raise AugsvcError(f"store {self.shown} is remote: it has no local version folder")
        return self.root / dataset / version

    def _isfile(self, *parts: str) -> bool:
        if self.local:
            return self.root.joinpath(*parts).is_file()
        import pyarrow.fs as pafs

        fs, path = storefs.resolve(self.ref(*parts))
        return fs.get_file_info(path).type == pafs.FileType.File

    def _subdirs(self, *parts: str) -> list[str]:
        if self.local:
            d = self.root.joinpath(*parts)
            return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
        import pyarrow.fs as pafs

        fs, path = storefs.resolve(self.ref(*parts))
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def _read_text(self, *parts: str) -> str:
        return storefs.read_bytes(self.ref(*parts)).decode()

    def _write(self, data: bytes, *parts: str) -> None:
        """Replace one small file atomically (a rename locally, a single put remotely)."""
        if not self.local:
            ref = self.ref(*parts)
            if storefs.is_object_store(ref):
                storefs.write_bytes(ref, data)  # one put: visible whole or not at all
            else:  # filesystems (hdfs, abfs, sftp...) show a file while it is written: write aside, then move
                aside = self.ref(*parts[:-1], f".{parts[-1]}.tmp-{uuid.uuid4().hex}")
                storefs.write_bytes(aside, data)
                fs, path = storefs.resolve(ref)
                fs.move(storefs.resolve(aside)[1], path)
            return
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    # -- reading -----------------------------------------------------------------------------------------------
    def exists(self, dataset: str, version: str) -> bool:
        return self._isfile(dataset, version, "manifest.json")

    def datasets(self) -> list[str]:
        return [d for d in self._subdirs() if not d.startswith(".") and self.versions(d)]

    def versions(self, dataset: str) -> list[str]:
        return [v for v in self._subdirs(dataset) if v not in ("tags", ".staging") and self.exists(dataset, v)]

    def manifest(self, dataset: str, version: str) -> Manifest:
        if not self.exists(dataset, version):
            raise AugsvcError(f"{dataset}@{version}: no such version in store {self.shown}; see 'augsvc ls'")
        return Manifest.model_validate_json(self._read_text(dataset, version, "manifest.json"))

    def resolve(self, ref: str) -> tuple[str, str]:
        """``name``, ``name@version`` (or a unique prefix) or ``name@tag`` -> (dataset, version)."""
        name, _, sel = ref.partition("@")
        _check_name("dataset", name)
        sel = sel or "latest"
        if _NAME_RE.match(sel) and self._isfile(name, "tags", sel):
            return name, self._read_text(name, "tags", sel).strip()
        matches = [v for v in self.versions(name) if v.startswith(sel)]
        if len(matches) == 1:
            return name, matches[0]
        if not matches:
            raise self.unknown_ref(ref, name, sel)
        raise AugsvcError(f"{ref}: {sel!r} matches several versions ({', '.join(matches)}); give more digits")

    def set_tag(self, dataset: str, tag: str, version: str) -> None:
        """Point a tag at a version; tags are the only mutable names."""
        _check_name("tag", tag)
        if not self.exists(dataset, version):
            raise AugsvcError(f"cannot tag {dataset}@{version}: no such version")
        self._write((version + "\n").encode(), dataset, "tags", tag)

    # -- writing -----------------------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        """Fail before any work when a remote store cannot be written (missing bucket, no credentials)."""
        if self._writable:
            return
        fs, path = self.filesystem()
        try:
            fs.create_dir(path, recursive=True)
        except OSError as e:
            raise AugsvcError(
                f"store {self.shown}: cannot write there ({e}); check that the bucket or container exists and that "
                "this machine's credentials may write to it"
            ) from None
        self._writable = True

    def staging(self, dataset: str) -> Staging:
        _check_name("dataset", dataset)
        self._check_writable()
        d = self.root / dataset / ".staging" / uuid.uuid4().hex
        (d / "shards").mkdir(parents=True)
        return Staging(d)

    def staging_keyed(self, dataset: str, key: str) -> Staging:
        """A staging folder with a stable name, so an interrupted job can find and reuse its finished work."""
        _check_name("dataset", dataset)
        self._check_writable()
        d = self.root / dataset / ".staging" / key
        (d / "shards").mkdir(parents=True, exist_ok=True)
        return Staging(d)

    def publish(
        self,
        staging: Staging,
        *,
        dataset: str,
        definition: dict,
        modality: str,
        class_names: list[str],
        rows_per_class: dict[str, int],
        parents: list[str] | None = None,
        seed: int | None = None,
        quarantine: list[QuarantineItem] | None = None,
        extra: dict | None = None,
    ) -> PublishResult:
        """Verify the staged shards, write the manifest, and make the version visible in one step."""
        vid = version_id(definition)
        if self.exists(dataset, vid):
            shutil.rmtree(staging.dir, ignore_errors=True)
            self.set_tag(dataset, "latest", vid)
            return PublishResult(self.manifest(dataset, vid), up_to_date=True)
        for s in staging.shards:
            data = (staging.dir / s.path).read_bytes()
            if sha256_bytes(data) != s.sha256:
                raise AugsvcError(f"staged shard {s.path} changed while publishing; nothing was published")
        manifest = Manifest(
            dataset=dataset,
            version=vid,
            modality=modality,
            class_names=class_names,
            rows=sum(s.rows for s in staging.shards),
            rows_per_class=rows_per_class,
            shards=staging.shards,
            parents=parents or [],
            definition=definition,
            seed=seed,
            package_version=PACKAGE_VERSION,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            quarantine=quarantine or [],
            **(extra or {}),
        )
        if not manifest.rows_per_split:
            per_split: dict[str, int] = {}
            for sh in staging.shards:
                if sh.split is not None:
                    per_split[sh.split] = per_split.get(sh.split, 0) + sh.rows
            manifest.rows_per_split = dict(sorted(per_split.items()))
        body = manifest.model_dump_json(indent=2).encode()
        if self.local:
            (staging.dir / "manifest.json").write_bytes(body)
            target = self.version_dir(dataset, vid)
            try:
                os.rename(staging.dir, target)
            except OSError:
                if not self.exists(dataset, vid):
                    raise
                shutil.rmtree(staging.dir, ignore_errors=True)  # a concurrent publish of the same version won
        else:
            try:  # shards first; the manifest written last is what makes the version visible
                for s in staging.shards:
                    storefs.write_bytes(self.shard_ref(dataset, vid, s.path), (staging.dir / s.path).read_bytes())
                self._write(body, dataset, vid, "manifest.json")
            except OSError as e:
                raise AugsvcError(
                    f"store {self.shown}: publishing {dataset}@{vid} failed ({e}); nothing was published, and the "
                    f"staged shards are kept in {staging.dir}: run the command again"
                ) from None
            shutil.rmtree(staging.dir, ignore_errors=True)
        self.set_tag(dataset, "latest", vid)
        return PublishResult(manifest, up_to_date=False)

    def verify(self, dataset: str, version: str) -> list[str]:
        """Re-hash every shard; return one message per problem (empty when the version is intact)."""
        m = self.manifest(dataset, version)
        problems = []
        for s in m.shards:
            try:
                data = storefs.read_bytes(self.shard_ref(dataset, version, s.path))
            except (FileNotFoundError, OSError):
                problems.append(f"{s.path}: missing")
                continue
            if len(data) != s.bytes or sha256_bytes(data) != s.sha256:
                problems.append(f"{s.path}: sha256 or size differs from manifest (shard was modified)")
        return problems

    # -- housekeeping (issue 17): new methods, kept apart from the ones above ---------------------------------
    def is_present(self) -> bool:
        """True when the store root exists (a local folder, or a remote prefix holding anything)."""
        if self.local:
            return self.root.is_dir()
        import pyarrow.fs as pafs

        fs, path = self.filesystem()
        return fs.get_file_info(path).type != pafs.FileType.NotFound or bool(self._subdirs())

    def require_present(self) -> None:
        """Raise a one-line error when the store root does not exist (a mistyped ``--store`` or directory)."""
        if not self.is_present():
            raise AugsvcError(
                f"store {self.shown} does not exist; pass --store PATH or set AUGSVC_STORE (an ingest creates it)"
            )

    def tags(self, dataset: str) -> dict[str, str]:
        """tag -> version id for every tag of ``dataset`` (sorted by tag)."""
        _check_name("dataset", dataset)
        if self.local:
            d = self.root / dataset / "tags"
            names = (
                sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []
            )
        else:
            import pyarrow.fs as pafs

            fs, path = storefs.resolve(self.ref(dataset, "tags"))
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            names = sorted(
                i.base_name for i in infos if i.type == pafs.FileType.File and not i.base_name.startswith(".")
            )
        return {t: self._read_text(dataset, "tags", t).strip() for t in names}

    def version_table(self, dataset: str) -> list[dict]:
        """One dict per version of ``dataset``, oldest first: version, rows, created, seed, parents, tags."""
        tags = self.tags(dataset)
        out = []
        for v in self.versions(dataset):
            m = self.manifest(dataset, v)
            out.append(
                {
                    "version": v,
                    "rows": m.rows,
                    "created": m.created,
                    "seed": m.seed,
                    "kind": m.definition.get("kind"),
                    "parents": m.parents,
                    "tags": sorted(t for t, tv in tags.items() if tv == v),
                }
            )
        return sorted(out, key=lambda r: (r["created"] or "", r["version"]))

    def children(self, dataset: str, version: str) -> list[str]:
        """``name@version`` of every version in the store whose manifest lists ``dataset@version`` as a parent."""
        ref = f"{dataset}@{version}"
        return [f"{d}@{v}" for d in self.datasets() for v in self.versions(d) if ref in self.manifest(d, v).parents]

    def unknown_ref(self, ref: str, name: str, sel: str) -> AugsvcError:
        """The error for a reference that matches nothing, with the closest dataset, version or tag names."""
        from schemas.suggest import did_you_mean

        if not self.versions(name):
            if not self.is_present():
                return AugsvcError(f"{ref}: store {self.shown} does not exist; pass --store PATH or set AUGSVC_STORE")
            hint = did_you_mean(name, self.datasets())
            return AugsvcError(
                f"{ref}: no dataset {name!r} in store {self.shown}" + (f"; {hint}" if hint else "; see 'augsvc ls'")
            )
        hint = did_you_mean(sel, list(self.tags(name)) + self.versions(name))
        return AugsvcError(
            f"{ref}: no version or tag {sel!r} of dataset {name!r}"
            + (f"; {hint}" if hint else f"; see 'augsvc ls {name}' and 'augsvc tags {name}'")
        )

    def remove_version(self, dataset: str, version: str, *, force: bool = False) -> list[str]:
        """Delete one version; returns one line per tag moved or removed.

        Refuses (``AugsvcError``) while a tag other than ``latest`` or a child version (a manifest listing it in
        ``parents``) needs it, unless ``force``: then those tags are removed (children keep their own data; only
        their lineage points at a version that is gone). ``latest`` moves to the newest remaining version.
        Tags are changed first; then the version folder is renamed aside in one step (readers see the whole
        version or no version) and deleted; remotely ``manifest.json`` is deleted first, then the shards."""
        self.manifest(dataset, version)  # raises when absent
        tags = {t: v for t, v in self.tags(dataset).items() if v == version}
        kids = self.children(dataset, version)
        blockers = [f"tag {t!r}" for t in sorted(tags) if t != "latest"] + [f"child version {c}" for c in kids]
        if blockers and not force:
            raise AugsvcError(
                f"{dataset}@{version} is still needed by {', '.join(blockers)}; remove those first, "
                "or pass --force to delete it anyway"
            )
        notes = []
        for t in sorted(tags):
            if t == "latest":
                rest = [r for r in self.version_table(dataset) if r["version"] != version]
                if rest:
                    self.set_tag(dataset, "latest", rest[-1]["version"])
                    notes.append(f"latest -> {rest[-1]['version']} (the newest remaining version)")
                    continue
            self._delete_tag(dataset, t)
            notes.append(f"tag {t!r} removed")
        if self.local:
            aside = self.root / dataset / ".staging" / f"rm-{version}-{uuid.uuid4().hex[:8]}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.root / dataset / version, aside)  # atomic: the version disappears whole
            shutil.rmtree(aside, ignore_errors=True)
        else:
            fs, path = storefs.resolve(self.ref(dataset, version, "manifest.json"))
            fs.delete_file(path)  # the manifest is what makes a remote version visible
            storefs.delete_dir(self.ref(dataset, version))
        return notes

    def _delete_tag(self, dataset: str, tag: str) -> None:
        if self.local:
            (self.root / dataset / "tags" / tag).unlink(missing_ok=True)
        else:
            fs, path = storefs.resolve(self.ref(dataset, "tags", tag))
            fs.delete_file(path)

    def gc(self, *, min_age_s: float = 3600.0, dry_run: bool = False) -> list[str]:
        """Remove what no version or tag references; returns one line per thing removed (or to remove).

        Local stores: staging folders untouched for ``min_age_s`` seconds (crashed or abandoned ingests and
        builds; a resumable build loses its finished work), folders of removed versions, temporary tag files,
        files under a version's ``shards/`` that its manifest does not list, version folders without a manifest,
        and tags pointing at versions that do not exist. Remote stores: shard objects of versions without a
        manifest (an upload that crashed) and dangling tags; the local staging folder as above."""
        import time

        out: list[str] = []
        now = time.time()

        def age(p: Path) -> float:
            try:
                newest = max([p.stat().st_mtime] + [q.stat().st_mtime for q in p.rglob("*")])
            except OSError:
                return 0.0
            return now - newest

        def drop(p: Path, why: str) -> None:
            out.append(f"{p}: {why}")
            if not dry_run:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

        names = self._subdirs()
        for ds in [d for d in names if not d.startswith(".")]:
            stg = self.root / ds / ".staging"
            if stg.is_dir():
                for p in sorted(stg.iterdir()):
                    if p.name.startswith("rm-"):
                        drop(p, "left over from a removed version")
                    elif age(p) >= min_age_s:
                        drop(p, f"staging folder untouched for {age(p) / 3600:.1f} h")
            tagdir = self.root / ds / "tags"
            if self.local and tagdir.is_dir():
                for p in sorted(tagdir.iterdir()):
                    if p.name.startswith(".") and age(p) >= min_age_s:
                        drop(p, "temporary tag file")
            versions = set(self.versions(ds))
            for t, v in self.tags(ds).items():
                if v not in versions:
                    out.append(f"{ds}/tags/{t}: points at {v}, which does not exist")
                    if not dry_run:
                        self._delete_tag(ds, t)
            for v in self._subdirs(ds):
                if v in ("tags", ".staging") or v.startswith("."):
                    continue
                if v not in versions:
                    if self.local:
                        vd = self.root / ds / v
                        if age(vd) >= min_age_s:
                            drop(vd, "version folder without manifest.json")
                    else:
                        out.append(f"{ds}/{v}: shard objects without manifest.json")
                        if not dry_run:
                            storefs.delete_dir(self.ref(ds, v))
                    continue
                if self.local:
                    listed = {s.path for s in self.manifest(ds, v).shards}
                    sd = self.root / ds / v / "shards"
                    for p in sorted(sd.iterdir()) if sd.is_dir() else []:
                        if f"shards/{p.name}" not in listed:
                            drop(p, f"not listed in {ds}@{v}'s manifest")
        return out
