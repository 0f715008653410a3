"""``TorchStream``: a :class:`augsvc.stream.Stream` as a ``torch.utils.data.IterableDataset`` (imports torch;
``augsvc.stream`` loads this module only when asked for it, so importing the stream does not import torch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from augsvc.stream import Stream, _dist_defaults
from schemas.errors import AugsvcError


def _worker_progress(batches: int, per_worker: list[int]) -> list[int]:
    """Batches each worker has delivered after ``batches`` in-order DataLoader batches (round robin, skipping
    exhausted workers), starting from worker 0."""
    done = [0] * len(per_worker)
    while batches > 0 and any(d < t for d, t in zip(done, per_worker, strict=True)):
        for w, t in enumerate(per_worker):
            if batches and done[w] < t:
                done[w] += 1
                batches -= 1
    return done


class TorchStream(IterableDataset):
    """Tensor batches for ``DataLoader(ds, batch_size=None, num_workers=W)``: each DataLoader worker is one
    consumer (see the module docstring); rank and world size come from torch.distributed when initialised.

    Resume: ``ds.state_dict(batches_consumed, num_workers=W)`` after the loop consumed that many batches, and
    ``ds.load_state_dict(state)`` on a fresh dataset before building the new DataLoader (same W)."""

    def __init__(self, ref: str, **kwargs: Any) -> None:
        rank, world = _dist_defaults(kwargs.pop("rank", None), kwargs.pop("world_size", None))
        self.ref, self.epoch, self.kwargs = (
            ref,
            kwargs.pop("epoch", 0),
            {**kwargs, "rank": rank, "world_size": world},
        )
        self._resume: dict | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._resume = epoch, None

    def _stream(self, worker: int, num_workers: int) -> Stream:
        return Stream(self.ref, epoch=self.epoch, worker=worker, num_workers=num_workers, **self.kwargs)

    def _worker_stream(self, worker: int, num_workers: int) -> Stream:
        """The stream this process iterates as consumer ``worker``, kept across epochs (a persistent DataLoader
        worker, or the main process with W = 0) so that its kept shards serve the next epochs; set to this epoch's
        start."""
        s = self.__dict__.setdefault("_streams", {}).pop((worker, num_workers), None)  # in use until given back
        s = s or self._stream(worker, num_workers)
        s.set_epoch(self.epoch)
        return s

    def __getstate__(self) -> dict:  # a DataLoader's worker starts without the parent's streams and their shards
        return {k: v for k, v in self.__dict__.items() if k != "_streams"}

    def state_dict(self, batches: int, num_workers: int) -> dict:
        base = self._resume or {"offset": 0, "seen": [0] * max(1, num_workers)}
        w = max(1, num_workers)
        if len(base["seen"]) != w:
            raise AugsvcError(f"cannot resume: state saved with {len(base['seen'])} workers, asked for {w}")
        streams = [self._stream(r, w) for r in range(w)]
        left = [-(-(len(s.plan().shard) - base["seen"][r]) // s.batch_size) for r, s in enumerate(streams)]
        rot = [(base["offset"] + j) % w for j in range(w)]  # loader worker j plays role rot[j]
        done = _worker_progress(batches, [left[r] for r in rot])
        seen = list(base["seen"])
        for j, r in enumerate(rot):
            seen[r] = min(len(streams[r].plan().shard), seen[r] + done[j] * streams[r].batch_size)
        s0 = streams[0].state_dict()
        fixed = {k: s0[k] for k in ("version", "seed", "world_size", "rank", "batch_size")}
        offset = (base["offset"] + batches) % w
        return {**fixed, "epoch": self.epoch, "num_workers": w, "seen": seen, "offset": offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self._resume = int(state["epoch"]), dict(state)

    def __iter__(self) -> Iterator[dict[str, Any]]:

        info = get_worker_info()
        worker, n = (info.id, info.num_workers) if info is not None else (0, 1)
        role = worker
        s = self._worker_stream(worker, n)
        if self._resume is not None:
            st = self._resume
            if st["num_workers"] != n or st["world_size"] != s.world_size:
                raise AugsvcError(
                    f"cannot resume: the state was saved with {st['world_size']} ranks x {st['num_workers']} "
                    f"DataLoader workers, this loader has {s.world_size} x {n}; use the same layout"
                )
            role = (worker + st["offset"]) % n
            s = self._worker_stream(role, n)
            s.load_state_dict({**s.state_dict(), "epoch": self.epoch, "seen": st["seen"][role]})
            if s.seen >= len(s.plan().shard):
                return
        try:
            for b in s:
                yield {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) and v.dtype != object else v)
                       for k, v in b.items()}  # fmt: skip
        finally:  # given back for the next epoch (a second iteration meanwhile made its own)
            self.__dict__.setdefault("_streams", {})[(role, n)] = s
