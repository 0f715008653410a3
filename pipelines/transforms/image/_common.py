"""Shared field types and the image op base class."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field

from pipelines.transforms.base import Op


def _ordered(v: tuple) -> tuple:
    lo, hi = v
    if lo > hi:
        raise ValueError("expected [lo, hi] with lo <= hi")
    return v


def float_range(ge: float | None = None, le: float | None = None, gt: float | None = None) -> object:
    """An ``[lo, hi]`` pair of floats with ``lo <= hi`` and both ends within the given bounds."""
    item = Annotated[float, Field(ge=ge, le=le, gt=gt)]
    return Annotated[tuple[item, item], AfterValidator(_ordered)]


def int_range(ge: int | None = None, le: int | None = None) -> object:
    """An ``[lo, hi]`` pair of ints with ``lo <= hi`` and both ends within the given bounds."""
    item = Annotated[int, Field(ge=ge, le=le)]
    return Annotated[tuple[item, item], AfterValidator(_ordered)]


Fill = Annotated[int, Field(ge=0, le=255, description="pixel value for fill_mode='constant' and holes")]


class ImageOp(Op):
    """Base of the image ops: input and output are uint8 HxWxC arrays, C = 1 or 3."""

    modality: ClassVar[str] = "image"
