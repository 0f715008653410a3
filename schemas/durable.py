"""Durable local writes: fsync a file or a folder (the store's publish, checkpoints' atomic replace).

The lowest layer, so that ``generators`` (checkpoints) and ``pipelines`` (the store) share one implementation.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: str | Path) -> None:
    """Flush a file's bytes to disk. ``OSError`` when it cannot be opened or flushed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry inside folder ``path`` durable; best effort: a platform or filesystem without
    directory file descriptors (or one that refuses their fsync) is passed over silently."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
