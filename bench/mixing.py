"""Batch mixing throughput: ``pipelines.mixing.mix_batch`` on 128x128 uint8 batches against timm-style float
implementations (timm's Mixup in per-element mode, written out here because timm's wheel pulls torchvision, which
does not import beside this torch), measured in the same run, one thread.

Baselines, as a training loop would run them on the same batch:
- torch: uint8 NHWC -> float32 tensor, per-element ``x[i] = lam*x[i] + (1-lam)*x[flip[i]]`` (timm ``_mix_elem``)
  or a box paste per element (``_mix_elem`` with cutmix);
- numpy: the same in float32 numpy.

    python bench/mixing.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._util import emit, tiny  # noqa: E402
from pipelines.mixing import MixSpec, cutmix_box, mix_batch  # noqa: E402


def timm_torch(x_u8: np.ndarray, method: str, rng: np.random.Generator):
    import torch

    x = torch.from_numpy(x_u8).float()
    n = x.shape[0]
    lams = rng.beta(1.0, 1.0, size=n)
    x_orig = x.clone()
    spec = MixSpec(method="cutmix", alpha=1.0)
    for i in range(n):
        j = n - i - 1
        if method == "mixup":
            x[i] = x[i] * float(lams[i]) + x_orig[j] * (1 - float(lams[i]))
        else:
            y0, y1, x0, x1 = cutmix_box(x.shape[1], x.shape[2], float(lams[i]), rng, spec)
            x[i, y0:y1, x0:x1] = x_orig[j, y0:y1, x0:x1]
    return x


def timm_numpy(x_u8: np.ndarray, method: str, rng: np.random.Generator):
    x = x_u8.astype(np.float32)
    n = x.shape[0]
    lams = rng.beta(1.0, 1.0, size=n)
    x_orig = x.copy()
    spec = MixSpec(method="cutmix", alpha=1.0)
    for i in range(n):
        j = n - i - 1
        if method == "mixup":
            x[i] = x[i] * lams[i] + x_orig[j] * (1 - lams[i])
        else:
            y0, y1, x0, x1 = cutmix_box(x.shape[1], x.shape[2], float(lams[i]), rng, spec)
            x[i, y0:y1, x0:x1] = x_orig[j, y0:y1, x0:x1]
    return x


def rate(fn, batches, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            fn(b)
        best = min(best, time.perf_counter() - t)
    return sum(len(b) for b in batches) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    side = 16 if args.quick and tiny() else 128
    batches = [rng.integers(0, 256, (64, side, side, 3), dtype=np.uint8) for _ in range(2 if args.quick else 8)]
    labels = rng.integers(0, 10, 64)
    repeats = 2 if args.quick else 3
    mix_batch(batches[0], labels, method="mixup", rng=rng, num_classes=10)  # numba warm-up
    results = {}
    print("128x128x3 uint8, batches of 64, one thread; images/s (higher is better)")
    for method in ("mixup", "cutmix"):
        g = np.random.default_rng(1)
        ours = rate(lambda b, m=method, g=g: mix_batch(b, labels, method=m, alpha=1.0, rng=g, num_classes=10),
                    batches, repeats)  # fmt: skip
        t_torch = rate(lambda b, m=method: timm_torch(b, m, np.random.default_rng(2)), batches, repeats)
        t_np = rate(lambda b, m=method: timm_numpy(b, m, np.random.default_rng(3)), batches, repeats)
        results[method] = {
            "ours": round(ours),
            "timm_style_torch": round(t_torch),
            "timm_style_numpy": round(t_np),
            "ratio_vs_torch": round(ours / t_torch, 2),
            "ratio_vs_numpy": round(ours / t_np, 2),
        }
        print(f"{method:7s} ours {ours:8.0f} | timm-style torch float {t_torch:8.0f} ({ours / t_torch:.2f}x) | "
              f"numpy float {t_np:8.0f} ({ours / t_np:.2f}x)   target >= 2x")  # fmt: skip
    emit(results, args.json)


if __name__ == "__main__":
    main()
