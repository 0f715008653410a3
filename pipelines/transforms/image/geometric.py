"""Geometric image ops: flips, affine warps (rotate, shift, zoom, shear, affine) and random resized crop.

Warps keep the image size; uncovered pixels follow ``fill_mode``: ``constant`` (``fill``), ``reflect``
(mirror, edge not repeated) or ``nearest`` (edge repeated). Angles are degrees, positive counter-clockwise;
shifts are fractions of the width/height. Grey and RGB images are handled alike.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field

from pipelines.kernels import affine_matrix, flip, resized_crop, warp_affine
from pipelines.kernels.geometric import FillMode, Interpolation
from pipelines.transforms.base import register
from pipelines.transforms.image._common import Fill, ImageOp, float_range

Side = Annotated[int, Field(ge=1, le=16384)]


@register
class HFlip(ImageOp):
    """Mirror left-right."""

    name: ClassVar[str] = "hflip"
    p: float = Field(0.5, ge=0.0, le=1.0)

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return flip(x, "horizontal")


@register
class VFlip(ImageOp):
    """Mirror top-bottom."""

    name: ClassVar[str] = "vflip"
    p: float = Field(0.5, ge=0.0, le=1.0)

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return flip(x, "vertical")


class _WarpOp(ImageOp):
    """An op whose params describe one affine warp about the image centre."""

    fill_mode: FillMode = "constant"
    fill: Fill = 0
    interpolation: Interpolation = "linear"

    def _warp(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        h, w = x.shape[:2]
        m = affine_matrix(
            h,
            w,
            angle=params.get("angle", 0.0),
            scale=params.get("scale", 1.0),
            tx=params.get("dx", 0.0) * w,
            ty=params.get("dy", 0.0) * h,
            shear_x=params.get("shear_x", 0.0),
            shear_y=params.get("shear_y", 0.0),
        )
        return warp_affine(x, m, fill_mode=self.fill_mode, fill=self.fill, interpolation=self.interpolation)

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return self._warp(x, params)


@register
class Rotate(_WarpOp):
    """Rotate by an angle drawn from ``[-limit, limit]`` degrees."""

    name: ClassVar[str] = "rotate"
    limit: float = Field(30.0, ge=0.0, le=180.0, description="max absolute angle in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"angle": float(rng.uniform(-self.limit, self.limit))}


@register
class Shift(_WarpOp):
    """Translate by fractions ``dx, dy`` of the width/height, each drawn from ``[-limit, limit]``."""

    name: ClassVar[str] = "shift"
    limit: float = Field(0.1, ge=0.0, le=1.0, description="max absolute shift as a fraction of the size")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {
            "dx": float(rng.uniform(-self.limit, self.limit)),
            "dy": float(rng.uniform(-self.limit, self.limit)),
        }


@register
class Zoom(_WarpOp):
    """Scale about the centre by a factor drawn from ``scale_range`` (> 1 zooms in)."""

    name: ClassVar[str] = "zoom"
    scale_range: float_range(gt=0.0, le=10.0) = (0.9, 1.1)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"scale": float(rng.uniform(*self.scale_range))}


@register
class Shear(_WarpOp):
    """Shear along x and along y by angles each drawn from ``[-limit, limit]`` degrees."""

    name: ClassVar[str] = "shear"
    limit: float = Field(10.0, ge=0.0, le=80.0, description="max absolute shear angle in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {
            "shear_x": float(rng.uniform(-self.limit, self.limit)),
            "shear_y": float(rng.uniform(-self.limit, self.limit)),
        }


@register
class Affine(_WarpOp):
    """Rotate, scale, shift and shear in one warp (one resampling, so sharper than chaining them)."""

    name: ClassVar[str] = "affine"
    rotate_limit: float = Field(15.0, ge=0.0, le=180.0, description="max absolute angle in degrees")
    scale_range: float_range(gt=0.0, le=10.0) = (0.9, 1.1)
    shift_limit: float = Field(0.0625, ge=0.0, le=1.0, description="max absolute shift, fraction of size")
    shear_limit: float = Field(0.0, ge=0.0, le=80.0, description="max absolute shear angle in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {
            "angle": float(rng.uniform(-self.rotate_limit, self.rotate_limit)),
            "scale": float(rng.uniform(*self.scale_range)),
            "dx": float(rng.uniform(-self.shift_limit, self.shift_limit)),
            "dy": float(rng.uniform(-self.shift_limit, self.shift_limit)),
            "shear_x": float(rng.uniform(-self.shear_limit, self.shear_limit)),
            "shear_y": float(rng.uniform(-self.shear_limit, self.shear_limit)),
        }


@register
class RandomResizedCrop(ImageOp):
    """Crop a random area fraction ``scale_range`` with aspect ratio ``ratio_range``, resized to ``size``.

    The output shape is ``(size[0], size[1], C)`` whatever the input size (Inception-style crop: up to
    10 tries, then the largest centred crop whose ratio fits ``ratio_range``).
    """

    name: ClassVar[str] = "random_resized_crop"
    size: tuple[Side, Side] = Field((224, 224), description="output (height, width)")
    scale_range: float_range(gt=0.0, le=1.0) = (0.08, 1.0)
    ratio_range: float_range(gt=0.0) = (3 / 4, 4 / 3)
    interpolation: Interpolation = "linear"

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        h, w = x.shape[:2]
        area = h * w
        log_lo, log_hi = math.log(self.ratio_range[0]), math.log(self.ratio_range[1])
        for _ in range(10):
            target = area * rng.uniform(*self.scale_range)
            ratio = math.exp(rng.uniform(log_lo, log_hi))
            cw = int(round(math.sqrt(target * ratio)))
            ch = int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                y0 = int(rng.integers(0, h - ch + 1))
                x0 = int(rng.integers(0, w - cw + 1))
                return {"y0": y0, "x0": x0, "h": ch, "w": cw}
        ratio = w / h
        if ratio < self.ratio_range[0]:
            cw, ch = w, max(1, int(round(w / self.ratio_range[0])))
        elif ratio > self.ratio_range[1]:
            ch, cw = h, max(1, int(round(h * self.ratio_range[1])))
        else:
            cw, ch = w, h
        return {"y0": (h - ch) // 2, "x0": (w - cw) // 2, "h": ch, "w": cw}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return resized_crop(x, params["y0"], params["x0"], params["h"], params["w"], self.size, self.interpolation)
