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

Everything read from store files is checked before use: manifests must parse and agree with themselves and their
folder, shard paths must name files inside ``<version>/shards/``, tag files must hold a version id, names must be
plain (:func:`_check_name`). In a local store nothing is read through a link that resolves outside the store root,
and a shard must be a regular file (not a FIFO or device): listings skip such entries, reads refuse them. Jobs
(ingest, split, build) are wrapped in :func:`fault_guard`, so a failing disk or a vanished store ends in one line;
identical builds serialise on a lock (:mod:`pipelines.storelock`). The promises are listed under "Store guarantees"
in ``docs/architecture.md``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import storefs, storelock
from pipelines.store_housekeeping import StoreHousekeeping
from pipelines.storecheck import SHARD_RE, manifest_problems
from pipelines.storeshards import ShardProblem, Tally, check_shard, read_local_shard
from pipelines.storestaging import Staging
from pipelines.storework import WorkFiles
from schemas.durable import fsync_dir, fsync_file
from schemas.errors import AugsvcError
from schemas.hashing import sha256_bytes, version_id
from schemas.manifest import Manifest, QuarantineItem, ShardInfo, empty_class_notes
from schemas.version import PACKAGE_VERSION

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DEFAULT_STORE = "./augsvc-store"
_COUNT_FIELDS = ("rows", "rows_per_split", "splits", "rows_per_class", "monolingual")  # the tally's, never passed
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # always fullmatch: no trailing newline, no '/', no '..'
_VERSION_RE = re.compile(r"[0-9a-f]{16}")  # a version id (schemas.hashing.version_id)
_HEX_RE = re.compile(r"[0-9a-f]+")  # a name that may also read as the start of a version id
log = logging.getLogger("augsvc.store")
F = TypeVar("F", bound=Callable[..., Any])


def resolve_store_uri(uri: str | None) -> str:
    """The store root from ``--store``, else ``AUGSVC_STORE``, else ``./augsvc-store``."""
    return uri or os.environ.get("AUGSVC_STORE") or DEFAULT_STORE


def _staging_root(uri: str) -> Path:
    base = Path(os.environ.get("AUGSVC_STAGING") or Path.home() / ".cache" / "augsvc" / "staging")
    return base / hashlib.sha256(uri.encode()).hexdigest()[:16]


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > 200:
        raise AugsvcError(
            f"{kind} {name!r} is not valid: use letters, digits, '.', '_' and '-' (starting with a letter or digit)"
        )


def is_version_id(text: str) -> bool:
    """True when ``text`` has the shape of a version id (16 lowercase hex digits)."""
    return bool(_VERSION_RE.fullmatch(text))


def _describe_oserror(e: OSError) -> str:
    """``strerror: filename`` of an OSError (what failed and where), on one line."""
    what = e.strerror or str(e) or type(e).__name__
    where = f": {e.filename}" if e.filename else ""
    return f"{what}{where}".replace("\n", " ")


def fault_guard(what: str) -> Callable[[F], F]:
    """Decorate a job (ingest, split, build) that takes a :class:`Store` so its failures are one line.

    An ``OSError`` (disk full, I/O error, read-only store, a rename across devices, the store folder gone) becomes
    an ``AugsvcError`` saying what failed (the error and its file), that nothing was published (a version becomes
    visible in one rename or put, and failures after it are only warnings), and which staging folder keeps
    finished work for a resume. An ``AugsvcError`` raised after the job opened a staging folder gets the same
    ending. Locks the job took are released either way."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            store = kwargs.get("store") or next((a for a in args if isinstance(a, Store)), None)
            if store is None:
                return fn(*args, **kwargs)
            start = len(store._opened())
            try:
                return fn(*args, **kwargs)
            except (OSError, AugsvcError) as e:
                ours = store._opened()[start:]
                if isinstance(e, AugsvcError) and not ours:
                    raise  # failed before any work: the message stands alone
                kept = store._kept_work(ours)
                tail = f"; finished work is kept in {', '.join(kept)}: run the same command again to resume"
                why = _describe_oserror(e) if isinstance(e, OSError) else str(e)
                msg = f"{what} failed in store {store.shown}: {why}; nothing was published{tail if kept else ''}"
                raise AugsvcError(msg.replace("\n", " ")) from None
            finally:
                store._release_locks(start)

        return wrapper  # type: ignore[return-value]

    return deco


def check_name(name: str, what: str = "dataset name") -> None:
    """AugsvcError unless ``name`` is a valid dataset or tag name (letters, digits, '.', '_', '-')."""
    _check_name(what, name)


@dataclass
class PublishResult:
    manifest: Manifest
    up_to_date: bool


class Store(StoreHousekeeping):
    """A store root holding datasets, their versions and tags: a local folder or a remote URI."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.uri = resolve_store_uri(str(root) if root is not None else None)
        self.local = storefs.is_local(self.uri)
        #: the local root folder (remote stores: their local staging folder)
        self.root = Path(self.uri.removeprefix("file://")) if self.local else _staging_root(self.uri)
        self.shown = storefs.display(self.uri)  # for messages: secrets in the query string masked
        self._writable = self.local
        self._tls = threading.local()  # staging folders opened by this thread's jobs (fault messages, locks)

    def __repr__(self) -> str:
        return f"Store({self.shown!r})"

    def __getstate__(self) -> dict:  # picklable (DataLoader workers, Ray): per-thread job state stays behind
        return {k: v for k, v in self.__dict__.items() if k != "_tls"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tls = threading.local()

    # -- references --------------------------------------------------------------------------------------------
    def ref(self, *parts: str) -> str:
        """A path (local) or URI (remote) under the store root that any process can read with :mod:`storefs`."""
        return str(self.root.joinpath(*parts)) if self.local else storefs.join(self.uri, *parts)

    def shard_ref(self, dataset: str, version: str, rel: str) -> str:
        """The ref of a shard named in a manifest; only names inside ``<version>/shards/`` are accepted, so a
        manifest can never point a reader outside the store (``AugsvcError`` otherwise)."""
        self._check_version_ref(dataset, version)
        if not isinstance(rel, str) or not SHARD_RE.fullmatch(rel):
            raise AugsvcError(
                f"{dataset}@{version}: manifest shard path {rel!r} is not a file inside the version's shards/ folder "
                "(the manifest was edited or damaged); run 'augsvc verify'"
            )
        if self.local:
            self._check_regular(self.root / dataset / version / rel, f"{dataset}@{version}: shard {rel}")
        return self.ref(dataset, version, rel)

    # -- containment (local stores) ----------------------------------------------------------------------------
    def _inside_real(self, p: Path | str) -> bool:
        """True when ``p``, every link followed, is the store root or under it."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(p)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _walk(self, p: Path) -> int | None:
        """``lstat`` mode of ``p`` (None when missing) after checking each part below the root: a link among them
        is followed and must stay inside the store (-1 when it does not). Cheaper than ``realpath`` (which also
        resolves the root's own parents) when, as almost always, nothing below the root is a link."""
        try:
            rel = p.relative_to(self.root).parts
        except ValueError:
            return -1 if not self._inside_real(p) else (os.stat(p).st_mode if p.exists() else None)
        cur = str(self.root)
        try:
            mode = os.stat(cur).st_mode  # the root itself may be a link: the store is where it points
        except OSError:
            return None
        for part in rel:
            cur = f"{cur}{os.sep}{part}"
            try:
                mode = os.lstat(cur).st_mode
            except OSError:
                return None
            if stat.S_ISLNK(mode):
                if not self._inside_real(p):
                    return -1
                try:
                    return os.stat(p).st_mode
                except OSError:
                    return None
        return mode

    def _inside(self, p: Path) -> bool:
        """True when ``p`` (after following every link) is the store root or under it, or is missing."""
        return self._walk(p) != -1

    def _check_regular(self, p: Path, what: str) -> None:
        """AugsvcError unless ``p`` resolves inside the store and is a regular file (or is missing: the read
        that follows says so)."""
        mode = self._walk(p)
        if mode == -1:
            raise AugsvcError(
                f"{what}: {p} is a link that resolves outside the store ({os.path.realpath(p)}); refusing to read "
                "it: remove the link"
            )
        if mode is not None and not stat.S_ISREG(mode):
            raise AugsvcError(
                f"{what}: {p} is not a regular file (a FIFO, device or folder); refusing to read it: run "
                "'augsvc verify' on the version and re-create it"
            )

    def read_shard(self, dataset: str, version: str, rel: str, columns: list[str] | None = None) -> pa.Table:
        return storefs.read_table(self.shard_ref(dataset, version, rel), columns)

    def shard_refs(self, m: Manifest) -> list[str]:
        """The refs of every shard of a published version, in order (see :meth:`shard_ref`)."""
        return [self.shard_ref(m.dataset, m.version, s.path) for s in m.shards]

    def row_keys(self, m: Manifest, split: str | None = None) -> list[tuple[str, int | None, str]]:
        """(sample_id, label, split) of every row of a published version (of ``split`` only, when given), in
        shard order: what plans, splits and label subsets decide from without reading payloads."""
        rows: list[tuple[str, int | None, str]] = []
        for s in m.shards:
            if split is not None and s.split not in (None, split):
                continue
            t = self.read_shard(m.dataset, m.version, s.path, ["sample_id", "label", "split"])
            keys = zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), t["split"].to_pylist(), strict=True)
            rows += keys if split is None else (k for k in keys if k[2] == split)
        return rows

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """(pyarrow filesystem, root path inside it): for tools that take a filesystem (Ray Data, DuckDB)."""
        return storefs.resolve(self.ref())

    def version_dir(self, dataset: str, version: str) -> Path:
        """The local folder of a version (local stores only; use :meth:`shard_ref` for either kind)."""
        if not self.local:
            raise AugsvcError(f"store {self.shown} is remote: it has no local version folder")
        self._check_version_ref(dataset, version)
        return self.root / dataset / version

    @staticmethod
    def _check_version_ref(dataset: str, version: str) -> None:
        _check_name("dataset", dataset)
        if not isinstance(version, str) or not is_version_id(version):
            raise AugsvcError(f"{dataset}@{version!r}: not a version id (16 hex digits); see 'augsvc ls {dataset}'")

    def _isfile(self, *parts: str) -> bool:
        if self.local:
            mode = self._walk(self.root.joinpath(*parts))
            return mode is not None and mode != -1 and stat.S_ISREG(mode)
        import pyarrow.fs as pafs

        fs, path = storefs.resolve(self.ref(*parts))
        return fs.get_file_info(path).type == pafs.FileType.File

    def _subdirs(self, *parts: str) -> list[str]:
        if self.local:
            d = self.root.joinpath(*parts)
            mode = self._walk(d)
            if mode is None or mode == -1 or not stat.S_ISDIR(mode):
                return []
            out = []
            with os.scandir(d) as entries:
                for e in entries:
                    if e.is_symlink():
                        if e.is_dir() and self._inside_real(e.path):
                            out.append(e.name)
                    elif e.is_dir(follow_symlinks=False):
                        out.append(e.name)
            return sorted(out)
        import pyarrow.fs as pafs

        fs, path = storefs.resolve(self.ref(*parts))
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def _read_text(self, *parts: str) -> str:
        if self.local:
            self._check_regular(self.root.joinpath(*parts), "store file")
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
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            storefs.rename("replace", Path(tmp), target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- reading -----------------------------------------------------------------------------------------------
    def exists(self, dataset: str, version: str) -> bool:
        """True when ``dataset@version`` is published (its ``manifest.json`` exists); false for malformed names."""
        if not (_NAME_RE.fullmatch(dataset) and is_version_id(version)):
            return False
        return self._isfile(dataset, version, "manifest.json")

    def datasets(self) -> list[str]:
        return [d for d, _ in self.dataset_versions()]

    def dataset_versions(self) -> list[tuple[str, list[str]]]:
        """(dataset, its published versions) for every dataset with at least one version, by name."""
        out = []
        for d in self._subdirs():
            if _NAME_RE.fullmatch(d) and not d.startswith("."):
                vs = self.versions(d)
                if vs:
                    out.append((d, vs))
        return out

    def versions(self, dataset: str) -> list[str]:
        """The published versions of ``dataset`` (folders named like a version id holding a ``manifest.json``)."""
        _check_name("dataset", dataset)
        return [v for v in self._subdirs(dataset) if is_version_id(v) and self.exists(dataset, v)]

    def _load_manifest(self, dataset: str, version: str) -> tuple[Manifest | None, list[str]]:
        """(manifest or None, problems): parse errors and inconsistencies found without reading shards."""
        from pydantic import ValidationError

        self._check_version_ref(dataset, version)
        if not self.exists(dataset, version):
            raise AugsvcError(f"{dataset}@{version}: no such version in store {self.shown}; see 'augsvc ls'")
        try:
            text = self._read_text(dataset, version, "manifest.json")
        except (OSError, UnicodeDecodeError) as e:
            why = _describe_oserror(e) if isinstance(e, OSError) else "not UTF-8 text"
            return None, [f"manifest.json cannot be read ({why})"]
        if not text.strip():
            return None, ["manifest.json is empty (damaged)"]
        try:
            json.loads(text)
        except ValueError as e:
            return None, [f"manifest.json is not valid JSON (damaged or truncated: {e})"]
        try:
            m = Manifest.model_validate_json(text)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "manifest"
            more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
            return None, [f"manifest.json is damaged: {key}: {err['msg']}{more}"]
        return m, manifest_problems(m, dataset, version)

    def manifest(self, dataset: str, version: str) -> Manifest:
        """The manifest of a published version; ``AugsvcError`` (one line) when it is missing, damaged, points
        outside the version's ``shards/`` folder, or contradicts itself (totals, class counts, version id)."""
        m, problems = self._load_manifest(dataset, version)
        if problems or m is None:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise AugsvcError(
                f"{dataset}@{version}: {problems[0]}{more}; the version cannot be used: run "
                f"'augsvc verify {dataset}@{version}' and re-create it"
            )
        return m

    def verified_manifest(self, dataset: str, version: str) -> Manifest:
        """The manifest of a version after :meth:`verify` found it intact (every shard re-hashed, row counts from
        the Parquet footers, class counts): what a job that derives a new version from it must read first.

        Raises ``AugsvcError`` (one line) naming the first problem."""
        problems = self.verify(dataset, version)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise AugsvcError(
                f"{dataset}@{version} failed verification: {problems[0]}{more}; refusing to derive a version from "
                f"it: run 'augsvc verify {dataset}@{version}' and re-create it"
            )
        return self.manifest(dataset, version)

    def resolve(self, ref: str) -> tuple[str, str]:
        """``name``, ``name@version`` (or a unique prefix) or ``name@tag`` -> (dataset, version).

        An exact version id wins over a tag of that name (tags shaped like ids are refused anyway); a missing
        ``latest`` tag is derived as the most recently published version (a crash between a publish and its
        tag write leaves exactly that)."""
        name, _, sel = ref.partition("@")
        _check_name("dataset", name)
        sel = sel or "latest"
        if is_version_id(sel) and self.exists(name, sel):
            return name, sel
        if _NAME_RE.fullmatch(sel) and self._isfile(name, "tags", sel):
            vid = self._read_tag(name, sel)
            shadowed = (
                [v for v in self.versions(name) if v.startswith(sel) and v != vid] if _HEX_RE.fullmatch(sel) else []
            )
            if shadowed:
                raise AugsvcError(
                    f"{ref}: {sel!r} is both a tag (of {vid}) and the start of version id {', '.join(shadowed)}; "
                    f"give the full version id, or rename the tag ('augsvc tag {name}@{vid} NEWNAME')"
                )
            return name, vid
        if sel == "latest":
            newest = self._newest_version(name)
            if newest is not None:
                return name, newest
        matches = [v for v in self.versions(name) if v.startswith(sel)]
        if len(matches) == 1:
            return name, matches[0]
        if not matches:
            raise self.unknown_ref(ref, name, sel)
        raise AugsvcError(f"{ref}: {sel!r} matches several versions ({', '.join(matches)}); give more digits")

    def _read_tag(self, dataset: str, tag: str) -> str:
        """The version id a tag file holds; refuses anything else (a path, another store's id)."""
        try:
            text = self._read_text(dataset, "tags", tag)
        except (OSError, UnicodeDecodeError):
            text = "<unreadable>"
        vid = text.strip()
        if not is_version_id(vid):
            raise AugsvcError(
                f"{dataset}@{tag}: tag file {self.ref(dataset, 'tags', tag)} holds {len(text)} characters, not a "
                "version id; "
                f"point it at a version with 'augsvc tag {dataset}@VERSION {tag}'"
            )
        if not self.exists(dataset, vid):
            raise AugsvcError(
                f"{dataset}@{tag}: the tag points at version {vid}, which is not published in {self.shown}; "
                f"point it at a version with 'augsvc tag {dataset}@VERSION {tag}'"
            )
        return vid

    def _newest_version(self, dataset: str) -> str | None:
        """The version whose ``manifest.json`` was written last (None when there is none)."""
        import pyarrow.fs as pafs

        best: tuple[float, str] | None = None
        for v in self.versions(dataset):
            fs, path = storefs.resolve(self.ref(dataset, v, "manifest.json"))
            info = fs.get_file_info(path)
            t = info.mtime.timestamp() if info.type == pafs.FileType.File and info.mtime else 0.0
            if best is None or (t, v) > best:
                best = (t, v)
        if best is not None:
            log.warning("%s: tags/latest is missing; using the most recently published version %s", dataset, best[1])
        return None if best is None else best[1]

    def set_tag(self, dataset: str, tag: str, version: str) -> None:
        """Point a tag at a version; tags are the only mutable names. Tags shaped like a version id are refused
        (they would shadow that version). Raises ``AugsvcError`` (one line) when the tag cannot be written."""
        _check_name("dataset", dataset)
        _check_name("tag", tag)
        if is_version_id(tag):
            raise AugsvcError(
                f"tag {tag!r} looks like a version id (16 hex digits) and would shadow one; choose another name"
            )
        if not self.exists(dataset, version):
            raise AugsvcError(f"cannot tag {dataset}@{version}: no such version")
        if _HEX_RE.fullmatch(tag):
            shadowed = [v for v in self.versions(dataset) if v.startswith(tag) and v != version]
            if shadowed:
                raise AugsvcError(
                    f"tag {tag!r} is also the start of version id {', '.join(shadowed)} and would shadow it; "
                    "choose another name"
                )
        try:
            if self._isfile(dataset, "tags", tag) and self._read_text(dataset, "tags", tag).strip() == version:
                return  # already there: nothing to write (a read-only store stays usable)
        except (OSError, UnicodeDecodeError, AugsvcError):
            pass
        try:
            with self._tags_lock(dataset):
                if not self.exists(dataset, version):  # removed while this waited for the lock
                    raise AugsvcError(f"cannot tag {dataset}@{version}: the version was removed")
                self._write_tag(dataset, tag, version)
        except OSError as e:
            raise AugsvcError(
                f"cannot write tag {dataset}@{tag} in store {self.shown}: {_describe_oserror(e)}"
            ) from None

    def _write_tag(self, dataset: str, tag: str, version: str) -> None:
        self._write((version + "\n").encode(), dataset, "tags", tag)

    @contextmanager
    def _tags_lock(self, dataset: str) -> Iterator[None]:
        """Held while tags of ``dataset`` change or one of its versions is removed (local stores; remote stores
        have no locks). Raises ``OSError`` when the lock file cannot be made (a read-only store)."""
        if not self.local:
            yield
            return
        lock = storelock.acquire(self.root / dataset / ".locks" / f"tags{storelock.LOCK_SUFFIX}")
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def reading(self, dataset: str, version: str) -> Iterator[None]:
        """Count this job as a reader of ``dataset@version`` until the block ends (a build or split deriving from
        it, through its publish): ``rm`` refuses the version meanwhile. Raises ``AugsvcError`` when the version
        was removed before the lock was taken. Remote and read-only stores: no lock (nothing to exclude)."""
        lock = None
        if self.local:
            try:
                lock = storelock.acquire(self._reader_lock_path(dataset, version), shared=True)
            except OSError:
                lock = None
        try:
            if not self.exists(dataset, version):
                raise AugsvcError(f"{dataset}@{version} was removed before this job could read it; see 'augsvc ls'")
            yield
        finally:
            if lock is not None:
                lock.release()

    def _reader_lock_path(self, dataset: str, version: str) -> Path:
        return self.root / dataset / ".locks" / f"read-{version}{storelock.LOCK_SUFFIX}"

    def mark_latest(self, dataset: str, version: str) -> bool:
        """Point ``latest`` at a version, best effort: a failure is a warning, because the version itself is
        published and ``latest`` is derived when its tag is missing. Returns whether the tag holds ``version``."""
        try:
            self.set_tag(dataset, "latest", version)
            return True
        except AugsvcError as e:
            log.warning("warning: %s@%s is published, but tags/latest was not updated (%s)", dataset, version, e)
            return False

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

    def _opened(self) -> list[Staging]:
        """Staging folders opened by jobs of this thread (for fault messages and lock release)."""
        if not hasattr(self._tls, "open"):
            self._tls.open = []
        return self._tls.open

    def staging(self, dataset: str) -> Staging:
        """A fresh ``.staging/<uuid>/`` folder, held by a liveness lock while this process uses it.

        Stale folders of writers that are gone (killed ingests and splits) are reclaimed first."""
        _check_name("dataset", dataset)
        self._check_writable()
        self.reclaim_staging(dataset)
        key = uuid.uuid4().hex
        root = self.root / dataset / ".staging"
        lock = storelock.acquire(root / f"{key}{storelock.LOCK_SUFFIX}", wait=False)
        d = root / key
        (d / "shards").mkdir(parents=True)
        st = Staging(d, lock=lock, one_off=True)
        self._opened().append(st)
        return st

    def staging_keyed(self, dataset: str, key: str, *, version: str | None = None) -> Staging | None:
        """A staging folder with a stable name, so an interrupted job can find and reuse its finished work.

        The caller holds the folder's exclusive lock until it publishes (or fails): a concurrent job with the same
        key waits for it. With ``version``, returns ``None`` when that version is published (before or while
        waiting): the caller reports "up to date"."""
        _check_name("dataset", dataset)
        _check_name("staging key", key)
        if version is not None and self.exists(dataset, version):
            return None
        self._check_writable()
        root = self.root / dataset / ".staging"
        lock_path = root / f"{key}{storelock.LOCK_SUFFIX}"
        lock = storelock.acquire(lock_path, wait=False)
        if lock is None:
            log.warning("another process is running %s for %s in %s; waiting for it", key, dataset, self.shown)
            lock = storelock.acquire(lock_path, wait=True)
        if version is not None and self.exists(dataset, version):
            lock.release()
            return None
        d = root / key
        (d / "shards").mkdir(parents=True, exist_ok=True)
        st = Staging(d, lock=lock)
        self._opened().append(st)
        return st

    def work_files(self, staging: Staging, *, shared: bool = False) -> WorkFiles:
        """The work files of a keyed staging folder (a build's task outputs, :mod:`pipelines.storework`): in the
        folder itself, or with ``shared`` on a remote store, under the same name in the store, so that tasks on
        every node of a cluster read them."""
        if shared and not self.local:
            dataset = staging.dir.parent.parent.name
            return WorkFiles(self.ref(dataset, ".staging", staging.dir.name, "work"))
        return WorkFiles(str(staging.dir / "work"))

    def reclaim_staging(self, dataset: str, *, min_age_s: float = storelock.STALE_AFTER_S) -> list[str]:
        """Remove ``.staging/<uuid>/`` folders of writers that are gone (no live lock, untouched for
        ``min_age_s`` seconds); keyed build folders stay for a resume. Returns the names removed; never raises."""
        _check_name("dataset", dataset)
        return storelock.reclaim_stale(self.root / dataset / ".staging", min_age_s=min_age_s)

    def _kept_work(self, stagings: list[Staging]) -> list[str]:
        """Those of ``stagings`` that still hold files (finished work kept for a resume)."""
        kept = []
        for st in stagings:
            try:
                if st.dir.is_dir() and any(p.is_file() for p in st.dir.rglob("*")):
                    kept.append(str(st.dir))
            except OSError:
                pass
        return kept

    def _release_locks(self, start: int = 0) -> None:
        """Release the locks of staging folders opened by this thread since the ``start``-th one."""
        opened = self._opened()
        for st in opened[start:]:
            st.release()
        del opened[start:]

    def _forget(self, staging: Staging) -> None:
        staging.release()
        opened = self._opened()
        if staging in opened:
            opened.remove(staging)

    def publish(
        self,
        staging: Staging,
        *,
        dataset: str,
        definition: dict,
        modality: str,
        class_names: list[str],
        parents: list[str] | None = None,
        seed: int | None = None,
        quarantine: list[QuarantineItem] | None = None,
        notes: list[str] | None = None,
        extra: dict | None = None,
    ) -> PublishResult:
        """Verify the staged shards, write the manifest, and make the version visible in one step.

        The manifest's counts (``rows``, ``rows_per_split``, ``splits``, ``rows_per_class``, ``monolingual``) are
        the staging folder's tally of its shards (:class:`pipelines.storeshards.Tally`); ``extra`` holds the other
        manifest fields (features, storage, duplicates, stage reports...) and may not carry counts (``ValueError``).
        The manifest's ``notes`` are ``notes`` (the job's, e.g. how a reader read the input) and one note naming
        the classes of ``class_names`` that the tally found no rows of (:func:`schemas.manifest.empty_class_notes`).
        Locally the version appears by one directory rename; an ``OSError`` before it means nothing was published
        (the staging folder is left to the caller). A failure to move ``latest`` afterwards is only a warning."""
        counted = sorted(set(extra or {}) & set(_COUNT_FIELDS))
        if counted:
            raise ValueError(f"publish: {', '.join(counted)} are counted from the staged shards, not passed in extra")
        vid = version_id(definition)
        if self.exists(dataset, vid):
            shutil.rmtree(staging.dir, ignore_errors=True)
            self._forget(staging)
            self.mark_latest(dataset, vid)
            return PublishResult(self.manifest(dataset, vid), up_to_date=True)
        for s in staging.shards:
            data = (staging.dir / s.path).read_bytes()
            if sha256_bytes(data) != s.sha256:
                raise AugsvcError(f"staged shard {s.path} changed while publishing; nothing was published")
        if self.local:  # durable before the rename makes them visible; flushed together (one by one cost a third
            _fsync_files([staging.dir / s.path for s in staging.shards])  # of a small build's time)
        counts = staging.tally.manifest_counts(class_names)
        how = ("give --classes without them to drop them" if definition.get("kind") == "ingest"
               else f"as in {', '.join(parents or []) or 'the parent'}")  # fmt: skip
        manifest = Manifest(
            dataset=dataset,
            version=vid,
            modality=modality,
            class_names=class_names,
            shards=staging.shards,
            parents=parents or [],
            definition=definition,
            seed=seed,
            package_version=PACKAGE_VERSION,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            quarantine=quarantine or [],
            notes=[*(notes or []), *empty_class_notes(class_names, counts["rows_per_class"], how=how)],
            **counts,
            **(extra or {}),
        )
        body = manifest.model_dump_json(indent=2).encode()
        if self.local:
            with open(staging.dir / "manifest.json", "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            target = self.version_dir(dataset, vid)
            try:
                storefs.rename("publish", staging.dir, target)
            except OSError:
                if not self.exists(dataset, vid):
                    raise
                shutil.rmtree(staging.dir, ignore_errors=True)  # a concurrent publish of the same version won
            fsync_dir(target.parent)
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
        self._forget(staging)
        self.mark_latest(dataset, vid)
        return PublishResult(manifest, up_to_date=False)

    def verify(self, dataset: str, version: str) -> list[str]:
        """Check a version against its manifest; return one message per problem (empty when intact).

        Checks: the manifest parses and is consistent (see :meth:`manifest`), every shard path is a file inside
        the version's ``shards/``, every shard's size and sha256, its row count (Parquet footer) against
        ``shards[i].rows``, its ``split`` column against ``shards[i].split``, and the shards' tally (the one
        :class:`~pipelines.storeshards.Tally` that ``publish`` wrote) against ``splits``, ``rows_per_class`` and
        ``monolingual``."""
        m, problems = self._load_manifest(dataset, version)
        if m is None:
            return problems
        tally = Tally()
        complete = True  # every shard tallied: the counts can be compared
        for s in m.shards:
            if not SHARD_RE.fullmatch(s.path):
                complete = False
                continue  # reported by manifest_problems; never read outside the version
            try:
                pf = self._checked_parquet(dataset, version, s, memo=False)  # always hashed
                n, one = tally.add_parquet(pf, s.split)
            except ShardProblem as e:
                problems.append(e.problem)
                complete = False
                continue
            except (OSError, ValueError) as e:
                problems.append(f"{s.path}: not a readable Parquet file ({str(e).splitlines()[0]})")
                complete = False
                continue
            if s.split is not None and one != s.split:
                problems.append(f"{s.path}: holds rows of another split than its manifest entry ({s.split!r})")
        if complete:
            problems += tally.problems(m)
        return problems

    def _checked_parquet(self, dataset: str, version: str, info: ShardInfo, *, memo: bool) -> pq.ParquetFile:
        """A shard's bytes as a Parquet file after :func:`~pipelines.storeshards.check_shard` (``ShardProblem``).

        ``memo``: a local file whose sha256 already matched in this process and that has not changed since (same
        path, device, inode, size, mtime_ns and ctime_ns, checked before and after this read) is not hashed again;
        size and footer rows are still checked. Remote stores hash on every read."""
        try:
            ref = self.shard_ref(dataset, version, info.path)  # refuses a link out of the store, a FIFO
        except AugsvcError as e:
            raise ShardProblem(f"{info.path}: {str(e).split(': ', 2)[-1]}", str(e)) from None
        where = f"{dataset}@{version}: shard {info.path}"
        identity = None
        try:
            if memo and self.local:
                data, identity = read_local_shard(ref)
            else:
                data = storefs.read_bytes(ref)
        except OSError as e:
            why = e.strerror or str(e)
            raise ShardProblem(
                f"{info.path}: missing or unreadable",
                f"{where} is missing or unreadable ({ref}: {why}); run 'augsvc verify'",
            ) from None
        return check_shard(data, info, where, ref, identity=identity)

    def open_shard(self, dataset: str, version: str, info: ShardInfo) -> pq.ParquetFile:
        """One shard of a published version, checked as it is read: the bytes' size against the manifest entry
        ``info`` and the Parquet footer's row count against ``info.rows`` on every read; the sha256 on the first
        read of the file in this process and again whenever the file changed since (local stores: path, device,
        inode, size, mtime_ns, ctime_ns), on every read for remote stores (see ``docs/streaming.md``).

        Returns a ``pyarrow.parquet.ParquetFile`` over the bytes in memory (read the columns you need). Raises
        ``AugsvcError`` (one line, naming the version, shard and file) when the shard is missing, modified or
        holds another number of rows: what a streaming reader must refuse."""
        try:
            return self._checked_parquet(dataset, version, info, memo=True)
        except ShardProblem as e:
            raise AugsvcError(e.message) from None

    def read_verified_shard(
        self, dataset: str, version: str, info: ShardInfo, columns: list[str] | None = None
    ) -> pa.Table:
        """:meth:`open_shard`, then its ``columns`` (all when None; names the shard lacks are left out)."""
        pf = self.open_shard(dataset, version, info)
        return pf.read(columns=None if columns is None else [c for c in columns if c in pf.schema_arrow.names])

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
            names = []
            for p in sorted(d.iterdir()) if d.is_dir() and self._inside(d) else []:
                if p.name.startswith(".") or not p.is_file():
                    continue
                if not self._inside(p):
                    log.warning("%s: tag %s is a link out of the store; ignored", dataset, p.name)
                    continue
                names.append(p.name)
        else:
            import pyarrow.fs as pafs

            fs, path = storefs.resolve(self.ref(dataset, "tags"))
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            names = sorted(
                i.base_name for i in infos if i.type == pafs.FileType.File and not i.base_name.startswith(".")
            )
        return {t: self._read_text(dataset, "tags", t).strip() for t in names}

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


def _fsync_files(paths: list[Path]) -> None:
    """fsync every file, several at once (each call releases the GIL and waits on the disk)."""
    from concurrent.futures import ThreadPoolExecutor

    if paths:
        with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
            list(pool.map(fsync_file, paths))
