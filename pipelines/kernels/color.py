"""Colour kernels in HSV space (RGB only; grey images have no hue or saturation)."""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit


@njit(cache=True)
def _hue_sat_nb(flat: np.ndarray, steps: int, saturation: float) -> None:
    """In place on OpenCV's uint8 HSV (H in [0, 180)): H -> (H + steps) % 180, S -> round_half_up(S * sat)."""
    hue = np.empty(256, np.uint8)
    sat = np.empty(256, np.uint8)
    for v in range(256):
        hue[v] = (v + steps) % 180 if v < 180 else v
        sat[v] = np.uint8(min(max(np.floor(v * saturation + 0.5), 0.0), 255.0))
    for i in range(flat.size // 3):
        j = 3 * i
        flat[j] = hue[flat[j]]
        flat[j + 1] = sat[flat[j + 1]]


def hsv_adjust(x: np.ndarray, hue_shift: float = 0.0, saturation: float = 1.0) -> np.ndarray:
    """Rotate hue by ``hue_shift`` degrees and scale saturation by ``saturation`` (one HSV round trip).

    OpenCV's uint8 hue has 2-degree steps, so the shift is rounded to ``round(hue_shift / 2)`` steps.
    Saturation is ``clip(floor(s * saturation + 0.5))``. Grey (1-channel) images are returned unchanged
    (as a copy), and so is any image when the adjustment is neutral. The H and S tables are applied in place
    on the HSV temporary by one numba pass (``cv2.LUT`` with a 3-channel table costs ~3x that).
    """
    steps = int(round(hue_shift / 2.0)) % 180
    if x.shape[2] == 1 or (steps == 0 and saturation == 1.0):
        return x.copy()
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
    _hue_sat_nb(hsv.reshape(-1), steps, float(saturation))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def hsv_adjust_ref(x: np.ndarray, hue_shift: float = 0.0, saturation: float = 1.0) -> np.ndarray:
    """Reference of :func:`hsv_adjust`: the same round trip with numpy tables and ``cv2.LUT``."""
    steps = int(round(hue_shift / 2.0)) % 180
    if x.shape[2] == 1 or (steps == 0 and saturation == 1.0):
        return x.copy()
    v = np.arange(256)
    hue = np.where(v < 180, (v + steps) % 180, v)
    sat = np.clip(np.floor(v * float(saturation) + 0.5), 0, 255)
    lut = np.stack([hue, sat, v], axis=1).astype(np.uint8).reshape(256, 1, 3)
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
    return cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2RGB)
