"""The epoch plan of a stream: which (shard, row) entries each consumer reads, in which order, in which blocks.

Pure functions of the manifest's order and the stream's settings, seeded by :func:`stream_rng`: never by worker,
thread or timing (see ``docs/streaming.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.errors import AugsvcError

STREAM_TAG = 0x57E4
SHARD_ORDER, WINDOW, AUGMENT, MIX = 1, 2, 3, 4  # purposes of the seed lists
GLOBAL = 6  # the whole-epoch permutation (5 is augsvc.curriculum's)


def _words(purpose: int, values: tuple[int, ...]) -> list[int]:
    """``[STREAM_TAG, purpose, lo(v0), hi(v0), ...]``: every value as two 32-bit words (an injective list)."""
    words = [STREAM_TAG, purpose]
    for v in values:
        v = int(v)
        if not 0 <= v < 1 << 64:
            raise AugsvcError(f"stream seeds, epochs and keys are integers in [0, 2**64), got {v}")
        words += [v & 0xFFFFFFFF, v >> 32]
    return words


def stream_rng(purpose: int, *values: int) -> np.random.Generator:
    """``Generator(PCG64(SeedSequence([STREAM_TAG, purpose, lo(v0), hi(v0), ...])))``: one seed per value tuple."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(_words(purpose, values))))


class SampleRngs:
    """Per-sample generators of one draw (purpose and values, e.g. recipe seed, epoch, stage), keyed by each
    sample's 64-bit key, without a ``SeedSequence`` per sample.

    Sample ``key`` draws from Philox-4x64 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3",
    the counter-based generator of numpy and JAX) with the 128-bit key ``(base, key)`` and counter 0, where
    ``base`` is the first 64-bit word of ``SeedSequence([STREAM_TAG, purpose, lo(v0), hi(v0), ...])``. So every
    sample of a draw has its own key (its stream depends on nothing but the draw and the sample key: not on its
    batch, position, worker or rank), and one bit generator is re-keyed per sample (a state assignment, about 5 us,
    instead of about 100 us for a seeded ``PCG64``). ``rngs(key)`` returns the one shared ``Generator`` positioned
    at the start of that sample's stream: finish drawing for one sample before asking for the next.

    >>> rngs = SampleRngs(3, 0, 0, 1)
    >>> a = rngs(42).random(); b = rngs(43).random()
    >>> a == rngs(42).random() and a != b
    True
    """

    __slots__ = ("base", "_bits", "_gen", "_state", "_key")

    def __init__(self, purpose: int, *values: int) -> None:
        self.base = int(np.random.SeedSequence(_words(purpose, values)).generate_state(1, np.uint64)[0])
        self._bits = np.random.Philox(counter=0, key=0)
        self._gen = np.random.Generator(self._bits)
        self._key = np.array([self.base, 0], np.uint64)
        self._state = {
            "bit_generator": "Philox",
            "state": {"counter": np.zeros(4, np.uint64), "key": self._key},
            "buffer": np.zeros(4, np.uint64),
            "buffer_pos": 4,
            "has_uint32": 0,
            "uinteger": 0,
        }

    def __call__(self, key: int) -> np.random.Generator:
        self._key[1] = key
        self._bits.state = self._state  # copied in: counter 0, empty buffers
        return self._gen


@dataclass
class Plan:
    """One consumer's epoch: entries (shard, row, padded) in order, cut into blocks of whole shards."""

    shard: np.ndarray  # int64 shard index per entry
    row: np.ndarray  # int64 row within the shard
    padded: np.ndarray  # bool
    bounds: list[int]  # block b covers entries [bounds[b], bounds[b+1])
    total: int  # rows of the epoch over all consumers (N)

    def block_shards(self, b: int) -> list[int]:
        s = self.shard[self.bounds[b] : self.bounds[b + 1]]
        return list(dict.fromkeys(s.tolist()))

    def block_rows(self, b: int) -> dict[int, np.ndarray]:
        """Shard -> the sorted distinct rows block ``b`` takes from it (what a reader keeps of that shard)."""
        s, e = self.bounds[b], self.bounds[b + 1]
        sh, rw = self.shard[s:e], self.row[s:e]
        order = np.lexsort((rw, sh))
        sh, rw = sh[order], rw[order]
        out: dict[int, np.ndarray] = {}
        cuts = np.flatnonzero(np.diff(sh)) + 1
        for a, z in zip([0, *cuts.tolist()], [*cuts.tolist(), len(sh)], strict=True):
            if z > a:
                out[int(sh[a])] = np.unique(rw[a:z])
        return out


def consumer_plan(
    g_shard: np.ndarray,
    g_row: np.ndarray,
    consumers: int,
    consumer: int,
    *,
    window: int | None,
    shuffle: bool,
    seed: int,
    epoch: int,
    batch_size: int,
    drop_last: bool,
    pad: bool,
) -> Plan:
    """Consumer ``consumer`` of ``consumers``: its contiguous range of the epoch's global (shard, row) order, then
    cut or padded.

    ``window=None`` (global shuffle): with ``shuffle``, the whole global order is permuted first by
    ``stream_rng(GLOBAL, seed, epoch)``, so every consumer's range is a uniform sample of the epoch whatever the
    storage order (class-sorted shards included), and the range is one block. ``window=W``: the range is cut in
    blocks of whole shards of at least ``W`` entries (a shorter last block joins the one before it), each permuted by
    ``stream_rng(WINDOW, seed, epoch, C, c, block)``."""
    C, c = consumers, consumer
    n = len(g_shard)
    lo, hi = c * n // C, (c + 1) * n // C
    if window is None:
        if shuffle:
            p = stream_rng(GLOBAL, seed, epoch).permutation(n)
            g_shard, g_row = g_shard[p], g_row[p]
        shard, row = g_shard[lo:hi].copy(), g_row[lo:hi].copy()
        bounds = [0, len(shard)] if len(shard) else [0]
        shuffle = False  # already uniform
    else:
        shard, row = g_shard[lo:hi], g_row[lo:hi]
        bounds, start = [0], 0
        cuts = np.flatnonzero(np.diff(shard)) + 1  # shard boundaries inside the range
        for cut in [*cuts.tolist(), len(shard)]:
            if cut - start >= window or cut == len(shard):
                if cut > bounds[-1]:
                    bounds.append(cut)
                start = cut
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < window:  # no short tail block of one or two shards
            del bounds[-2]
    if shuffle:
        for b in range(len(bounds) - 1):
            s, e = bounds[b], bounds[b + 1]
            p = stream_rng(WINDOW, seed, epoch, C, c, b).permutation(e - s) + s
            shard[s:e], row[s:e] = shard[p], row[p]
    padded = np.zeros(len(shard), bool)
    if drop_last:
        keep = n // C
        keep -= keep % batch_size
        shard, row, padded = shard[:keep], row[:keep], padded[:keep]
        bounds = [min(b, keep) for b in bounds]
        bounds = [b for i, b in enumerate(bounds) if i == 0 or b > bounds[i - 1]]
    elif pad and n and len(shard) < -(-n // C):
        extra = -(-n // C) - len(shard)
        src_s, src_r = (shard, row) if len(shard) else (g_shard, g_row)
        idx = np.arange(extra) % len(src_s) if len(shard) else (np.arange(extra) + c) % n
        shard = np.concatenate([shard, src_s[idx]])
        row = np.concatenate([row, src_r[idx]])
        padded = np.concatenate([padded, np.ones(extra, bool)])
        bounds.append(len(shard))
    return Plan(shard, row, padded, bounds, n)
