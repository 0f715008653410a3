"""Does the flip+rotate recipe help a small CNN on a few hundred flowers? (../shared/data/flowers5)

The first ``--per-class`` images of each class (sorted file names) are ingested with duplicates removed and
resized to 64x64, then split by class (``pipelines.split.split_version``, duplicate-aware, seed 0) into train,
validation (model selection) and a held-out test split. A small CNN is trained on the train split as it is
(baseline) and on the version built with ``[{op: hflip, p: 0.5}, {op: rotate, limit: 30, fill_mode: reflect}]``,
4 copies per image plus the originals (``pipelines.runner.build``); both are scored on the same test split.

``--orders`` trains each arm under several training-stream orders (issue 26): ``auto`` is the stream's default (a
global shuffle of the split), ``2048`` the old default window shuffle of blocks of whole shards of at least 2,048
rows, which on class-sorted storage (an image-folder ingest) feeds stretches of two or three classes. ``--seeds N``
repeats everything (split, build, training) with seeds 0..N-1 and reports mean +- s.e.

    python bench/efficacy_image.py [--per-class 120] [--epochs 15] [--orders auto] [--seeds 1] [--json out.json]
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
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="seeds seed..seed+N-1 (split, build, training)")
    ap.add_argument("--orders", default="auto", help="comma list of shuffle_window values: auto (default), or rows")
    ap.add_argument("--arms", default="baseline,fliprotate", help="comma list of arms to train")
    ap.add_argument("--json")
    args = ap.parse_args()
    orders = [None if o.strip() == "auto" else int(o) for o in args.orders.split(",")]
    runs_all = [run_seed(args, args.seed + i, orders) for i in range(args.seeds)]
    from bench._util import mean_se

    print(f"\nheld-out test accuracy over {args.seeds} seed(s), mean +- s.e.:")
    summary = {}
    for order in orders:
        for arm in args.arms.split(","):
            key = f"{arm}@{'auto' if order is None else order}"
            m, se = mean_se([r[key]["test_acc"] for r in runs_all])
            summary[key] = {"mean": m, "se": se, "per_seed": [r[key]["test_acc"] for r in runs_all]}
            print(f"  {key:20s} {m:.4f} +- {se:.4f}   {', '.join(f'{x:.4f}' for x in summary[key]['per_seed'])}")
    emit({"summary": summary, "runs": runs_all, "args": vars(args)}, args.json)


def run_seed(args, seed: int, orders: list) -> dict:
    """One seed: ingest, split, build, then train both arms under every order; test accuracy per (arm, order)."""

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
    split_version(store, "flowers", val=0.15, test=0.35, seed=seed)
    m = store.manifest(*store.resolve("flowers"))
    print(f"flowers: {m.rows} images ({m.duplicates_dropped} duplicates dropped), splits {m.rows_per_split}")
    del rep
    fliprotate = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30, "fill_mode": "reflect"}]
    recipe = {"input": "flowers", "output": "flowers_fliprotate", "seed": seed, "splits": ["train"],
              "stages": [{"name": "fliprotate", "copies": 4, "keep_originals": True, "op": fliprotate}]}  # fmt: skip
    b = build(load_recipe(recipe), store, workers=0)
    print(f"flowers_fliprotate: train {b.manifest.rows_per_split.get('train')} rows")
    common = {"val_data": "flowers", "val_split": "val", "epochs": args.epochs, "batch_size": 32, "lr": 0.003,
              "width": args.width, "seed": seed}  # fmt: skip
    runs = tmp / "runs"
    results = {}
    for order in orders:
        tag = "auto" if order is None else str(order)
        for name, data in (("baseline", "flowers"), ("fliprotate", "flowers_fliprotate")):
            if name not in args.arms.split(","):
                continue
            t0 = time.perf_counter()
            key = f"{name}@{tag}"
            cfg = load_config(common | {"data": data, "shuffle_window": order})
            s = train(cfg, store, runs / key, progress=False)
            acc = evaluate_run(runs / key, store, "flowers", "test")
            results[key] = {"test_acc": acc, "best_val_acc": s["best_val_acc"], "parameters": s["parameters"],
                            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            print(f"  seed {seed} {key:20s} val {s['best_val_acc']:.4f}  test {acc:.4f}  "
                  f"({results[key]['seconds']:.0f} s)", flush=True)  # fmt: skip
    rows = compare([runs / n for n in results], tmp / "compare.png")
    print(format_table(rows))
    n_test = m.rows_per_split.get("test", 0)
    print(f"held-out test: {n_test} images, {len(m.class_names)} classes, {args.size}x{args.size}; plot "
          f"{tmp / 'compare.png'}; seed {seed} took {time.perf_counter() - t_start:.0f} s")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
