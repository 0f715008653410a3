"""Readers turn a raw source into a deterministic stream of ``Record`` and ``Bad`` items.

A ``Source`` can be iterated more than once (the driver hashes the input first, then writes shards), and always
yields items in the same order: files sorted by relative path, lines in file order.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.ingest.options import FORMATS, READERS, IngestOptions
from pipelines.ingest.records import Bad, Record
from schemas.errors import AugsvcError
from schemas.registry import Registry


@dataclass
class Source:
    modality: str
    items: Callable[[], Iterator[Record | Bad]]
    features: dict[str, str] = field(default_factory=dict)  # tabular: column -> numeric | categorical
    format: str = ""
    class_names: list[str] | None = None  # known before reading any item (image class folders)
    notes: list[str] = field(default_factory=list)  # how the input was read, for the user (e.g. one-hot labels)
    soft_labels: bool = False  # records may carry a soft label
    # array inputs: the same items as ArrayBlocks and Bads (pipelines.ingest.columnar), for the columnar ingest path
    blocks: Callable[[], Iterator[Any]] | None = None
    # array inputs whose rows workers can read themselves: their files (pipelines.ingest.ranged.RangedFile), or None
    # when a file may hold other items than its header says (then the driver reads the blocks)
    ranges: Callable[[], list[Any] | None] | None = None


IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _sample_names(path: Path, limit: int = 200) -> list[str]:
    """Names of up to ``limit`` files within two levels of ``path`` (enough to recognise a format, cheap)."""
    names: list[str] = []
    stack = [(path, 0)]
    while stack and len(names) < limit:
        d, depth = stack.pop()
        with os.scandir(d) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.startswith("."):
                    continue
                if e.is_dir():
                    if depth < 2:
                        stack.append((Path(e.path), depth + 1))
                else:
                    names.append(e.name)
                    if len(names) >= limit:
                        break
    return sorted(names)


def detect_format(path: Path) -> str:
    """Guess the format from the source path; ambiguous cases ask for --format."""
    if path.is_dir():
        names = _sample_names(path)
        if any("idx" in n and "ubyte" in n for n in names):
            return "idx"
        if any(n.endswith(".parquet") for n in names):
            return "parquet"
        if any(Path(n).suffix.lower() in IMAGE_EXTS for n in names):
            return "images"
        if any(n.endswith((".gz",)) for n in names) or _looks_parallel(names):
            return "parallel"
        raise AugsvcError(f"{path}: cannot tell the format of this folder; pass --format")
    name = path.name.lower()
    if "ubyte" in name:
        return "idx"
    for suffix, fmt in ((".npz", "npz"), (".jsonl", "jsonl"), (".tsv", "tsv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return fmt
    if name.endswith(".csv"):
        return "csv"
    raise AugsvcError(f"{path}: cannot tell the format from the file name; pass --format ({', '.join(FORMATS)})")


def _looks_parallel(names: list[str]) -> bool:
    langs = {n.rsplit(".", 2)[-1] for n in names if n.count(".") >= 1}
    return 1 < len(langs) <= 3


def open_source(path: Path, opts: IngestOptions) -> Source:
    """The :class:`Source` of ``path`` read as ``opts.format`` (``auto``: :func:`detect_format`) by the reader
    registered in :data:`INGEST_FORMATS`; AugsvcError when the path does not exist or the format is unknown."""
    if not path.exists():
        raise AugsvcError(f"{path}: no such file or folder")
    fmt = opts.format if opts.format != "auto" else detect_format(path)
    src = INGEST_FORMATS.get(fmt)(path, opts.model_copy(update={"format": fmt}))
    src.format = fmt
    return src


def _lazy(module: str, attr: str) -> Callable[[Path, IngestOptions], Source]:
    """A reader function imported from ``module`` on its first call (readers pull in OpenCV, pyarrow, ...)."""

    def source(path: Path, opts: IngestOptions) -> Source:
        return getattr(importlib.import_module(module), attr)(path, opts)

    source.__qualname__ = f"{module}.{attr}"
    return source


# format -> reader ``(path, IngestOptions) -> Source``, from ``READERS`` in ``pipelines/ingest/options.py`` (the one
# list of formats, which also makes the ``Format`` literal and the help texts); each reader module is imported on
# its first use (docs/architecture.md, "How to add an ingest format")
INGEST_FORMATS: Registry[Callable[[Path, IngestOptions], Source]] = Registry("ingest format")
for _name, _ref in READERS.items():
    _module, _attr = _ref.split(":")
    INGEST_FORMATS.register(_name, obj=_lazy(f"pipelines.ingest.readers.{_module}", _attr))


def files_of(path: Path, exts: set[str] | None = None) -> list[Path]:
    """The files of a source, sorted by relative path; a file source is itself."""
    if path.is_file():
        return [path]
    out = [
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    if exts is not None:
        out = [p for p in out if p.suffix.lower() in exts]
    return sorted(out, key=lambda p: p.relative_to(path).as_posix())
