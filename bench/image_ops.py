"""Single-core throughput of augsvc image ops against albumentations, measured in the same run.

    python bench/image_ops.py [--quick] [--json out.json]

For every op and two chains (flip+rotate; the "full" chain: flip, affine, brightness/contrast,
hue/saturation, coarse dropout) at 128x128 and 224x224 RGB, images per second for ours (``op(x, rng)``,
sampling included) and for the equivalent albumentations transform called in a plain Python loop
(``t(image=x)``), best of a few repeats, after a warm-up (numba compilation, caches). Value chains
(``value:`` rows: our ``sequence`` of value ops, which composes their tables into one pass) are compared
with the same ops as separate albumentations transforms in ``A.Compose`` (what a user would write), in a
plain loop without ``Compose``, and with the one albumentations transform that does the same where there
is one. A kernel section compares the numba kernels with their numpy references and the closest
OpenCV/albucore call. Everything runs on one thread (OpenCV and numba set to 1); on a shared machine
absolute numbers are noisy, the ratios less so.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import albucore  # noqa: E402
import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import tiny  # noqa: E402
from pipelines import kernels  # noqa: E402
from pipelines.transforms.compose import build_op  # noqa: E402

cv2.setNumThreads(1)

BORDER = cv2.BORDER_CONSTANT
FULL_OURS = {
    "op": "sequence",
    "ops": [
        {"op": "hflip", "p": 0.5},
        {"op": "affine", "rotate_limit": 15, "scale_range": [0.9, 1.1], "shift_limit": 0.0625},
        {"op": "color_jitter", "contrast_range": [0.8, 1.2], "saturation_range": [0.8, 1.2], "hue_limit": 10},
        {"op": "cutout", "num_holes_range": [1, 8], "hole_size_range": [0.05, 0.2]},
    ],
}


def full_albu() -> A.BasicTransform:
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                rotate=(-15, 15),
                scale=(0.9, 1.1),
                translate_percent=(-0.0625, 0.0625),
                border_mode=BORDER,
                p=1,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=25, val_shift_limit=0, p=1),
            A.CoarseDropout(num_holes_range=(1, 8), hole_height_range=(0.05, 0.2), hole_width_range=(0.05, 0.2), p=1),
        ]
    )


class Plain:
    """Albumentations transforms called one after the other, without ``A.Compose``."""

    def __init__(self, *transforms: A.BasicTransform) -> None:
        self.transforms = transforms

    def __call__(self, *, image: np.ndarray) -> dict[str, np.ndarray]:
        for t in self.transforms:
            image = t(image=image)["image"]
        return {"image": image}


def _albu_value_ops(contrast: bool = True) -> list[A.BasicTransform]:
    ops = [A.RandomBrightnessContrast(0.2, 0.0, p=1)]
    if contrast:
        ops.append(A.RandomBrightnessContrast(0.0, 0.2, p=1))
    return [*ops, A.RGBShift(20, 20, 20, p=1), A.RandomGamma(gamma_limit=(80, 125), p=1)]


VALUE4 = {"op": "sequence", "ops": [{"op": n} for n in ("brightness", "contrast", "channel_shift", "gamma")]}
VALUE3 = {"op": "sequence", "ops": [{"op": n} for n in ("brightness", "channel_shift", "gamma")]}
VALUE2 = {"op": "sequence", "ops": [{"op": "brightness"}, {"op": "contrast"}]}


def cases(size: int) -> list[tuple[str, dict[str, Any], Callable[[], Any] | None]]:
    """(name, our spec, factory of the equivalent albumentations transform or None)."""
    return [
        ("hflip", {"op": "hflip", "p": 1}, lambda: A.HorizontalFlip(p=1)),
        ("vflip", {"op": "vflip", "p": 1}, lambda: A.VerticalFlip(p=1)),
        ("rotate", {"op": "rotate", "limit": 30}, lambda: A.Rotate(limit=30, border_mode=BORDER, p=1)),
        (
            "shift",
            {"op": "shift", "limit": 0.1},
            lambda: A.Affine(translate_percent=(-0.1, 0.1), border_mode=BORDER, p=1),
        ),
        ("zoom", {"op": "zoom"}, lambda: A.Affine(scale=(0.9, 1.1), border_mode=BORDER, p=1)),
        ("shear", {"op": "shear"}, lambda: A.Affine(shear=(-10, 10), border_mode=BORDER, p=1)),
        (
            "affine",
            {"op": "affine"},
            lambda: A.Affine(
                rotate=(-15, 15),
                scale=(0.9, 1.1),
                translate_percent=(-0.0625, 0.0625),
                border_mode=BORDER,
                p=1,
            ),
        ),
        (
            "random_resized_crop",
            {"op": "random_resized_crop", "size": [size, size]},
            lambda: A.RandomResizedCrop(size=(size, size), p=1),
        ),
        ("brightness", {"op": "brightness"}, lambda: A.RandomBrightnessContrast(0.2, 0.0, p=1)),
        ("contrast", {"op": "contrast"}, lambda: A.RandomBrightnessContrast(0.0, 0.2, p=1)),
        ("channel_shift", {"op": "channel_shift"}, lambda: A.RGBShift(20, 20, 20, p=1)),
        ("gamma", {"op": "gamma"}, lambda: A.RandomGamma(gamma_limit=(80, 125), p=1)),
        ("hue", {"op": "hue"}, lambda: A.HueSaturationValue(18, 0, 0, p=1)),
        ("saturation", {"op": "saturation"}, lambda: A.HueSaturationValue(0, 30, 0, p=1)),
        ("color_jitter", {"op": "color_jitter"}, lambda: A.ColorJitter(0.2, 0.2, 0.2, 10 / 360, p=1)),
        (
            "cutout",
            {"op": "cutout"},
            lambda: A.CoarseDropout(
                num_holes_range=(1, 8), hole_height_range=(0.05, 0.2), hole_width_range=(0.05, 0.2), p=1
            ),
        ),
        (
            "gaussian_noise",
            {"op": "gaussian_noise"},
            lambda: A.GaussNoise(std_range=(5 / 255, 20 / 255), p=1),
        ),
        ("blur", {"op": "blur"}, lambda: A.Blur(blur_limit=(3, 7), p=1)),
        ("rand_augment", {"op": "rand_augment"}, None),
        (
            "chain:flip+rotate",
            {"op": "sequence", "ops": [{"op": "hflip"}, {"op": "rotate", "limit": 30}]},
            lambda: A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=30, border_mode=BORDER, p=1)]),
        ),
        ("chain:full", FULL_OURS, full_albu),
        (
            "value:brightness+contrast vs A.RandomBrightnessContrast",
            VALUE2,
            lambda: A.RandomBrightnessContrast(0.2, 0.2, p=1),
        ),
        ("value:bri+con+shift+gamma vs A.Compose of 4", VALUE4, lambda: A.Compose(_albu_value_ops())),
        ("value:bri+con+shift+gamma vs 4 albu, plain loop", VALUE4, lambda: Plain(*_albu_value_ops())),
        ("value:bri+shift+gamma vs A.Compose of 3", VALUE3, lambda: A.Compose(_albu_value_ops(False))),
        ("value:bri+shift+gamma vs 3 albu, plain loop", VALUE3, lambda: Plain(*_albu_value_ops(False))),
    ]


def rate(fn: Callable[[np.ndarray], Any], images: list[np.ndarray], n: int, repeats: int) -> float:
    """Best images/s over ``repeats`` runs of ``n`` calls cycling through ``images``."""
    for x in images[:8]:
        fn(x)  # warm-up
    best = float("inf")
    m = len(images)
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(images[i % m])
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_ops(size: int, n: int, repeats: int, only: list[str] | None = None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(16)]
    rows = []
    for name, spec, albu_factory in cases(size):
        if only and name not in only:
            continue
        op = build_op(spec)
        op_rng = np.random.default_rng(1)
        ours = rate(lambda x, op=op, r=op_rng: op(x, r), images, n, repeats)
        albu = None
        if albu_factory is not None:
            t = albu_factory()
            albu = rate(lambda x, t=t: t(image=x)["image"], images, n, repeats)
        rows.append(_row(name, size, ours, albu))
    return rows


def bench_kernels(size: int, n: int, repeats: int) -> list[dict[str, Any]]:
    """Numba kernels against their numpy references and the closest OpenCV/albucore call."""
    rng = np.random.default_rng(0)
    a = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(16)]
    b = a[::-1]
    gain, offsets = 1.15, np.array([12.0, -7.0, 3.0])
    lut3 = kernels.value_affine_ref(np.arange(256, dtype=np.uint8).reshape(256, 1, 1).repeat(3, 2), gain, offsets)
    brightness_contrast = A.RandomBrightnessContrast(0.2, 0.2, p=1)
    value = rate(lambda x: kernels.value_affine(x, gain, offsets), a, n, repeats)
    tables = kernels.value_tables(gain, offsets)
    table = kernels.value_table(gain, 10.0)
    per_channel = rate(lambda x: kernels.apply_lut(x, tables), a, n, repeats)
    per_channel_loop = rate(lambda x: kernels.apply_lut_loop(x, tables), a, n, repeats)
    one_table = rate(lambda x: kernels.apply_lut(x, table), a, n, repeats)
    hsv = rate(lambda x: kernels.hsv_adjust(x, 12.0, 1.1), a, n, repeats)
    pairs = list(zip(a, b, strict=True))
    blend_nb = rate(lambda i: kernels.blend(*pairs[i], 0.3), list(range(16)), n, repeats)
    return [
        _row(
            "kernel:value_affine vs A.RandomBrightnessContrast",
            size,
            value,
            rate(lambda x: brightness_contrast(image=x)["image"], a, n, repeats),
        ),
        _row(
            "kernel:value_affine vs albucore.multiply_add",
            size,
            value,
            rate(lambda x: albucore.multiply_add(x, gain, 10.0, inplace=False), a, n, repeats),
        ),
        _row(
            "kernel:value_affine vs numpy reference",
            size,
            value,
            rate(lambda x: kernels.value_affine_ref(x, gain, offsets), a, n, repeats),
        ),
        _row(
            "kernel:value_affine vs cv2.LUT 3-channel",
            size,
            value,
            rate(lambda x: cv2.LUT(x, lut3), a, n, repeats),
        ),
        _row(
            "kernel:apply_lut (C,256) numba gather loop vs cv2.LUT 3-ch",
            size,
            per_channel_loop,
            rate(lambda x: cv2.LUT(x, lut3), a, n, repeats),
        ),
        _row(
            "kernel:apply_lut (C,256) sz x3+numba merge vs gather loop",
            size,
            per_channel,
            per_channel_loop,
        ),
        _row(
            "kernel:apply_lut (C,256) sz x3+numba merge vs albucore.add",
            size,
            per_channel,
            rate(lambda x: albucore.add(x, offsets, inplace=False), a, n, repeats),
        ),
        _row(
            "kernel:apply_lut (256,) stringzilla vs cv2.LUT",
            size,
            one_table,
            rate(lambda x: cv2.LUT(x, table), a, n, repeats),
        ),
        _row(
            "kernel:hsv_adjust numba H/S pass vs cv2.LUT 3-channel",
            size,
            hsv,
            rate(lambda x: kernels.hsv_adjust_ref(x, 12.0, 1.1), a, n, repeats),
        ),
        _row(
            "kernel:blend vs numpy reference",
            size,
            blend_nb,
            rate(lambda i: kernels.blend_ref(*pairs[i], 0.3), list(range(16)), n, repeats),
        ),
        _row(
            "kernel:blend vs cv2.addWeighted (other rounding)",
            size,
            blend_nb,
            rate(
                lambda i: cv2.addWeighted(pairs[i][0], 0.3, pairs[i][1], 0.7, 0.0),
                list(range(16)),
                n,
                repeats,
            ),
        ),
    ]


def _row(name: str, size: int, ours: float, other: float | None) -> dict[str, Any]:
    ratio = ours / other if other else None
    return {"name": name, "size": size, "ours_per_s": ours, "other_per_s": other, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--only", nargs="+", help="only these op/chain rows (names as printed), no kernel rows")
    args = parser.parse_args(argv)
    n128, repeats = (150, 3) if args.quick else (1000, 5)
    if args.quick and tiny():
        n128, repeats = 4, 1
    rows = []
    for size in (128, 224):
        n = n128 if size == 128 else max(min(50, n128), n128 // 3)
        if not args.only:
            rows += bench_kernels(size, n * 4, repeats)
        rows += bench_ops(size, n, repeats, args.only)
    print(
        f"single-core (cv2.setNumThreads(1), numba/OMP threads 1); albumentations {A.__version__}, "
        f"opencv {cv2.__version__}; RGB uint8; best of {repeats}; 'other' = albumentations unless named"
    )
    print(f"{'name':60s} {'size':>4s} {'ours/s':>9s} {'other/s':>9s} {'ratio':>6s}")
    for r in rows:
        other = f"{r['other_per_s']:9.0f}" if r["other_per_s"] else f"{'-':>9s}"
        ratio = f"{r['ratio']:6.2f}" if r["ratio"] else f"{'-':>6s}"
        print(f"{r['name']:60s} {r['size']:4d} {r['ours_per_s']:9.0f} {other} {ratio}")
    targets = {
        "kernel:value_affine vs A.RandomBrightnessContrast": 3.0,
        "value:bri+con+shift+gamma vs A.Compose of 4": 3.0,
        "value:bri+shift+gamma vs A.Compose of 3": 3.0,
        "chain:full": 3.0,
        **dict.fromkeys(("gaussian_noise", "hue", "saturation", "random_resized_crop", "blur"), 1.0),
        "chain:flip+rotate": 1.5,
    }
    for name, target in targets.items():
        got = [f"{r['ratio']:.2f}x@{r['size']}" for r in rows if r["name"] == name]
        print(f"target {name}: >= {target}x, measured {', '.join(got)}")
    if args.json:
        meta = {
            "single_core": True,
            "quick": args.quick,
            "repeats": repeats,
            "albumentations": A.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        args.json.write_text(json.dumps({"meta": meta, "targets": targets, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
