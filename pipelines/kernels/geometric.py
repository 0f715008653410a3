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
AffineMap = tuple[float, float, float, float, float, float]


def _as_hwc(y: np.ndarray, channels: int) -> np.ndarray:
    return y.reshape(y.shape[0], y.shape[1], channels)


def affine_coeffs(
    h: int,
    w: int,
    *,
    angle: float = 0.0,
    scale: float = 1.0,
    tx: float = 0.0,
    ty: float = 0.0,
    shear_x: float = 0.0,
    shear_y: float = 0.0,
) -> AffineMap:
    """:func:`affine_matrix` as six plain floats ``(a, b, c, d, e, f)`` = ``[[a, b, c], [d, e, f]]``."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    r = math.radians(angle)
    cos, sin = math.cos(r) * scale, math.sin(r) * scale
    kx, ky = math.tan(math.radians(shear_x)), math.tan(math.radians(shear_y))
    # [[cos, sin], [-sin, cos]] @ [[1, kx], [ky, 1]]
    a, b = cos + sin * ky, cos * kx + sin
    d, e = -sin + cos * ky, -sin * kx + cos
    return (a, b, cx + tx - (a * cx + b * cy), d, e, cy + ty - (d * cx + e * cy))


def affine_matrix(h: int, w: int, **params: float) -> np.ndarray:
    """The 2x3 matrix that shears, rotates (degrees, counter-clockwise) and scales about the image centre,
    then translates by ``(tx, ty)`` pixels. Shears are angles in degrees. ``params``: those of :func:`affine_coeffs`
    (``angle``, ``scale``, ``tx``, ``ty``, ``shear_x``, ``shear_y``)."""
    m = affine_coeffs(h, w, **params)
    return np.array(m, dtype=np.float64).reshape(2, 3)


def flip_coeffs(h: int, w: int, axis: Literal["horizontal", "vertical"]) -> AffineMap:
    """The affine map of :func:`flip` (pixel ``(x, y)`` to ``(w - 1 - x, y)`` or ``(x, h - 1 - y)``)."""
    if axis == "horizontal":
        return (-1.0, 0.0, w - 1.0, 0.0, 1.0, 0.0)
    return (1.0, 0.0, 0.0, 0.0, -1.0, h - 1.0)


def compose_affine(outer: AffineMap, inner: AffineMap) -> AffineMap:
    """The map "``inner``, then ``outer``" (3x3 product ``outer @ inner`` of two 2x3 affine maps)."""
    a, b, c, d, e, f = outer
    p, q, r, s, t, u = inner
    return (a * p + b * s, a * q + b * t, a * r + b * u + c, d * p + e * s, d * q + e * t, d * r + e * u + f)


def warp_affine(
    x: np.ndarray,
    matrix: np.ndarray | Sequence[Sequence[float]] | AffineMap,
    *,
    fill_mode: FillMode = "constant",
    fill: int = 0,
    interpolation: Interpolation = "linear",
) -> np.ndarray:
    """``cv2.warpAffine`` to the same size; ``fill`` is used by ``fill_mode="constant"`` only.

    ``matrix`` is 2x3 or six floats (:func:`affine_coeffs`). RGB is warped as RGBA: OpenCV's 4-channel
    bilinear path is 2x+ its 3-channel one here, and gives the same bytes per channel (the conversions cost
    a few percent of that).
    """
    h, w, c = x.shape
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    flags = INTERPOLATIONS[interpolation]
    opts = {"flags": flags, "borderMode": BORDERS[fill_mode], "borderValue": (float(fill),) * 4}
    if c == 3 and flags == cv2.INTER_LINEAR:
        y = cv2.warpAffine(cv2.cvtColor(x, cv2.COLOR_RGB2RGBA), m, (w, h), **opts)
        return cv2.cvtColor(y, cv2.COLOR_RGBA2RGB)
    return _as_hwc(cv2.warpAffine(x, m, (w, h), **opts), c)


def warp_affine_ref(
    x: np.ndarray,
    matrix: np.ndarray | Sequence[Sequence[float]] | AffineMap,
    *,
    fill_mode: FillMode = "constant",
    fill: int = 0,
    interpolation: Interpolation = "linear",
) -> np.ndarray:
    """Reference of :func:`warp_affine`: one ``cv2.warpAffine`` per channel."""
    h, w, c = x.shape
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    opts = {"flags": INTERPOLATIONS[interpolation], "borderMode": BORDERS[fill_mode], "borderValue": (float(fill),) * 4}
    planes = [cv2.warpAffine(np.ascontiguousarray(x[:, :, i]), m, (w, h), **opts) for i in range(c)]
    return np.stack(planes, axis=2)


def flip(x: np.ndarray, axis: Literal["horizontal", "vertical", "both"]) -> np.ndarray:
    """Mirror left-right (``horizontal``), top-bottom (``vertical``) or both (a 180-degree turn)."""
    code = {"horizontal": 1, "vertical": 0, "both": -1}[axis]
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
