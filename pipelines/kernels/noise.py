"""Additive Gaussian noise from a counter-based generator: one fused pass, the same bytes on every CPU.

Normal deviates come from inverting the standard normal CDF at 2^16 levels: the value for a 16-bit code ``u`` is
``Phi^-1((u + 0.5) / 2^16)`` (``statistics.NormalDist.inv_cdf``, float32; tails end at +-4.17 sigma), so one 64-bit
draw gives four deviates. The draws are SplitMix64 (Steele, Lea and Flood 2014, "Fast splittable pseudorandom number
generators") of ``seed + (k + 1) * 0x9E3779B97F4A7C15`` for the k-th group of four values: a pure function of the seed
and the position, with integer arithmetic only. The pixel is ``clip(floor(x + z * std + 0.5), 0, 255)`` in float32,
as before. numpy's ``standard_normal`` alone costs more than albumentations' whole ``GaussNoise`` (which draws with
``cv2.randn`` from OpenCV's global generator); this pass is several times faster than either.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@lru_cache(maxsize=1)
def normal_table() -> np.ndarray:
    """(65536,) float32: ``Phi^-1((u + 0.5) / 65536)`` for every 16-bit code ``u`` (pure Python arithmetic)."""
    from statistics import NormalDist

    inv = NormalDist().inv_cdf
    return np.array([inv((u + 0.5) / 65536.0) for u in range(65536)], dtype=np.float32)


@njit(cache=True)
def _noise_nb(x: np.ndarray, seed: np.uint64, std: np.float32, per_channel: bool, table: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    out = np.empty((h, w, c), np.uint8)
    flat = x.reshape(-1)
    res = out.reshape(-1)
    half = np.float32(0.5)
    golden = np.uint64(0x9E3779B97F4A7C15)
    groups = c if per_channel else 1
    n = h * w * groups  # deviates needed
    word = np.uint64(0)
    for i in range(n):
        if i % 4 == 0:
            z = seed + np.uint64(i // 4 + 1) * golden
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            word = z ^ (z >> np.uint64(31))
        code = (word >> np.uint64(16 * (i % 4))) & np.uint64(0xFFFF)
        delta = table[code] * std + half
        if per_channel:
            v = np.float32(flat[i]) + delta
            v = np.floor(v)
            res[i] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
        else:
            for ch in range(c):
                v = np.floor(np.float32(flat[i * c + ch]) + delta)
                res[i * c + ch] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
    return out


def gaussian_noise(x: np.ndarray, seed: int, std: float, per_channel: bool = True) -> np.ndarray:
    """``x`` plus zero-mean Gaussian noise of standard deviation ``std`` (pixel values), a new uint8 HWC array.

    ``seed`` (0 <= seed < 2^64) fixes every deviate; ``per_channel=False`` adds one deviate per pixel to all of its
    channels. Deviate ``i`` (in C order over (H, W, C), or (H, W) when shared) is ``normal_table()[code_i]`` with
    ``code_i`` the ``i % 4``-th 16-bit word of SplitMix64 draw ``i // 4`` (see the module docstring).
    """
    x = np.ascontiguousarray(x)
    return _noise_nb(x, np.uint64(seed), np.float32(std), bool(per_channel), normal_table())


def gaussian_noise_ref(x: np.ndarray, seed: int, std: float, per_channel: bool = True) -> np.ndarray:
    """numpy reference of :func:`gaussian_noise` (uint64 arithmetic wraps as in the kernel)."""
    h, w, c = x.shape
    n = h * w * (c if per_channel else 1)
    k = np.arange(1, (n + 3) // 4 + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + k * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    codes = ((z[:, None] >> (np.arange(4, dtype=np.uint64) * np.uint64(16))) & np.uint64(0xFFFF)).reshape(-1)[:n]
    delta = normal_table()[codes] * np.float32(std) + np.float32(0.5)
    delta = delta.reshape(h, w, c if per_channel else 1)
    y = np.floor(x.astype(np.float32) + delta)
    return np.clip(y, 0, 255).astype(np.uint8)
