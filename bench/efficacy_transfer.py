"""Distillation through a transfer set (Hinton et al. 2015) on MNIST (../shared/data/mnist10k, 10,000 images).

Stratified split (seed 0): a held-out test split (``--test``, default 20%), a validation split for model selection
(``--val``, default 5%), and the rest as training rows, of which ``--labelled`` (default 1,000, stratified) keep
their label (``pipelines.labelsubset.label_subset``); the others are the unlabelled *transfer set*.

1. teacher (``SmallCNN`` width ``--teacher-width``) on the labelled rows plus 4 affine copies each;
2. students (``--student-widths``) alone: hard labels on the labelled rows (and, for reference, on the labelled
   rows plus their 4 affine copies, what the teacher saw);
3. a teacher build stage writes ``teacher_logits`` on every training row, labelled and unlabelled, and in a second
   version also on one affine copy of each (an op stage before the teacher stage);
4. students distilled through the transfer set: ``lambda_hard * CE(hard)`` on labelled rows only plus
   ``lambda_soft * T^2 * CE(soft teacher)`` on every row; with and without the affine copies.

Test accuracy on the held-out split; mean and standard error over ``--seeds`` (seed = student init and stream order;
the split, the teacher and the builds use seed 0). ``--transfer-fraction`` and ``--epochs`` scale the run down; the
output says what was reduced from the full-size defaults.

    nice -n 10 python bench/efficacy_transfer.py [--epochs 8] [--seeds 0 1 2] [--transfer-fraction 1.0] [--json out]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, mean_se, reduced_options, scale_line, shared  # noqa: E402

FULL = {"epochs": 8, "teacher_epochs": 8, "teacher_width": 2.0, "transfer_fraction": 1.0, "seeds": [0, 1, 2]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=FULL["epochs"], help="student epochs")
    ap.add_argument("--teacher-epochs", type=int, default=FULL["teacher_epochs"])
    ap.add_argument("--teacher-width", type=float, default=FULL["teacher_width"])
    ap.add_argument("--student-widths", type=float, nargs="+", default=[0.25])
    ap.add_argument("--labelled", type=int, default=1000, help="labelled training images (stratified)")
    ap.add_argument("--val", type=float, default=0.05)
    ap.add_argument("--test", type=float, default=0.2)
    ap.add_argument("--transfer-fraction", type=float, default=FULL["transfer_fraction"],
                    help="fraction of the unlabelled pool used as the transfer set (scale down)")  # fmt: skip
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=FULL["seeds"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    ap.add_argument("--json")
    args = ap.parse_args()

    from augsvc.trainer.loop import evaluate_run, load_config, train
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.labelsubset import label_subset
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.split import split_version
    from pipelines.store import Store

    reduced = reduced_options(args, FULL)
    print(scale_line(reduced), flush=True)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    tmp = Path(tempfile.mkdtemp(prefix="efficacy-transfer-"))
    store = Store(tmp / "store")
    ingest(shared("mnist10k"), name="mnist", store=store, options=IngestOptions(format="idx", split="train"), workers=0)
    split_version(store, "mnist", val=args.val, test=args.test, seed=0)
    n_train = store.manifest(*store.resolve("mnist")).rows_per_split["train"]
    frac = args.labelled / n_train
    label_subset(store, "mnist", labelled=frac, seed=0, unlabelled="drop", output="lab")
    # the same labelled rows, plus the unlabelled pool (or `transfer_fraction` of it) without labels
    label_subset(store, "mnist", labelled=frac, seed=0, unlabelled="null", unlabelled_keep=args.transfer_fraction,
                 output="pool")  # fmt: skip
    pool = store.manifest(*store.resolve("pool"))
    labelled = sum(pool.splits.get("train", {}).values())
    unlabelled = pool.rows_per_split["train"] - labelled
    counts = store.manifest(*store.resolve("mnist")).rows_per_split
    print(f"mnist splits {counts}; labelled train {labelled}, transfer set {unlabelled} unlabelled", flush=True)
    affine = {"op": "affine", "rotate_limit": 12, "scale_range": [0.9, 1.1], "shift_limit": 0.08}
    build(load_recipe({"input": "lab", "output": "lab_aug", "seed": 0, "splits": ["train"],
                       "stages": [{"name": "affine", "op": affine, "copies": 4}]}), store, workers=0)  # fmt: skip
    runs = tmp / "runs"
    common = {"val_data": "mnist", "val_split": "val", "batch_size": 64, "lr": 0.003, "threads": args.threads}
    results: dict[str, dict] = {}

    def run(name: str, cfg: dict, seed: int) -> float:
        t0 = time.perf_counter()
        s = train(load_config(common | {"epochs": args.epochs, "seed": seed} | cfg), store, runs / f"{name}-s{seed}",
                  progress=False)  # fmt: skip
        acc = evaluate_run(runs / f"{name}-s{seed}", store, "mnist", "test")
        r = results.setdefault(name, {"test_acc": [], "parameters": s["parameters"], "seconds": 0.0})
        r["test_acc"].append(acc)
        r["seconds"] += round(time.perf_counter() - t0, 1)
        print(f"  {name:28s} seed {seed}  {s['parameters']:8,d} params  val {s['best_val_acc']:.4f}  test {acc:.4f}"
              f"  ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        return acc

    run("teacher", {"data": "lab_aug", "width": args.teacher_width, "epochs": args.teacher_epochs}, 0)
    teacher = str(runs / "teacher-s0")
    build(load_recipe({"input": "pool", "output": "pool_teach", "splits": ["train"],
                       "stages": [{"teacher": {"checkpoint": teacher}}]}), store, workers=0)  # fmt: skip
    build(load_recipe({"input": "pool", "output": "pool_aug_teach", "seed": 0, "splits": ["train"],
                       "stages": [{"name": "affine", "op": affine, "copies": 1},
                                  {"teacher": {"checkpoint": teacher}}]}), store, workers=0)  # fmt: skip
    distill = {"temperature": args.temperature, "lambda_hard": 0.1, "lambda_soft": 0.9}
    for w in args.student_widths:
        for seed in args.seeds:
            run(f"alone_w{w:g}", {"data": "lab", "width": w}, seed)
            run(f"alone+copies_w{w:g}", {"data": "lab_aug", "width": w}, seed)
            run(f"transfer_w{w:g}", {"data": "pool_teach", "width": w, "distill": distill}, seed)
            run(f"transfer+copies_w{w:g}", {"data": "pool_aug_teach", "width": w, "distill": distill}, seed)
    print(f"\nheld-out test accuracy ({counts.get('test', 0)} images), mean +- s.e. over seeds {args.seeds}:")
    summary = {}
    for name, r in results.items():
        m, se = mean_se(r["test_acc"])
        summary[name] = {"mean": m, "se": se, **r}
        print(f"  {name:28s} {m:.4f} +- {se:.4f}   ({r['parameters']:,} parameters, {r['seconds']:.0f} s)")
    for w in args.student_widths:
        base = summary[f"alone_w{w:g}"]["mean"]
        for v in ("alone+copies", "transfer", "transfer+copies"):
            print(f"  width {w:g}: {v} vs alone: {(summary[f'{v}_w{w:g}']['mean'] - base) * 100:+.2f} points")
    wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    print(f"total {wall:.0f} s wall, {cpu:.0f} s CPU (this process)")
    emit({"splits": counts, "labelled": labelled, "transfer": unlabelled, "results": summary, "args": vars(args),
          "reduced": reduced}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
