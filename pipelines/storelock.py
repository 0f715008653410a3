"""Inter-process locks for a local store's staging folders (``fcntl.flock`` on small lock files).

Four kinds of lock, on ``<store>/<dataset>/.staging/<key>.lock`` (the first two) and
``<store>/<dataset>/.locks/<key>.lock`` (the last two):

- an **exclusive** lock per keyed job (``build-<version>``): a second identical build waits for the first, then
  finds the version published ("up to date") or resumes its finished work;
- a **liveness** lock per ``.staging/<uuid>/`` folder (ingest, split): held while the folder is in use, so
  :func:`reclaim_stale` removes only folders whose writer is gone (killed or crashed: the kernel drops its locks);
  ``gc`` tries the same lock (and the keyed one) before it removes a staging folder;
- a **reader** lock per version a job derives from (``read-<version>``, shared): held by a running build or split
  from its first read to its publish, so ``rm`` (which takes it exclusively) refuses a version that is being read;
- a **tags** lock per dataset (``tags``): tag writes, ``rm`` and ``gc``'s removal of dangling tags take it, so a tag
  never lands on a version that is being removed.

``flock`` locks belong to the open file, so they vanish when the process dies, however it dies. Lock files of keyed
jobs are never deleted (deleting a lock file another process may be about to lock is a race); they are empty.
On filesystems without working ``flock`` (some network mounts) the locks still succeed but exclude nothing; the
store stays consistent there (publishing is a rename that a second identical publish loses harmlessly), but two
identical builds may then do the same work twice or disturb each other's work files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from pathlib import Path

LOCK_SUFFIX = ".lock"
#: staging folders younger than this are never reclaimed automatically, even when unlocked (seconds)
STALE_AFTER_S = 15 * 60


class Lock:
    """A held ``flock`` on one lock file; :meth:`release` (or garbage collection of the process) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __del__(self) -> None:  # a dropped Staging must not keep other processes waiting
        try:
            self.release()
        except OSError:
            pass


def acquire(path: Path, *, wait: bool = True, shared: bool = False) -> Lock | None:
    """Take the exclusive (``shared``: a shared) lock on ``path`` (created if missing); ``None`` when ``wait`` is
    false and it is taken.

    Raises ``OSError`` when the lock file cannot be created (read-only store, missing folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return Lock(path, fd)


def reclaim_stale(staging_root: Path, *, min_age_s: float = STALE_AFTER_S) -> list[str]:
    """Remove ``<uuid>/`` staging folders under ``staging_root`` left by writers that are gone.

    A folder is reclaimed when its liveness lock can be taken (no live process holds it) and it has not been
    modified for ``min_age_s`` seconds. Keyed build folders (``build-*``) hold finished work for a resume and are
    left alone. Returns the names removed. Never raises for a folder that vanishes or cannot be removed."""
    removed: list[str] = []
    try:
        entries = list(staging_root.iterdir())
    except OSError:
        return removed
    now = time.time()
    for d in entries:
        if d.name.startswith("build-") or d.suffix == LOCK_SUFFIX or not d.is_dir():
            continue
        try:
            if now - d.stat().st_mtime < min_age_s:
                continue
            lock = acquire(staging_root / f"{d.name}{LOCK_SUFFIX}", wait=False)
        except OSError:
            continue
        if lock is None:
            continue  # a live writer
        try:
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(d.name)
                (staging_root / f"{d.name}{LOCK_SUFFIX}").unlink(missing_ok=True)  # uuid keys are never reused
        finally:
            lock.release()
    return removed
