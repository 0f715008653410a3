"""What readers yield: good records (one future row each) and bad items (one future quarantine entry each)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


class FileRef(NamedTuple):
    """An image file to be read and decoded by a worker (so file bytes never pass through the driver)."""

    path: str


class Record(NamedTuple):
    """One input item.

    ``source`` is relative to the ingest root ("daisy/1.jpg", "TREC.train:12", "images.gz#5"), so the version id
    and ``sample_id`` do not depend on where the input lives. ``payload`` is a ``FileRef`` or raw image array
    (image), ``str`` (text), ``dict`` of feature values (tabular) or ``(src, tgt)`` (translation).
    Named tuples, not dataclasses: chunks of them are pickled to workers, and tuples pickle several times faster.
    """

    source: str
    split: str
    label: str | None
    payload: Any
    line: int | None = None
    soft: tuple[float, ...] | None = None  # a soft label (one probability per class), when the input gives one


class Bad(NamedTuple):
    """An input item that cannot become a row: where it is and why."""

    source: str
    line: int | None
    reason: str

    def describe(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.reason}"


def payload_digest(payload: Any) -> bytes:
    """sha256 of the content a record carries (for files: the bytes on disk)."""
    h = hashlib.sha256()
    if isinstance(payload, FileRef):
        with open(payload.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    elif isinstance(payload, np.ndarray):
        h.update(repr((payload.dtype.str, payload.shape)).encode())
        h.update(np.ascontiguousarray(payload).tobytes())
    elif isinstance(payload, bytes):
        h.update(payload)
    elif isinstance(payload, str):
        h.update(payload.encode("utf-8"))
    else:
        h.update(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode())
    return h.digest()


def record_digest(rec: Record) -> bytes:
    """sha256 of what a record carries: its payload, and its soft label when it has one."""
    d = payload_digest(rec.payload)
    if rec.soft is None:
        return d
    return hashlib.sha256(d + np.asarray(rec.soft, np.float32).tobytes()).digest()


def content_keys(sources: list[str], split: str, labels: list[str | None], digests: list[bytes]) -> bytes:
    """What the content hash takes for good rows of one split, in order: per row its source, split and label, each
    followed by a NUL, then its digest (the driver's tally; ingest workers make it for the rows they hashed)."""
    keys = [f"{s}\0{split}\0{lab}\0".encode() for s, lab in zip(sources, labels, strict=True)]
    return b"".join(k + d for k, d in zip(keys, digests, strict=True))


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (the name of a file when root is that file)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.name
    return rel.as_posix() if str(rel) != "." else path.name


def split_from_name(name: str, default: str | None = None) -> str:
    """Map a file or folder name to a split: train / val / test, else ``default`` or the name itself."""
    low = name.lower()
    for token, split in (
        ("train", "train"),
        ("t10k", "test"),
        ("valid", "val"),
        ("val", "val"),
        ("dev", "val"),
        ("test", "test"),
    ):
        if token in low:
            return split
    return default or low
