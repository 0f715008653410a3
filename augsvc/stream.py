"""Training-time streaming iterator over a published version: deterministic, resumable, distributed.

Scheme (details and numbers in docs/streaming.md):

1. *Epoch order*: the eligible shards (all, or those of ``split``) in a permutation drawn from
   ``SeedSequence([STREAM_TAG, SHARD_ORDER, seed, epoch])`` (``shuffle=False``: storage order), their rows in
   storage order, give one global list of N (shard, row) entries, computed from the manifest alone.
2. *Consumers*: ``C = world_size x num_workers`` (ranks x DataLoader workers); consumer ``c = rank * num_workers
   + worker`` owns the contiguous range ``[c*N//C, (c+1)*N//C)`` of that list. So every sample is owned exactly
   once; a consumer gets whole shards plus at most two partial ones at its ends (with fewer shards than consumers,
   a shard is split by rows between consumers); ranges differ by at most one row.
3. *Shuffle*: by default (``shuffle_window=None``) the whole epoch order is permuted before it is cut between
   consumers (``SeedSequence([STREAM_TAG, GLOBAL, seed, epoch])``) when the split's shards total at most
   ``AUTO_SHUFFLE_BYTES`` (1 GiB): every batch is a uniform sample whatever the storage order, and each consumer
   keeps only its rows of every shard it reads. Larger splits, or ``shuffle_window=W``, use a window shuffle: a
   consumer cuts its range at shard boundaries into blocks of at least ``W`` rows (a short last block joins the one
   before) and permutes each block with ``SeedSequence([STREAM_TAG, WINDOW, seed, epoch, C, c, block])``; memory is
   one or two blocks plus ``prefetch`` shards.
4. *Uneven splits*: ``drop_last`` cuts every consumer to ``N//C`` rows and then to whole batches; ``pad`` repeats
   the consumer's first samples up to ``ceil(N/C)`` (flagged in the batch's ``padded`` column).
5. *Resume*: the order is a pure function of (version, seed, epoch, shuffle, window, C, c), so ``state_dict()``
   is just those plus the samples already yielded, and resuming skips them.

Every random seed list holds the stream tag, a purpose and each value as two 32-bit words, so no two (purpose,
seed, epoch, ...) tuples share a seed (unlike ``seed + epoch``); per-sample draws (augmentation, views) come from
:class:`augsvc.streamplan.SampleRngs` (Philox keyed by the draw and the sample). Shards are read in a background
thread; each read checks the shard's size and footer row count, and its sha256 on the first read of the file in
this process and whenever it changed since (``Store.open_shard``; remote stores: every read).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from augsvc.streamcols import META as _META
from augsvc.streamcols import decode_rows as _decode
from augsvc.streamcols import gather as _gather
from augsvc.streamcols import to_numpy
from augsvc.streamplan import AUGMENT, MIX, SHARD_ORDER, STREAM_TAG, Plan, SampleRngs, consumer_plan, stream_rng
from pipelines import storefs
from pipelines.store import Store
from schemas.errors import AugsvcError

READ_THREADS = 2  # shards read (hashed, decoded) at once; both hashing and Parquet decoding release the GIL
KEEP_BYTES = 2 << 30  # decoded shard columns one consumer keeps across epochs (JPEG shards decode to ~10x)
AUTO_SHUFFLE_BYTES = 1 << 30  # shuffle_window=None: a global shuffle while the split's shards total at most this
_MIN_WINDOW = 2048  # rows: the smallest window the automatic choice gives a split larger than AUTO_SHUFFLE_BYTES
MAX_BATCH_THREADS = 4  # threads decoding and augmenting the images of one batch (batch_threads=None: automatic)
_MIN_CHUNK = 8  # samples: a batch is split between threads only in chunks of at least this many
_NEVER_DEFAULT = {"source", "lineage", "split"}  # read only when named in ``columns``

__all__ = ["STREAM_TAG", "Stream", "TorchStream", "as_torch_dataset", "stream", "to_ray_dataset"]  # noqa: F822


def _dist_defaults(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Fill missing rank/world size from torch.distributed when it is initialised (never imports torch)."""
    import sys

    if (rank is None or world_size is None) and "torch" in sys.modules:
        dist = sys.modules["torch"].distributed
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    return (rank or 0), (world_size or 1)


EVAL_SPLITS = ("val", "test")


def has_teacher_logits(store: Store, dataset: str, version: str, _depth: int = 0) -> bool:
    """True when a teacher stage built this version or one of its ancestors (manifest ``parents``), i.e. when
    its ``teacher_logits`` column can hold anything but nulls. Unknown parents count as True (keep the column)."""
    if _depth > 50:
        return True
    try:
        m = store.manifest(dataset, version)
    except AugsvcError:
        return True
    stages = (m.definition.get("recipe") or {}).get("stages") or []
    if any(isinstance(st, dict) and st.get("teacher") for st in stages):
        return True
    for p in m.parents:
        ds, _, v = p.partition("@")
        if has_teacher_logits(store, ds, v, _depth + 1):
            return True
    return False


def default_split(manifest: Any, split: str | None) -> str | None:
    """The split a stream reads: ``split`` as given; ``"all"`` for every row (None); and when none was given
    over a version holding evaluation rows (``val``/``test``), ``"train"`` with a warning, so evaluation rows
    never reach a training loop unasked."""
    if split == "all":
        return None
    if split is not None:
        return split
    have = manifest.rows_per_split or {}
    if any(have.get(e) for e in EVAL_SPLITS) and have.get("train"):
        import warnings

        warnings.warn(
            f"{manifest.dataset}@{manifest.version} has evaluation splits ("
            + ", ".join(f"{k} {n}" for k, n in have.items())
            + "): streaming only split='train'; pass split='train' to silence this, or split='all' for every row",
            UserWarning,
            stacklevel=3,
        )
        return "train"
    return None


class Stream:
    """Iterable of batches (dict: column -> numpy array) over one version; see the module docstring.

    Batches hold ``sample_id`` (object array) always; ``label`` (int64, -1 where null); ``soft_label`` (N, K)
    float32 when the version has soft labels, ``one_hot`` is set or ``mix`` is given; the payload (``image``: uint8
    (N, H, W, C) when the batch shares one shape, else a list of HWC arrays; ``text``; ``src``/``tgt``; tabular
    feature columns); any other stored column (e.g. ``teacher_logits``); ``padded`` (bool) when ``pad`` is set;
    ``views`` ((V, N, H, W, C) uint8 or (V, N) text) when ``views=V`` >= 2: V independently augmented views of each
    sample from ``recipe`` (:mod:`augsvc.streamviews`; the payload column then stays as stored).
    ``columns`` limits the output to ``sample_id`` plus those names (``source``, ``lineage`` and ``split`` are only
    returned when named). ``split`` picks one split; ``"all"`` reads every row; left out over a version with
    ``val``/``test`` rows it means ``"train"`` (with a warning).
    ``worker``/``num_workers`` are filled in by :class:`TorchStream` per DataLoader worker. ``augment_epoch``
    (default ``epoch``) seeds the on-the-fly augmentation: a fixed value gives the same augmented view every epoch.
    ``curriculum`` (an :class:`augsvc.curriculum.Curriculum`) makes each epoch the easiest paced fraction of the
    split's rows.
    """

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
        shuffle_window: int | None = None,
        prefetch: int = 2,
        decode_images: bool = True,
        one_hot: bool = False,
        resize: tuple[int, int] | None = None,
        augment_epoch: int | None = None,
        curriculum: Any = None,
        views: int = 1,
        batch_threads: int | None = None,
        keep_shards: bool = True,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.dataset, self.version = self.store.resolve(ref)
        self.manifest = self.store.manifest(self.dataset, self.version)
        self.rank, self.world_size = _dist_defaults(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise AugsvcError(f"rank {self.rank} is not in [0, world_size={self.world_size})")
        if not 0 <= worker < num_workers:
            raise AugsvcError(f"worker {worker} is not in [0, num_workers={num_workers})")
        if drop_last and pad:
            raise AugsvcError("choose drop_last or pad for uneven splits, not both")
        if batch_size < 1 or (shuffle_window is not None and shuffle_window < 1) or prefetch < 1:
            raise AugsvcError("batch_size, shuffle_window and prefetch must be at least 1 (shuffle_window=None: auto)")
        if seed < 0 or epoch < 0:
            raise AugsvcError(f"seed and epoch must be >= 0 (got seed={seed}, epoch={epoch})")
        if batch_threads is not None and (not isinstance(batch_threads, int) or batch_threads < 1):
            raise AugsvcError(f"batch_threads must be an integer >= 1 (None: automatic), got {batch_threads!r}")
        split = default_split(self.manifest, split)
        if split is not None and self.manifest.rows_per_split and split not in self.manifest.rows_per_split:
            from schemas.suggest import did_you_mean

            have = ", ".join(self.manifest.rows_per_split)
            hint = did_you_mean(split, self.manifest.rows_per_split)
            raise AugsvcError(
                f"{self.dataset}@{self.version} has no split {split!r} (has {have})" + (f"; {hint}" if hint else "")
            )
        self.batch_size, self.seed, self.epoch, self.shuffle = batch_size, seed, epoch, shuffle
        self.worker, self.num_workers = worker, num_workers
        self.columns, self.split, self.mix = columns, split, mix
        self.drop_last, self.pad, self.prefetch = drop_last, pad, prefetch
        self.window = self._auto_window() if shuffle_window is None else int(shuffle_window)
        self.decode_images, self.one_hot = decode_images, one_hot
        self.resize = check_resize(resize)
        self.recipe, self.aug_stages = _load_recipe(recipe)
        self.augment_epoch = augment_epoch  # seeds on-the-fly augmentation (None: the epoch)
        self.curriculum = curriculum  # augsvc.curriculum.Curriculum: epoch order from easy to hard, paced
        from augsvc.streamviews import check_views

        self.views = check_views(views, self.aug_stages, mix, self.manifest.modality)  # 2+: contrastive views
        self.seen = 0  # samples of this epoch already yielded by this consumer
        # threads that decode and augment the images of one batch (None: the CPUs this process may use, shared
        # between the DataLoader workers of this machine, at most MAX_BATCH_THREADS)
        self.batch_threads = batch_threads or auto_batch_threads(num_workers)
        self._pool: Any = None  # a ThreadPoolExecutor while iterating with batch_threads > 1
        # global order: the whole shards this consumer read (their numpy columns, as checked when read), kept for
        # its next epochs; never filled in window order (splits over AUTO_SHUFFLE_BYTES or shuffle_window=W)
        self.keep_shards = bool(keep_shards)
        self._kept: dict[int, dict[str, Any]] = {}
        self._kept_bytes = 0  # decoded bytes in _kept (at most KEEP_BYTES)
        # a column of nulls is not data: teacher_logits only when a teacher stage made this version or an ancestor
        teacher = has_teacher_logits(self.store, self.dataset, self.version)
        self._skip = _NEVER_DEFAULT | (set() if teacher else {"teacher_logits"})
        self._split_rows: dict[int, np.ndarray] = {}  # shard -> rows of ``split`` (shards without a split tag)
        if self.mix and self.resize is None and self.manifest.modality == "image" and decode_images:
            sizes = image_sizes(self.store, self.dataset, self.version, self.manifest, split)
            if len(sizes) > 1:
                raise AugsvcError(several_sizes(f"{self.dataset}@{self.version}", sizes, "batch mixing"))

    # -- schedule ---------------------------------------------------------------------------------------------
    @property
    def consumers(self) -> int:
        return self.world_size * self.num_workers

    @property
    def consumer(self) -> int:
        return self.rank * self.num_workers + self.worker

    def _split_bytes(self) -> int:
        """Bytes of the shards that can hold rows of this stream's split."""
        return sum(s.bytes for s in self.manifest.shards if self.split is None or s.split in (None, self.split))

    @property
    def keeps_whole_shards(self) -> bool:
        """True when this consumer reads whole shards and keeps them for its next epochs: ``keep_shards``, the
        global order, and one consumer or the split's shards times the consumers within ``AUTO_SHUFFLE_BYTES``
        (several consumers then each hold every shard, not only their rows, so memory grows C times)."""
        if not self.keep_shards or self.window is not None:
            return False
        return self.consumers == 1 or self._split_bytes() * self.consumers <= AUTO_SHUFFLE_BYTES

    def _auto_window(self) -> int | None:
        """``shuffle_window=None``: None (a global shuffle) when the shards holding this split total at most
        ``AUTO_SHUFFLE_BYTES``, else the rows that fit in that many bytes (at least ``_MIN_WINDOW``)."""
        shards = [s for s in self.manifest.shards if self.split is None or s.split in (None, self.split)]
        total = sum(s.bytes for s in shards)
        if total <= AUTO_SHUFFLE_BYTES:
            return None
        rows = sum(s.rows for s in shards)
        return max(_MIN_WINDOW, int(rows * AUTO_SHUFFLE_BYTES / total))

    def _eligible_rows(self, i: int) -> np.ndarray | None:
        """Rows of shard ``i`` in this stream's split (None: all of them)."""
        info = self.manifest.shards[i]
        if self.split is None or info.split == self.split:
            return None
        if info.split is not None:
            return np.empty(0, np.int64)
        if i not in self._split_rows:  # untagged shard: read its split column once
            table = self.store.read_verified_shard(self.dataset, self.version, info, columns=["split"])
            col = table["split"].to_numpy(zero_copy_only=False)
            self._split_rows[i] = np.flatnonzero(col == self.split)
        return self._split_rows[i]

    def _order(self) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's global (shard, row) order over all consumers."""
        shards = list(range(len(self.manifest.shards)))
        if self.shuffle and self.curriculum is None:
            shards = [shards[i] for i in stream_rng(SHARD_ORDER, self.seed, self.epoch).permutation(len(shards))]
        sh, rw = [], []
        for i in shards:
            rows = self._eligible_rows(i)
            rows = np.arange(self.manifest.shards[i].rows, dtype=np.int64) if rows is None else rows
            sh.append(np.full(len(rows), i, np.int64))
            rw.append(rows)
        if not sh:
            sh, rw = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        if self.curriculum is not None:  # storage order -> the paced easy-to-hard subset (augsvc/curriculum.py)
            return self.curriculum.order(np.concatenate(sh), np.concatenate(rw), self.seed, self.epoch)
        return np.concatenate(sh), np.concatenate(rw)

    def plan(self) -> Plan:
        """This consumer's entries for the epoch (a pure function of the manifest and the stream's settings)."""
        g_shard, g_row = self._order()
        return consumer_plan(g_shard, g_row, self.consumers, self.consumer, window=self.window, shuffle=self.shuffle,
                             seed=self.seed, epoch=self.epoch, batch_size=self.batch_size, drop_last=self.drop_last,
                             pad=self.pad)  # fmt: skip

    def schedule(self) -> list[tuple[int, int]]:
        """This consumer's (shard, row) order for the epoch."""
        p = self.plan()
        return list(zip(p.shard.tolist(), p.row.tolist(), strict=True))

    def __len__(self) -> int:
        """Batches this consumer yields in a whole epoch."""
        return -(-len(self.plan().shard) // self.batch_size)

    # -- state ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Small JSON-able resume point: what fixes the order, plus the samples already yielded this epoch."""
        return {"dataset": self.dataset, "version": self.version, "epoch": self.epoch, "seen": self.seen,
                "seed": self.seed, "shuffle": self.shuffle, "shuffle_window": self.window, "split": self.split,
                "batch_size": self.batch_size, "drop_last": self.drop_last, "pad": self.pad,
                "world_size": self.world_size, "num_workers": self.num_workers, "rank": self.rank,
                "worker": self.worker, "curriculum": self.curriculum and self.curriculum.fingerprint}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``: the next batches are exactly those the saved stream had not yielded yet."""
        mine = self.state_dict()
        for key in ("version", "seed", "shuffle", "shuffle_window", "split", "batch_size", "drop_last", "pad",
                    "world_size", "num_workers", "rank", "worker", "curriculum"):  # fmt: skip
            if state.get(key) != mine[key]:
                raise AugsvcError(
                    f"cannot resume: the saved stream has {key}={state.get(key)!r} but this one has {mine[key]!r}; "
                    "the sample order depends on it, so resume with the same version, seed, shuffle, window, "
                    "split, batch settings and the same ranks x DataLoader workers (or start a new epoch)"
                )
        self.epoch, self.seen = int(state["epoch"]), int(state["seen"])

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning on the next iteration."""
        if epoch < 0:
            raise AugsvcError(f"epoch must be >= 0, got {epoch}")
        self.epoch, self.seen = epoch, 0

    # -- reading ----------------------------------------------------------------------------------------------
    def _read_columns(self) -> list[str] | None:
        if self.columns is None:
            return None
        want = set(self.columns) | {"sample_id"}
        if self.one_hot or self.mix or "soft_label" in want:
            want |= {"label", "soft_label"}
        if "image" in want:
            want |= set(_META)
        return sorted(want)

    def _read_shard(self, i: int, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Read, verify (``Store.open_shard``: size and footer rows, sha256 once per file state) and convert one
        shard to numpy columns (runs in the reader thread); ``rows`` (sorted, distinct) keeps only those rows, in
        that order."""
        import pyarrow as pa

        pf = self.store.open_shard(self.dataset, self.version, self.manifest.shards[i])
        wanted = self._read_columns()
        names = [n for n in pf.schema_arrow.names if (n in wanted if wanted else n not in self._skip)]
        table = pf.read(columns=names)
        if rows is not None:
            table = table.take(pa.array(rows, pa.int64()))
        return self._to_numpy(table)

    def _to_numpy(self, t: Any) -> dict[str, Any]:
        soft = self.manifest.soft_labels
        return to_numpy(t, len(self.manifest.class_names), decode_images=self.decode_images,
                        soft_labels=soft, want_soft=soft or self.one_hot or bool(self.mix))  # fmt: skip

    # -- iteration --------------------------------------------------------------------------------------------
    def _reader(self, plan: Plan, first_block: int, q: queue.Queue, stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        pool = ThreadPoolExecutor(min(self.prefetch, READ_THREADS), thread_name_prefix="augsvc-stream-read")
        whole_shards = self.keeps_whole_shards
        pending: deque = deque()
        try:
            for b in range(first_block, len(plan.bounds) - 1):
                for i, rows in plan.block_rows(b).items():
                    whole = whole_shards or len(rows) == self.manifest.shards[i].rows
                    keep = None if whole else rows  # a part: keep only those rows
                    if keep is None and i in self._kept:  # read, checked and decoded in an earlier epoch
                        f: Future = Future()
                        f.set_result(self._kept[i])
                    else:
                        f = pool.submit(self._read_shard, i, keep)
                    pending.append((b, i, f, keep))
                    if len(pending) >= self.prefetch:
                        b0, i0, f, keep = pending.popleft()
                        if not put((b0, i0, (keep, f.result()))):
                            return
            while pending:
                b0, i0, f, keep = pending.popleft()
                if not put((b0, i0, (keep, f.result()))):
                    return
            put(None)
        except BaseException as e:  # noqa: BLE001  (re-raised in the consuming thread)
            put(e)
        finally:
            for _, _, f, _ in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        plan = self.plan()
        n = len(plan.shard)
        if self.seen >= n:  # a finished epoch iterates again from its start
            self.seen = 0
        pos = self.seen
        first_block = int(np.searchsorted(plan.bounds, pos, side="right")) - 1
        keeping = self.keeps_whole_shards
        if not keeping:
            self._kept, self._kept_bytes = {}, 0
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        t = threading.Thread(target=self._reader, args=(plan, first_block, q, stop), daemon=True)
        t.start()
        if self.batch_threads > 1 and self.manifest.modality == "image" and self.decode_images:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.batch_threads, thread_name_prefix="augsvc-stream-batch")
        loaded: dict[int, dict[int, dict]] = {}  # block -> shard -> columns
        index = pos // self.batch_size
        try:
            while pos < n:
                end = min(pos + self.batch_size, n)
                last_block = int(np.searchsorted(plan.bounds, end - 1, side="right")) - 1
                while last_block not in loaded or len(loaded[last_block]) < len(plan.block_shards(last_block)):
                    item = q.get()
                    if isinstance(item, BaseException):
                        raise item
                    if item is None:
                        raise AugsvcError("internal: the shard reader stopped early")
                    b, i, cols = item
                    loaded.setdefault(b, {})[i] = cols
                    if keeping and cols[0] is None and i not in self._kept:  # a whole shard: needed next epoch
                        size = _nbytes(cols[1])
                        if self._kept_bytes + size <= KEEP_BYTES:  # decoded columns: bounded, the rest read again
                            self._kept[i] = cols[1]
                            self._kept_bytes += size
                batch = self._collate(plan, pos, end, loaded, index)
                for b in [b for b in loaded if plan.bounds[b + 1] <= end]:
                    del loaded[b]
                self.seen = pos = end
                index += 1
                yield batch
        finally:
            stop.set()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            # no reader thread (nor its pool, inside pyarrow) may outlive the iteration: one left running while the
            # interpreter exits right after a loop aborted it once ("terminate called without an active exception")
            t.join(timeout=2.0)

    def _collate(self, plan: Plan, start: int, end: int, loaded: dict, index: int) -> dict[str, Any]:
        shard, row = plan.shard[start:end], plan.row[start:end]
        blocks = np.searchsorted(plan.bounds, np.arange(start, end), side="right") - 1
        parts = []  # (positions in the batch, shard columns, rows)
        for b in np.unique(blocks).tolist():
            for i, (keep, cols) in loaded[b].items():
                where = np.flatnonzero((blocks == b) & (shard == i))
                if len(where):  # rows of the shard, or positions within the rows the reader kept
                    parts.append((where, cols, row[where] if keep is None else np.searchsorted(keep, row[where])))
        m = end - start
        out: dict[str, Any] = {}
        for name in parts[0][1]:
            if name in _META and self.decode_images and "image" in parts[0][1]:
                continue
            out[name] = _gather(name, parts, m)
        img = out.get("image")
        if self.decode_images and isinstance(img, np.ndarray) and img.dtype == object:
            meta = {k: _gather(k, parts, m) for k in _META}
            blobs = out["image"]
            imgs = self._chunked(lambda idx: _decode(blobs, meta, idx), list(range(m)))
            out["image"] = np.stack(imgs) if len({i.shape for i in imgs}) == 1 else imgs
        if self.pad:
            out["padded"] = plan.padded[start:end].copy()
        if self.resize is not None and out.get("image") is not None and self.decode_images:
            out["image"] = resize_batch(out["image"], self.resize)
        if self.views > 1:  # the payload stays as stored; ``views`` holds the augmented views (augsvc/streamviews.py)
            from augsvc.streamviews import add_views

            add_views(self, out)
        elif self.recipe is not None and self.aug_stages:
            self._augment(out)
        if self.mix and out.get("image") is not None and not isinstance(out["image"], np.ndarray):
            sizes = sorted({tuple(x.shape[:2]) for x in out["image"]})
            raise AugsvcError(several_sizes(f"batch {index} of {self.dataset}@{self.version}", sizes, "batch mixing"))
        if self.mix and isinstance(out.get("image"), np.ndarray):
            from pipelines.mixing import mix_batch

            g = stream_rng(MIX, self.seed, self.epoch, self.consumers, self.consumer, index)
            out["image"], out["soft_label"], out["lam"] = mix_batch(out["image"], out["soft_label"], rng=g, **self.mix)
        if self.columns is not None:
            keep = {"sample_id", *self.columns}
            out = {k: v for k, v in out.items() if k in keep or k in ("padded", "lam", "views")}
        return out

    def _augment(self, out: dict[str, Any]) -> None:
        """One augmented view per sample: each label-invariant op stage, sample ``s`` at stage ``k`` drawing from
        ``SampleRngs(AUGMENT, recipe seed, view epoch, k)(sample_key(s))`` (Philox keyed per sample; the keys and
        the stage ops are looked up once per batch)."""
        from pipelines.rng import sample_key
        from pipelines.stages.op import stage_op

        modality = self.manifest.modality
        key = {"image": "image", "text": "text", "translation": "src"}.get(modality)
        if key not in out:
            return
        view = self.epoch if self.augment_epoch is None else self.augment_epoch
        ops = [stage_op(self.recipe, k, modality) for k in self.aug_stages]

        def run(items: list) -> list:  # one chunk of (payload, sample key); its own generators (one per thread)
            stages = [(op, SampleRngs(AUGMENT, self.recipe.seed, view, k))
                      for op, k in zip(ops, self.aug_stages, strict=True)]  # fmt: skip
            ys = []
            for x, sk in items:
                for op, rngs in stages:
                    x, _ = op(x, rngs(sk))
                ys.append(x)
            return ys

        keys = [sample_key(sid) for sid in out["sample_id"].tolist()]
        ys = self._chunked(run, list(zip(out[key], keys, strict=True)))
        if key == "image":
            out[key] = np.stack(ys) if len({y.shape for y in ys}) == 1 else ys
        else:
            out[key] = np.array(ys, dtype=object)

    def _chunked(self, fn: Any, items: list) -> list:
        """``fn`` (a list -> a list of the same length) over ``items``: in ``batch_threads`` contiguous chunks on
        the batch pool while iterating an image stream (OpenCV decoding and the image kernels release the GIL),
        else in one call. The result, in order, does not depend on the number of threads."""
        k = min(self.batch_threads, len(items) // _MIN_CHUNK)
        if self._pool is None or k < 2:
            return fn(items)
        cuts = [len(items) * i // k for i in range(k + 1)]
        parts = self._pool.map(fn, [items[a:b] for a, b in zip(cuts, cuts[1:], strict=False)])
        return [y for part in parts for y in part]


def auto_batch_threads(num_workers: int) -> int:
    """``batch_threads=None``: the CPUs this process may use divided between ``num_workers`` DataLoader workers,
    between 1 and ``MAX_BATCH_THREADS``."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_BATCH_THREADS, cpus // max(1, num_workers)))


def check_resize(resize: Any) -> tuple[int, int] | None:
    """``resize`` as (height, width) of positive ints, or None; AugsvcError otherwise."""
    if resize is None:
        return None
    try:
        h, w = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise AugsvcError(f"resize must be (height, width), got {resize!r}") from None
    if h < 1 or w < 1:
        raise AugsvcError(f"resize must be positive, got {resize!r}")
    return h, w


def resize_batch(images: Any, size: tuple[int, int]) -> np.ndarray:
    """A batch of HWC images (an (N, H, W, C) array or a list of arrays of any sizes) as one (N, h, w, C) array."""
    from schemas import imagecodec

    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:3] == size:
        return images
    out = [imagecodec.resize(np.asarray(x), *size) for x in images]
    return np.stack(out) if out else np.zeros((0, *size, 3), np.uint8)


def image_sizes(store: Store, dataset: str, version: str, manifest: Any, split: str | None) -> list[tuple[int, int]]:
    """The distinct (height, width) of a version's images (of ``split``, when given), from those two columns."""
    sizes: set[tuple[int, int]] = set()
    for info in manifest.shards:
        if split is not None and info.split not in (None, split):
            continue
        cols = ["height", "width"] + (["split"] if info.split is None and split is not None else [])
        t = store.read_shard(dataset, version, info.path, columns=cols)
        h, w = t["height"].to_numpy(), t["width"].to_numpy()
        if "split" in t.column_names:
            keep = t["split"].to_numpy(zero_copy_only=False) == split
            h, w = h[keep], w[keep]
        sizes.update(zip(h.tolist(), w.tolist(), strict=True))
        if len(sizes) > 1:
            break
    return sorted(sizes)


def several_sizes(where: str, sizes: list, what: str) -> str:
    """The one-line refusal for images of several sizes where one size is needed."""
    shown = ", ".join(f"{h}x{w}" for h, w in sizes[:3])
    return (
        f"{where} holds images of several sizes ({shown}); {what} needs one size: pass resize=(H, W) to the stream "
        "(train config: 'resize: [H, W]'), or ingest with --resize HxW"
    )


def stream(ref: str, **kwargs: Any) -> Stream:
    """``Stream(ref, **kwargs)``: batches of a version (see :class:`Stream`)."""
    return Stream(ref, **kwargs)


def _load_recipe(recipe: Any) -> tuple[Any, list[int]]:
    """The recipe and the indices of its stages that run on the fly: streamable kinds (op) whose ops keep labels
    (mix, generator and teacher stages are skipped)."""
    if recipe is None:
        return None, []
    from pipelines.recipes import load_recipe
    from pipelines.stages import kind_of
    from pipelines.stages.op import label_invariant

    r = load_recipe(recipe)
    keep = [k for k in range(len(r.stages)) if kind_of(r, k).streamable and label_invariant(r.stages[k].built)]
    return r, keep


def __getattr__(name: str) -> Any:
    if name == "TorchStream":  # lives in stream_torch so that importing this module does not import torch
        from augsvc.stream_torch import TorchStream

        return TorchStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def as_torch_dataset(ref: str, **kwargs: Any) -> Any:
    """``TorchStream(ref, **kwargs)``: a ``torch.utils.data.IterableDataset`` of tensor batches."""
    from augsvc.stream_torch import TorchStream

    return TorchStream(ref, **kwargs)


def to_ray_dataset(ref: str, store: str | Path | Store | None = None) -> Any:
    """The version as a Ray Dataset over its shards (for Ray Train's ``iter_torch_batches``)."""
    import ray.data

    s = store if isinstance(store, Store) else Store(store)
    ds, v = s.resolve(ref)
    m = s.manifest(ds, v)
    if not m.shards:
        raise AugsvcError(f"{ds}@{v} has no shards")
    refs = [s.shard_ref(ds, v, sh.path) for sh in m.shards]
    fs = storefs.resolve(refs[0])[0]
    paths = [storefs.resolve(r)[1] for r in refs]
    return ray.data.read_parquet(paths, filesystem=fs, schema=storefs.read_schema(refs[0]))


def _nbytes(cols: dict[str, Any]) -> int:
    """Bytes held by one shard's decoded columns (numpy arrays; object arrays by their items)."""
    total = 0
    for v in cols.values():
        if isinstance(v, np.ndarray):
            total += v.nbytes
            if v.dtype == object:  # e.g. images of several shapes, texts: count what each item holds
                total += sum(_item_bytes(x) for x in v.flat)
    return total


def _item_bytes(x: Any) -> int:
    if isinstance(x, np.ndarray):
        return x.nbytes
    return len(x) if isinstance(x, (str, bytes)) else 8
