"""Intensity and colour ops: brightness, contrast, channel_shift, gamma, hue, saturation, color_jitter.

Brightness, contrast and channel shifts run through the fused kernel ``value_affine`` (one pass). Contrast
scales about the mean of all values of the image (recorded as ``mean`` in the params). Hue and saturation
work in HSV and are the identity on grey images (which have neither); the random draws are the same for
grey and RGB so a recipe's draw order does not depend on the channel count.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field

from pipelines.kernels import apply_lut, gamma_lut, hsv_adjust, value_affine
from pipelines.transforms.base import register
from pipelines.transforms.image._common import ImageOp, float_range


def image_mean(x: np.ndarray) -> float:
    """Mean of all values of all channels."""
    c = x.shape[2]
    return float(sum(cv2.mean(x)[:c]) / c)


@register
class Brightness(ImageOp):
    """Add ``b * 255`` to every value, ``b`` drawn from ``brightness_range``."""

    name: ClassVar[str] = "brightness"
    brightness_range: float_range(ge=-1.0, le=1.0) = (-0.2, 0.2)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"brightness": float(rng.uniform(*self.brightness_range))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return value_affine(x, 1.0, params["brightness"] * 255.0)


@register
class Contrast(ImageOp):
    """Scale values about the image mean by a factor drawn from ``contrast_range`` (0 = flat grey)."""

    name: ClassVar[str] = "contrast"
    contrast_range: float_range(ge=0.0, le=10.0) = (0.8, 1.2)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"contrast": float(rng.uniform(*self.contrast_range)), "mean": image_mean(x)}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        a = params["contrast"]
        return value_affine(x, a, (1.0 - a) * params["mean"])


@register
class ChannelShift(ImageOp):
    """Add an independent shift drawn from ``shift_range`` (pixel values) to each channel."""

    name: ClassVar[str] = "channel_shift"
    shift_range: float_range(ge=-255.0, le=255.0) = (-20.0, 20.0)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"shifts": [float(rng.uniform(*self.shift_range)) for _ in range(x.shape[2])]}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return value_affine(x, 1.0, params["shifts"])


@register
class Gamma(ImageOp):
    """``255 * (v / 255) ** gamma`` with ``gamma`` drawn from ``gamma_range`` (< 1 brightens)."""

    name: ClassVar[str] = "gamma"
    gamma_range: float_range(gt=0.0, le=10.0) = (0.8, 1.25)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"gamma": float(rng.uniform(*self.gamma_range))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return apply_lut(x, gamma_lut(params["gamma"]))


@register
class Hue(ImageOp):
    """Rotate hue by an angle drawn from ``[-limit, limit]`` degrees (2-degree steps). Grey: identity."""

    name: ClassVar[str] = "hue"
    limit: float = Field(18.0, ge=0.0, le=180.0, description="max absolute hue shift in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"hue_shift": float(rng.uniform(-self.limit, self.limit))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return hsv_adjust(x, hue_shift=params["hue_shift"])


@register
class Saturation(ImageOp):
    """Scale HSV saturation by a factor drawn from ``saturation_range``. Grey: identity."""

    name: ClassVar[str] = "saturation"
    saturation_range: float_range(ge=0.0, le=10.0) = (0.7, 1.3)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"saturation": float(rng.uniform(*self.saturation_range))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return hsv_adjust(x, saturation=params["saturation"])


@register
class ColorJitter(ImageOp):
    """Brightness, contrast, saturation and hue in a fixed order, in two passes.

    Pass 1 (fused kernel): contrast about the input mean, plus brightness. Pass 2 (one HSV round trip):
    saturation and hue. On grey images pass 2 is the identity.
    """

    name: ClassVar[str] = "color_jitter"
    brightness_range: float_range(ge=-1.0, le=1.0) = (-0.2, 0.2)
    contrast_range: float_range(ge=0.0, le=10.0) = (0.8, 1.2)
    saturation_range: float_range(ge=0.0, le=10.0) = (0.8, 1.2)
    hue_limit: float = Field(10.0, ge=0.0, le=180.0, description="max absolute hue shift in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {
            "brightness": float(rng.uniform(*self.brightness_range)),
            "contrast": float(rng.uniform(*self.contrast_range)),
            "mean": image_mean(x),
            "saturation": float(rng.uniform(*self.saturation_range)),
            "hue_shift": float(rng.uniform(-self.hue_limit, self.hue_limit)),
        }

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        a = params["contrast"]
        y = value_affine(x, a, (1.0 - a) * params["mean"] + params["brightness"] * 255.0)
        return hsv_adjust(y, hue_shift=params["hue_shift"], saturation=params["saturation"])
