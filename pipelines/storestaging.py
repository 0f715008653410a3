"""Staging folders: the shards of a version that is not visible yet, each tallied as it is added.

``Store.staging`` / ``Store.staging_keyed`` open one; ``Store.publish`` writes its tally into the manifest and
makes it visible. A job adds shards four ways (a table, bytes, a file a worker wrote in the folder, a build's
work file or input shard) and never names a shard file or builds a ``ShardInfo`` itself.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import storefs, storelock
from pipelines.storeshards import ShardCount, Tally, write_parquet
from schemas.errors import AugsvcError
from schemas.hashing import sha256_bytes
from schemas.manifest import ShardInfo


@dataclass
class Staging:
    """Shards being written for a version that is not visible yet, and their running :class:`Tally`.

    Every way in (a table, bytes, a file a worker wrote, a work file or input shard of a build) goes through
    :meth:`_add`, which tallies the shard from its footer and ``label``/``split``/``src`` columns; ``Store.publish``
    writes that tally into the manifest, so the job that wrote the rows never counts them."""

    dir: Path
    shards: list[ShardInfo] = field(default_factory=list)
    lock: storelock.Lock | None = field(default=None, repr=False)
    #: a one-off ``<uuid>`` folder: its lock file goes when the folder is done (keyed lock files stay)
    one_off: bool = False
    tally: Tally = field(default_factory=Tally, repr=False)

    def _next(self) -> str:
        return f"shards/part-{len(self.shards):05d}.parquet"

    def _add(
        self,
        rel: str,
        source: Any,
        rows: int | None,
        split: str | None,
        sha256: str,
        nbytes: int,
        derive: bool = False,
        counted: ShardCount | None = None,
    ) -> ShardInfo:
        """Tally the shard now at ``rel`` (``source``: its bytes or path; ``counted``: its tally, made where its bytes
        were written) and list it. ``rows``/``split`` are the writer's claims: a footer or ``split`` column that
        disagrees is a bug in the writer (``AugsvcError``). With ``derive`` the shard's split is the one split of its
        rows."""
        if counted is not None:
            self.tally.merge(counted.tally)
            n, one = counted.rows, counted.split
        else:
            n, one = self.tally.add_parquet(source, split, derive_split=derive)
        if rows is not None and rows != n:
            raise AugsvcError(f"staged shard {rel} holds {n} rows, its writer said {rows}; nothing was published")
        if split is not None and one != split:
            raise AugsvcError(f"staged shard {rel} holds rows of another split than {split!r}; nothing was published")
        info = ShardInfo(path=rel, rows=n, bytes=nbytes, sha256=sha256, split=one if derive else split)
        self.shards.append(info)
        return info

    def write_shard(self, table: pa.Table, split: str | None = None) -> ShardInfo:
        """Write a table as the next ``part-NNNNN.parquet``; ``split``: the shard's split (every row's)."""
        return self.add_shard_bytes(write_parquet(table), table.num_rows, split)

    def add_shard_bytes(self, data: bytes, rows: int | None = None, split: str | None = None) -> ShardInfo:
        """Write shard bytes produced elsewhere (a worker, :func:`write_parquet`) as the next shard."""
        rel = self._next()
        (self.dir / rel).write_bytes(data)
        return self._add(rel, data, rows, split, sha256_bytes(data), len(data))

    def adopt_file(
        self,
        path: str | Path,
        rows: int | None,
        sha256: str,
        nbytes: int,
        split: str | None = None,
        counted: ShardCount | None = None,
    ) -> ShardInfo:
        """Move a shard a worker wrote inside this staging folder into place as the next ``part-NNNNN.parquet``.

        The hash is the worker's; ``Store.publish`` re-hashes every shard before the version becomes visible. So does
        ``counted``, the worker's :func:`count_shard` of the same bytes (the same tally code, run in parallel instead
        of reading the shard back here); without it the shard is read back and tallied here."""
        rel = self._next()
        storefs.rename("adopt", path, self.dir / rel)
        return self._add(rel, str(self.dir / rel), rows, split, sha256, nbytes, counted=counted)

    def add_file(self, ref: str) -> ShardInfo | None:
        """Make a Parquet file the next shard: moved when it lies inside this staging folder (a build's work
        file), else copied (an input shard passed through, a work file in a remote store). Its split is the one
        split of its rows; a file without rows is skipped (None)."""
        data = storefs.read_bytes(ref)
        if pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows == 0:
            return None
        rel = self._next()
        if storefs.is_local(ref) and Path(ref).is_relative_to(self.dir):
            storefs.rename("adopt", ref, self.dir / rel)
        else:
            (self.dir / rel).write_bytes(data)
        return self._add(rel, data, None, None, sha256_bytes(data), len(data), derive=True)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Let other processes take this folder's lock (it stays on disk for a resume unless discarded)."""
        if self.lock is not None:
            if self.one_off and self.lock.held:
                self.lock.path.unlink(missing_ok=True)
            self.lock.release()
