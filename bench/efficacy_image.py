"""Does the flip+rotate recipe help a small CNN on a few hundred flowers? (../shared/data/flowers5)

The first ``--per-class`` images of each class (sorted file names) are ingested with duplicates removed and
resized to 64x64, then split by class (``pipelines.split.split_version``, duplicate-aware, seed 0) into train,
validation (model selection) and a held-out test split. A small CNN is trained on the train split as it is
(baseline) and on the version built with ``[{op: hflip, p: 0.5}, {op: rotate, limit: 30, fill_mode: reflect}]``,
4 copies per image plus the originals (``pipelines.runner.build``); both are scored on the same test split.

    python bench/efficacy_image.py [--per-class 120] [--epochs 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, shared  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=120)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()

    from augsvc.trainer.loop import evaluate_run, load_config, train
    from augsvc.trainer.reports import compare, format_table
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.split import split_version
    from pipelines.store import Store

    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="efficacy-image-"))
    src = tmp / "flowers"
    for cls in sorted(p for p in shared("flowers5").iterdir() if p.is_dir()):
        (src / cls.name).mkdir(parents=True)
        for f in sorted(cls.iterdir())[: args.per_class]:
            shutil.copy(f, src / cls.name / f.name)
    store = Store(tmp / "store")
    opts = IngestOptions(dedupe=True, resize=(args.size, args.size), on_error="skip")
    rep = ingest(src, name="flowers", store=store, options=opts, workers=0)
    split_version(store, "flowers", val=0.15, test=0.35, seed=args.seed)
    m = store.manifest(*store.resolve("flowers"))
    print(f"flowers: {m.rows} images ({m.duplicates_dropped} duplicates dropped), splits {m.rows_per_split}")
    del rep
    fliprotate = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30, "fill_mode": "reflect"}]
    recipe = {"input": "flowers", "output": "flowers_fliprotate", "seed": args.seed, "splits": ["train"],
              "stages": [{"name": "fliprotate", "copies": 4, "keep_originals": True, "op": fliprotate}]}  # fmt: skip
    b = build(load_recipe(recipe), store, workers=0)
    print(f"flowers_fliprotate: train {b.manifest.rows_per_split.get('train')} rows")
    common = {"val_data": "flowers", "val_split": "val", "epochs": args.epochs, "batch_size": 32, "lr": 0.003,
              "width": args.width, "seed": args.seed}  # fmt: skip
    runs = tmp / "runs"
    results = {}
    for name, data in (("baseline", "flowers"), ("fliprotate", "flowers_fliprotate")):
        t0 = time.perf_counter()
        s = train(load_config(common | {"data": data}), store, runs / name, progress=False)
        acc = evaluate_run(runs / name, store, "flowers", "test")
        results[name] = {"test_acc": acc, "best_val_acc": s["best_val_acc"], "parameters": s["parameters"],
                         "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        print(
            f"  {name:10s} val {s['best_val_acc']:.4f}  test {acc:.4f}  ({results[name]['seconds']:.0f} s)", flush=True
        )
    rows = compare([runs / n for n in results], tmp / "compare.png")
    print(format_table(rows))
    n_test = m.rows_per_split.get("test", 0)
    print(f"\nheld-out test accuracy ({n_test} images, {len(m.class_names)} classes, {args.size}x{args.size}):")
    for name, r in results.items():
        print(f"  {name:10s} {r['test_acc']:.4f}")
    gain = results["fliprotate"]["test_acc"] - results["baseline"]["test_acc"]
    print(f"flip+rotate gain: {gain * 100:+.2f} points; plot {tmp / 'compare.png'}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    emit({"splits": m.rows_per_split, "results": results, "gain": gain, "args": vars(args)}, args.json)


if __name__ == "__main__":
    main()
