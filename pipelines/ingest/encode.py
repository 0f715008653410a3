"""Worker side of ingest: turn one chunk of records into one Parquet shard (bytes), reporting bad items.

Runs in Ray workers (or in-process); pure with respect to its inputs, so shard bytes never depend on which
worker ran it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.records import Bad, FileRef, Record
from pipelines.storeshards import ShardCount, write_parquet
from schemas import imagecodec
from schemas.arrow import schema_for

RAW_AUTO_MAX_PIXELS = 64 * 64  # auto storage keeps images this small as raw pixels (see docs/architecture.md)


@dataclass
class Chunk:
    index: int
    split: str
    records: list[Record]
    digests: list[bytes | None]  # None: a file the worker hashes as it reads it

    def __getstate__(self) -> tuple:
        # Plain tuples (file payloads as their path) pickle ~25x faster than named tuples through cloudpickle,
        # which matters because the driver pickles every chunk it sends.
        files = [isinstance(r.payload, FileRef) for r in self.records]
        rows = [
            (r.source, r.split, r.label, r.payload.path if f else r.payload, r.line, r.soft)
            for r, f in zip(self.records, files, strict=True)
        ]
        return (self.index, self.split, rows, files, self.digests)

    def __setstate__(self, state: tuple) -> None:
        self.index, self.split, rows, files, self.digests = state
        self.records = [
            Record(s, sp, lab, FileRef(p) if f else p, line, soft)
            for (s, sp, lab, p, line, soft), f in zip(rows, files, strict=True)
        ]


@dataclass
class ChunkResult:
    index: int
    split: str
    data: bytes | None  # Parquet file bytes; None when every record was bad
    rows: int
    bad: list[Bad] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)  # content digest of every record of the chunk, in order
    path: str | None = None  # where the worker wrote the shard (when given an out_dir), with its sha256 and size
    sha256: str | None = None
    nbytes: int = 0
    counted: ShardCount | None = None  # the shard's tally, made by the worker from the bytes it wrote (or None)
    keys: bytes | None = None  # the chunk's ``records.content_keys``, made by the worker that hashed its rows


def sample_id(source: str) -> str:
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def _read_file(rec: Record, digest: bytes | None) -> tuple[bytes, bytes]:
    with open(rec.payload.path, "rb") as f:
        data = f.read()
    got = hashlib.sha256(data).digest()
    if digest is not None and got != digest:
        raise imagecodec.ImageDecodeError("file changed while the ingest was running; run it again")
    return data, got


def _image_cell(rec: Record, data: bytes | None, opts: IngestOptions) -> tuple[bytes, str, int, int, int, int | None]:
    """(stored bytes, image_format, height, width, channels, exif_orientation) for one image record.

    The pixel limit is checked from the file header before anything is decoded. A JPEG whose EXIF orientation is
    not upright is decoded, turned the way viewers show it and re-encoded (it cannot pass through unchanged).
    """
    payload = rec.payload
    if isinstance(payload, bytes):
        data = payload
    orientation = None
    if data is not None:
        source_fmt = imagecodec.sniff_format(data)
        jpeg_shape = None
        if source_fmt == "jpeg":
            jpeg_shape, orientation = imagecodec.jpeg_header(data)
            hw = None if jpeg_shape is None else jpeg_shape[:2]
        else:
            hw = imagecodec.header_shape(data)
        if hw is not None:
            imagecodec.check_pixels(*hw, opts.max_pixels)
        turn = orientation not in (None, 1)
        store = opts.image_storage
        if store == "auto" and opts.resize is None and source_fmt in imagecodec.PASSTHROUGH and not turn:
            store = source_fmt
        if store == source_fmt and opts.resize is None and not turn:  # the file passes through: no loss or cost
            if source_fmt == "jpeg":
                shape = imagecodec.validate_jpeg(data, jpeg_shape)  # every byte checked, pixels not needed
            else:
                _, shape = imagecodec.probe_file_bytes(data)  # full decode: a corrupt file is caught here
            imagecodec.check_pixels(shape[0], shape[1], opts.max_pixels)
            return data, store, *shape, orientation
        raw, shape = imagecodec.probe_file_bytes(data, strict=True)
        imagecodec.check_pixels(shape[0], shape[1], opts.max_pixels)
        img = imagecodec.apply_orientation(imagecodec.normalise(raw, bgr=True), orientation)
    else:
        arr = np.asarray(payload)
        if arr.ndim >= 2:
            imagecodec.check_pixels(arr.shape[0], arr.shape[1], opts.max_pixels)
        imagecodec.check_opaque(arr)
        img = imagecodec.normalise(arr)
    if opts.resize is not None:
        img = imagecodec.resize(img, *opts.resize)
    store = opts.image_storage
    if store == "auto":
        store = "raw" if img.shape[0] * img.shape[1] <= RAW_AUTO_MAX_PIXELS else "jpeg"
    h, w, c = img.shape
    return imagecodec.encode(img, store, jpeg_quality=opts.jpeg_quality), store, h, w, c, orientation


def encode_chunk(
    chunk: Chunk,
    modality: str,
    features: dict[str, str],
    class_index: dict[str, int],
    opts: IngestOptions,
    out_dir: str | None = None,
) -> ChunkResult:
    """Encode one chunk. With ``out_dir`` the worker writes the shard there itself (``chunk-NNNNN.parquet``) and
    returns only its path, hash and size, so shard bytes never travel through Ray's object store or the driver."""
    schema = schema_for(modality, features, monolingual=opts.monolingual)
    keep: list[Record] = []
    payload_cols: dict[str, list] = {f.name: [] for f in schema if f.name not in _COMMON}
    bad: list[Bad] = []
    digests: list[bytes] = []
    for rec, digest in zip(chunk.records, chunk.digests, strict=True):
        if modality == "image":
            data = None
            try:
                if isinstance(rec.payload, FileRef):
                    data, digest = _read_file(rec, digest)
                cell = _image_cell(rec, data, opts)
            except (imagecodec.ImageDecodeError, OSError) as e:
                digests.append(digest or hashlib.sha256(b"unreadable\0" + rec.source.encode()).digest())
                reason = f"cannot read the file ({e.strerror})" if isinstance(e, OSError) else str(e)
                bad.append(Bad(rec.source, rec.line, reason))
                continue
            digests.append(digest)
            for k, v in zip(_IMAGE_COLS, cell, strict=True):
                payload_cols[k].append(v)
        elif modality == "text":
            payload_cols["text"].append(rec.payload)
        elif modality == "translation":
            payload_cols["src"].append(rec.payload[0])
            payload_cols["tgt"].append(rec.payload[1])
        else:
            for k in payload_cols:
                payload_cols[k].append(rec.payload.get(k))
        if modality != "image":
            digests.append(digest)
        keep.append(rec)
    labels = [None if r.label is None else class_index[r.label] for r in keep]
    n = len(keep)
    if n == 0:
        return ChunkResult(chunk.index, chunk.split, None, 0, bad, digests)
    cols = {
        "sample_id": [sample_id(r.source) for r in keep],
        "label": labels,
        "soft_label": [None if r.soft is None else list(r.soft) for r in keep],
        "split": [r.split for r in keep],
        "source": [r.source for r in keep],
        "lineage": [None] * n,
        "teacher_logits": [None] * n,
    } | payload_cols
    table = pa.Table.from_pydict(cols, schema=schema)
    return chunk_result(chunk.index, chunk.split, write_parquet(table), n, bad, digests, out_dir)


def chunk_result(
    index: int, split: str, data: bytes, n: int, bad: list, digests: Any, out_dir: str | None, **extra: Any
) -> ChunkResult:
    """The result of one encoded chunk: its Parquet bytes returned as they are (``out_dir`` None: a worker on
    another node), or written to ``out_dir/chunk-<index>.parquet`` (atomic replace) with their sha256 and size."""
    if out_dir is None:
        return ChunkResult(index, split, data, n, bad, digests, **extra)
    path = os.path.join(out_dir, f"chunk-{index:05d}.parquet")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    sha = hashlib.sha256(data).hexdigest()
    return ChunkResult(index, split, None, n, bad, digests, path, sha, len(data), **extra)


_COMMON = {"sample_id", "label", "soft_label", "split", "source", "lineage", "teacher_logits"}
_IMAGE_COLS = ("image", "image_format", "height", "width", "channels", "exif_orientation")
