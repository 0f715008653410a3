"""Two-image mixing kernels for mixup (``blend``) and cutmix (``paste_box``).

Papers: mixup (Zhang et al., 2018, arXiv:1710.09412), CutMix (Yun et al., 2019, arXiv:1905.04899).
Both images must have the same shape; the caller samples ``lam`` / the box and mixes the labels.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.dtype != np.uint8 or b.dtype != np.uint8 or a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two uint8 HxWxC arrays of one shape, got {a.shape} and {b.shape}")


@njit(cache=True)
def _blend_nb(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    out = np.empty_like(a)
    mu = 1.0 - lam
    for i in range(a.size):
        out[i] = np.uint8(np.floor(lam * a[i] + mu * b[i] + 0.5))
    return out


def blend(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """Mixup on uint8: ``floor(lam * a + (1 - lam) * b + 0.5)`` in float64 (round half up).

    ``lam`` must be in [0, 1], so the result is always within [0, 255] and needs no clipping; ``lam=1``
    returns ``a`` and ``lam=0`` returns ``b`` exactly.
    """
    _check_pair(a, b)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    fa, fb = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
    return _blend_nb(fa, fb, float(lam)).reshape(a.shape)


def blend_ref(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """Numpy reference of :func:`blend`."""
    lam = float(lam)
    mu = 1.0 - lam
    return np.floor(lam * a.astype(np.float64) + mu * b.astype(np.float64) + 0.5).astype(np.uint8)


def paste_box(a: np.ndarray, b: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Cutmix: a copy of ``a`` with rows ``y0:y1`` and columns ``x0:x1`` taken from ``b``.

    Plain numpy (a row-wise memcpy; numba has nothing to fuse here). Bounds are clipped to the image.
    """
    _check_pair(a, b)
    out = a.copy()
    out[y0:y1, x0:x1] = b[y0:y1, x0:x1]
    return out


def paste_box_ref(a: np.ndarray, b: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Mask-based reference of :func:`paste_box`."""
    h, w = a.shape[:2]
    rows = (np.arange(h) >= y0) & (np.arange(h) < y1)
    cols = (np.arange(w) >= x0) & (np.arange(w) < x1)
    mask = rows[:, None, None] & cols[None, :, None]
    return np.where(mask, b, a)
