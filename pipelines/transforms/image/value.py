"""Intensity and colour ops: brightness, contrast, channel_shift, gamma, hue, saturation, color_jitter.

Brightness, contrast, channel shifts and gamma are maps of the 256 byte values: each builds a table from its
params (``table``) and applies it in one pass (``apply_lut``). In a ``sequence``, consecutive ones compose
their tables and make one pass for the whole run (the bytes are exactly those of applying them one by one),
except that a contrast starts a new run: it needs the mean of its input. Contrast scales about the mean of all
values of the image (recorded as ``mean`` in the params). Hue and saturation work in HSV and are the identity
on grey images (which have neither); the random draws are the same for grey and RGB so a recipe's draw order
does not depend on the channel count.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from pipelines.kernels import (
    apply_lut,
    color_twist,
    compose_tables,
    gamma_lut,
    hsv_adjust,
    image_mean,
    twist_matrix,
    value_table,
    value_tables,
)
from pipelines.transforms.base import Fuser, Op, register
from pipelines.transforms.image._common import ImageOp, float_range


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """``rng.uniform(lo, hi)`` (the same value: ``lo + (hi - lo) * rng.random()``) at a quarter of the cost."""
    lo, hi = bounds
    return lo + (hi - lo) * rng.random()


class _Tables(Fuser):
    """Fuses value ops: the state is the composed table (``(256,)`` or ``(C, 256)``), applied in one pass."""

    def start(self, op: Op, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        return op.table(params, x.shape[2])

    def extend(self, state: np.ndarray, op: Op, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        return compose_tables(op.table(params, x.shape[2]), state)

    def run(self, state: np.ndarray, x: np.ndarray, owned: bool) -> np.ndarray:
        return apply_lut(x, state, out=x if owned else None)


TABLES = _Tables()


class _ValueOp(ImageOp):
    """A per-channel map of byte values: ``table(params, channels)`` is ``(256,)`` or ``(C, 256)``."""

    fuser: ClassVar[Fuser | None] = TABLES
    samples_pixels: ClassVar[bool] = False

    def table(self, params: dict[str, Any], channels: int) -> np.ndarray:
        raise NotImplementedError

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return apply_lut(x, self.table(params, x.shape[2]))

    def apply_owned(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return apply_lut(x, self.table(params, x.shape[2]), out=x)


@register
class Brightness(_ValueOp):
    """Add ``b * 255`` to every value, ``b`` drawn from ``brightness_range``."""

    name: ClassVar[str] = "brightness"
    brightness_range: float_range(ge=-1.0, le=1.0) = (-0.2, 0.2)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"brightness": _uniform(rng, self.brightness_range)}

    def table(self, params: dict[str, Any], channels: int) -> np.ndarray:
        return value_table(1.0, params["brightness"] * 255.0)


@register
class Contrast(_ValueOp):
    """Scale values about the image mean by a factor drawn from ``contrast_range`` (0 = flat grey)."""

    name: ClassVar[str] = "contrast"
    samples_pixels: ClassVar[bool] = True
    contrast_range: float_range(ge=0.0, le=10.0) = (0.8, 1.2)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"contrast": _uniform(rng, self.contrast_range), "mean": image_mean(x)}

    def table(self, params: dict[str, Any], channels: int) -> np.ndarray:
        a = params["contrast"]
        return value_table(a, (1.0 - a) * params["mean"])


@register
class ChannelShift(_ValueOp):
    """Add an independent shift drawn from ``shift_range`` (pixel values) to each channel."""

    name: ClassVar[str] = "channel_shift"
    shift_range: float_range(ge=-255.0, le=255.0) = (-20.0, 20.0)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        lo, hi = self.shift_range
        return {"shifts": [lo + (hi - lo) * u for u in rng.random(x.shape[2]).tolist()]}

    def table(self, params: dict[str, Any], channels: int) -> np.ndarray:
        shifts = params["shifts"]
        if len(shifts) != channels:
            raise ValueError(f"channel_shift has {len(shifts)} shifts for {channels} channels")
        return value_tables(1.0, shifts)


@register
class Gamma(_ValueOp):
    """``255 * (v / 255) ** gamma`` with ``gamma`` drawn from ``gamma_range`` (< 1 brightens)."""

    name: ClassVar[str] = "gamma"
    gamma_range: float_range(gt=0.0, le=10.0) = (0.8, 1.25)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"gamma": _uniform(rng, self.gamma_range)}

    def table(self, params: dict[str, Any], channels: int) -> np.ndarray:
        return gamma_lut(params["gamma"])


@register
class Hue(ImageOp):
    """Rotate hue by an angle drawn from ``[-limit, limit]`` degrees (2-degree steps). Grey: identity."""

    name: ClassVar[str] = "hue"
    limit: float = Field(18.0, ge=0.0, le=180.0, description="max absolute hue shift in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"hue_shift": _uniform(rng, (-self.limit, self.limit))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return hsv_adjust(x, hue_shift=params["hue_shift"])


@register
class Saturation(ImageOp):
    """Scale HSV saturation by a factor drawn from ``saturation_range``. Grey: identity."""

    name: ClassVar[str] = "saturation"
    saturation_range: float_range(ge=0.0, le=10.0) = (0.7, 1.3)

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        return {"saturation": _uniform(rng, self.saturation_range)}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return hsv_adjust(x, saturation=params["saturation"])


@register
class ColorJitter(ImageOp):
    """Brightness, contrast, saturation and hue as one colour twist (NVIDIA DALI's ``ColorTwist``), in one pass.

    RGB: ``y = contrast * M x + (1 - contrast) * mean + brightness * 255`` with ``M`` the saturation scale and hue
    rotation of the chroma plane in YIQ space (``kernels.twist_matrix``), rounded once (``kernels.color_twist``).
    Grey: contrast about the mean plus brightness (one table pass); hue and saturation are the identity.
    Hue here is a rotation in YIQ, not the HSV shift of the ``hue`` op (which costs two colour conversions).
    """

    name: ClassVar[str] = "color_jitter"
    brightness_range: float_range(ge=-1.0, le=1.0) = (-0.2, 0.2)
    contrast_range: float_range(ge=0.0, le=10.0) = (0.8, 1.2)
    saturation_range: float_range(ge=0.0, le=10.0) = (0.8, 1.2)
    hue_limit: float = Field(10.0, ge=0.0, le=180.0, description="max absolute hue shift in degrees")

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        u = rng.random(4).tolist()
        (b0, b1), (c0, c1), (s0, s1) = self.brightness_range, self.contrast_range, self.saturation_range
        k = self.hue_limit
        return {
            "brightness": b0 + (b1 - b0) * u[0],
            "contrast": c0 + (c1 - c0) * u[1],
            "mean": image_mean(x),
            "saturation": s0 + (s1 - s0) * u[2],
            "hue_shift": -k + (k - -k) * u[3],
        }

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return self._jitter(x, params, None)

    def apply_owned(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return self._jitter(x, params, x)

    def _jitter(self, x: np.ndarray, params: dict[str, Any], out: np.ndarray | None) -> np.ndarray:
        a = params["contrast"]
        if x.shape[2] == 1:  # grey: no hue or saturation
            return apply_lut(x, value_table(a, (1.0 - a) * params["mean"] + params["brightness"] * 255.0), out=out)
        m, c = twist_matrix(a, params["mean"], params["brightness"], params["saturation"], params["hue_shift"])
        return color_twist(x, m, c, out=out)
