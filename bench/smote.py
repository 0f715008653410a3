"""SMOTE throughput: our generator (``plan`` + ``generate`` with recorded parents and gaps, for every class that
needs rows) against imbalanced-learn's ``SMOTE().fit_resample`` on the same arrays, in the same run.

Cases: a 200,000 x 20 imbalanced synthetic table (90% / 8% / 2%, so two classes need rows), and MNIST images as
784 features (../shared/data/mnist10k test set, digit 0 cut to 100 images; ``auto`` raises every digit to the
largest, 1,135). For images ours also converts the new rows back to uint8 images (``features_to_images``), the work
a build does. Rows/s = synthetic rows made per second; ratio = ours / imbalanced-learn (target >= 0.8).

    python bench/smote.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._util import emit, shared, tiny  # noqa: E402
from generators.smote import SmoteParams, features_to_images, generate, images_to_features, plan  # noqa: E402


def ours(X: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...] | None = None) -> int:
    params = SmoteParams()
    classes, counts = np.unique(y, return_counts=True)
    label = {str(c): c for c in classes}
    made = 0
    for i, (name, n_new) in enumerate(plan({str(c): int(n) for c, n in zip(classes, counts, strict=True)},
                                           params).items()):  # fmt: skip
        syn = generate(X, y, target_class=label[name], n_new=n_new, params=params, seed=i)
        if image_shape is not None:
            features_to_images(syn.X_new, image_shape)
        made += len(syn)
    return made


def imblearn(X: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...] | None = None) -> int:
    from imblearn.over_sampling import SMOTE

    Xr, _ = SMOTE(random_state=0).fit_resample(X, y)
    return len(Xr) - len(X)


def timed(fn: Callable, args: tuple, repeats: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, n


def table(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [n * 90 // 100, n * 8 // 100, n - n * 90 // 100 - n * 8 // 100]
    X = np.vstack([rng.normal(mu, 1, (s, 20)) for mu, s in zip([0.0, 0.7, -0.7], sizes, strict=True)])
    return X, np.repeat(np.arange(3), sizes)


def mnist(quick: bool, zeros: int = 100) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(shared("mnist10k") / "t10k-images-idx3-ubyte.gz") as f:
        imgs = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28, 1)
    with gzip.open(shared("mnist10k") / "t10k-labels-idx1-ubyte.gz") as f:
        labs = np.frombuffer(f.read()[8:], np.uint8).astype(np.int64)
    keep = np.concatenate([np.flatnonzero(labs == 0)[:zeros], np.flatnonzero(labs != 0)])
    if quick:
        keep = keep[:3000]
    return images_to_features(imgs[keep]), labs[keep]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="40,000-row table, 3,000 images, one repeat")
    ap.add_argument("--json")
    args = ap.parse_args()
    small = args.quick and tiny()
    X_tab, y_tab = table(600 if small else 40_000 if args.quick else 200_000)
    X_img, y_img = mnist(args.quick, zeros=8 if small else 100)
    cases = {
        f"table {len(y_tab)}x20": (X_tab, y_tab, None),
        f"mnist {len(y_img)}x784": (X_img, y_img, (28, 28, 1)),
    }
    repeats = 1 if args.quick else 3
    warm = table(300)  # imports and first-call set-up stay out of both timings
    ours(*warm), imblearn(*warm)
    results = {}
    for name, case in cases.items():
        i_s, i_n = timed(imblearn, case, repeats)
        o_s, o_n = timed(ours, case, repeats)
        ratio = (o_n / o_s) / (i_n / i_s)
        results[name] = {"ours_rows_s": round(o_n / o_s), "imblearn_rows_s": round(i_n / i_s), "rows": o_n,
                         "imblearn_rows": i_n, "ours_s": round(o_s, 3), "imblearn_s": round(i_s, 3),
                         "ratio": round(ratio, 2)}  # fmt: skip
        print(f"{name:18s} ours {o_n / o_s:9.0f} rows/s ({o_s:.2f} s) | imblearn {i_n / i_s:9.0f} rows/s "
              f"({i_s:.2f} s) | {o_n} vs {i_n} rows -> {ratio:.2f}x   target >= 0.8x")  # fmt: skip
    emit(results, args.json)


if __name__ == "__main__":
    main()
