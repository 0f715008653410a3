"""Training-time streaming iterator over a published version: deterministic, resumable, distributed.

Scheme (see docs/streaming.md):
1. *Consumers*: ``world_size`` ranks x DataLoader workers; consumer ``c = rank * num_workers + worker``.
2. *Shard order*: a permutation of the shards seeded from ``SeedSequence([seed, STREAM_TAG, epoch])``
   (``shuffle=False``: storage order). With at least as many shards as consumers, consumer ``c`` owns the shards
   at positions ``c, c + C, ...``; otherwise every consumer walks all shards and keeps rows ``i % C == c``.
3. *Window shuffle*: each consumer streams its rows through a buffer of ``shuffle_window`` row indices, drawing
   from a generator seeded ``SeedSequence([seed, STREAM_TAG, epoch, c])``.
The whole per-epoch schedule is a list of (shard, row) computed from the manifest alone, so every sample is seen
exactly once per epoch across consumers, resuming is "skip the first ``seen`` entries", and only the shards the
next rows need are held in memory (a shard is dropped once its last scheduled row is out). Shards are read in a
background thread, checked against the manifest's sha256, and decoded into numpy batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from augsvc.errors import AugsvcError
from augsvc.hashing import sha256_bytes
from augsvc.store import Store

STREAM_TAG = 0x57E4
_VERIFIED: set[tuple] = set()  # (path, size, mtime_ns, sha256) of shards already hashed in this process


def _dist_defaults(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return (dist.get_rank() if rank is None else rank), (
                dist.get_world_size() if world_size is None else world_size
            )
    except ImportError:
        pass
    return rank or 0, world_size or 1


class Stream:
    """Iterable of batches (dict: column -> numpy array) over one version; see the module docstring."""

    def __init__(
        self,
        ref: str,
        *,
        store: str | Path | Store | None = None,
        batch_size: int = 32,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        worker: int = 0,
        num_workers: int = 1,
        columns: list[str] | None = None,
        split: str | None = None,
        recipe: Any = None,
        mix: dict | None = None,
        drop_last: bool = False,
        pad: bool = False,
        shuffle_window: int = 2048,
        prefetch: int = 2,
        decode_images: bool = True,
        one_hot: bool = False,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.dataset, self.version = self.store.resolve(ref)
        self.manifest = self.store.manifest(self.dataset, self.version)
        self.rank, self.world_size = _dist_defaults(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise AugsvcError(f"rank {self.rank} is not in [0, world_size={self.world_size})")
        if drop_last and pad:
            raise AugsvcError("choose drop_last or pad for uneven splits, not both")
        self.batch_size, self.seed, self.epoch, self.shuffle = batch_size, seed, epoch, shuffle
        self.worker, self.num_workers = worker, num_workers
        self.columns, self.split, self.mix = columns, split, mix
        self.drop_last, self.pad, self.window, self.prefetch = drop_last, pad, shuffle_window, prefetch
        self.decode_images, self.one_hot = decode_images, one_hot
        self.recipe = _load_recipe(recipe)
        self.seen = 0  # samples of this epoch already yielded by this consumer

    # -- schedule ---------------------------------------------------------------------------------------------
    @property
    def consumers(self) -> int:
        return self.world_size * self.num_workers

    @property
    def consumer(self) -> int:
        return self.rank * self.num_workers + self.worker

    def _shards(self) -> list[int]:
        shards = [i for i, s in enumerate(self.manifest.shards) if self.split is None or s.split in (None, self.split)]
        if self.shuffle:
            g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_TAG, self.epoch])))
            shards = [shards[i] for i in g.permutation(len(shards))]
        return shards

    def _rows_of(self, consumer: int) -> list[tuple[int, int]]:
        shards, C = self._shards(), self.consumers
        if len(shards) >= C:
            return [(s, r) for s in shards[consumer::C] for r in range(self.manifest.shards[s].rows)]
        flat = [(s, r) for s in shards for r in range(self.manifest.shards[s].rows)]
        return flat[consumer::C]

    def _window_shuffle(self, rows: list[tuple[int, int]], consumer: int) -> list[tuple[int, int]]:
        if not self.shuffle or self.window <= 1:
            return rows
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_TAG, self.epoch, consumer])))
        buf: list[tuple[int, int]] = []
        out = []
        for item in rows:
            buf.append(item)
            if len(buf) >= self.window:
                j = int(g.integers(0, len(buf)))
                buf[j], buf[-1] = buf[-1], buf[j]
                out.append(buf.pop())
        while buf:
            j = int(g.integers(0, len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            out.append(buf.pop())
        return out

    def schedule(self) -> list[tuple[int, int]]:
        """This consumer's (shard, row) order for the epoch (split filtering happens when rows are read)."""
        mine = self._window_shuffle(self._rows_of(self.consumer), self.consumer)
        if self.drop_last or self.pad:
            counts = [len(self._rows_of(c)) for c in range(self.consumers)]
            target = min(counts) if self.drop_last else max(counts)
            if len(mine) > target:
                mine = mine[:target]
            elif len(mine) < target and mine:
                mine = mine + [mine[i % len(mine)] for i in range(target - len(mine))]
        if self.drop_last:
            mine = mine[: len(mine) - len(mine) % self.batch_size]
        return mine

    # -- state ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"dataset": self.dataset, "version": self.version, "epoch": self.epoch, "seen": self.seen,
                "seed": self.seed, "consumers": self.consumers, "consumer": self.consumer,
                "batch_size": self.batch_size, "shuffle": self.shuffle}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        for key in ("version", "seed", "consumers", "consumer", "shuffle"):
            mine = self.state_dict()[key]
            if state.get(key) != mine:
                raise AugsvcError(
                    f"cannot resume: the saved stream has {key}={state.get(key)!r} but this one has {mine!r}; "
                    "resume with the same version, seed, shuffle and number of ranks x workers"
                )
        self.epoch, self.seen = int(state["epoch"]), int(state["seen"])

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, 0

    # -- reading ----------------------------------------------------------------------------------------------
    def _read_shard(self, i: int) -> pa.Table:
        info = self.manifest.shards[i]
        path = self.store.version_dir(self.dataset, self.version) / info.path
        try:
            st = path.stat()
            data = path.read_bytes()
        except OSError:
            raise AugsvcError(f"{self.dataset}@{self.version}: shard {info.path} is missing ({path})") from None
        key = (str(path), st.st_size, st.st_mtime_ns, info.sha256)
        if key not in _VERIFIED:  # hashed once per process (first epoch); later epochs only re-check size/mtime
            if len(data) != info.bytes or sha256_bytes(data) != info.sha256:
                raise AugsvcError(
                    f"{self.dataset}@{self.version}: shard {info.path} does not match its sha256 in the manifest "
                    "(modified or corrupt); run 'augsvc verify'"
                )
            _VERIFIED.add(key)
        skip = {"source", "lineage"} if self.columns is None else set()
        pf = pq.ParquetFile(pa.BufferReader(data))
        names = [n for n in pf.schema_arrow.names if n not in skip]
        if self.columns is not None:
            needed = set(self.columns) | {"sample_id", "label", "soft_label", "split", "image_format", "height",
                                          "width", "channels"}  # fmt: skip
            names = [n for n in names if n in needed]
        return pf.read(columns=names)

    def _batches(self) -> Iterator[dict]:
        sched = self.schedule()[self.seen :]
        remaining: dict[int, int] = {}
        for sh, _ in sched:
            remaining[sh] = remaining.get(sh, 0) + 1
        cache: dict[int, pa.Table] = {}
        index = self.seen // self.batch_size
        for start in range(0, len(sched), self.batch_size):
            part = sched[start : start + self.batch_size]
            if len(part) < self.batch_size and self.drop_last:
                return
            by_shard: dict[int, list[int]] = {}
            for sh, r in part:
                if sh not in cache:
                    cache[sh] = self._read_shard(sh)
                by_shard.setdefault(sh, []).append(r)
            order = list(by_shard)
            pieces = [cache[sh].take(pa.array(by_shard[sh], pa.int64())) for sh in order]
            table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
            # rows come grouped by shard; put them back in schedule order
            pos: dict[tuple[int, int], list[int]] = {}
            k = 0
            for sh in order:
                for r in by_shard[sh]:
                    pos.setdefault((sh, r), []).append(k)
                    k += 1
            perm = [pos[item].pop(0) for item in part]
            if perm != list(range(len(perm))):
                table = table.take(pa.array(perm, pa.int64()))
            for sh, _ in part:
                remaining[sh] -= 1
                if remaining[sh] == 0:
                    cache.pop(sh, None)
            if self.split is not None:
                table = table.filter(pc.equal(table["split"], self.split))
                if table.num_rows == 0:
                    continue
            yield self._collate(table, index)
            index += 1

    def _augment(self, sample_id: str, x: Any) -> Any:
        from pipelines.rng import sample_key
        from pipelines.runner import apply_stage_op

        for k, st in enumerate(self.recipe.stages):
            if st.kind != "op":
                continue
            g = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence([self.recipe.seed, STREAM_TAG, self.epoch, k, sample_key(sample_id)])
            ))  # fmt: skip
            x, _ = apply_stage_op(self.recipe, k, x, g, self.manifest.modality)
        return x

    def _images(self, table: pa.Table) -> Any:
        from pipelines import imagecodec

        fmts = set(table["image_format"].to_pylist())
        dims = set(
            zip(table["height"].to_pylist(), table["width"].to_pylist(), table["channels"].to_pylist(), strict=True)
        )
        blobs = table["image"].to_pylist()
        if fmts == {"raw"} and len(dims) == 1:
            h, w, c = dims.pop()
            return np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), h, w, c)
        hs, ws, cs = (table[k].to_pylist() for k in ("height", "width", "channels"))
        fs = table["image_format"].to_pylist()
        return [imagecodec.decode(b, f, h, w, c) for b, f, h, w, c in zip(blobs, fs, hs, ws, cs, strict=True)]

    def _collate(self, table: pa.Table, index: int) -> dict[str, Any]:
        n_cls = len(self.manifest.class_names)
        ids = table["sample_id"].to_pylist()
        out: dict[str, Any] = {"sample_id": np.array(ids, dtype=object)}
        if self.manifest.modality != "translation":
            out["label"] = table["label"].to_numpy().astype(np.int64)
        want = lambda c: self.columns is None or c in self.columns  # noqa: E731
        xs: Any = None
        key = None
        if self.manifest.modality == "image" and want("image") and self.decode_images:
            xs, key = self._images(table), "image"
        elif self.manifest.modality == "text":
            xs, key = table["text"].to_pylist(), "text"
        if xs is not None and self.recipe is not None:
            xs = [self._augment(sid, x) for sid, x in zip(ids, xs, strict=True)]
        if key == "image":
            stackable = isinstance(xs, np.ndarray) or len({x.shape for x in xs}) == 1
            out["image"] = (xs if isinstance(xs, np.ndarray) else np.stack(xs)) if stackable else xs
        elif key == "text":
            out["text"] = np.array(xs, dtype=object)
        if self.manifest.soft_labels or self.one_hot or self.mix:
            soft = np.zeros((table.num_rows, n_cls), np.float32)
            soft[np.arange(table.num_rows), out["label"]] = 1.0
            if self.manifest.soft_labels:
                for i, v in enumerate(table["soft_label"].to_pylist()):
                    if v is not None:
                        soft[i] = v
            out["soft_label"] = soft
        skip = {"image", "text", "soft_label", "label", "sample_id", "image_format", "height", "width", "channels",
                "lineage", "source", "split"}  # fmt: skip
        for c in table.column_names:
            if c not in skip and want(c):
                out[c] = table[c].to_numpy(zero_copy_only=False)
        if self.mix and "image" in out and isinstance(out["image"], np.ndarray):
            from pipelines.mixing import mix_batch

            g = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence([self.seed, STREAM_TAG, self.epoch, self.consumer, index, 1])
            ))  # fmt: skip
            out["image"], out["soft_label"], out["lam"] = mix_batch(out["image"], out["soft_label"], rng=g, **self.mix)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        q: queue.Queue = queue.Queue(maxsize=max(1, self.prefetch))
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for b in self._batches():
                    while not stop.is_set():
                        try:
                            q.put(b, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(done)
            except BaseException as e:  # noqa: BLE001  (re-raised in the consumer thread)
                q.put(e)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.seen += len(item["sample_id"])
                yield item
        finally:
            stop.set()


def stream(ref: str, **kwargs: Any) -> Stream:
    """``Stream(ref, **kwargs)``: batches of a version (see :class:`Stream`)."""
    return Stream(ref, **kwargs)


def _load_recipe(recipe: Any) -> Any:
    if recipe is None:
        return None
    from schemas.recipe import Recipe, load_recipe

    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


def as_torch_dataset(ref: str, **kwargs: Any) -> Any:
    """A ``torch.utils.data.IterableDataset`` of tensor batches; use ``DataLoader(ds, batch_size=None)``.

    Work is split across DataLoader workers (and ranks) as consumers of the same schedule.
    """
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    class TorchStream(IterableDataset):
        def __init__(self) -> None:
            self.kwargs = kwargs
            self.epoch = kwargs.pop("epoch", 0)

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            info = get_worker_info()
            worker, n = (info.id, info.num_workers) if info is not None else (0, 1)
            s = Stream(ref, epoch=self.epoch, worker=worker, num_workers=n, **self.kwargs)
            for b in s:
                yield {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) and v.dtype != object else v)
                       for k, v in b.items()}  # fmt: skip

    return TorchStream()


def to_ray_dataset(ref: str, store: str | Path | Store | None = None) -> Any:
    """The version as a Ray Dataset over its shards (for Ray Train's ``iter_torch_batches``)."""
    import ray.data

    s = store if isinstance(store, Store) else Store(store)
    ds, v = s.resolve(ref)
    m = s.manifest(ds, v)
    paths = [str(s.version_dir(ds, v) / sh.path) for sh in m.shards]
    return ray.data.read_parquet(paths, schema=pq.read_schema(paths[0]))
