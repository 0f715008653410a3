"""An existing Parquet dataset (a folder of ``*.parquet`` files, e.g. exported by another tool), with a column
mapping: ``--image-column`` (encoded image bytes) or ``--text-column``, and ``--label-column``; otherwise every
other column is a tabular feature. A ``split`` column is kept when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.records import Bad, Record, relative
from schemas.errors import AugsvcError


def source(root: Path, opts: IngestOptions) -> Source:
    files = files_of(root, {".parquet"})
    if not files:
        raise AugsvcError(f"{root}: no .parquet files")
    base = root if root.is_dir() else root.parent
    schema = pq.read_schema(files[0])
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
    text_col = opts.text_column or "text"

    def items() -> Iterator[Record | Bad]:
        for f in files:
            rel = relative(f, base)
            row_no = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
                for row in batch.to_pylist():
                    ref, row_no = f"{rel}#{row_no}", row_no + 1
                    split = str(row.get("split") or opts.split or "train")
                    lab = row.get(label)
                    if lab is None or str(lab).strip() == "":
                        yield Bad(rel, row_no, "missing label")
                        continue
                    lab = str(lab)
                    if modality == "image":
                        data = row.get(opts.image_column)
                        if not isinstance(data, bytes | bytearray):
                            yield Bad(rel, row_no, f"column {opts.image_column!r} is not image bytes")
                            continue
                        yield Record(ref, split, lab, bytes(data), row_no)
                    elif modality == "text":
                        text = row.get(text_col)
                        if text is None or not str(text).strip():
                            yield Bad(rel, row_no, "empty text")
                            continue
                        yield Record(ref, split, lab, str(text), row_no)
                    else:
                        vals = {
                            k: (None if row[k] is None else (float(row[k]) if kind == "numeric" else str(row[k])))
                            for k, kind in features.items()
                        }
                        yield Record(ref, split, lab, vals, row_no)

    return Source(modality, items, features=features)
