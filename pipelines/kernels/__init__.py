"""Pure, typed pixel kernels (numba where the benchmark shows a win), each with a numpy reference.

Every kernel takes uint8 HWC arrays (C = 1 or 3) and never modifies its inputs (except into an explicit
``out``); it returns a new uint8 array. The numba kernels (per-channel ``apply_lut``, the table builders,
``hsv_adjust``'s H/S pass, ``blend``, ``gaussian_noise``, ``color_twist``) have a reference twin that defines the
exact result; ``tests/test_kernels.py`` checks they agree bit for bit and ``bench/image_ops.py`` measures the win.
"""

from pipelines.kernels.color import hsv_adjust, hsv_adjust_ref
from pipelines.kernels.dropout import fill_boxes, fill_boxes_ref
from pipelines.kernels.geometric import (
    affine_coeffs,
    affine_matrix,
    box_blur,
    compose_affine,
    flip,
    flip_coeffs,
    resized_crop,
    warp_affine,
    warp_affine_ref,
)
from pipelines.kernels.mixing import blend, blend_ref, paste_box, paste_box_ref
from pipelines.kernels.noise import gaussian_noise, gaussian_noise_ref
from pipelines.kernels.twist import color_twist, color_twist_ref, twist_matrix
from pipelines.kernels.value import (
    apply_lut,
    apply_lut_loop,
    apply_lut_ref,
    compose_tables,
    gamma_lut,
    gamma_lut_ref,
    image_mean,
    value_affine,
    value_affine_ref,
    value_table,
    value_tables,
)

__all__ = [
    "affine_coeffs",
    "affine_matrix",
    "apply_lut",
    "apply_lut_loop",
    "apply_lut_ref",
    "blend",
    "blend_ref",
    "box_blur",
    "color_twist",
    "color_twist_ref",
    "compose_affine",
    "compose_tables",
    "fill_boxes",
    "fill_boxes_ref",
    "flip",
    "flip_coeffs",
    "gamma_lut",
    "gamma_lut_ref",
    "gaussian_noise",
    "gaussian_noise_ref",
    "hsv_adjust",
    "hsv_adjust_ref",
    "image_mean",
    "paste_box",
    "paste_box_ref",
    "resized_crop",
    "twist_matrix",
    "value_affine",
    "value_affine_ref",
    "value_table",
    "value_tables",
    "warp_affine",
    "warp_affine_ref",
]
