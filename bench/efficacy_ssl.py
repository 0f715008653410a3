"""Does SimCLR pretraining on unlabelled flowers help when only 10% of them are labelled? (../shared/data/flowers5)

Data (fixed for every seed): flowers5 deduplicated by content (byte-identical files: the first by path is kept);
per class a held-out test split (``--test-frac``, default 20%) drawn by a seeded permutation; every other image goes,
without its label, into an unlabelled folder that is ingested as a version without labels (the pretraining set,
never the test images); ``--labelled-frac`` (default 10%) of all the images of each class, taken from those non-test
images, keep their label for fine-tuning (of them ``--val-frac`` (15%) validate: model selection picks best.pt).
Everything is ingested at ``--size`` x ``--size``.

Per seed, the same architecture (``SmallCNN``, ``--width``), the same fine-tuning budget (``--epochs``, the same
on-the-fly flip + crop augmentation):
  * scratch: trained on the labelled images only;
  * pretrained + fine-tune: ``augsvc train`` with ``pretrain:`` (SimCLR, ``--pretrain-epochs`` on the unlabelled
    version), then every layer trained (head alone for ``--freeze-epochs``, then differential learning rates);
  * pretrained + linear probe: the same encoder (``finetune_from``: that run's ``pretrain/``), only the head trains.
Scored on the test split; mean and standard error over ``--seeds`` seeds; CPU time per phase (process time, all
threads).

    python bench/efficacy_ssl.py                         # full size: hours of CPU
    nice -n 10 python bench/efficacy_ssl.py --reduced   # = --size 32 --width 0.5 --pretrain-epochs 20 --epochs 15
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, mean_se, shared  # noqa: E402

FULL = {"scale": 1.0, "size": 64, "width": 1.0, "pretrain_epochs": 100, "pretrain_batch": 256, "epochs": 30,
        "seeds": 3}  # fmt: skip
#: every image, at 32x32, a half-width CNN, 20 pretraining and 15 fine-tuning epochs: 909 CPU-s (37 min wall on a
#: loaded 2-core box) in the run of docs/benchmarks.md
REDUCED = {"size": 32, "width": 0.5, "pretrain_epochs": 20, "epochs": 15}
FINETUNE_AUG = [{"op": "hflip", "p": 0.5}, {"op": "random_resized_crop", "size": None, "scale_range": [0.6, 1.0]}]


def pick(files: list[Path], seed: int) -> list[Path]:
    """``files`` in a seeded order (numpy permutation over the sorted list)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(files))
    return [files[i] for i in order]


def make_folders(root: Path, args: argparse.Namespace) -> dict:
    """Symlinked folders: unlabelled/ (flat, every non-test image) and labelled/{train,val,test}/<class>/."""
    seen: set[str] = set()
    counts = {"duplicates": 0, "unlabelled": 0, "train": 0, "val": 0, "test": 0}
    for c, cdir in enumerate(sorted(p for p in shared("flowers5").iterdir() if p.is_dir())):
        files = []
        for f in sorted(cdir.iterdir()):
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if digest in seen:
                counts["duplicates"] += 1
                continue
            seen.add(digest)
            files.append(f)
        files = pick(files, 1000 + c)[: max(10, round(len(files) * args.scale))]
        n_test = round(len(files) * args.test_frac)
        n_lab = max(4, round(len(files) * args.labelled_frac))
        n_val = max(1, round(n_lab * args.val_frac))
        test, rest = files[:n_test], files[n_test:]
        parts = {"test": test, "val": rest[:n_val], "train": rest[n_val:n_lab]}
        for split, fs in parts.items():
            d = root / "labelled" / split / cdir.name
            d.mkdir(parents=True)
            for f in fs:
                (d / f.name).symlink_to(f)
            counts[split] += len(fs)
        d = root / "unlabelled"
        d.mkdir(exist_ok=True)
        for f in rest:  # every non-test image, its label dropped (the labelled ones included, as in SimCLR)
            (d / f"{cdir.name}_{f.name}").symlink_to(f)
        counts["unlabelled"] += len(rest)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=FULL["scale"], help="fraction of each class's images used")
    ap.add_argument("--size", type=int, default=FULL["size"], help="images are ingested at SIZE x SIZE")
    ap.add_argument("--width", type=float, default=FULL["width"], help="SmallCNN width multiplier")
    ap.add_argument("--pretrain-epochs", type=int, default=FULL["pretrain_epochs"])
    ap.add_argument("--pretrain-batch", type=int, default=FULL["pretrain_batch"])
    ap.add_argument("--pretrain-lr", type=float, default=2e-3)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=FULL["epochs"], help="supervised epochs (every method)")
    ap.add_argument("--freeze-epochs", type=int, default=2, help="fine-tune: head-only epochs first")
    ap.add_argument("--seeds", type=int, default=FULL["seeds"])
    ap.add_argument("--labelled-frac", type=float, default=0.10)
    ap.add_argument("--val-frac", type=float, default=0.15, help="of the labelled images")
    ap.add_argument("--test-frac", type=float, default=0.20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reduced", action="store_true", help=f"the CPU-sized run of docs/benchmarks.md: {REDUCED}")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.reduced:
        for k, v in REDUCED.items():
            setattr(args, k, v)

    from augsvc.trainer.loop import evaluate_run, load_config, train
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    reduced = {k: (getattr(args, k), v) for k, v in FULL.items() if getattr(args, k) != v}
    if reduced:
        print("REDUCED run (full size in brackets): "
              + ", ".join(f"{k} {a} [{b}]" for k, (a, b) in reduced.items()), flush=True)  # fmt: skip
    t_start, c_start = time.perf_counter(), time.process_time()
    tmp = Path(tempfile.mkdtemp(prefix="efficacy-ssl-"))
    counts = make_folders(tmp, args)
    store = Store(tmp / "store")
    opts = IngestOptions(resize=(args.size, args.size), on_error="skip")
    ingest(tmp / "unlabelled", name="flowers_unl", store=store, options=opts, workers=0)
    ingest(tmp / "labelled", name="flowers_lab", store=store, options=opts, workers=0)
    lab = store.manifest(*store.resolve("flowers_lab"))
    print(f"flowers5: {counts['duplicates']} duplicates dropped; unlabelled (pretraining) {counts['unlabelled']}, "
          f"labelled train {counts['train']}, val {counts['val']}, held-out test {counts['test']} "
          f"({len(lab.class_names)} classes, {args.size}x{args.size})", flush=True)  # fmt: skip

    aug_ops = [dict(o) for o in FINETUNE_AUG]
    aug_ops[1]["size"] = [args.size, args.size]
    augment = {"input": "flowers_lab", "output": "aug", "seed": 0, "stages": [{"op": aug_ops}]}
    common = {"data": "flowers_lab", "val_split": "val", "epochs": args.epochs, "batch_size": 32, "lr": 0.003,
              "width": args.width, "augment": augment, "threads": args.threads, "optimizer": "adamw",
              "weight_decay": 1e-4}  # fmt: skip
    pre = {"data": "flowers_unl", "epochs": args.pretrain_epochs, "batch_size": args.pretrain_batch,
           "lr": args.pretrain_lr, "temperature": args.temperature,
           "warmup_epochs": min(5, args.pretrain_epochs / 10)}  # fmt: skip
    results: dict[str, list[dict]] = {"scratch": [], "linear_probe": [], "finetune": []}
    for seed in range(args.seeds):
        runs = tmp / f"seed{seed}"
        t0, c0 = time.perf_counter(), time.process_time()
        train(load_config(common | {"seed": seed}), store, runs / "scratch", progress=False)
        results["scratch"].append({"test_acc": evaluate_run(runs / "scratch", store, "flowers_lab", "test"),
                                   "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0})  # fmt: skip
        # pretraining alone first (epochs: 0), so that its CPU time is measured apart from the fine-tuning
        t0, c0 = time.perf_counter(), time.process_time()
        ft = common | {"seed": seed, "pretrain": pre, "freeze_epochs": args.freeze_epochs, "base_lr_scale": 0.3}
        s_pre = train(load_config(ft | {"epochs": 0}), store, runs / "finetune", progress=False)["pretrain"]
        pre_cpu, pre_wall = time.process_time() - c0, time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        train(load_config(ft), store, runs / "finetune", resume=True, progress=False)  # pretraining is done
        results["finetune"].append({"test_acc": evaluate_run(runs / "finetune", store, "flowers_lab", "test"),
                                    "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
                                    "pretrain_cpu_s": pre_cpu, "pretrain_wall_s": pre_wall,
                                    "pretrain_loss": [s_pre["first_loss"], s_pre["final_loss"]]})  # fmt: skip
        t0, c0 = time.perf_counter(), time.process_time()
        probe = common | {"seed": seed, "finetune_from": str(runs / "finetune" / "pretrain"), "unfreeze_groups": 0,
                          "lr": 0.01}  # fmt: skip
        train(load_config(probe), store, runs / "linear_probe", progress=False)
        acc = evaluate_run(runs / "linear_probe", store, "flowers_lab", "test")
        results["linear_probe"].append({"test_acc": acc, "cpu_s": time.process_time() - c0,
                                        "wall_s": time.perf_counter() - t0})  # fmt: skip
        print(f"seed {seed}: scratch {results['scratch'][-1]['test_acc']:.4f}, linear probe "
              f"{results['linear_probe'][-1]['test_acc']:.4f}, fine-tune {results['finetune'][-1]['test_acc']:.4f} "
              f"(pretraining NT-Xent {s_pre['first_loss']:.3f} -> {s_pre['final_loss']:.3f}, {pre_cpu:.0f} CPU s)",
              flush=True)  # fmt: skip

    print(f"\nheld-out test accuracy, {counts['test']} images, mean +- standard error over {args.seeds} seed(s):")
    summary = {}
    for name, rs in results.items():
        m, se = mean_se([r["test_acc"] for r in rs])
        cpu = sum(r["cpu_s"] + r.get("pretrain_cpu_s", 0.0) for r in rs) / len(rs)
        summary[name] = {"mean": m, "se": se, "cpu_s_per_seed": cpu}
        note = {"finetune": " (pretraining included)", "linear_probe": " (reuses the fine-tune run's pretraining)"}
        print(f"  {name:13s} {m:.4f} +- {se:.4f}   CPU {cpu:.0f} s per seed{note.get(name, '')}")
    gain = summary["finetune"]["mean"] - summary["scratch"]["mean"]
    print(f"pretrained + fine-tune vs scratch: {gain * 100:+.2f} points (bar: +10); linear probe vs scratch: "
          f"{(summary['linear_probe']['mean'] - summary['scratch']['mean']) * 100:+.2f} points")  # fmt: skip
    print(f"total {time.perf_counter() - t_start:.0f} s wall, {time.process_time() - c_start:.0f} s CPU; runs in {tmp}")
    emit({"counts": counts, "results": results, "summary": summary, "gain": gain, "args": vars(args),
          "reduced": {k: v[0] for k, v in reduced.items()}}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
