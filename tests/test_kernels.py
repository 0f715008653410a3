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


@pytest.mark.parametrize("shape", SHAPES)
def test_per_channel_tables_match_reference_and_loop(shape):
    x = _img(shape)
    before = x.copy()
    rng = np.random.default_rng(4)
    for _ in range(5):
        lut = rng.integers(0, 256, (shape[2], 256), dtype=np.uint8)
        want = k.apply_lut_ref(x, lut)
        np.testing.assert_array_equal(k.apply_lut(x, lut), want)
        np.testing.assert_array_equal(k.apply_lut_loop(x, lut), want)
        y = x.copy()
        assert k.apply_lut(y, lut, out=y) is y  # in place
        np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(x, before)


def test_apply_lut_non_contiguous_input_and_foreign_out():
    x = _img((20, 30, 3))[:, ::2]
    lut = np.random.default_rng(5).integers(0, 256, (3, 256), dtype=np.uint8)
    out = np.zeros((20, 15, 3), np.uint8)
    assert k.apply_lut(x, lut, out=out) is out
    np.testing.assert_array_equal(out, k.apply_lut_ref(x, lut))
    np.testing.assert_array_equal(k.apply_lut(x, lut[0]), k.apply_lut_ref(x, lut[0]))
    with pytest.raises(ValueError, match="table"):
        k.apply_lut(x, lut[:2])


def test_compose_tables_is_exactly_one_then_the_other():
    rng = np.random.default_rng(6)
    x = _img((9, 11, 3))
    one = rng.integers(0, 256, 256, dtype=np.uint8)
    per = rng.integers(0, 256, (3, 256), dtype=np.uint8)
    for inner, outer in [(one, one[::-1].copy()), (one, per), (per, one), (per, per[::-1].copy())]:
        fused = k.apply_lut(x, k.compose_tables(outer, inner))
        np.testing.assert_array_equal(fused, k.apply_lut(k.apply_lut(x, inner), outer))


def test_value_tables_and_gamma_match_reference():
    v = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    for gain, offsets in [(1.0, [0.0, 0.0, 0.0]), (0.5, [0.0, 10.25, -3.5]), (2.7, [-300.0, 1.5, 128.0])]:
        np.testing.assert_array_equal(
            k.apply_lut(v, k.value_tables(gain, offsets)), k.value_affine_ref(v, gain, offsets)
        )
        one = k.value_table(gain, offsets[1])
        np.testing.assert_array_equal(k.apply_lut(v, one), k.value_affine_ref(v, gain, offsets[1]))
    for gamma in [0.05, 0.3, 0.5, 0.8, 1.0, 1.25, 2.2, 7.5, 10.0, *np.random.default_rng(7).uniform(0.1, 10, 200)]:
        np.testing.assert_array_equal(k.gamma_lut(gamma), k.gamma_lut_ref(gamma))


@pytest.mark.parametrize("shape", SHAPES)
def test_image_mean_is_the_exact_mean(shape):
    x = _img(shape)
    assert k.image_mean(x) == int(x.sum(dtype=np.int64)) / x.size
    assert k.image_mean(x[:, ::-1]) == k.image_mean(x)


@pytest.mark.parametrize("shape", SHAPES)
def test_warp_affine_matches_per_channel_reference(shape):
    x = _img(shape)
    h, w, _ = shape
    rng = np.random.default_rng(8)
    for fill_mode in ("constant", "reflect", "nearest"):
        for interpolation in ("linear", "nearest"):
            m = k.affine_matrix(h, w, angle=rng.uniform(-40, 40), scale=rng.uniform(0.8, 1.2), tx=1.5, shear_x=7)
            opts = {"fill_mode": fill_mode, "fill": 77, "interpolation": interpolation}
            np.testing.assert_array_equal(k.warp_affine(x, m, **opts), k.warp_affine_ref(x, m, **opts))


def test_affine_coeffs_compose_like_matrices():
    a = k.affine_coeffs(30, 40, angle=20, scale=1.1, tx=3, ty=-2, shear_x=5, shear_y=-4)
    r, sx, sy = np.radians(20), np.tan(np.radians(5)), np.tan(np.radians(-4))
    lin = 1.1 * np.array([[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]]) @ np.array([[1, sx], [sy, 1]])
    centre = np.array([19.5, 14.5])  # ((w - 1) / 2, (h - 1) / 2)
    want = np.hstack([lin, (centre + [3, -2] - lin @ centre)[:, None]])
    np.testing.assert_allclose(np.array(a).reshape(2, 3), want)
    np.testing.assert_array_equal(
        k.affine_matrix(30, 40, angle=20, scale=1.1, tx=3, ty=-2, shear_x=5, shear_y=-4), want
    )
    f = k.flip_coeffs(30, 40, "horizontal")
    three = [np.vstack([np.array(m).reshape(2, 3), [0, 0, 1]]) for m in (a, f)]
    np.testing.assert_allclose(np.array(k.compose_affine(a, f)).reshape(2, 3), (three[0] @ three[1])[:2])
    x = _img((30, 40, 3))
    np.testing.assert_array_equal(k.warp_affine(x, f, interpolation="nearest"), x[:, ::-1])
    np.testing.assert_array_equal(k.flip(x, "both"), x[::-1, ::-1])


def test_fill_boxes_in_place():
    x = _img((10, 12, 3))
    want = k.fill_boxes_ref(x, [[1, 4, 2, 9]], 9)
    assert k.fill_boxes(x, [[1, 4, 2, 9]], 9, out=x) is x
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("shape", [(9, 7, 3), (33, 17, 3), (64, 63, 3)])
def test_hsv_adjust_matches_reference(shape):
    x = _img(shape)
    for hue, sat in [(0.0, 1.3), (40.0, 1.0), (-17.0, 0.6), (179.0, 2.5), (3.0, 0.0)]:
        np.testing.assert_array_equal(k.hsv_adjust(x, hue, sat), k.hsv_adjust_ref(x, hue, sat))


def test_paths_without_stringzilla_give_the_same_bytes(monkeypatch) -> None:
    """stringzilla arrives with albumentations; without it the cv2/numba fallbacks must give identical results."""
    from pipelines.kernels import value as kv

    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    one = kv.value_table(1.3, -12.0)
    per = kv.value_tables(0.8, [5.0, -3.0, 20.0])
    fast = (kv.apply_lut(x, one), kv.apply_lut(x, per), kv.image_mean(x), kv.value_affine(x, 1.1, [3.0, 0.0, -7.0]))
    monkeypatch.setattr(kv, "_sz", None)
    slow = (kv.apply_lut(x, one), kv.apply_lut(x, per), kv.image_mean(x), kv.value_affine(x, 1.1, [3.0, 0.0, -7.0]))
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(slow[0], kv.apply_lut_ref(x, one)) and slow[2] == x.astype(np.int64).sum() / x.size


@pytest.mark.parametrize("shape", [(17, 23, 3), (8, 5, 1), (3, 3, 3)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_gaussian_noise_matches_reference_and_is_gaussian(shape, per_channel):
    x = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    for seed in (0, 12345, 2**63 - 1):
        y = k.gaussian_noise(x, seed, 11.5, per_channel)
        assert y.dtype == np.uint8 and y.shape == x.shape
        assert np.array_equal(y, k.gaussian_noise_ref(x, seed, 11.5, per_channel))
    flat = np.full((200, 200, 3), 128, np.uint8)
    d = k.gaussian_noise(flat, 7, 10.0, per_channel).astype(np.float64) - 128
    assert abs(d.mean()) < 0.2 and abs(d.std() - 10.0) < 0.2  # floor(x + z + 0.5) rounds: mean 0, std 10
    if not per_channel:
        assert (d[..., 0] == d[..., 1]).all() and (d[..., 1] == d[..., 2]).all()
    assert not np.array_equal(k.gaussian_noise(x, 1, 11.5), k.gaussian_noise(x, 2, 11.5))


@pytest.mark.parametrize("shape", [(17, 23, 3), (1, 1, 3), (64, 63, 3)])
def test_color_twist_matches_reference_keeps_grey_and_identity(shape):
    x = _img(shape, 4)
    for args in [(1.15, 120.0, 0.05, 0.8, 10.0), (0.8, 30.0, -0.2, 1.2, -10.0), (1.0, 0.0, 0.0, 0.0, 180.0)]:
        m, c = k.twist_matrix(*args)
        y = k.color_twist(x, m, c)
        assert np.array_equal(y, k.color_twist_ref(x, m, c))
        assert np.array_equal(k.color_twist(x.copy(), m, c, out=x.copy()), y)
    assert np.array_equal(k.color_twist(x, *k.twist_matrix()), x)  # the neutral twist
    grey = np.repeat(_img(shape[:2] + (1,), 5), 3, axis=2)
    assert np.array_equal(k.color_twist(grey, *k.twist_matrix(1.0, 0.0, 0.0, 1.4, 33.0)), grey)  # chroma 0 stays
    with pytest.raises(ValueError, match="RGB"):
        k.color_twist(x[..., :1], *k.twist_matrix())
