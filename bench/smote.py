"""SMOTE throughput: our generator (plan + generate with recorded parents) against imbalanced-learn's
``SMOTE().fit_resample`` on the same arrays, in the same run.

Cases: a 200,000 x 20 imbalanced synthetic table (10% minority), and MNIST-like 784-feature images
(../shared/data/mnist10k, class 0 cut to 100 images, the rest as they are). Rows/s = synthetic rows made per second.

    python bench/smote.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._util import emit, shared  # noqa: E402
from generators.smote import SmoteParams, generate, plan  # noqa: E402


def ours(X: np.ndarray, y: np.ndarray) -> int:
    params = SmoteParams()
    classes, counts = np.unique(y, return_counts=True)
    need = plan({str(c): int(n) for c, n in zip(classes, counts, strict=True)}, params)
    made = 0
    for c, n in need.items():
        made += len(generate(X, y, target_class=type(y[0])(c), n_new=n, params=params, seed=0).X_new)
    return made


def imblearn(X: np.ndarray, y: np.ndarray) -> int:
    from imblearn.over_sampling import SMOTE

    Xr, _ = SMOTE(random_state=0).fit_resample(X, y)
    return len(Xr) - len(X)


def timed(fn, X, y, repeats: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn(X, y)
        best = min(best, time.perf_counter() - t)
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 40_000 if args.quick else 200_000
    X_tab = np.vstack([rng.normal(0, 1, (n * 9 // 10, 20)), rng.normal(0.7, 1, (n // 10, 20))])
    y_tab = np.array([0] * (n * 9 // 10) + [1] * (n // 10))
    with gzip.open(shared("mnist10k") / "t10k-images-idx3-ubyte.gz") as f:
        imgs = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 784).astype(np.float64)
    with gzip.open(shared("mnist10k") / "t10k-labels-idx1-ubyte.gz") as f:
        labs = np.frombuffer(f.read()[8:], np.uint8).astype(np.int64)
    keep = np.concatenate([np.flatnonzero(labs == 0)[:100], np.flatnonzero(labs != 0)])
    if args.quick:
        keep = keep[:3000]
    cases = {f"table {len(y_tab)}x20": (X_tab, y_tab), f"mnist {len(keep)}x784": (imgs[keep], labs[keep])}
    results = {}
    for name, (X, y) in cases.items():
        o_s, o_n = timed(ours, X, y, 1 if args.quick else 2)
        i_s, i_n = timed(imblearn, X, y, 1 if args.quick else 2)
        results[name] = {"ours_rows_s": round(o_n / o_s), "imblearn_rows_s": round(i_n / i_s),
                         "rows": o_n, "ratio": round((o_n / o_s) / (i_n / i_s), 2)}  # fmt: skip
        print(f"{name:18s} ours {o_n / o_s:9.0f} rows/s | imblearn {i_n / i_s:9.0f} rows/s "
              f"({o_n} vs {i_n} rows) -> {results[name]['ratio']:.2f}x   target >= 0.8x")  # fmt: skip
    emit(results, args.json)


if __name__ == "__main__":
    main()
