"""Automatic augmentation policies: RandAugment (Cubuk et al., 2019, arXiv:1909.13719) and TrivialAugment
(Muller and Hutter, 2021, arXiv:2103.10158).

RandAugment: ``n`` ops are drawn with replacement from a fixed list and applied at one global ``magnitude`` in [0, 10];
signed ops get a random sign. The record lists ``[name, value]`` pairs, so replay does not need ``magnitude``.
Ops and their value at magnitude 10: identity; rotate 30 degrees; shear_x / shear_y 17 degrees;
translate_x / translate_y 0.45 of the size; brightness 0.4 (x 255 added); contrast and saturation factor
1 +- 0.9; solarize (threshold 256 - 256 * m / 10); posterize (keep 8 - 4 * m / 10 bits); equalize.
Saturation is the identity on grey images; equalize works per channel.
TrivialAugment: one op per image, drawn uniformly from the same list, at a strength drawn uniformly from
``magnitude_range`` (default the whole range, 0 to 10); signed ops get a random sign. Same record shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field

from pipelines.kernels import affine_matrix, apply_lut, hsv_adjust, image_mean, value_affine, warp_affine
from pipelines.transforms.base import register
from pipelines.transforms.image._common import Fill, ImageOp, float_range

Kernel = Callable[[np.ndarray, float, int], np.ndarray]


def _warp(x: np.ndarray, fill: int, **kw: float) -> np.ndarray:
    h, w = x.shape[:2]
    return warp_affine(x, affine_matrix(h, w, **kw), fill=fill)


def _solarize(x: np.ndarray, threshold: float) -> np.ndarray:
    v = np.arange(256)
    return apply_lut(x, np.where(v >= threshold, 255 - v, v).astype(np.uint8))


def _posterize(x: np.ndarray, bits: float) -> np.ndarray:
    mask = (0xFF << (8 - int(round(bits)))) & 0xFF
    return apply_lut(x, (np.arange(256) & mask).astype(np.uint8))


def _equalize(x: np.ndarray) -> np.ndarray:
    return np.stack([cv2.equalizeHist(np.ascontiguousarray(x[:, :, c])) for c in range(x.shape[2])], axis=2)


def _contrast(x: np.ndarray, factor: float) -> np.ndarray:
    return value_affine(x, factor, (1.0 - factor) * image_mean(x))


# name -> (value at magnitude 10, signed, kernel(x, value, fill))
POLICY_OPS: dict[str, tuple[float, bool, Kernel]] = {
    "identity": (0.0, False, lambda x, v, f: x.copy()),
    "rotate": (30.0, True, lambda x, v, f: _warp(x, f, angle=v)),
    "shear_x": (17.0, True, lambda x, v, f: _warp(x, f, shear_x=v)),
    "shear_y": (17.0, True, lambda x, v, f: _warp(x, f, shear_y=v)),
    "translate_x": (0.45, True, lambda x, v, f: _warp(x, f, tx=v * x.shape[1])),
    "translate_y": (0.45, True, lambda x, v, f: _warp(x, f, ty=v * x.shape[0])),
    "brightness": (0.4, True, lambda x, v, f: value_affine(x, 1.0, v * 255.0)),
    "contrast": (0.9, True, lambda x, v, f: _contrast(x, 1.0 + v)),
    "saturation": (0.9, True, lambda x, v, f: hsv_adjust(x, saturation=1.0 + v)),
    "solarize": (256.0, False, lambda x, v, f: _solarize(x, 256.0 - v)),
    "posterize": (4.0, False, lambda x, v, f: _posterize(x, 8.0 - v)),
    "equalize": (0.0, False, lambda x, v, f: _equalize(x)),
}


@register
class RandAugment(ImageOp):
    """Apply ``n`` ops drawn (with replacement) from ``POLICY_OPS`` at ``magnitude`` (0-10)."""

    name: ClassVar[str] = "rand_augment"
    n: int = Field(2, ge=1, le=16, description="ops applied per image")
    magnitude: float = Field(9.0, ge=0.0, le=10.0, description="strength of every op, 0 to 10")
    fill: Fill = 128

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        names = list(POLICY_OPS)
        chosen = []
        for i in rng.integers(0, len(names), size=self.n):
            name = names[int(i)]
            top, signed, _ = POLICY_OPS[name]
            value = top * self.magnitude / 10.0
            if signed and rng.random() < 0.5:
                value = -value
            chosen.append([name, float(value)])
        return {"ops": chosen}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        y = x
        for name, value in params["ops"]:
            y = POLICY_OPS[name][2](y, value, self.fill)
        return y if y is not x else x.copy()


@register
class TrivialAugment(ImageOp):
    """Apply one op drawn uniformly from ``POLICY_OPS`` at a strength uniform over ``magnitude_range`` (0-10)."""

    name: ClassVar[str] = "trivial_augment"
    magnitude_range: float_range(ge=0.0, le=10.0) = Field(
        (0.0, 10.0), description="strength drawn uniformly from [lo, hi], 0 to 10 (default: each op's whole range)"
    )
    fill: Fill = 128

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        names = list(POLICY_OPS)
        name = names[int(rng.integers(0, len(names)))]
        top, signed, _ = POLICY_OPS[name]
        lo, hi = self.magnitude_range
        value = top * float(rng.uniform(lo, hi)) / 10.0
        if signed and rng.random() < 0.5:
            value = -value
        return {"ops": [[name, float(value)]]}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        y = x
        for name, value in params["ops"]:
            y = POLICY_OPS[name][2](y, value, self.fill)
        return y if y is not x else x.copy()
