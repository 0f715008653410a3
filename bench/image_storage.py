"""Image storage codecs: bytes per image, encode rate and read+decode rate, one core, on flowers5 at 128x128.

This is the measurement behind the default ``--image-storage auto`` (see docs/architecture.md). Each codec
is measured in the same run on the same decoded images; "read" includes reading a zstd Parquet shard with
pyarrow and turning every row back into a uint8 array.

    python bench/image_storage.py [--quick] [--size 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench._util import emit, shared, tiny  # noqa: E402
from schemas import imagecodec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    files = sorted(shared("flowers5").glob("*/*.jpg"))[: (20 if tiny() else 500) if args.quick else 2000]
    imgs = [imagecodec.resize(imagecodec.decode_file_bytes(f.read_bytes()), args.size, args.size) for f in files]
    n = len(imgs)
    results = {"images": n, "size": args.size}
    print(f"{n} flowers5 images at {args.size}x{args.size}, one core")
    print(f"{'codec':10s} {'bytes/img':>10s} {'vs jpeg95':>9s} {'encode/s':>9s} {'read+decode/s':>14s}")
    base_bytes = None
    for codec, q in (("jpeg", 95), ("jpeg", 90), ("webp", 90), ("png", None), ("raw", None)):
        t = time.perf_counter()
        blobs = [imagecodec.encode(im, codec, jpeg_quality=q or 95) for im in imgs]
        enc = n / (time.perf_counter() - t)
        sink = io.BytesIO()
        pq.write_table(pa.table({"image": blobs}), sink, compression="zstd")
        size = sink.tell() / n
        base_bytes = base_bytes or size
        t = time.perf_counter()
        col = pq.read_table(io.BytesIO(sink.getvalue()))["image"].to_pylist()
        for b in col:
            imagecodec.decode(b, codec, args.size, args.size, 3)
        dec = n / (time.perf_counter() - t)
        name = f"{codec}{q or ''}"
        results[name] = {"bytes_per_image": round(size), "encode_per_s": round(enc), "read_decode_per_s": round(dec)}
        print(f"{name:10s} {size:10.0f} {size / base_bytes:8.1f}x {enc:9.0f} {dec:14.0f}")
    emit(results, args.json)


if __name__ == "__main__":
    main()
