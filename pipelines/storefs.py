"""Filesystems behind store URIs, and reading shards by reference.

A *ref* names one file (or folder) as a string that works in any process, so it can be handed to a Ray task:

- a local path (``./augsvc-store/...`` or ``file:///...``);
- a URI pyarrow reads natively: ``s3://``, ``gs://``/``gcs://``, ``hdfs://``, ``abfs://``/``abfss://``; options go in
  the query string and stay at the end when the path grows (``s3://bucket/store?endpoint_override=host:9000``);
- any other protocol fsspec knows (``memory://``, ``az://``, ``sftp://`` ...), when fsspec and that protocol's
  package are installed.

Credentials come from the usual environment (``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...) of each process;
nothing here stores them.
"""

from __future__ import annotations

import functools
import os
import re
from typing import TYPE_CHECKING, Any

from schemas.errors import AugsvcError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

_NATIVE = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


#: a fault-injection hook called with (what, src, dst) before every rename a local store makes: ``publish`` (a
#: staging folder becomes a version), ``replace`` (a tag or small file), ``adopt`` (a worker's shard into staging),
#: ``work`` (a build's work file), ``rm`` and ``gc`` (a folder renamed aside). Tests set it to raise, or to race gc,
#: rm or tag at that instant (``tests/test_store_races.py``).
before_rename: Any = None


def rename(what: str, src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace(src, dst)`` after the :data:`before_rename` hook: every rename of a local store goes here."""
    if before_rename is not None:
        before_rename(what, src, dst)
    os.replace(src, dst)


def is_local(ref: str) -> bool:
    return "://" not in ref or ref.startswith("file://")


def _split(ref: str) -> tuple[str, str, str]:
    """``scheme://path?query`` -> (scheme, path, query); a local path has scheme ``""``."""
    if is_local(ref):
        return "", ref.removeprefix("file://"), ""
    scheme, rest = ref.split("://", 1)
    path, _, query = rest.partition("?")
    return scheme.lower(), path, query


def join(ref: str, *parts: str) -> str:
    """``ref`` with path segments appended (the query string of a URI stays at the end)."""
    scheme, path, query = _split(ref)
    path = "/".join([path.rstrip("/"), *(p.strip("/") for p in parts)])
    if not scheme:
        return path
    return f"{scheme}://{path}" + (f"?{query}" if query else "")


_SECRET = re.compile(r"(^|&)([^=&]*(?:key|secret|token|password|credential|sig)[^=&]*)=[^&]*", re.IGNORECASE)
_OBJECT_STORES = ("s3", "gs", "gcs")  # a put is atomic there: an object is visible whole or not at all


def display(ref: str) -> str:
    """``ref`` for messages: values of query options that look like secrets are masked."""
    scheme, path, query = _split(ref)
    if not query:
        return ref
    return f"{scheme}://{path}?" + _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", query)


@functools.lru_cache(maxsize=32)
def _filesystem(scheme: str, head: str, query: str) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    where = display(f"{scheme}://{head}" + (f"?{query}" if query else ""))
    if not scheme:
        return pafs.LocalFileSystem()
    if scheme in _NATIVE:
        try:
            fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{head}" + (f"?{query}" if query else ""))
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise AugsvcError(f"store {where}: cannot open it ({e}); check the URI and its options") from None
        return fs
    try:
        import fsspec
    except ImportError:
        raise AugsvcError(
            f"store {where}: protocol {scheme!r} needs fsspec (pip install fsspec and the package for "
            f"{scheme!r}); pyarrow reads {', '.join(_NATIVE)} without it"
        ) from None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    try:
        options = dict(kv.split("=", 1) for kv in query.split("&") if kv) if query else {}
        fs, _ = fsspec.core.url_to_fs(f"{scheme}://{head}", **options)  # the host of sftp://host/... and alike
        return PyFileSystem(FSSpecHandler(fs))
    except (ImportError, ValueError, OSError) as e:
        raise AugsvcError(f"store {where}: fsspec cannot open protocol {scheme!r} ({e})") from None


def _inner_path(fs: pafs.FileSystem, scheme: str, path: str) -> str:
    """The path inside the filesystem, as pyarrow or fsspec spell it for that protocol."""
    head, _, rest = path.partition("/")
    if scheme in ("hdfs", "viewfs"):  # hdfs://namenode:port/path -> /path
        return "/" + rest
    if scheme in ("abfs", "abfss"):  # abfs://container@account.dfs.core.windows.net/path -> container/path
        return head.split("@", 1)[0] + ("/" + rest if rest else "")
    if scheme in _NATIVE:  # s3://bucket/key, gs://bucket/key -> bucket/key
        return path
    return fs.handler.fs._strip_protocol(f"{scheme}://{path}")  # fsspec's own spelling


def resolve(ref: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a ref; filesystems are cached per scheme, host and options."""
    scheme, path, query = _split(ref)
    if not scheme:
        return _filesystem("", "", ""), os.path.abspath(path)
    fs = _filesystem(scheme, path.split("/", 1)[0], query)
    return fs, _inner_path(fs, scheme, path)


def is_object_store(ref: str) -> bool:
    return _split(ref)[0] in _OBJECT_STORES


def read_bytes(ref: str) -> bytes:
    fs, path = resolve(ref)
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes(ref: str, data: bytes) -> None:
    """Write one object in a single put (object stores make it visible whole, or not at all)."""
    fs, path = resolve(ref)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def read_table(ref: str, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file (local path or URI) as a table; a missing or unreadable file is an ``AugsvcError``."""
    import pyarrow.parquet as pq

    fs, path = resolve(ref)
    try:
        return pq.read_table(path, columns=columns, filesystem=fs)
    except FileNotFoundError:  # not damage: a version or work file removed under a running job
        raise AugsvcError(
            f"{display(ref)}: no such file: it was removed while this job ran ('augsvc rm --force' of the version it "
            "reads, or 'gc' of its work files); run the job again"
        ) from None
    except (OSError, ValueError) as e:  # network error, not Parquet (ArrowInvalid)
        why = " ".join(str(e).split())  # pyarrow's messages span lines
        raise AugsvcError(f"{display(ref)}: cannot read it ({why}); run 'augsvc verify' on its version") from None


def read_schema(ref: str) -> pa.Schema:
    import pyarrow.parquet as pq

    fs, path = resolve(ref)
    return pq.read_schema(path, filesystem=fs)


def exists(ref: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = resolve(ref)
    return fs.get_file_info(path).type == pafs.FileType.File


def basename(ref: str) -> str:
    return _split(ref)[1].rstrip("/").rsplit("/", 1)[-1]


def delete_dir(ref: str) -> None:
    """Remove a folder (or prefix) and everything under it; a missing one is fine."""
    import pyarrow.fs as pafs

    fs, path = resolve(ref)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
