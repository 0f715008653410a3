"""Content hashing: canonical JSON, version ids and file digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` so that equal values always give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def version_id(definition: dict[str, Any]) -> str:
    """Content address of a version: 16 hex digits of sha256 over its definition.

    >>> version_id({"a": 1}) == version_id({"a": 1})
    True
    """
    return hashlib.sha256(canonical_json(definition)).hexdigest()[:16]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks (model checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
