"""Array inputs whose rows the workers read themselves (IDX): the driver sends row ranges, not arrays.

When the rows of an array input are hashed by the workers (``driver._workers_hash``: Ray workers, no ``--dedupe``)
and its reader can describe where each file's rows lie (``Source.ranges``: the IDX reader), the driver reads only the
labels (to know the classes and the bad items) and cuts the good rows into the same chunks as the block path
(:func:`pipelines.ingest.columnar.cut`). Each task then names a few chunks as (file, row numbers); the worker reads
those rows from the file (decompressing a gzip file up to the last of them), hashes them and encodes them with
:func:`pipelines.ingest.columnar.encode_array_chunk`, so the rows, digests, version id and shard bytes are the block
path's (``tests/test_ingest_columnar.py``, ``tests/test_ingest_ray.py``). Nothing of an image crosses the process
boundary but its shard file; the driver's part is the labels, the tally of the digests that come back, and moving
shards into place.

A file that turns out to be shorter or corrupt when a worker reads it (the driver checks sizes and gzip trailers
first, but cannot see every corruption without decompressing) makes the worker answer with the reason instead of
shards; the driver then runs the ingest again over blocks, which reports such a file item by item as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipelines.ingest.columnar import ArrayChunk, cut, encode_array_chunk
from pipelines.ingest.encode import ChunkResult
from pipelines.ingest.options import IngestOptions
from schemas.errors import AugsvcError


class InputChanged(AugsvcError):
    """A worker found a file other than the driver planned (shorter, corrupt): read it again over blocks."""


@dataclass(frozen=True)
class RangedFile:
    """One array file whose rows a worker can read alone: rows ``0:n`` of dtype ``dtype`` and item shape ``shape``
    start ``offset`` bytes into the (possibly gzip) file ``path``; ``names[j]`` is row j's class name or None
    (``reasons[j]`` says why: a bad item). ``rel`` names the file in sources (``rel#j``)."""

    path: str
    rel: str
    split: str
    gz: bool
    dtype: str
    shape: tuple[int, ...]
    n: int
    offset: int
    names: list[str | None] = field(repr=False)
    reasons: dict[int, str] = field(repr=False)
    read: Callable[[RangedFile, int, int], np.ndarray] | None = field(default=None, repr=False)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass
class RangedChunk:
    """One future shard as (file index, row numbers in that file) pieces, with the rows' class names."""

    index: int
    split: str
    pieces: list[tuple[int, np.ndarray]]
    labels: list[str]

    def sources(self, files: list[RangedFile]) -> list[str]:
        return [f"{files[fi].rel}#{j}" for fi, rows in self.pieces for j in rows.tolist()]


def ranged_chunks(files: list[RangedFile], rows: list[np.ndarray], shard_rows: int) -> Iterator[RangedChunk]:
    """The good ``rows`` of each file cut into chunks where the block path cuts them."""
    parts = ((fi, f.split, len(rows[fi])) for fi, f in enumerate(files))
    for index, split, pieces in cut(parts, shard_rows):
        got = [(fi, rows[fi][lo:hi]) for fi, lo, hi in pieces]
        names = [files[fi].names[j] for fi, r in got for j in r.tolist()]
        yield RangedChunk(index, split, got, names)


def ranged_tasks(
    chunks: Iterator[RangedChunk], files: list[RangedFile], target_bytes: int, workers: int = 1
) -> Iterator[list[RangedChunk]]:
    """Group chunks into tasks of about ``target_bytes`` of pixels, starting a task where a chunk starts in a new file
    once half of that is reached. A worker decompresses a gzip file from its start up to the rows it needs, so a task
    starts with every gzip file and a gzip file is cut into at most ``workers`` tasks (k tasks decompress (k + 1) / 2
    times its bytes): each gzip file is decompressed about once, or 1.5 times when it is cut for two workers."""
    group: list[RangedChunk] = []
    held, first_file, limit = 0, None, target_bytes
    for c in chunks:
        fi = c.pieces[0][0]
        if group and (held >= limit or (fi != first_file and (files[fi].gz or held >= limit // 2))):
            yield group
            group, held = [], 0
        if not group:
            first_file, f = fi, files[fi]
            limit = max(target_bytes, -(-f.n * f.row_bytes // max(1, workers))) if f.gz else target_bytes
        group.append(c)
        held += sum(len(r) for _, r in c.pieces) * files[fi].row_bytes
    if group:
        yield group


def encode_ranged_chunks(
    files: list[RangedFile],
    chunks: list[RangedChunk],
    class_index: dict[str, int],
    opts: IngestOptions,
    out_dir: str | None = None,
) -> list[ChunkResult] | str:
    """Read, hash and encode ``chunks`` (one shard each, in order), reading each file's rows once; each result carries
    its shard's tally and its content keys, made here, so the driver only merges them.

    Returns the chunks' results, or the reason (a str) when a file no longer holds the rows planned."""
    spans: dict[int, tuple[int, int]] = {}
    for c in chunks:
        for fi, rows in c.pieces:
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            old = spans.get(fi, (lo, hi))
            spans[fi] = (min(lo, old[0]), max(hi, old[1]))
    arrays = {}
    try:
        for fi, (lo, hi) in sorted(spans.items()):
            arrays[fi] = (lo, files[fi].read(files[fi], lo, hi))
    except InputChanged as e:
        return str(e)
    out = []
    for c in chunks:
        parts = [arrays[fi][1][rows - arrays[fi][0]] for fi, rows in c.pieces]
        images = parts[0] if len(parts) == 1 else np.concatenate(parts)
        chunk = ArrayChunk(c.index, c.split, c.sources(files), c.labels, images, None, None)
        out.append(encode_array_chunk(chunk, class_index, opts, out_dir, count=True))
    return out
