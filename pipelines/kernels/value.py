"""Per-value intensity kernels: 256-entry tables and applying them.

Every value op on uint8 (brightness, contrast, channel shift, gamma, and chains of them) is a map from the 256
possible byte values to bytes, per channel. So the kernels here are two steps:

1. build a table from the sampled parameters (256 entries, tiny): ``value_table`` / ``value_tables`` for
   ``clip(floor(v * gain + offset + 0.5), 0, 255)`` (round half up, float64), ``gamma_lut``; chains of value ops
   compose their tables (``compose_tables``) instead of passing over the pixels once per op;
2. apply it in one pass: ``apply_lut``. One table for every channel: stringzilla's ``translate`` (SIMD byte
   shuffles; installed with albumentations' albucore), 5-10x ``cv2.LUT`` here; ``cv2.LUT`` if stringzilla is
   missing. One table per channel (interleaved RGB): three such passes and a numba merge that keeps each byte
   from its channel's pass (1.1-1.4x a numba gather loop, which itself beats ``cv2.LUT`` with a 3-channel
   table and numpy; see ``bench/image_ops.py``); the gather loop without stringzilla.

``value_affine(x, gain, offsets)`` is steps 1 and 2 for one gain/offset map.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import cv2
import numpy as np
from numba import njit

try:  # stringzilla >= 4 (albucore's dependency): translate(..., out=buffer), bytesum
    import stringzilla as _sz

    _probe = np.arange(4, dtype=np.uint8)
    _sz.translate(memoryview(_probe), memoryview(np.arange(256, dtype=np.uint8)), out=memoryview(_probe.copy()))
    _sz.translate(memoryview(_probe), memoryview(np.arange(256, dtype=np.uint8)), inplace=True)
    if _sz.bytesum(memoryview(_probe)) != 6:
        raise ImportError("stringzilla.bytesum is not a byte sum")
except Exception:  # pragma: no cover - depends on the installed packages
    _sz = None


def _check_image(x: np.ndarray) -> None:
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"expected a uint8 HxWxC array, got {x.dtype} with shape {x.shape}")


@njit(cache=True)
def _tables_nb(gain: float, offsets: np.ndarray) -> np.ndarray:
    lut = np.empty((offsets.size, 256), np.uint8)
    for c in range(offsets.size):
        for v in range(256):
            lut[c, v] = np.uint8(min(max(np.floor(v * gain + offsets[c] + 0.5), 0.0), 255.0))
    return lut


@njit(cache=True)
def _table_nb(gain: float, offset: float) -> np.ndarray:
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = np.uint8(min(max(np.floor(v * gain + offset + 0.5), 0.0), 255.0))
    return lut


_LOGS = np.log(np.maximum(np.arange(256), 1) / 255.0)  # log(v / 255); entry 0 unused


@njit(cache=True)
def _gamma_nb(gamma: float, logs: np.ndarray) -> np.ndarray:
    lut = np.empty(256, np.uint8)
    lut[0] = 0  # gamma > 0
    for v in range(1, 256):  # (v / 255) ** gamma as exp(gamma * log(v / 255)): 2x faster than pow
        lut[v] = np.uint8(min(max(np.floor(255.0 * np.exp(gamma * logs[v]) + 0.5), 0.0), 255.0))
    return lut


@njit(cache=True)
def _compose_nb(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    channels = max(outer.shape[0], inner.shape[0])
    out = np.empty((channels, 256), np.uint8)
    for c in range(channels):
        o = outer[c % outer.shape[0]]
        i = inner[c % inner.shape[0]]
        for v in range(256):
            out[c, v] = o[i[v]]
    return out


# Byte masks of channel 0, 1, 2 in the three uint64 words that hold 8 interleaved RGB pixels (little-endian).
_RGB_WORD_MASKS = np.array(
    [
        [0x00FF0000FF0000FF, 0xFF0000FF0000FF00, 0x0000FF0000FF0000],
        [0xFF0000FF0000FF00, 0x0000FF0000FF0000, 0x00FF0000FF0000FF],
        [0x0000FF0000FF0000, 0x00FF0000FF0000FF, 0xFF0000FF0000FF00],
    ],
    dtype=np.uint64,
)


@njit(cache=True)
def _merge_rgb_nb(out: np.ndarray, g: np.ndarray, b: np.ndarray, masks: np.ndarray) -> None:
    """In place: keep channel 0 of ``out`` and take channels 1 and 2 from ``g`` and ``b`` (flat RGB bytes).

    Word-wise (three uint64 = 8 pixels at a time) with fixed byte masks; bytewise for the tail."""
    n = out.size // 24
    wo = out[: 24 * n].view(np.uint64)
    wg = g[: 24 * n].view(np.uint64)
    wb = b[: 24 * n].view(np.uint64)
    r0, g0, b0 = masks[0, 0], masks[0, 1], masks[0, 2]
    r1, g1, b1 = masks[1, 0], masks[1, 1], masks[1, 2]
    r2, g2, b2 = masks[2, 0], masks[2, 1], masks[2, 2]
    for k in range(n):
        i = 3 * k
        wo[i] = (wo[i] & r0) | (wg[i] & g0) | (wb[i] & b0)
        wo[i + 1] = (wo[i + 1] & r1) | (wg[i + 1] & g1) | (wb[i + 1] & b1)
        wo[i + 2] = (wo[i + 2] & r2) | (wg[i + 2] & g2) | (wb[i + 2] & b2)
    for j in range(24 * n, out.size):
        c = j % 3
        if c == 1:
            out[j] = g[j]
        elif c == 2:
            out[j] = b[j]


@njit(cache=True)
def _lut_channels_nb(flat: np.ndarray, lut: np.ndarray, out: np.ndarray) -> None:
    channels = lut.shape[0]
    if channels == 3:
        lut0, lut1, lut2 = lut[0], lut[1], lut[2]
        for i in range(flat.size // 3):
            j = 3 * i
            out[j] = lut0[flat[j]]
            out[j + 1] = lut1[flat[j + 1]]
            out[j + 2] = lut2[flat[j + 2]]
    else:
        for i in range(flat.size):
            out[i] = lut[i % channels, flat[i]]


def value_table(gain: float, offset: float) -> np.ndarray:
    """The 256-entry table ``clip(floor(v * gain + offset + 0.5), 0, 255)`` (one for every channel)."""
    return _table_nb(float(gain), float(offset))


def value_tables(gain: float, offsets: Sequence[float] | np.ndarray) -> np.ndarray:
    """One table per channel, ``(C, 256)``: ``clip(floor(v * gain + offsets[c] + 0.5), 0, 255)``."""
    return _tables_nb(float(gain), np.ascontiguousarray(offsets, dtype=np.float64).reshape(-1))


def gamma_lut(gamma: float) -> np.ndarray:
    """The 256-entry table ``round_half_up(255 * (v / 255) ** gamma)``."""
    return _gamma_nb(float(gamma), _LOGS)


def gamma_lut_ref(gamma: float) -> np.ndarray:
    """Numpy reference of :func:`gamma_lut` (with ``pow``; the kernel's exp/log gives the same table)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(np.floor(255.0 * v**gamma + 0.5), 0, 255).astype(np.uint8)


def compose_tables(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The table of "``inner``, then ``outer``": ``outer[c][inner[c][v]]``, exactly.

    Tables are ``(256,)`` (every channel) or ``(C, 256)`` (one per channel); the result is ``(256,)`` when both
    are, else ``(C, 256)``.
    """
    if outer.ndim == 1:
        if inner.ndim == 1:
            return outer[inner]
        outer = outer[None]
    elif inner.ndim == 1:
        inner = inner[None]
    return _compose_nb(outer, inner)


def apply_lut(x: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Map every value through a table: ``(256,)`` for every channel or ``(C, 256)`` one per channel.

    Writes into ``out`` when given (it may be ``x`` itself: in place), else into a new array.
    """
    _check_image(x)
    if out is not None and (out is not x or not x.flags.c_contiguous):
        if out.shape != x.shape or out.dtype != np.uint8:
            raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; expected {x.shape} uint8")
        np.copyto(out, apply_lut(x, lut))
        return out
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(x)
    if lut.ndim == 2 and lut.shape[0] == 1:
        lut = lut[0]
    if lut.dtype != np.uint8 or not lut.flags.c_contiguous:
        lut = np.ascontiguousarray(lut, dtype=np.uint8)
    if lut.ndim == 1:
        if _sz is None:  # pragma: no cover
            return cv2.LUT(x, lut, dst=out).reshape(x.shape)
        if out is x:
            _sz.translate(memoryview(x), memoryview(lut), inplace=True)
        else:
            _sz.translate(memoryview(x), memoryview(lut), out=memoryview(out))
        return out
    if lut.shape != (x.shape[2], 256):
        raise ValueError(f"expected a (256,) or ({x.shape[2]}, 256) table, got {lut.shape}")
    if _sz is not None and x.shape[2] == 3 and sys.byteorder == "little":
        # Three SIMD table passes over all bytes, then keep each byte from its channel's pass: 1.1-1.5x the
        # numba gather loop (a scalar table load per byte).
        src, g, b = memoryview(x), np.empty_like(x), np.empty_like(x)
        _sz.translate(src, memoryview(lut[1]), out=memoryview(g))
        _sz.translate(src, memoryview(lut[2]), out=memoryview(b))
        if out is x:
            _sz.translate(src, memoryview(lut[0]), inplace=True)
        else:
            _sz.translate(src, memoryview(lut[0]), out=memoryview(out))
        _merge_rgb_nb(out.reshape(-1), g.reshape(-1), b.reshape(-1), _RGB_WORD_MASKS)
        return out
    _lut_channels_nb(x.reshape(-1), lut, out.reshape(-1))
    return out


def apply_lut_loop(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """:func:`apply_lut` with ``(C, 256)`` tables as one numba gather loop (the path without stringzilla)."""
    _check_image(x)
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _lut_channels_nb(x.reshape(-1), np.ascontiguousarray(lut, dtype=np.uint8), out.reshape(-1))
    return out


def image_mean(x: np.ndarray) -> float:
    """Mean of all values of all channels, exactly ``sum / size`` (integer sum; stringzilla's SIMD byte sum)."""
    _check_image(x)
    if _sz is not None:
        total = _sz.bytesum(memoryview(np.ascontiguousarray(x)))
    else:  # pragma: no cover - cv2.mean is per channel: sum / (h * w), exact after rounding back
        n = x.shape[0] * x.shape[1]
        total = sum(round(m * n) for m in cv2.mean(x)[: x.shape[2]])
    return total / x.size if x.size else 0.0


def apply_lut_ref(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Numpy reference of :func:`apply_lut`."""
    if lut.ndim == 1:
        return lut[x]
    return np.stack([lut[c][x[:, :, c]] for c in range(x.shape[2])], axis=2)


def value_affine(x: np.ndarray, gain: float, offsets: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """``clip(floor(x * gain + offsets[c] + 0.5))``; ``offsets`` is a scalar or one per channel.

    One table for every channel when the offsets are equal (stringzilla), else one per channel (numba).
    """
    if not isinstance(offsets, int | float):
        offs = np.asarray(offsets, dtype=np.float64).reshape(-1).tolist()
        if len(offs) not in (1, x.shape[2]):
            raise ValueError(f"expected 1 or {x.shape[2]} offsets, got {len(offs)}")
        if offs.count(offs[0]) != len(offs):
            return apply_lut(x, _tables_nb(float(gain), np.array(offs)))
        offsets = offs[0]
    return apply_lut(x, _table_nb(float(gain), float(offsets)))


def _offsets(offsets: float | Sequence[float] | np.ndarray, channels: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(offsets, dtype=np.float64).reshape(-1), (channels,))
    return np.ascontiguousarray(arr)


def value_affine_ref(x: np.ndarray, gain: float, offsets: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Numpy reference of :func:`value_affine`."""
    offs = _offsets(offsets, x.shape[2])
    y = np.floor(x.astype(np.float64) * float(gain) + offs + 0.5)
    return np.clip(y, 0.0, 255.0).astype(np.uint8)
