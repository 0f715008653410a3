"""Occlusion, noise and blur ops: cutout (coarse dropout), gaussian_noise, blur. Grey and RGB alike."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import field_validator

from pipelines.kernels import box_blur, fill_boxes, gaussian_noise
from pipelines.transforms.base import register
from pipelines.transforms.image._common import Fill, ImageOp, float_range, int_range


@register
class Cutout(ImageOp):
    """Fill a number of rectangular holes (drawn from ``num_holes_range``) with ``fill``.

    Each hole's height and width are fractions of the image height and width drawn from
    ``hole_size_range`` (at least one pixel); holes lie fully inside the image and may overlap.
    """

    name: ClassVar[str] = "cutout"
    num_holes_range: int_range(ge=0, le=1000) = (1, 8)
    hole_size_range: float_range(gt=0.0, le=1.0) = (0.05, 0.2)
    fill: Fill = 0

    samples_pixels: ClassVar[bool] = False

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        # Every draw is a uniform in [0, 1) from one batched call (scalar generator calls dominate otherwise):
        # the count, then per hole its height and width fractions and its top-left corner.
        h, w = x.shape[:2]
        lo, hi = self.num_holes_range
        n = lo + int(rng.random() * (hi - lo + 1))
        s0, s1 = self.hole_size_range
        span = s1 - s0
        u = rng.random(4 * n).tolist()
        boxes = []
        for i in range(0, 4 * n, 4):
            hh = max(1, int(round((s0 + span * u[i]) * h)))
            ww = max(1, int(round((s0 + span * u[i + 1]) * w)))
            y0 = int(u[i + 2] * (h - hh + 1))
            x0 = int(u[i + 3] * (w - ww + 1))
            boxes.append([y0, y0 + hh, x0, x0 + ww])
        return {"boxes": boxes}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return fill_boxes(x, params["boxes"], self.fill)

    def apply_owned(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return fill_boxes(x, params["boxes"], self.fill, out=x)


@register
class GaussianNoise(ImageOp):
    """Add zero-mean Gaussian noise with a standard deviation (pixel values) drawn from ``std_range``.

    The noise is a pure function of the recorded ``seed`` (``kernels.gaussian_noise``: a counter-based generator and
    a 2^16-level normal table, one fused pass), so replay is bit-exact on every CPU. ``per_channel=False`` adds the
    same noise to every channel (no effect on grey images).
    """

    name: ClassVar[str] = "gaussian_noise"
    std_range: float_range(ge=0.0, le=255.0) = (5.0, 20.0)
    per_channel: bool = True

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"std": float(rng.uniform(*self.std_range)), "seed": int(rng.integers(0, 2**63))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return gaussian_noise(x, params["seed"], params["std"], self.per_channel)


@register
class Blur(ImageOp):
    """Box blur with an odd kernel size drawn from the odd values of ``ksize_range``."""

    name: ClassVar[str] = "blur"
    ksize_range: int_range(ge=3, le=99) = (3, 7)

    @field_validator("ksize_range")
    @classmethod
    def _odd(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] % 2 == 0 or v[1] % 2 == 0:
            raise ValueError("both kernel sizes must be odd")
        return v

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        lo, hi = self.ksize_range
        return {"ksize": lo + 2 * int(rng.random() * ((hi - lo) // 2 + 1))}  # one scalar draw: cheaper than integers

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return box_blur(x, params["ksize"])
