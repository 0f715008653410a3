"""An existing Parquet dataset (a folder of ``*.parquet`` files, e.g. exported by another tool), with a column
mapping: ``--image-column`` (encoded image bytes) or ``--text-column``, and ``--label-column``; otherwise every
other column is a tabular feature. A ``split`` column is kept when present.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.readers.tabular import check_feature_names
from pipelines.ingest.records import Bad, Record, relative
from schemas.errors import AugsvcError


def _schema(f: Path) -> pa.Schema:
    try:
        return pq.read_schema(f)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise AugsvcError(f"{f}: not a readable Parquet file ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _same_columns(files: list[Path], schemas: list[pa.Schema], used: list[str], exact: bool) -> None:
    """Every file must have the columns the first one has (``exact``: no others either), with the same types."""
    first = schemas[0]
    for f, sch in zip(files[1:], schemas[1:], strict=True):
        for c in used:
            if c not in sch.names:
                raise AugsvcError(f"{f}: no column {c!r}, which {files[0].name} has; give every file the same columns")
            if not sch.field(c).type.equals(first.field(c).type) and not _compatible(sch.field(c), first.field(c)):
                raise AugsvcError(
                    f"{f}: column {c!r} is {sch.field(c).type} but {first.field(c).type} in {files[0].name}"
                )
        if exact:
            extra = [c for c in sch.names if c not in first.names]
            if extra:
                raise AugsvcError(
                    f"{f}: column {extra[0]!r} is not in {files[0].name}; give every file the same columns"
                )


def _compatible(a: pa.Field, b: pa.Field) -> bool:
    """Types that read the same here: numbers with numbers, strings with strings, binaries with binaries."""

    def kind(t: pa.DataType) -> str:
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            return "number"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "string"
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return "binary"
        return str(t)

    return kind(a.type) == kind(b.type)


def _label_of(value: object) -> str | None:
    """A class name from a label cell: a string or an integer (an integral float too); None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


def source(root: Path, opts: IngestOptions) -> Source:
    files = files_of(root, {".parquet"})
    if not files:
        raise AugsvcError(f"{root}: no .parquet files")
    base = root if root.is_dir() else root.parent
    schemas = [_schema(f) for f in files]
    schema = schemas[0]
    cols = schema.names
    label = opts.label_column or next((c for c in ("label", "class", "target") if c in cols), None)
    if label is None or label not in cols:
        raise AugsvcError(f"{files[0]}: no label column (columns: {', '.join(cols)}); pass --label-column")
    for opt, col in (("--image-column", opts.image_column), ("--text-column", opts.text_column)):
        if col is not None and col not in cols:
            raise AugsvcError(f"{opt} {col!r}: no such column in {files[0]} (columns: {', '.join(cols)})")
    if opts.image_column:
        modality, features = "image", {}
    elif opts.text_column or "text" in cols:
        modality, features = "text", {}
    else:
        modality = "tabular"
        features = {}
        for f in schema:
            if f.name in (label, "split"):
                continue
            if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type):
                features[f.name] = "numeric"
            elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
                features[f.name] = "categorical"
            else:
                raise AugsvcError(f"{files[0]}: column {f.name!r} has type {f.type}; map it or drop it")
    check_feature_names(files[0], list(features))
    text_col = opts.text_column or "text"
    used = [label] + {"image": [opts.image_column], "text": [text_col]}.get(modality, list(features))
    _same_columns(files, schemas, used + (["split"] if "split" in cols else []), exact=modality == "tabular")

    def items() -> Iterator[Record | Bad]:
        for f in files:
            rel = relative(f, base)
            row_no = 0
            try:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
                    for row in batch.to_pylist():
                        row_no += 1
                        yield _row_item(row, f"{rel}#{row_no - 1}", rel, row_no)
            except (pa.ArrowException, OSError, ValueError) as e:
                yield Bad(rel, None, f"cannot read the rows after row {row_no}: {_first_line(e)} (corrupt file?)")

    def _row_item(row: dict, ref: str, rel: str, row_no: int) -> Record | Bad:
        split = str(row.get("split") or opts.split or "train")
        raw = row.get(label)
        lab = _label_of(raw)
        if lab is None:
            what = "missing label" if raw is None or str(raw).strip() == "" else f"label {raw!r} is not a class name"
            return Bad(rel, row_no, f"{what} (column {label!r})")
        if modality == "image":
            data = row.get(opts.image_column)
            if not isinstance(data, bytes | bytearray):
                return Bad(rel, row_no, f"column {opts.image_column!r} is not image bytes")
            return Record(ref, split, lab, bytes(data), row_no)
        if modality == "text":
            text = row.get(text_col)
            if not isinstance(text, str) or not text.strip():
                return Bad(rel, row_no, f"empty or missing text (column {text_col!r})")
            return Record(ref, split, lab, text, row_no)
        vals = {
            k: (None if row[k] is None else (float(row[k]) if kind == "numeric" else str(row[k])))
            for k, kind in features.items()
        }
        bad = next((k for k, v in vals.items() if isinstance(v, float) and not math.isfinite(v)), None)
        if bad is not None:  # as in tabular CSV: a NaN or infinite feature is never kept silently
            why = f"column {bad!r}: {vals[bad]} is not a finite number; use a null for a missing value"
            return Bad(rel, row_no, why)
        return Record(ref, split, lab, vals, row_no)

    return Source(modality, items, features=features)
