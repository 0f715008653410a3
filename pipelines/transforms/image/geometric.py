"""Geometric image ops: flips, affine warps (rotate, shift, zoom, shear, affine) and random resized crop.

Warps keep the image size; uncovered pixels follow ``fill_mode``: ``constant`` (``fill``), ``reflect``
(mirror, edge not repeated) or ``nearest`` (edge repeated). Angles are degrees, positive counter-clockwise;
shifts are fractions of the width/height. Grey and RGB images are handled alike.

In a ``sequence``, consecutive flips and warps run as one: their maps are multiplied into one 2x3 matrix and
applied by one ``cv2.warpAffine`` (one resampling; flips alone stay an exact ``cv2.flip``). Warps join only
when they share ``fill_mode``, ``fill`` and ``interpolation``; flips join anything.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field

from pipelines.kernels import affine_coeffs, compose_affine, flip, flip_coeffs, resized_crop, warp_affine
from pipelines.kernels.geometric import AffineMap, FillMode, Interpolation
from pipelines.transforms.base import Fuser, Op, register
from pipelines.transforms.image._common import Fill, ImageOp, float_range

Side = Annotated[int, Field(ge=1, le=16384)]


class _Geometry(Fuser):
    """Fuses flips and affine warps. State: ``(matrix, border, flips)``: the composed map (six floats), the
    warps' ``(fill_mode, fill, interpolation)`` (``None`` while there are only flips) and the net
    ``(horizontal, vertical)`` flip parity (``None`` once a warp joined)."""

    def start(self, op: Op, params: dict[str, Any], x: np.ndarray) -> tuple:
        h, w = x.shape[:2]
        flips = op.flips if isinstance(op, _Flip) else None
        return op.coeffs(params, h, w), op.border, flips

    def extend(self, state: tuple, op: Op, params: dict[str, Any], x: np.ndarray) -> tuple | None:
        m, border, flips = state
        if op.border is not None:
            if border is not None and border != op.border:
                return None
            border = op.border
        h, w = x.shape[:2]
        m = compose_affine(op.coeffs(params, h, w), m)
        if flips is not None and isinstance(op, _Flip):
            flips = (flips[0] ^ op.flips[0], flips[1] ^ op.flips[1])
        else:
            flips = None
        return m, border, flips

    def run(self, state: tuple, x: np.ndarray, owned: bool) -> np.ndarray:
        m, border, flips = state
        if flips is not None:
            axis = {(1, 0): "horizontal", (0, 1): "vertical", (1, 1): "both"}.get(flips)
            if axis is None:  # the flips cancel out
                return x if owned else x.copy()
            return flip(x, axis)
        fill_mode, fill, interpolation = border
        return warp_affine(x, m, fill_mode=fill_mode, fill=fill, interpolation=interpolation)


GEOMETRY = _Geometry()


class _Flip(ImageOp):
    fuser: ClassVar[Fuser | None] = GEOMETRY
    samples_pixels: ClassVar[bool] = False
    flips: ClassVar[tuple[int, int]] = (0, 0)
    axis: ClassVar[str] = ""
    p: float = Field(0.5, ge=0.0, le=1.0)

    @property
    def border(self) -> None:
        return None

    def coeffs(self, params: dict[str, Any], h: int, w: int) -> AffineMap:
        return flip_coeffs(h, w, self.axis)

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return flip(x, self.axis)


@register
class HFlip(_Flip):
    """Mirror left-right."""

    name: ClassVar[str] = "hflip"
    axis: ClassVar[str] = "horizontal"
    flips: ClassVar[tuple[int, int]] = (1, 0)


@register
class VFlip(_Flip):
    """Mirror top-bottom."""

    name: ClassVar[str] = "vflip"
    axis: ClassVar[str] = "vertical"
    flips: ClassVar[tuple[int, int]] = (0, 1)


class _WarpOp(ImageOp):
    """An op whose params describe one affine warp about the image centre."""

    fuser: ClassVar[Fuser | None] = GEOMETRY
    samples_pixels: ClassVar[bool] = False
    fill_mode: FillMode = "constant"
    fill: Fill = 0
    interpolation: Interpolation = "linear"

    @property
    def border(self) -> tuple[str, int, str]:
        return self.fill_mode, self.fill, self.interpolation

    def coeffs(self, params: dict[str, Any], h: int, w: int) -> AffineMap:
        return affine_coeffs(
            h,
            w,
            angle=params.get("angle", 0.0),
            scale=params.get("scale", 1.0),
            tx=params.get("dx", 0.0) * w,
            ty=params.get("dy", 0.0) * h,
            shear_x=params.get("shear_x", 0.0),
            shear_y=params.get("shear_y", 0.0),
        )

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        h, w = x.shape[:2]
        m = self.coeffs(params, h, w)
        return warp_affine(x, m, fill_mode=self.fill_mode, fill=self.fill, interpolation=self.interpolation)


def _uniforms(rng: np.random.Generator, bounds: tuple[tuple[float, float], ...]) -> list[float]:
    """``[rng.uniform(lo, hi) for lo, hi in bounds]`` with one generator call (the same values)."""
    u = rng.random(len(bounds)).tolist()
    return [lo + (hi - lo) * v for (lo, hi), v in zip(bounds, u, strict=True)]


@register
class Rotate(_WarpOp):
    """Rotate by an angle drawn from ``[-limit, limit]`` degrees."""

    name: ClassVar[str] = "rotate"
    limit: float = Field(30.0, ge=0.0, le=180.0, description="max absolute angle in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"angle": -self.limit + 2.0 * self.limit * rng.random()}


@register
class Shift(_WarpOp):
    """Translate by fractions ``dx, dy`` of the width/height, each drawn from ``[-limit, limit]``."""

    name: ClassVar[str] = "shift"
    limit: float = Field(0.1, ge=0.0, le=1.0, description="max absolute shift as a fraction of the size")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        dx, dy = _uniforms(rng, ((-self.limit, self.limit),) * 2)
        return {"dx": dx, "dy": dy}


@register
class Zoom(_WarpOp):
    """Scale about the centre by a factor drawn from ``scale_range`` (> 1 zooms in)."""

    name: ClassVar[str] = "zoom"
    scale_range: float_range(gt=0.0, le=10.0) = (0.9, 1.1)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        lo, hi = self.scale_range
        return {"scale": lo + (hi - lo) * rng.random()}


@register
class Shear(_WarpOp):
    """Shear along x and along y by angles each drawn from ``[-limit, limit]`` degrees."""

    name: ClassVar[str] = "shear"
    limit: float = Field(10.0, ge=0.0, le=80.0, description="max absolute shear angle in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        shear_x, shear_y = _uniforms(rng, ((-self.limit, self.limit),) * 2)
        return {"shear_x": shear_x, "shear_y": shear_y}


@register
class Affine(_WarpOp):
    """Rotate, scale, shift and shear in one warp (one resampling, so sharper than chaining them)."""

    name: ClassVar[str] = "affine"
    rotate_limit: float = Field(15.0, ge=0.0, le=180.0, description="max absolute angle in degrees")
    scale_range: float_range(gt=0.0, le=10.0) = (0.9, 1.1)
    shift_limit: float = Field(0.0625, ge=0.0, le=1.0, description="max absolute shift, fraction of size")
    shear_limit: float = Field(0.0, ge=0.0, le=80.0, description="max absolute shear angle in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        r, t, s = self.rotate_limit, self.shift_limit, self.shear_limit
        u = _uniforms(rng, ((-r, r), self.scale_range, (-t, t), (-t, t), (-s, s), (-s, s)))
        return dict(zip(("angle", "scale", "dx", "dy", "shear_x", "shear_y"), u, strict=True))


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
        # Scalar ``rng.random()`` draws (``uniform`` and ``integers`` cost several times more per call, as much as
        # the resize itself at 128 px); ``lo + (hi - lo) * random()`` is exactly what ``rng.uniform`` computes.
        h, w = x.shape[:2]
        area = h * w
        (s0, s1), log_lo = self.scale_range, math.log(self.ratio_range[0])
        log_span = math.log(self.ratio_range[1]) - log_lo
        for _ in range(10):
            target = area * (s0 + (s1 - s0) * rng.random())
            ratio = math.exp(log_lo + log_span * rng.random())
            cw = int(round(math.sqrt(target * ratio)))
            ch = int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                y0 = int(rng.random() * (h - ch + 1))
                x0 = int(rng.random() * (w - cw + 1))
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
