"""Random-generator derivation: every random choice comes from ``SeedSequence([seed, stage, copy, key])``.

``key`` is derived from the row's stable ``sample_id`` (never from shard, batch or worker), so the output of a
stage is the same whatever the sharding or the number of workers.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_key(sample_id: str) -> int:
    """A 64-bit integer key from a sample id (first 8 bytes of its blake2b digest)."""
    return int.from_bytes(hashlib.blake2b(sample_id.encode(), digest_size=8).digest(), "little")


def rng_for(seed: int, stage: int, copy: int, sample_id: str) -> np.random.Generator:
    """The generator for one (recipe seed, stage index, copy index, sample) draw."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stage, copy, sample_key(sample_id)])))
