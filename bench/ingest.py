"""Ingest throughput: augsvc ingest (Ray, 1 and 2 workers) against a plain single-process loop.

The baseline reads each file, decodes it in full with OpenCV (as validation) and writes one Parquet file with
pyarrow. Ingest validates too, but a JPEG that is stored as it is (the default) is checked with a 1/8-scale grey
decode (``imagecodec.validate_jpeg``: every entropy-coded byte is still decoded, so corrupt and truncated files are
caught as by a full decode) plus the frame header for its shape; other formats get a full decode, as here.
Ray start-up is measured and reported apart; steady state is measured on flowers5 read ten times (copied to a
temporary folder, read once before timing so both contenders find it cached) and on MNIST IDX read ten times (ten
copies of the IDX pair in one folder, 100,000 images) against a bulk numpy loop (one ``frombuffer`` per file, a list of
``tobytes``, one Parquet file). Peak memory (this process + Ray workers) is compared between 1x and 10x flowers input.

    python bench/ingest.py [--quick] [--only flowers|mnist] [--json out.json]
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


def replicate(src: Path, dst: Path, times: int) -> int:
    """``dst/<class>/<k>_<name>``: copies of every image of ``src``, ``times`` over (real files, as users have;
    symlinks would add a stat per file to our listing that a real folder does not have)."""
    n = 0
    for cdir in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / cdir.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cdir.iterdir()):
            for k in range(times):
                shutil.copyfile(f, dst / cdir.name / f"{k}_{f.name}")
                n += 1
    return n


def baseline_images(root: Path, out: Path) -> int:
    cv2.setNumThreads(1)
    images, labels, sources = [], [], []
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            data = f.read_bytes()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                continue
            images.append(data)
            labels.append(ci)
            sources.append(f"{c}/{f.name}")
    pq.write_table(pa.table({"image": images, "label": labels, "source": sources}), out, compression="zstd")
    return len(images)


def replicate_idx(src: Path, dst: Path, times: int) -> None:
    """``dst/c<k>-t10k-{images,labels}-...``: ``times`` copies of the MNIST IDX pair (as many images, one folder)."""
    dst.mkdir(parents=True, exist_ok=True)
    for k in range(times):
        for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            shutil.copyfile(src / f, dst / f"c{k}-{f}")


def baseline_idx(root: Path, out: Path) -> int:
    """Bulk numpy: one ``frombuffer`` per IDX file, a list of ``tobytes``, one Parquet file."""
    import gzip

    images, labels = [], []
    for img in sorted(root.glob("*images-idx3-ubyte.gz")):
        with gzip.open(img, "rb") as f:
            x = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28)
        with gzip.open(img.with_name(img.name.replace("images-idx3", "labels-idx1")), "rb") as f:
            y = np.frombuffer(f.read()[8:], np.uint8)
        images += [a.tobytes() for a in x]
        labels.append(y.astype(np.int32))
    pq.write_table(pa.table({"image": images, "label": np.concatenate(labels)}), out, compression="zstd")
    return len(images)


def run_ours(src: Path, store_dir: Path, workers: int) -> tuple[float, int]:
    from pipelines.ingest import ingest
    from pipelines.store import Store

    shutil.rmtree(store_dir, ignore_errors=True)
    t = time.perf_counter()
    rep = ingest(src, name="b", store=Store(store_dir), workers=workers)
    return time.perf_counter() - t, rep.manifest.rows


def best(fn, repeats: int) -> tuple[float, int]:
    runs = [fn() for _ in range(repeats)]
    return min(r[0] for r in runs), runs[0][1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="flowers x3 instead of x10, one repeat")
    ap.add_argument("--only", choices=["flowers", "mnist"], help="one input only (no memory runs)")
    ap.add_argument("--json")
    args = ap.parse_args()
    times = 3 if args.quick else 10
    repeats = 1 if args.quick else 2
    small = args.quick and tiny()  # the CI smoke run: in-process only, no Ray, no memory runs
    worker_counts = (0,) if small else (1, 2)
    tmp = Path(tempfile.mkdtemp(prefix="augsvc-bench-"))
    results: dict = {"cores": os.cpu_count()}
    try:
        flowers = shared("flowers5")
        big = tmp / f"flowers_x{times}"
        replicate(flowers, big, times)
        mnist = tmp / f"mnist_x{times}"
        replicate_idx(shared("mnist10k"), mnist, times)
        import ray

        from pipelines.executor import ensure_ray

        if not small:
            t = time.perf_counter()
            ensure_ray(2)
            results["ray_start_s"] = round(time.perf_counter() - t, 2)
            print(f"Ray start-up: {results['ray_start_s']:.1f} s (excluded from the rates below)")
        run_ours(flowers, tmp / "warm", max(worker_counts))  # warm the workers' imports once

        for label, src, base_fn, target in (
            (f"flowers5 x{times}", big, baseline_images, 1.7),
            (f"mnist10k idx x{times}", mnist, baseline_idx, 0.8),
        ):
            if args.only and not label.startswith(args.only):
                continue
            b_s, b_n = best(lambda src=src, base_fn=base_fn: _timed(base_fn, src, tmp / "b.parquet"), repeats)
            row = {"rows": b_n, "baseline_img_s": round(b_n / b_s)}
            for w in worker_counts:
                o_s, o_n = best(lambda src=src, w=w: run_ours(src, tmp / f"s{w}", w), repeats)
                assert o_n == b_n, (o_n, b_n)
                row[f"ours_{w}w_img_s"] = round(o_n / o_s)
                row[f"ours_{w}w_img_s_per_core"] = round(o_n / o_s / max(w, 1))
                row[f"ratio_{w}w"] = round(b_s / o_s, 2)
            results[label] = row
            ours_txt = " | ".join(
                f"ours {w} worker{'s' if w != 1 else ''} {row[f'ours_{w}w_img_s']:6d} img/s ({row[f'ratio_{w}w']:.2f}x)"
                for w in worker_counts
            )
            print(
                f"{label:20s} {b_n:6d} rows | baseline 1 proc {row['baseline_img_s']:6d} img/s | {ours_txt}   "
                f"target 2w >= {target:.2f}x"
            )
        results["load_avg_1m"] = round(os.getloadavg()[0], 2)
        print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
        if not small and not args.only:
            ray.shutdown()
            mem = {}
            for k, src in (("x1", flowers), (f"x{times}", big)):
                with PeakRSS() as p:
                    ensure_ray(2)
                    run_ours(src, tmp / "m", 2)
                    ray.shutdown()
                mem[k] = round(p.peak / 2**20)
            results["peak_rss_mib"] = mem
            ratio = mem[f"x{times}"] / mem["x1"]
            print(f"peak RSS (driver + Ray workers): x1 {mem['x1']} MiB, x{times} {mem[f'x{times}']} MiB "
                  f"-> {ratio:.2f}x for {times}x the input (flat = ~1.0)")  # fmt: skip
            results["peak_rss_ratio"] = round(ratio, 2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(results, args.json)


def _timed(fn, src: Path, out: Path) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn(src, out)
    return time.perf_counter() - t, n


if __name__ == "__main__":
    main()
