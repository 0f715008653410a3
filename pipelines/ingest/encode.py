"""Worker side of ingest: turn one chunk of records into one Parquet shard (bytes), reporting bad items.

Runs in Ray workers (or in-process); pure with respect to its inputs, so shard bytes never depend on which
worker ran it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import imagecodec
from pipelines.ingest.options import IngestOptions
from pipelines.ingest.records import Bad, FileRef, Record
from schemas.arrow import schema_for

RAW_AUTO_MAX_PIXELS = 64 * 64  # auto storage keeps images this small as raw pixels (see docs/architecture.md)


@dataclass
class Chunk:
    index: int
    split: str
    records: list[Record]
    digests: list[bytes]


@dataclass
class ChunkResult:
    index: int
    split: str
    data: bytes | None  # Parquet file bytes; None when every record was bad
    rows: int
    label_counts: dict[int, int] = field(default_factory=dict)
    bad: list[Bad] = field(default_factory=list)


def sample_id(source: str) -> str:
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def write_parquet(table: pa.Table) -> bytes:
    """The one place shard bytes are produced: zstd, no statistics that vary between runs."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue().to_pybytes()


def _image_cell(rec: Record, digest: bytes, opts: IngestOptions) -> dict[str, Any]:
    payload = rec.payload
    source_fmt = None
    data = None
    if isinstance(payload, FileRef):
        with open(payload.path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).digest() != digest:
            raise imagecodec.ImageDecodeError("file changed while the ingest was running; run it again")
    elif isinstance(payload, bytes):
        data = payload
    if data is not None:
        source_fmt = imagecodec.sniff_format(data)
        img = imagecodec.decode_file_bytes(data)
    else:
        img = imagecodec.normalise(np.asarray(payload))
    if opts.resize is not None:
        img = imagecodec.resize(img, *opts.resize)
    store = opts.image_storage
    if store == "auto":
        if data is not None and opts.resize is None and source_fmt in imagecodec.PASSTHROUGH:
            store = source_fmt
        elif img.shape[0] * img.shape[1] <= RAW_AUTO_MAX_PIXELS:
            store = "raw"
        else:
            store = "jpeg"
    if store == source_fmt and opts.resize is None and data is not None:
        blob = data  # pass the original file through: no re-encoding loss, no encoding cost
    else:
        blob = imagecodec.encode(img, store, jpeg_quality=opts.jpeg_quality)
    h, w, c = img.shape
    return {"image": blob, "image_format": store, "height": h, "width": w, "channels": c}


def encode_chunk(
    chunk: Chunk, modality: str, features: dict[str, str], class_index: dict[str, int], opts: IngestOptions
) -> ChunkResult:
    schema = schema_for(modality, features)
    cols: dict[str, list] = {f.name: [] for f in schema}
    counts: dict[int, int] = {}
    bad: list[Bad] = []
    for rec, digest in zip(chunk.records, chunk.digests, strict=True):
        if modality == "image":
            try:
                cell = _image_cell(rec, digest, opts)
            except (imagecodec.ImageDecodeError, OSError) as e:
                bad.append(Bad(rec.source, rec.line, str(e)))
                continue
        elif modality == "text":
            cell = {"text": rec.payload}
        elif modality == "translation":
            cell = {"src": rec.payload[0], "tgt": rec.payload[1]}
        else:
            cell = dict(rec.payload)
        label = None if rec.label is None else class_index[rec.label]
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
        row = {
            "sample_id": sample_id(rec.source),
            "label": label,
            "soft_label": None,
            "split": rec.split,
            "source": rec.source,
            "lineage": None,
        } | cell
        for k in cols:
            cols[k].append(row.get(k))
    n = len(cols["sample_id"])
    if n == 0:
        return ChunkResult(chunk.index, chunk.split, None, 0, counts, bad)
    table = pa.Table.from_pydict(cols, schema=schema)
    return ChunkResult(chunk.index, chunk.split, write_parquet(table), n, counts, bad)
