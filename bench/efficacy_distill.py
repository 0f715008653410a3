"""Does distillation help a small student? MNIST (../shared/data/mnist10k, the 10,000 test images), label-scarce.

The images are ingested into a temporary store and split (stratified, seed 0) into 1,000 labelled train images,
1,000 validation images (model selection) and 8,000 test images (the reported accuracies). The train split gets
4 affine copies per image (rotate/scale/shift, a build stage), so all three models see the same 5,000 inputs:

1. a teacher CNN (``SmallCNN`` width 2) trained on hard labels;
2. a teacher build stage (``pipelines/stages/teacher.py``) writes its logits on every train row, augmented copies
   included, as the ``teacher_logits`` column of a new version;
3. students of the same family (width 0.75, about Hinton's 52k parameters, and 0.25) trained alone on hard
   labels, and the same students distilled from the teacher logits (Hinton et al.: lambda_hard * CE(hard) +
   lambda_soft * T^2 * CE(soft teacher)). The gain is bounded by the teacher-student gap on this data.

    python bench/efficacy_distill.py [--epochs 8] [--student-widths 0.75 0.25] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, shared  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--teacher-width", type=float, default=2.0)
    ap.add_argument("--student-widths", type=float, nargs="+", default=[0.75, 0.25])
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--train-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()

    from augsvc.trainer.loop import evaluate_run, load_config, train
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.split import split_version
    from pipelines.store import Store

    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="efficacy-distill-"))
    store = Store(tmp / "store")
    ingest(shared("mnist10k"), name="mnist", store=store, options=IngestOptions(format="idx", split="train"), workers=0)
    test_frac = 1.0 - 2 * args.train_fraction
    split_version(store, "mnist", val=args.train_fraction, test=test_frac, seed=args.seed)
    counts = store.manifest(*store.resolve("mnist")).rows_per_split
    print(f"mnist: {counts}")
    affine = {"op": "affine", "rotate_limit": 12, "scale_range": [0.9, 1.1], "shift_limit": 0.08}
    build(load_recipe({"input": "mnist", "output": "mnist_aug", "seed": args.seed, "splits": ["train"],
                       "stages": [{"name": "affine", "op": affine, "copies": 4}]}), store, workers=0)  # fmt: skip
    common = {"val_data": "mnist", "val_split": "val", "epochs": args.epochs, "batch_size": 64, "lr": 0.003,
              "seed": args.seed}  # fmt: skip
    runs = tmp / "runs"
    results: dict[str, dict] = {}

    def run(name: str, cfg: dict) -> None:
        t0 = time.perf_counter()
        s = train(load_config(common | cfg), store, runs / name, progress=False)
        acc = evaluate_run(runs / name, store, "mnist", "test")
        results[name] = {"test_acc": acc, "best_val_acc": s["best_val_acc"], "parameters": s["parameters"],
                         "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        print(f"  {name:18s} {s['parameters']:8,d} params  val {s['best_val_acc']:.4f}  test {acc:.4f}  "
              f"({results[name]['seconds']:.0f} s)", flush=True)  # fmt: skip

    run("teacher", {"data": "mnist_aug", "width": args.teacher_width})
    build(load_recipe({"input": "mnist_aug", "output": "mnist_teach", "splits": ["train"],
                       "stages": [{"teacher": {"checkpoint": str(runs / "teacher")}}]}), store, workers=0)  # fmt: skip
    distill = {"temperature": args.temperature, "lambda_hard": 0.1, "lambda_soft": 0.9}
    for w in args.student_widths:
        run(f"student_w{w:g}", {"data": "mnist_aug", "width": w})
        run(f"distilled_w{w:g}", {"data": "mnist_teach", "width": w, "distill": distill})
    from augsvc.trainer.reports import compare, format_table

    rows = compare([runs / n for n in results], tmp / "compare.png")
    print(format_table(rows))
    gains = {w: results[f"distilled_w{w:g}"]["test_acc"] - results[f"student_w{w:g}"]["test_acc"]
             for w in args.student_widths}  # fmt: skip
    print(f"\nheld-out test accuracy ({counts.get('test', 0)} images; {counts.get('train', 0)} labelled train images "
          f"x5 with affine copies):")  # fmt: skip
    for name, r in results.items():
        print(f"  {name:18s} {r['test_acc']:.4f}   ({r['parameters']:,} parameters)")
    for w, g in gains.items():
        print(f"distillation gain, student width {w:g}: {g * 100:+.2f} points")
    print(f"plot {tmp / 'compare.png'}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    emit(
        {"splits": counts, "results": results, "gains": {str(w): g for w, g in gains.items()}, "args": vars(args)},
        args.json,
    )


if __name__ == "__main__":
    main()
