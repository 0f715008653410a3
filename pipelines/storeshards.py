"""Shard files: the one Parquet writer, the row tally of a version, and checked reads of shard bytes.

A checked read (:func:`check_shard`) compares a shard's size and sha256 with its manifest entry and the Parquet
footer's row count with ``rows``. The sha256 of a local file is computed once per process and file state: a memo
keyed by the path, (device, inode, size, mtime_ns, ctime_ns) and the expected sha256 skips it on later reads of the
same unchanged file (a streaming epoch reads every shard again); any change to the file changes the key, so the
file is hashed again. Remote files and ``Store.verify`` are hashed on every read.

A version's counts (``rows``, ``rows_per_split``, ``splits``, ``rows_per_class``, ``monolingual``) are never
handed to the store by the job that wrote the rows: the staging folder tallies every shard as it is added
(:class:`Tally`, from the Parquet footer and the ``label``/``split``/``src`` columns), ``Store.publish`` writes the
tally into the manifest, and ``Store.verify`` tallies the published shards again and compares. A new kind of row
(an unlabelled row, a monolingual pair) is one more counter here.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.errors import AugsvcError
from schemas.hashing import sha256_bytes

#: the columns a tally reads (besides the footer's row count)
TALLY_COLUMNS = ("label", "split", "src")


def write_parquet(table: pa.Table) -> bytes:
    """The one place shard and work-file bytes are produced: zstd, column statistics on.

    Args:
        table: rows of one schema (``schemas.arrow.schema_for``).
    Returns:
        the Parquet file's bytes; the same table always gives the same bytes (no timestamps are written)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue().to_pybytes()


class ShardProblem(Exception):
    """A shard that fails its checks: ``problem`` is ``verify``'s line, ``message`` a reader's one-line error."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem, self.message = problem, message


#: local shard files whose bytes matched a manifest's sha256 in this process: (path, st_dev, st_ino, st_size,
#: st_mtime_ns, st_ctime_ns, sha256). Any write to the file, a ``touch``, an ``os.utime`` that puts the old mtime
#: back, a replace by rename or a copy changes one of those, so the file is hashed again on its next read.
_VERIFIED: dict[tuple, None] = {}
_VERIFIED_LOCK = threading.Lock()
_VERIFIED_MAX = 1 << 16  # entries (about 200 bytes each); the oldest half is forgotten past this


def _new_lock() -> None:  # a child forked while another thread held the lock (DataLoader workers) gets a free one
    global _VERIFIED_LOCK
    _VERIFIED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)


def file_identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What identifies one state of a local file: (device, inode, size, mtime_ns, ctime_ns). ``ctime`` changes on
    every write and on every metadata change (an ``os.utime`` included) and cannot be set by a user, so the tuple
    changes whenever the bytes can have changed."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def read_local_shard(path: str) -> tuple[bytes, tuple | None]:
    """The bytes of a local file and its :func:`file_identity` (None when it changed while being read: a write
    under way). ``OSError`` when it is missing or unreadable."""
    with open(path, "rb", buffering=0) as f:
        before = file_identity(os.fstat(f.fileno()))
        data = f.readall()
        after = file_identity(os.fstat(f.fileno()))
    return data, (before if before == after and before[2] == len(data) else None)


def check_shard(data: bytes, info: Any, where: str, ref: str, *, identity: tuple | None = None) -> pq.ParquetFile:
    """``data`` as a Parquet file after checking its size and sha256 and its footer's row count against the
    manifest entry ``info`` (a ``ShardInfo``); ``ShardProblem`` naming ``where`` (the version and shard) and
    ``ref`` (the file) otherwise.

    ``identity`` (a local file's :func:`file_identity` from :func:`read_local_shard`, taken before and after
    reading ``data``) enables the per-process memo: the sha256 is computed once per (file path, identity, manifest
    sha256) and skipped on later reads of the same unchanged file; the size and the footer's row count are checked
    on every read. None (remote files, a file that changed while read, ``verify``): always hashed."""
    key = None if identity is None else (ref, *identity, info.sha256)
    if key is not None and key in _VERIFIED and len(data) == info.bytes:
        return _footer_checked(data, info, where)
    if len(data) != info.bytes or sha256_bytes(data) != info.sha256:
        raise ShardProblem(
            f"{info.path}: sha256 or size differs from manifest (shard was modified)",
            f"{where} does not match its sha256 in the manifest (modified or corrupt: {ref}); run 'augsvc verify'",
        )
    pf = _footer_checked(data, info, where)
    if key is not None:
        with _VERIFIED_LOCK:
            if len(_VERIFIED) >= _VERIFIED_MAX:
                for k in list(_VERIFIED)[: _VERIFIED_MAX // 2]:
                    del _VERIFIED[k]
            _VERIFIED[key] = None
    return pf


def _footer_checked(data: bytes, info: Any, where: str) -> pq.ParquetFile:
    pf = pq.ParquetFile(pa.BufferReader(data))
    n = pf.metadata.num_rows
    if n != info.rows:  # an edited manifest would make a reader skip or overrun rows
        raise ShardProblem(
            f"{info.path}: holds {n} rows, the manifest says {info.rows}",
            f"{where} holds {n} rows, the manifest says {info.rows}; run 'augsvc verify'",
        )
    return pf


def counts_monolingual(schema: pa.Schema) -> bool:
    """True for rows that may be monolingual: a translation schema whose ``src`` is nullable (null = target only)."""
    return "src" in schema.names and "tgt" in schema.names and schema.field("src").nullable


@dataclass
class Tally:
    """Row counts of a version, added up shard by shard.

    ``per_split`` counts the rows of each shard under the shard's split (declared by its writer or manifest
    entry, or derived from its rows; a shard without one counts in ``rows`` only, as manifests always did);
    ``per_class`` counts labelled rows per split (each row's ``split`` column) and label index; ``unlabelled``
    counts rows with a null label per split; ``monolingual`` (None unless a shard's schema allows
    a null ``src``) counts rows with a null ``src`` per split."""

    rows: int = 0
    per_split: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, dict[int, int]] = field(default_factory=dict)
    unlabelled: dict[str, int] = field(default_factory=dict)
    monolingual: dict[str, int] | None = None
    counted_labels: bool = True  # false once a shard without a label column was added

    def add(
        self,
        table: pa.Table,
        split: str | None = None,
        *,
        derive_split: bool = False,
        monolingual: bool | None = None,
    ) -> str | None:
        """Count the rows of one shard ``table`` (its ``label``, ``split`` and ``src`` columns, those it has).

        ``split`` is the shard's split (also each row's when the table has no ``split`` column); with
        ``derive_split`` and no ``split``, the one split of its rows is the shard's. ``monolingual`` (default: from
        the table's schema, :func:`counts_monolingual`) counts null ``src`` values. Returns the one split of every
        row (None when they have several or none)."""
        n = table.num_rows
        self.rows += n
        names = table.column_names
        mono = counts_monolingual(table.schema) if monolingual is None else monolingual
        if mono and self.monolingual is None:
            self.monolingual = {}
        if "label" not in names:
            self.counted_labels = False
        if n == 0:
            return None
        cols = {
            "split": _typed(table["split"] if "split" in names else pa.array([split] * n, pa.string()), pa.string()),
            "label": _typed(table["label"] if "label" in names else pa.nulls(n, pa.int32()), pa.int32()),
        }
        if mono and "src" in names:
            cols["nosrc"] = pc.cast(pc.is_null(table["src"]), pa.int64())
        sums = [("nosrc", "sum")] if "nosrc" in cols else []
        groups = pa.table(cols).group_by(["split", "label"]).aggregate([([], "count_all"), *sums])
        entries = groups.to_pylist()  # one per (split, label): a handful, whatever the rows
        splits = {g["split"] for g in entries}
        one = next(iter(splits)) if len(splits) == 1 else None
        shard = split if split is not None or not derive_split else one
        if shard is not None:
            self.per_split[shard] = self.per_split.get(shard, 0) + n
        for g in entries:
            sp, lab, k = g["split"], g["label"], g["count_all"]
            if sp is None:
                continue
            if lab is None:
                self.unlabelled[sp] = self.unlabelled.get(sp, 0) + k
            else:
                per = self.per_class.setdefault(sp, {})
                per[lab] = per.get(lab, 0) + k
            if self.monolingual is not None and sums:
                self.monolingual[sp] = self.monolingual.get(sp, 0) + g["nosrc_sum"]
        return one

    def add_parquet(
        self, source: Any, split: str | None = None, *, derive_split: bool = False
    ) -> tuple[int, str | None]:
        """Tally a Parquet file (bytes, a path or a ``pq.ParquetFile``) from its footer and the tally columns
        (``split``, ``derive_split``: see :meth:`add`).

        Returns (rows in the footer, the one split of its rows, or ``split`` when it has no split column).
        ``ValueError``/``OSError`` when it is not a readable Parquet file."""
        pf = source if isinstance(source, pq.ParquetFile) else pq.ParquetFile(_reader(source))
        names = pf.schema_arrow.names
        cols = [c for c in TALLY_COLUMNS if c in names]
        n = pf.metadata.num_rows
        t = pf.read(columns=cols) if cols else pa.table({"label": pa.nulls(n, pa.int32())})
        if not cols:
            self.counted_labels = False
        one = self.add(t, split, derive_split=derive_split, monolingual=counts_monolingual(pf.schema_arrow))
        return n, one if "split" in names else split

    def merge(self, other: Tally) -> None:
        """Add the counts of ``other``, a tally of other shards (made where they were written: :func:`count_shard`)."""
        self.rows += other.rows
        _add_counts(self.per_split, other.per_split)
        _add_counts(self.unlabelled, other.unlabelled)
        for sp, per in other.per_class.items():
            _add_counts(self.per_class.setdefault(sp, {}), per)
        if other.monolingual is not None:
            self.monolingual = _add_counts(self.monolingual or {}, other.monolingual)
        self.counted_labels = self.counted_labels and other.counted_labels

    def labels_outside(self, k: int) -> list[int]:
        """Label indices counted that have no class name among ``k`` classes."""
        return sorted({lab for per in self.per_class.values() for lab in per if not 0 <= lab < k})

    def manifest_counts(self, class_names: list[str]) -> dict[str, Any]:
        """The manifest's count fields: ``rows``, ``rows_per_split``, ``rows_per_class`` (every class, zeros
        included), ``splits`` (every split with rows: its classes with rows, in class order) and ``monolingual``.

        ``AugsvcError`` when a label has no class name (the rows and the class list disagree)."""
        bad = self.labels_outside(len(class_names))
        if bad:
            raise AugsvcError(f"labels {bad} have no entry in class_names ({len(class_names)} classes)")
        splits = {
            sp: {c: per[i] for i, c in enumerate(class_names) if per.get(i)}
            for sp, per in sorted({**dict.fromkeys(self.per_split, {}), **self.per_class}.items())
        }
        totals = {c: sum(per.get(c, 0) for per in splits.values()) for c in class_names}
        mono = None if self.monolingual is None else dict(sorted(self.monolingual.items()))
        return {"rows": self.rows, "rows_per_split": dict(sorted(self.per_split.items())), "rows_per_class": totals,
                "splits": splits, "monolingual": mono}  # fmt: skip

    def problems(self, m: Any) -> list[str]:
        """How manifest ``m``'s class and monolingual counts differ from this tally of its shards (zero counts and
        empty splits are equal to absent ones, so manifests of every age compare)."""
        out = []
        if m.monolingual is not None and _nonzero(self.monolingual or {}) != _nonzero(m.monolingual):
            out.append("monolingual (rows with no source, per split) differs from the rows in the shards")
        if not (m.class_names and self.counted_labels):
            return out
        k = len(m.class_names)
        bad = self.labels_outside(k)
        if bad:
            return [*out, f"labels {bad} have no entry in class_names ({k} classes)"]
        named = {sp: {m.class_names[i]: n for i, n in per.items()} for sp, per in self.per_class.items()}
        if m.splits and _splits(named) != _splits(m.splits):
            out.append("splits (class counts per split) differ from the rows in the shards")
        totals = {c: sum(per.get(c, 0) for per in named.values()) for c in m.class_names}
        if _nonzero(totals) != _nonzero(m.rows_per_class):
            out.append("rows_per_class differs from the labels in the shards")
        return out


@dataclass
class ShardCount:
    """The tally of one shard's bytes, made by the process that wrote them (an ingest worker), with the footer's row
    count and the one split of its rows (:meth:`Tally.add_parquet`'s answer); ``Staging.adopt_file`` merges it instead
    of reading the shard back."""

    tally: Tally
    rows: int
    split: str | None


def count_shard(data: bytes, split: str | None = None) -> ShardCount:
    """:meth:`Tally.add_parquet` of Parquet bytes ``data`` (``split``: the shard's split), into a fresh tally."""
    t = Tally()
    n, one = t.add_parquet(data, split)
    return ShardCount(t, n, one)


def plan_counts(rows: list[tuple[str, int | None, str]], class_names: list[str]) -> dict[str, dict[str, int]]:
    """split -> class -> rows of (sample_id, label, split) tuples, rows without a label under ``"-"`` (a build
    plan's counts; sorted by split, then class name)."""
    t = Tally()
    t.add(pa.table({"label": [r[1] for r in rows], "split": [r[2] for r in rows]}))
    out = {}
    for sp in sorted(set(t.per_class) | set(t.unlabelled)):
        per = {class_names[i]: n for i, n in t.per_class.get(sp, {}).items()}
        if t.unlabelled.get(sp):
            per["-"] = t.unlabelled[sp]
        out[sp] = dict(sorted(per.items()))
    return out


def counts_by_name(m: Any) -> dict[str, dict[str, int]]:
    """split -> class -> rows of a published version (manifest ``m``): the classes with rows, and rows without a
    label under ``"-"`` (as a build plan counts)."""
    out: dict[str, dict[str, int]] = {}
    for sp, n in sorted(m.rows_per_split.items()):
        per = {c: v for c, v in (m.splits.get(sp) or {}).items() if v}
        if n - sum(per.values()):
            per["-"] = n - sum(per.values())
        out[sp] = per
    return out


def _add_counts(into: dict, more: dict) -> dict:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n
    return into


def _nonzero(d: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in d.items() if v}


def _splits(d: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {sp: _nonzero(per) for sp, per in d.items() if _nonzero(per)}


def _reader(source: Any) -> Any:
    return pa.BufferReader(source) if isinstance(source, bytes | bytearray | memoryview) else source


def _typed(col: Any, kind: pa.DataType) -> Any:
    """``col`` as ``kind`` when it came without a type (all nulls), so group keys have one type."""
    return col.cast(kind) if pa.types.is_null(col.type) else col
