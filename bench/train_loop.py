"""Training-loop throughput: images per second delivered to a consumer loop, augsvc against what users run today.

Contenders, all over flowers5 resized to 128x128 (4,317 images), batches of 64, shuffled, the same augmentation
(``flip+rotate``: hflip p=0.5 + rotate +-30 degrees; ``full``: the full chain of ``bench/image_ops.py``: hflip,
affine, colour jitter, cutout):

- ``torch+albu``: a torch ``DataLoader`` over the same images as JPEG files (q95, one folder per class, what
  ``torchvision.datasets.ImageFolder`` reads), a map-style dataset that reads a file, decodes it with OpenCV and
  applies the albumentations equivalent, default collate, ``num_workers`` W;
- ``torch+tv2``: the same with torchvision v2 transforms, when torchvision imports (it does not beside the CPU build
  of torch 2.13.0 that this project pins: see docs/benchmarks.md);
- ``augsvc.Stream`` in-process (no DataLoader: W = 0 only) and ``as_torch_dataset`` in a ``DataLoader(batch_size=None,
  num_workers=W)``, over a version stored as raw pixels (``--image-storage raw``) and one stored as the same JPEGs.

Every loader uses persistent workers; one warm-up epoch per loader (worker start-up, numba compilation) stays out of
the timing; then ``repeats`` epochs each, interleaved between contenders, best epoch kept. The consumer loop only
counts images (a model step would cost the same for every contender). One thread per process (OpenCV, torch, numba).
Ratios are against the best baseline at the same W, measured in the same run.

    python bench/train_loop.py [--quick] [--chains flip+rotate full] [--workers 0 1 2] [--repeats N] [--json out]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from bench._util import emit, shared, tiny  # noqa: E402

BATCH = 64
SIZE = 128
BORDER = cv2.BORDER_CONSTANT
FLIP_ROTATE = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30}]


def albu_transform(chain: str):
    import albumentations as A

    if chain == "flip+rotate":
        return A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=30, border_mode=BORDER, p=1)])
    from bench.image_ops import full_albu

    return full_albu()


def tv2_transform(chain: str):
    """torchvision v2 equivalents (uint8 CHW tensors); None when torchvision does not import here."""
    try:
        from torchvision.transforms import v2
    except Exception:  # noqa: BLE001 - a torchvision wheel built for another torch fails in many ways at import
        return None
    if chain == "flip+rotate":
        return v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomRotation(30)])
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomAffine(degrees=15, translate=(0.0625, 0.0625), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=10 / 360),
            v2.RandomErasing(p=1.0, scale=(0.0025, 0.04), value=0),
        ]
    )


def full_ops() -> list[dict]:
    from bench.image_ops import FULL_OURS

    return FULL_OURS["ops"]


class JpegFolder:
    """Map-style dataset over ``root/<class>/*.jpg``: read, decode (OpenCV, RGB), transform; HWC uint8 + label."""

    def __init__(self, root: Path, transform, kind: str) -> None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [(str(f), i) for i, c in enumerate(classes) for f in sorted((root / c).glob("*.jpg"))]
        self.transform, self.kind = transform, kind

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        img = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if self.kind == "albu":
            return self.transform(image=img)["image"], label
        import torch

        return self.transform(torch.from_numpy(img).permute(2, 0, 1)), label


def _one_thread(_: int = 0) -> None:
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def torch_loader(root: Path, transform, kind: str, workers: int):
    from torch.utils.data import DataLoader

    return DataLoader(
        JpegFolder(root, transform, kind),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=_one_thread if workers else None,
    )


def stream_loader(store, dataset: str, recipe: dict, workers: int | None):
    """``Stream`` itself (``workers=None``) or ``as_torch_dataset`` in a DataLoader with ``workers`` workers."""
    from augsvc.stream import Stream, as_torch_dataset

    opts = {
        "store": store,
        "batch_size": BATCH,
        "seed": 0,
        "shuffle": True,
        "recipe": recipe,
        "columns": ["image", "label"],
    }
    if workers is None:
        return Stream(dataset, **opts)
    from torch.utils.data import DataLoader

    ds = as_torch_dataset(dataset, **opts)
    return DataLoader(
        ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0, worker_init_fn=_one_thread
    )


def epoch(loader) -> int:
    """The consumer loop: take every batch, count its images."""
    n = 0
    for batch in loader:
        x = batch["image"] if isinstance(batch, dict) else batch[0]
        n += len(x)
    return n


def write_jpegs(store, dataset: str, version: str, root: Path) -> int:
    """The JPEG-stored version's image bytes as files ``root/<class>/<sample_id>.jpg`` (the very same JPEGs)."""
    import pyarrow.parquet as pq

    m = store.manifest(dataset, version)
    n = 0
    for s in m.shards:
        t = pq.read_table(store.version_dir(dataset, version) / s.path, columns=["sample_id", "label", "image"])
        for sid, lab, data in zip(*(t[c].to_pylist() for c in ("sample_id", "label", "image")), strict=True):
            d = root / m.class_names[lab]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sid}.jpg").write_bytes(data)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="flip+rotate only, 2 timed epochs (full: both chains, 3)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
    ap.add_argument("--chains", nargs="+", choices=["flip+rotate", "full"], help="default: both (flip+rotate: --quick)")
    ap.add_argument("--repeats", type=int, help="timed epochs per loader (default 2 with --quick, else 3)")
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    _one_thread()
    repeats = args.repeats or (2 if args.quick else 3)
    chains = args.chains or (["flip+rotate"] if args.quick else ["flip+rotate", "full"])
    workers = [0] if args.quick and tiny() else args.workers
    results: dict = {"cpus": os.cpu_count(), "batch": BATCH, "size": SIZE, "torch": torch.__version__}
    tv2_ok = tv2_transform("flip+rotate") is not None
    if not tv2_ok:
        print("torchvision v2: not importable here (no torchvision wheel for torch 2.13.0+cpu), so not measured")
    results["torchvision_v2"] = "measured" if tv2_ok else "not importable"
    with tempfile.TemporaryDirectory(prefix="augsvc-bench-loop-") as tmp:
        store = Store(Path(tmp) / "store")
        flowers = shared("flowers5")
        size = f"{SIZE}x{SIZE}"
        jpg = ingest(flowers, name="fj", store=store, workers=0,
                     options=IngestOptions(resize=size, image_storage="jpeg", on_error="skip")).manifest  # fmt: skip
        ingest(flowers, name="fr", store=store, workers=0,
               options=IngestOptions(resize=size, image_storage="raw", on_error="skip"))  # fmt: skip
        root = Path(tmp) / "jpegs"
        n_files = write_jpegs(store, "fj", jpg.version, root)
        print(
            f"flowers5 at {size}: {n_files} images; batches of {BATCH}; {os.cpu_count()} CPUs; "
            f"torch {torch.__version__}"
        )
        for chain in chains:
            ops = FLIP_ROTATE if chain == "flip+rotate" else full_ops()
            recipe = {"input": "x", "output": "y", "seed": 0, "stages": [{"op": ops}]}
            for w in workers:
                contenders = {"torch+albu": torch_loader(root, albu_transform(chain), "albu", w)}
                if tv2_ok:
                    contenders["torch+tv2"] = torch_loader(root, tv2_transform(chain), "tv2", w)
                if w == 0:
                    contenders["augsvc Stream raw"] = stream_loader(store, "fr", recipe, None)
                    contenders["augsvc Stream jpeg"] = stream_loader(store, "fj", recipe, None)
                contenders["augsvc torch raw"] = stream_loader(store, "fr", recipe, w)
                contenders["augsvc torch jpeg"] = stream_loader(store, "fj", recipe, w)
                for loader in contenders.values():
                    epoch(loader)  # warm-up: workers start, numba compiles, page cache fills
                best = dict.fromkeys(contenders, float("inf"))
                for _ in range(repeats):  # interleaved: load from others on the machine hits every contender alike
                    for name, loader in contenders.items():
                        t = time.perf_counter()
                        n = epoch(loader)
                        best[name] = min(best[name], time.perf_counter() - t)
                        assert n == n_files, (name, n, n_files)
                rates = {k: n_files / v for k, v in best.items()}
                base = max(v for k, v in rates.items() if k.startswith("torch+"))
                row = {k: {"img_s": round(v), "vs_best_baseline": round(v / base, 2)} for k, v in rates.items()}
                row["load_avg_1m"] = round(os.getloadavg()[0], 2)
                results[f"{chain} W={w}"] = row
                print(f"\n{chain}, DataLoader workers {w} (load average {row['load_avg_1m']:.1f}):")
                for k, v in rates.items():
                    print(f"  {k:20s} {v:8.0f} img/s  {v / base:5.2f}x the best baseline")
                del contenders
    print("\ntarget: augsvc >= 2x the best baseline at every worker count")
    emit(results, args.json)


if __name__ == "__main__":
    main()
