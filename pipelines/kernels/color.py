"""Colour kernels in HSV space (RGB only; grey images have no hue or saturation)."""

from __future__ import annotations

import cv2
import numpy as np


def hsv_adjust(x: np.ndarray, hue_shift: float = 0.0, saturation: float = 1.0) -> np.ndarray:
    """Rotate hue by ``hue_shift`` degrees and scale saturation by ``saturation`` (one HSV round trip).

    OpenCV's uint8 hue has 2-degree steps, so the shift is rounded to ``round(hue_shift / 2)`` steps.
    Saturation is ``clip(floor(s * saturation + 0.5))``. Grey (1-channel) images are returned unchanged
    (as a copy), and so is any image when the adjustment is neutral.
    """
    steps = int(round(hue_shift / 2.0)) % 180
    if x.shape[2] == 1 or (steps == 0 and saturation == 1.0):
        return x.copy()
    v = np.arange(256)
    hue = np.where(v < 180, (v + steps) % 180, v)
    sat = np.clip(np.floor(v * float(saturation) + 0.5), 0, 255)
    lut = np.stack([hue, sat, v], axis=1).astype(np.uint8).reshape(256, 1, 3)
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
    return cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2RGB)
