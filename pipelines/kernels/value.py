"""Per-value intensity kernels: the fused gain/offset kernel and lookup tables.

``value_affine`` computes, for every pixel value ``v`` of channel ``c``::

    out = clip(floor(v * gain + offsets[c] + 0.5), 0, 255)

(round half up, float64 arithmetic). Brightness (``gain=1``), contrast about a mean ``m``
(``offset = (1 - gain) * m``) and per-channel shifts are all this one pass over the bytes, through a
256-entry table per channel. When every channel has the same offset, one table and ``cv2.LUT`` (SIMD) is
the fastest; with per-channel offsets the numba kernel (one flat pass, channels unrolled) beats ``cv2.LUT``
with a 3-channel table, albumentations' ``RGBShift`` and numpy (see ``bench/image_ops.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numba import njit


def _check_image(x: np.ndarray) -> None:
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"expected a uint8 HxWxC array, got {x.dtype} with shape {x.shape}")


@njit(cache=True)
def _value_affine_nb(flat: np.ndarray, channels: int, gain: float, offsets: np.ndarray) -> np.ndarray:
    lut = np.empty((channels, 256), np.uint8)
    for c in range(channels):
        for v in range(256):
            y = np.floor(v * gain + offsets[c] + 0.5)
            lut[c, v] = np.uint8(min(max(y, 0.0), 255.0))
    out = np.empty_like(flat)
    if channels == 3:
        lut0, lut1, lut2 = lut[0], lut[1], lut[2]
        for i in range(flat.size // 3):
            j = 3 * i
            out[j] = lut0[flat[j]]
            out[j + 1] = lut1[flat[j + 1]]
            out[j + 2] = lut2[flat[j + 2]]
    elif channels == 1:
        lut0 = lut[0]
        for i in range(flat.size):
            out[i] = lut0[flat[i]]
    else:
        for i in range(flat.size):
            c = i % channels
            out[i] = lut[c, flat[i]]
    return out


@njit(cache=True)
def _table_nb(gain: float, offset: float) -> np.ndarray:
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = np.uint8(min(max(np.floor(v * gain + offset + 0.5), 0.0), 255.0))
    return lut


def _offsets(offsets: float | Sequence[float] | np.ndarray, channels: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(offsets, dtype=np.float64).reshape(-1), (channels,))
    return np.ascontiguousarray(arr)


def value_affine(x: np.ndarray, gain: float, offsets: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """``clip(floor(x * gain + offsets[c] + 0.5))``; ``offsets`` is a scalar or one per channel."""
    _check_image(x)
    c = x.shape[2]
    if isinstance(offsets, int | float):
        uniform, offs = True, None
    else:
        offs = _offsets(offsets, c)
        uniform = c == 1 or bool((offs == offs[0]).all())
    if uniform:  # one table: cv2.LUT's SIMD path beats the numba loop
        offset = float(offsets) if offs is None else float(offs[0])
        return cv2.LUT(x, _table_nb(float(gain), offset)).reshape(x.shape)
    flat = np.ascontiguousarray(x).reshape(-1)
    return _value_affine_nb(flat, c, float(gain), offs).reshape(x.shape)


def value_affine_ref(x: np.ndarray, gain: float, offsets: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Numpy reference of :func:`value_affine`."""
    offs = _offsets(offsets, x.shape[2])
    y = np.floor(x.astype(np.float64) * float(gain) + offs + 0.5)
    return np.clip(y, 0.0, 255.0).astype(np.uint8)


def gamma_lut(gamma: float) -> np.ndarray:
    """The 256-entry table ``round_half_up(255 * (v / 255) ** gamma)``."""
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(np.floor(255.0 * v**gamma + 0.5), 0, 255).astype(np.uint8)


def apply_lut(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map every value of every channel through one 256-entry uint8 table (``cv2.LUT``)."""
    _check_image(x)
    return cv2.LUT(x, lut).reshape(x.shape)


def apply_lut_ref(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Numpy reference of :func:`apply_lut`."""
    return lut[x]
