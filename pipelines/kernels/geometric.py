"""Geometric kernels: thin, typed wrappers over OpenCV that keep the HxWxC shape for grey images.

OpenCV drops the channel axis of HxWx1 arrays; every function here puts it back, so callers always get
uint8 HxWxC out for uint8 HxWxC in. Fill modes: ``constant`` (a fill value), ``reflect`` (mirror without
repeating the edge pixel, ``cv2.BORDER_REFLECT_101``) and ``nearest`` (repeat the edge, ``BORDER_REPLICATE``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

FillMode = Literal["constant", "reflect", "nearest"]
Interpolation = Literal["linear", "nearest"]

BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT_101,
    "nearest": cv2.BORDER_REPLICATE,
}
INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def _as_hwc(y: np.ndarray, channels: int) -> np.ndarray:
    return y.reshape(y.shape[0], y.shape[1], channels)


def affine_matrix(
    h: int,
    w: int,
    *,
    angle: float = 0.0,
    scale: float = 1.0,
    tx: float = 0.0,
    ty: float = 0.0,
    shear_x: float = 0.0,
    shear_y: float = 0.0,
) -> np.ndarray:
    """The 2x3 matrix that shears, rotates (degrees, counter-clockwise) and scales about the image centre,
    then translates by ``(tx, ty)`` pixels. Shears are angles in degrees."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a = math.radians(angle)
    cos, sin = math.cos(a) * scale, math.sin(a) * scale
    rot = np.array([[cos, sin], [-sin, cos]])
    shear = np.array([[1.0, math.tan(math.radians(shear_x))], [math.tan(math.radians(shear_y)), 1.0]])
    lin = rot @ shear
    centre = np.array([cx, cy])
    offset = centre + np.array([tx, ty]) - lin @ centre
    return np.hstack([lin, offset[:, None]])


def warp_affine(
    x: np.ndarray,
    matrix: np.ndarray | Sequence[Sequence[float]],
    *,
    fill_mode: FillMode = "constant",
    fill: int = 0,
    interpolation: Interpolation = "linear",
) -> np.ndarray:
    """``cv2.warpAffine`` to the same size; ``fill`` is used by ``fill_mode="constant"`` only."""
    h, w, c = x.shape
    y = cv2.warpAffine(
        x,
        np.asarray(matrix, dtype=np.float64),
        (w, h),
        flags=INTERPOLATIONS[interpolation],
        borderMode=BORDERS[fill_mode],
        borderValue=(float(fill),) * 4,
    )
    return _as_hwc(y, c)


def flip(x: np.ndarray, axis: Literal["horizontal", "vertical"]) -> np.ndarray:
    """Mirror left-right (``horizontal``) or top-bottom (``vertical``)."""
    code = 1 if axis == "horizontal" else 0
    return _as_hwc(cv2.flip(x, code), x.shape[2])


def resized_crop(
    x: np.ndarray,
    y0: int,
    x0: int,
    h: int,
    w: int,
    size: tuple[int, int],
    interpolation: Interpolation = "linear",
) -> np.ndarray:
    """Crop ``[y0:y0+h, x0:x0+w]`` and resize it to ``size = (height, width)``."""
    crop = x[y0 : y0 + h, x0 : x0 + w]
    out_h, out_w = size
    if crop.shape[:2] == (out_h, out_w):
        return crop.copy()
    y = cv2.resize(crop, (out_w, out_h), interpolation=INTERPOLATIONS[interpolation])
    return _as_hwc(y, x.shape[2])


def box_blur(x: np.ndarray, ksize: int) -> np.ndarray:
    """Mean filter over a ``ksize`` x ``ksize`` window, reflecting at the borders."""
    y = cv2.blur(x, (ksize, ksize), borderType=cv2.BORDER_REFLECT_101)
    return _as_hwc(y, x.shape[2])
