"""Headers and row labels for image grids (preview): which column is the original, which class a row is."""

from __future__ import annotations

import numpy as np


def label_grid(grid: np.ndarray, col_x: list[int], headers: list[str], row_y: list[int], row_labels: list[str],
               *, label_width: int = 90, header_height: int = 18) -> np.ndarray:  # fmt: skip
    """``grid`` (H, W, 3 uint8 RGB) with a header strip on top (``headers[j]`` at x ``col_x[j]``) and a left
    column of row labels (``row_labels[i]`` at y ``row_y[i]``, the top of that row); returns a new array."""
    import cv2

    h, w = grid.shape[:2]
    out = np.full((h + header_height, w + label_width, 3), 255, np.uint8)
    out[header_height:, label_width:] = grid
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    for x, text in zip(col_x, headers, strict=True):
        cv2.putText(out, text, (label_width + x + 2, header_height - 5), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    for y, text in zip(row_y, row_labels, strict=True):
        shown = text if len(text) <= 13 else text[:12] + "."
        cv2.putText(out, shown, (3, header_height + y + 14), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
