"""End-to-end build: ``augsvc build`` of flowers5 with flip+rotate, 4 copies per image plus the originals,
against a plain single-process loop doing the same work: decode each JPEG, apply albumentations'
HorizontalFlip(p=0.5) + Rotate(limit=30, reflect) four times, encode each copy as JPEG q95, write one Parquet file
with pyarrow. Ours reads the ingested shards, augments, encodes and publishes (hashing included).

Ray start-up is measured and reported apart; steady state uses flowers5 x10 (symlinks, so the page cache serves
both contenders alike). Peak memory (this process + Ray workers) compares a build of 1x and of 10x the data.

    python bench/build.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench._util import PeakRSS, emit, shared, tiny  # noqa: E402
from bench.ingest import replicate  # noqa: E402

COPIES = 4
STAGE = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30, "fill_mode": "reflect"}]


def baseline(root: Path, out: Path) -> int:
    import albumentations as A

    cv2.setNumThreads(1)
    t = A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=30, border_mode=cv2.BORDER_REFLECT_101, p=1)])
    images, labels = [], []
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            data = f.read_bytes()
            img = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            images.append(data)
            labels.append(ci)
            for _ in range(COPIES):
                aug = t(image=img)["image"]
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(aug, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                images.append(buf.tobytes())
                labels.append(ci)
    pq.write_table(pa.table({"image": images, "label": labels}), out, compression="zstd")
    return len(images)


def ours(store, source: str, output: str, workers: int) -> tuple[float, int]:
    from pipelines.recipes import load_recipe
    from pipelines.runner import build

    recipe = load_recipe({"input": source, "output": output, "seed": 0,
                          "stages": [{"op": STAGE, "copies": COPIES}]})  # fmt: skip
    t = time.perf_counter()
    rep = build(recipe, store, workers=workers)
    return time.perf_counter() - t, rep.manifest.rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="flowers x2 instead of x10")
    ap.add_argument("--json")
    args = ap.parse_args()
    times = 2 if args.quick else 10
    small = args.quick and tiny()  # the CI smoke run: in-process only, no Ray, no memory runs
    worker_counts = (0,) if small else (1, 2)
    tmp = Path(tempfile.mkdtemp(prefix="augsvc-bench-build-"))
    results: dict = {"cores": os.cpu_count(), "copies": COPIES}
    try:
        import ray

        from pipelines.executor import ensure_ray
        from pipelines.ingest import ingest
        from pipelines.store import Store

        flowers = shared("flowers5")
        big = tmp / f"flowers_x{times}"
        replicate(flowers, big, times)
        store = Store(tmp / "store")
        if not small:
            t = time.perf_counter()
            ensure_ray(2)
            results["ray_start_s"] = round(time.perf_counter() - t, 2)
            print(f"Ray start-up: {results['ray_start_s']:.1f} s (excluded from the rates below)")
        w_max = max(worker_counts)
        ingest(flowers, name="f1", store=store, workers=w_max)
        ingest(big, name="fbig", store=store, workers=w_max)
        ours(store, "f1", "warm", w_max)  # warm the workers (imports, numba caches)

        b_s = time.perf_counter()
        b_n = baseline(big, tmp / "b.parquet")
        b_s = time.perf_counter() - b_s
        row = {"rows_out": b_n, "baseline_rows_s": round(b_n / b_s)}
        for w in worker_counts:
            o_s, o_n = ours(store, "fbig", f"out{w}", w)
            assert o_n == b_n, (o_n, b_n)
            row[f"ours_{w}w_rows_s"] = round(o_n / o_s)
            row[f"ratio_{w}w"] = round(b_s / o_s, 2)
        results[f"flowers5 x{times}"] = row
        results["load_avg_1m"] = round(os.getloadavg()[0], 2)
        ours_txt = " | ".join(f"ours {w} workers {row[f'ours_{w}w_rows_s']} rows/s ({row[f'ratio_{w}w']:.2f}x)"
                              for w in worker_counts)  # fmt: skip
        print(
            f"flowers5 x{times}: {b_n} rows out | baseline 1 proc {row['baseline_rows_s']} rows/s | {ours_txt}   "
            f"target 2w >= 1.70x; load average {results['load_avg_1m']}"
        )
        if not small:
            ray.shutdown()
            mem = {}
            for k, src in (("x1", "f1"), (f"x{times}", "fbig")):
                with PeakRSS() as p:
                    ensure_ray(2)
                    ours(store, src, f"mem{k}", 2)
                    ray.shutdown()
                mem[k] = round(p.peak / 2**20)
            ratio = mem[f"x{times}"] / mem["x1"]
            results["peak_rss_mib"] = mem
            results["peak_rss_ratio"] = round(ratio, 2)
            print(f"peak RSS (driver + Ray workers): x1 {mem['x1']} MiB, x{times} {mem[f'x{times}']} MiB "
                  f"-> {ratio:.2f}x   target <= 1.50x")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(results, args.json)


if __name__ == "__main__":
    main()
