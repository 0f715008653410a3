"""Every kernel equals its numpy reference, on grey and RGB images of odd sizes; inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import kernels as k

SHAPES = [(1, 1, 1), (7, 5, 1), (33, 17, 3), (64, 63, 3), (5, 9, 3)]


def _img(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
def test_value_affine_matches_reference(shape):
    rng = np.random.default_rng(1)
    x = _img(shape)
    before = x.copy()
    for _ in range(20):
        gain = float(rng.uniform(0.0, 3.0))
        offsets = rng.uniform(-300, 300, size=shape[2])
        got = k.value_affine(x, gain, offsets)
        assert got.dtype == np.uint8 and got.shape == shape
        np.testing.assert_array_equal(got, k.value_affine_ref(x, gain, offsets))
    np.testing.assert_array_equal(x, before)


def test_value_affine_exact_halves_and_clipping():
    x = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    np.testing.assert_array_equal(k.value_affine(x, 1.0, 0.0), x)
    half = k.value_affine(x, 0.5, 0.0)  # v / 2 rounds half up: 1 -> 1, 3 -> 2
    assert half[0, 1, 0] == 1 and half[0, 3, 0] == 2
    np.testing.assert_array_equal(k.value_affine(x, 1.0, 1000.0), np.full_like(x, 255))
    np.testing.assert_array_equal(k.value_affine(x, 1.0, -1000.0), np.zeros_like(x))


def test_value_affine_scalar_offset_and_non_contiguous_input():
    x = _img((20, 30, 3))[:, ::2]
    np.testing.assert_array_equal(k.value_affine(x, 1.3, -7.5), k.value_affine_ref(x, 1.3, -7.5))


@pytest.mark.parametrize("shape", SHAPES)
def test_blend_matches_reference(shape):
    a, b = _img(shape, 1), _img(shape, 2)
    for lam in [0.0, 1.0, 0.5, 0.3, 0.77, float(np.random.default_rng(3).uniform())]:
        np.testing.assert_array_equal(k.blend(a, b, lam), k.blend_ref(a, b, lam))
    np.testing.assert_array_equal(k.blend(a, b, 1.0), a)
    np.testing.assert_array_equal(k.blend(a, b, 0.0), b)


def test_blend_rejects_bad_input():
    a = _img((4, 4, 3))
    with pytest.raises(ValueError, match="lam"):
        k.blend(a, a, 1.5)
    with pytest.raises(ValueError, match="shape"):
        k.blend(a, _img((4, 5, 3)), 0.5)


@pytest.mark.parametrize("shape", SHAPES)
def test_paste_box_matches_reference(shape):
    a, b = _img(shape, 1), _img(shape, 2)
    h, w = shape[:2]
    for box in [(0, h, 0, w), (0, 0, 0, 0), (1, h // 2 + 1, 0, w - 1), (h // 3, h, w // 2, w + 5)]:
        got = k.paste_box(a, b, *box)
        np.testing.assert_array_equal(got, k.paste_box_ref(a, b, *box))
        assert got is not a


@pytest.mark.parametrize("shape", SHAPES)
def test_fill_boxes_matches_reference(shape):
    x = _img(shape)
    before = x.copy()
    h, w = shape[:2]
    boxes = [[0, 1, 0, 1], [-3, h // 2, w // 3, w + 4], [h - 2, h + 10, -1, 2], [2, 2, 0, w]]
    for fill in (0, 77, 255):
        np.testing.assert_array_equal(k.fill_boxes(x, boxes, fill), k.fill_boxes_ref(x, boxes, fill))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("shape", SHAPES)
def test_apply_lut_matches_reference(shape):
    x = _img(shape)
    for gamma in (0.5, 1.0, 2.2):
        lut = k.gamma_lut(gamma)
        np.testing.assert_array_equal(k.apply_lut(x, lut), k.apply_lut_ref(x, lut))
    np.testing.assert_array_equal(k.gamma_lut(1.0), np.arange(256, dtype=np.uint8))


@pytest.mark.parametrize("shape", SHAPES)
def test_geometric_kernels_keep_shape_and_identities(shape):
    x = _img(shape)
    h, w, c = shape
    np.testing.assert_array_equal(k.warp_affine(x, k.affine_matrix(h, w)), x)
    np.testing.assert_array_equal(k.flip(x, "horizontal"), x[:, ::-1])
    np.testing.assert_array_equal(k.flip(x, "vertical"), x[::-1])
    assert k.warp_affine(x, k.affine_matrix(h, w, angle=33, shear_x=5), fill_mode="reflect").shape == shape
    assert k.box_blur(x, 3).shape == shape
    assert k.resized_crop(x, 0, 0, h, w, (11, 13)).shape == (11, 13, c)


def test_affine_matrix_rotates_about_the_centre():
    x = np.zeros((9, 9, 1), np.uint8)
    x[4, 8] = 255  # right of centre; 90 degrees counter-clockwise moves it to the top
    y = k.warp_affine(x, k.affine_matrix(9, 9, angle=90), interpolation="nearest")
    assert y[0, 4, 0] == 255 and y.sum() == 255


def test_hsv_adjust_grey_is_identity_and_rgb_changes():
    grey = _img((9, 7, 1))
    np.testing.assert_array_equal(k.hsv_adjust(grey, 40.0, 1.5), grey)
    rgb = _img((9, 7, 3))
    np.testing.assert_array_equal(k.hsv_adjust(rgb, 0.0, 1.0), rgb)
    assert not np.array_equal(k.hsv_adjust(rgb, 60.0, 1.0), rgb)
    pure_red = np.zeros((1, 1, 3), np.uint8)
    pure_red[..., 0] = 255
    np.testing.assert_array_equal(k.hsv_adjust(pure_red, 120.0), [[[0, 255, 0]]])
