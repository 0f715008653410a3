"""Pure, typed pixel kernels (numba where the benchmark shows a win), each with a numpy reference.

Every kernel takes uint8 HWC arrays (C = 1 or 3), never modifies its inputs and returns a new uint8 array.
The numba kernels (``value_affine``, ``blend``) have a ``*_ref`` numpy twin that defines the exact result;
``tests/test_kernels.py`` checks they agree bit for bit and ``bench/image_ops.py`` measures the win.
"""

from pipelines.kernels.color import hsv_adjust
from pipelines.kernels.dropout import fill_boxes, fill_boxes_ref
from pipelines.kernels.geometric import affine_matrix, box_blur, flip, resized_crop, warp_affine
from pipelines.kernels.mixing import blend, blend_ref, paste_box, paste_box_ref
from pipelines.kernels.value import apply_lut, apply_lut_ref, gamma_lut, value_affine, value_affine_ref

__all__ = [
    "affine_matrix",
    "apply_lut",
    "apply_lut_ref",
    "blend",
    "blend_ref",
    "box_blur",
    "fill_boxes",
    "fill_boxes_ref",
    "flip",
    "gamma_lut",
    "hsv_adjust",
    "paste_box",
    "paste_box_ref",
    "resized_crop",
    "value_affine",
    "value_affine_ref",
    "warp_affine",
]
