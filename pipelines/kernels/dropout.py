"""Box filling for coarse dropout (cutout)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fill_boxes(x: np.ndarray, boxes: Sequence[Sequence[int]], fill: int, out: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``x`` with every box ``[y0, y1, x0, x1]`` (half-open, clipped to the image) set to ``fill``.

    With ``out=x`` the boxes are filled in place (for an intermediate image nobody else holds). Plain numpy
    slice assignment (a memset per row); a numba loop does not beat it.
    """
    if out is None:
        out = x.copy()
    elif out is not x:
        np.copyto(out, x)
    for y0, y1, x0, x1 in boxes:
        out[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = fill
    return out


def fill_boxes_ref(x: np.ndarray, boxes: Sequence[Sequence[int]], fill: int) -> np.ndarray:
    """Mask-based reference of :func:`fill_boxes`."""
    h, w = x.shape[:2]
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    mask = np.zeros((h, w), bool)
    for y0, y1, x0, x1 in boxes:
        mask |= (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    return np.where(mask[:, :, None], np.uint8(fill), x)
