"""Columnar ingest of image arrays (IDX, NPZ): blocks of rows instead of one ``Record`` per image.

A reader of arrays gives its input as :class:`ArrayBlock` s (a slice of the image array with its sources, labels and
soft labels) and bad items, in item order; its ``items()`` is :func:`block_items` over the same blocks, so the record
path and this one see the same items. This path computes, per block, what the record path computes per record: the
same content digests (``records.record_digest``: sha256 of the dtype/shape header and the pixel bytes, then the soft
label), the same tally (so the same content hash and version id), the same chunk boundaries (a new chunk at every
split change or ``shard_rows`` rows) and the same rows, so shard bytes are identical (``tests/test_ingest_columnar.py``
compares versions, manifests and shard bytes with the record path). What changes is the per-row work: one
``frombuffer`` view per block instead of a record per row, one Arrow buffer for a chunk's raw pixels instead of one
``bytes`` object per row, and a chunk pickled to a worker as one array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.ingest.encode import RAW_AUTO_MAX_PIXELS, ChunkResult, _image_cell, chunk_result, sample_id
from pipelines.ingest.options import IngestOptions
from pipelines.ingest.records import Bad, Record, content_keys
from pipelines.storeshards import count_shard, write_parquet
from schemas import imagecodec
from schemas.arrow import schema_for


@dataclass
class ArrayBlock:
    """Consecutive items of an array input: ``images[j]`` is item ``sources[j]``.

    ``labels[j]`` is the class name, or None when the item's label is not a class (then ``reasons[j]`` says why and
    the item is bad); ``soft`` (k, C) float32 soft labels or None.
    """

    sources: list[str]
    split: str
    labels: list[str | None]
    images: np.ndarray  # (k, H, W) or (k, H, W, C), any dtype a reader gives
    soft: np.ndarray | None = None
    reasons: dict[int, str] | None = None


def block_items(blocks: Callable[[], Iterator[ArrayBlock | Bad]]) -> Callable[[], Iterator[Record | Bad]]:
    """The record-at-a-time view of a block stream (what ``Source.items`` gives for array inputs)."""

    def items() -> Iterator[Record | Bad]:
        for b in blocks():
            if isinstance(b, Bad):
                yield b
                continue
            for j, (src, lab) in enumerate(zip(b.sources, b.labels, strict=True)):
                if lab is None:
                    yield Bad(src, None, b.reasons[j])
                    continue
                soft = None if b.soft is None else tuple(b.soft[j].tolist())
                yield Record(src, b.split, lab, b.images[j], None, soft)

    return items


def good_rows(b: ArrayBlock, opts: IngestOptions) -> tuple[np.ndarray, list[Bad]]:
    """Indices of the block's usable rows and its bad items in row order (as ``driver._accepted`` decides)."""
    return usable_rows(b.labels, b.reasons, opts, b.sources.__getitem__)


def usable_rows(
    labels: list[str | None], reasons: dict[int, str] | None, opts: IngestOptions, source: Callable[[int], str]
) -> tuple[np.ndarray, list[Bad]]:
    """:func:`good_rows` of rows with class names ``labels`` (None: bad, ``reasons[j]`` says why); ``source(j)`` names
    row j in a bad item."""
    if not reasons and opts.classes is None and None not in labels:
        return np.arange(len(labels), dtype=np.int64), []
    good, bad = [], []
    classes = None if opts.classes is None else set(opts.classes)
    for j, lab in enumerate(labels):
        if lab is None:
            bad.append(Bad(source(j), None, reasons[j]))
        elif classes is not None and lab not in classes:
            bad.append(Bad(source(j), None, f"label {lab!r} is not one of --classes"))
        else:
            good.append(j)
    return np.asarray(good, dtype=np.int64), bad


def block_digests(b: ArrayBlock, rows: np.ndarray) -> list[bytes]:
    """``records.record_digest`` of each row in ``rows``: sha256(repr((dtype.str, item shape)) || pixel bytes), then
    sha256(digest || soft label as float32) for rows with a soft label."""
    return row_digests(b.images, b.soft, rows)


def row_digests(images: np.ndarray, soft: np.ndarray | None, rows: np.ndarray) -> list[bytes]:
    """:func:`block_digests` of ``images[rows]`` (with ``soft[rows]`` when given)."""
    images = np.ascontiguousarray(images)
    head = hashlib.sha256(repr((images.dtype.str, images.shape[1:])).encode())
    flat = memoryview(images.reshape(-1).view(np.uint8))  # row j's bytes as a slice: no array object per row
    size = images[0].nbytes if len(images) else 0
    out = []
    for j in rows.tolist():
        h = head.copy()
        h.update(flat[j * size : (j + 1) * size])
        out.append(h.digest())
    if soft is not None:
        soft = np.asarray(soft, np.float32)
        out = [hashlib.sha256(d + soft[j].tobytes()).digest() for d, j in zip(out, rows.tolist(), strict=True)]
    return out


@dataclass
class ArrayChunk:
    """One future shard: rows of one split, with their digests (computed by the driver in pass 1, or None: the
    worker computes them, when the driver did not hash first)."""

    index: int
    split: str
    sources: list[str]
    labels: list[str]
    images: np.ndarray
    soft: np.ndarray | None
    digests: list[bytes] | None


def cut(
    parts: Iterable[tuple[Any, str, int]], shard_rows: int
) -> Iterator[tuple[int, str, list[tuple[Any, int, int]]]]:
    """Chunks of at most ``shard_rows`` rows of one split over ``parts`` (key, split, rows), exactly where
    ``driver._cut`` cuts the records: (chunk index, split, [(key, first row, end row)])."""
    pending: list[tuple[Any, int, int]] = []
    count, split, index = 0, None, 0
    for key, sp, n in parts:
        start = 0
        while start < n:
            if pending and (sp != split or count >= shard_rows):
                yield index, split, pending
                index, pending, count = index + 1, [], 0
            split = sp
            take = min(n - start, shard_rows - count)
            pending.append((key, start, start + take))
            count += take
            start += take
    if pending:
        yield index, split, pending


def array_chunks(
    parts: Iterator[tuple[ArrayBlock, np.ndarray, list[bytes] | None]], shard_rows: int
) -> Iterator[ArrayChunk]:
    """Cut (block, kept rows, their digests or None) into chunks exactly where ``driver._cut`` cuts the records."""
    for index, split, pieces in cut(((p, p[0].split, len(p[1])) for p in parts), shard_rows):
        pending = [(b, r[lo:hi], None if d is None else d[lo:hi]) for (b, r, d), lo, hi in pieces]
        sources = [s for b, r, _ in pending for s in (b.sources[j] for j in r.tolist())]
        labels = [s for b, r, _ in pending for s in (b.labels[j] for j in r.tolist())]
        images = np.concatenate([b.images[r] for b, r, _ in pending])
        soft = None
        if pending[0][0].soft is not None:
            soft = np.concatenate([np.asarray(b.soft, np.float32)[r] for b, r, _ in pending])
        digests = None if pending[0][2] is None else [d for _, _, ds in pending for d in ds]
        yield ArrayChunk(index, split, sources, labels, images, soft, digests)


def _bulk_pixels(images: np.ndarray, opts: IngestOptions) -> tuple[np.ndarray, str] | None:
    """(uint8 (k, H, W, C) pixels, storage) when the whole chunk can be stored as raw pixels in one buffer, exactly as
    ``imagecodec.normalise`` + ``encode(..., "raw")`` would store each row; None when rows need the per-row path
    (another storage or a resize, float or signed pixels, an alpha channel to check, an image shape normalise
    refuses)."""
    if opts.resize is not None or images.dtype not in (np.uint8, np.uint16):
        return None
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)) or 0 in images.shape:
        return None
    h, w = images.shape[1:3]
    store = opts.image_storage
    if store == "auto":
        store = "raw" if h * w <= RAW_AUTO_MAX_PIXELS else "jpeg"
    if store != "raw":
        return None
    if len(images) * h * w * (1 if images.ndim == 3 else images.shape[3]) >= 2**31:  # int32 offsets of pa.binary()
        return None
    x = (images >> 8).astype(np.uint8) if images.dtype == np.uint16 else images
    if x.ndim == 3:
        x = x[..., None]
    return np.ascontiguousarray(x), store


def encode_array_chunk(
    chunk: ArrayChunk,
    class_index: dict[str, int],
    opts: IngestOptions,
    out_dir: str | None = None,
    count: bool = False,
) -> ChunkResult:
    """``encode.encode_chunk`` for an :class:`ArrayChunk`: the same rows, bad items, digests and shard bytes.

    ``count``: also tally the shard's bytes here (``storeshards.count_shard``) and make the chunk's content keys
    (``records.content_keys``), so that the driver merges them instead of doing that work itself."""
    schema = schema_for("image", {}, monolingual=opts.monolingual)
    images = chunk.images
    k = len(chunk.sources)
    if chunk.digests is None:  # the driver did not hash first (workers on Ray): hash here, in parallel
        chunk.digests = row_digests(images, chunk.soft, np.arange(k))
    bad: list[Bad] = []
    keep = list(range(k))
    cells: dict[str, list] | None = None
    image_col: pa.Array | None = None
    try:
        if images.ndim >= 3:
            imagecodec.check_pixels(images.shape[1], images.shape[2], opts.max_pixels)
        bulk = _bulk_pixels(images, opts)
    except imagecodec.ImageDecodeError as e:  # every row has the same shape: every row is bad alike
        bad = [Bad(s, None, str(e)) for s in chunk.sources]
        keep, bulk = [], None
    if bulk is not None:
        x, store = bulk
        _, h, w, c = x.shape
        size = h * w * c
        offsets = pa.py_buffer(np.arange(0, (k + 1) * size, size, dtype=np.int32))
        image_col = pa.BinaryArray.from_buffers(pa.binary(), k, [None, offsets, pa.py_buffer(x)], null_count=0)
        cells = {"image_format": [store] * k, "height": [h] * k, "width": [w] * k, "channels": [c] * k,
                 "exif_orientation": [None] * k}  # fmt: skip
    elif keep:
        cols = ("image", "image_format", "height", "width", "channels", "exif_orientation")
        cells = {name: [] for name in cols}
        keep = []
        for j in range(k):
            rec = Record(chunk.sources[j], chunk.split, chunk.labels[j], images[j])
            try:
                cell = _image_cell(rec, None, opts)
            except imagecodec.ImageDecodeError as e:
                bad.append(Bad(rec.source, None, str(e)))
                continue
            keep.append(j)
            for name, v in zip(cols, cell, strict=True):
                cells[name].append(v)
    labels = [class_index[chunk.labels[j]] for j in keep]
    n = len(keep)
    if n == 0:
        keys = content_keys(chunk.sources, chunk.split, chunk.labels, chunk.digests) if count else None
        return ChunkResult(chunk.index, chunk.split, None, 0, bad, chunk.digests, keys=keys)
    sources = [chunk.sources[j] for j in keep]
    soft = [None] * n if chunk.soft is None else chunk.soft[keep].tolist()
    cols = {
        "sample_id": [sample_id(s) for s in sources],
        "label": labels,
        "soft_label": soft,
        "split": [chunk.split] * n,
        "source": sources,
        "lineage": [None] * n,
        "teacher_logits": [None] * n,
    } | cells
    arrays = [image_col if f.name == "image" and image_col is not None else pa.array(cols[f.name], f.type)
              for f in schema]  # fmt: skip
    data = write_parquet(pa.Table.from_arrays(arrays, schema=schema))
    counted = count_shard(data, chunk.split) if count else None
    keys = content_keys(chunk.sources, chunk.split, chunk.labels, chunk.digests) if count else None
    return chunk_result(chunk.index, chunk.split, data, n, bad, chunk.digests, out_dir, counted=counted, keys=keys)


def encode_array_chunks(
    chunks: list[ArrayChunk], class_index: dict[str, int], opts: IngestOptions, out_dir: str | None = None
) -> list[ChunkResult]:
    """:func:`encode_array_chunk` over several chunks in one task (one shard each, in order)."""
    return [encode_array_chunk(c, class_index, opts, out_dir) for c in chunks]
