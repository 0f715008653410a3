"""Colour twist: brightness, contrast, saturation and hue as one 3x3 colour matrix plus an offset, in one pass.

The method of NVIDIA DALI's ``ColorTwist``/``Hsv`` operators: hue is a rotation of the chroma plane of YIQ space and
saturation a scale of it, ``M = T^-1 diag(1, s, s) R(theta) T`` with ``T`` the RGB -> YIQ matrix (NTSC); contrast
``a`` about the mean ``m`` plus brightness ``b`` is ``a x + (1 - a) m + b``, which commutes with ``M`` on grey
(``M`` keeps grey pixels grey), so the whole twist is ``y = a M x + c``. Each output channel is
``floor(M[k,0] r + M[k,1] g + M[k,2] b + c + 0.5)`` clipped to [0, 255], in float32 in that order, so the numba kernel
and its numpy twin agree bit for bit on every CPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def twist_matrix(
    contrast: float = 1.0, mean: float = 0.0, brightness: float = 0.0, saturation: float = 1.0, hue_shift: float = 0.0
) -> tuple[np.ndarray, float]:
    """(3x3 float32 matrix, float32 offset) of the twist: ``contrast`` about ``mean`` (pixel values), ``brightness``
    (a fraction of 255, added), ``saturation`` (chroma scale) and ``hue_shift`` (degrees of chroma rotation)."""
    t = math.radians(hue_shift)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(t), -math.sin(t)], [0.0, math.sin(t), math.cos(t)]])
    m = _YIQ2RGB @ np.diag([1.0, saturation, saturation]) @ rot @ _RGB2YIQ
    offset = (1.0 - contrast) * mean + brightness * 255.0
    return (contrast * m).astype(np.float32), float(np.float32(offset))


@njit(cache=True)
def _twist_nb(flat: np.ndarray, m: np.ndarray, c: np.float32, out: np.ndarray) -> None:
    half, lo, hi = np.float32(0.5), np.float32(0.0), np.float32(255.0)
    for i in range(flat.size // 3):
        j = 3 * i
        r, g, b = np.float32(flat[j]), np.float32(flat[j + 1]), np.float32(flat[j + 2])
        for k in range(3):
            v = np.floor(m[k, 0] * r + m[k, 1] * g + m[k, 2] * b + c + half)
            out[j + k] = np.uint8(min(max(v, lo), hi))


def color_twist(x: np.ndarray, matrix: np.ndarray, offset: float, out: np.ndarray | None = None) -> np.ndarray:
    """Apply a (3, 3) float32 ``matrix`` and ``offset`` to every RGB pixel of uint8 HWC ``x`` (C = 3), rounding half
    up and clipping; into ``out`` when given (not ``x`` itself: in place is several times slower, the loads and
    stores alias). Raises ValueError for other channel counts."""
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"color_twist needs an RGB image (H, W, 3), got shape {x.shape}")
    x = np.ascontiguousarray(x)
    if out is None or out is x or np.shares_memory(out, x) or not out.flags.c_contiguous:
        out = np.empty_like(x)
    _twist_nb(x.reshape(-1), np.ascontiguousarray(matrix, np.float32), np.float32(offset), out.reshape(-1))
    return out


def color_twist_ref(x: np.ndarray, matrix: np.ndarray, offset: float) -> np.ndarray:
    """numpy reference of :func:`color_twist` (the same float32 operations in the same order)."""
    m = np.asarray(matrix, np.float32)
    r, g, b = (x[..., k].astype(np.float32) for k in range(3))
    chans = [np.floor(m[k, 0] * r + m[k, 1] * g + m[k, 2] * b + np.float32(offset) + np.float32(0.5)) for k in range(3)]
    return np.clip(np.stack(chans, axis=-1), 0, 255).astype(np.uint8)
