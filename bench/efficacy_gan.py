"""Do class-conditional GAN samples help a small CNN with 50 labelled digits per class? (../shared/data/mnist10k)

The 10,000 MNIST test images are ingested into a scratch store and carved (numpy seed 0, per class): ``--per-class``
labelled training images (the only images the GAN and the classifiers train on), ``--val-per-class`` validation
images (the trainer's best-epoch choice) and the held-out rest (the reported accuracies). Then:

1. the GAN (``generators.gan``: conditional-BN generator, projection discriminator with spectral norm, hinge loss,
   DiffAugment, EMA) trains on the labelled images only (one run, seed 0; its CPU time is reported);
2. the trainer's small CNN (``augsvc train``, ``SmallCNN``) is trained on (a) the labelled images, (b) the same plus
   ``--gan-per-class`` GAN samples per class drawn through the ``gan`` generator (gate: the seed-0 run of (a); with
   ``--min-confidence`` only samples the gate gives that confidence are kept), (c) the same plus as many copies made
   by the flip-free geometric recipe ``affine`` (rotation up to 10 degrees, shift up to 10%, no scaling) through a
   build; each for ``--seeds`` seeds (CNN init, batch order, GAN draws, recipe seed), mean and standard error of the
   held-out accuracy.

The quality gate per class (intended-class fraction, mean confidence, Frechet distance in the gate's feature space)
is printed for the seed-0 draw; sample grids of generated and real digits are written to ``--out``.
Run it niced on a shared machine; ``--quick`` is a smoke run (a few minutes), not a measurement.

    nice python bench/efficacy_gan.py [--quick] [--out bench-out/gan] [--gan PREVIOUS_OUT/gan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, mean_se, shared  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--val-per-class", type=int, default=10)
    ap.add_argument("--gan-epochs", type=int, default=200, help="GAN epochs (15 steps each at 50 per class)")
    ap.add_argument("--aux-weight", type=float, default=0.3)
    ap.add_argument("--diversity-weight", type=float, default=0.0)
    ap.add_argument("--gan", help="reuse this train-gan output folder instead of training")
    ap.add_argument("--gan-per-class", type=int, default=100, help="GAN samples (and geometric copies) per class")
    ap.add_argument("--min-confidence", type=float, default=None, help="gate threshold for (b) (default: none)")
    ap.add_argument("--max-candidates-factor", type=float, default=8.0, help="gate: candidates per kept row, at most")
    ap.add_argument("--cnn-epochs", type=int, default=20)
    ap.add_argument("--width", type=float, default=0.5, help="SmallCNN width multiplier")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 GAN epochs, 3 CNN epochs, 1 seed")
    ap.add_argument("--out", default=None, help="folder for grids, the GAN and runs (default: a temp folder)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.gan_epochs, args.cnn_epochs, args.seeds, args.gan_per_class = 10, 3, 1, 50

    from augsvc.model_cli.gan_cli import load_images
    from augsvc.trainer.loop import evaluate_run, load_config, train
    from generators.base import FitData
    from generators.gan.generator import GanParams
    from generators.gan.train import GanTrainConfig, train_gan, write_grid
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    out = Path(args.out or tempfile.mkdtemp(prefix="efficacy-gan-"))
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "store")
    ingest(shared("mnist10k"), name="mnist", store=store, options=IngestOptions(format="idx", split="train"), workers=0)
    X, y, names, _ = load_images(store, "mnist", "train")
    rng = np.random.default_rng(0)
    lab, val, test = [], [], []
    for k in range(len(names)):
        idx = rng.permutation(np.flatnonzero(y == k))
        lab += idx[: args.per_class].tolist()
        val += idx[args.per_class : args.per_class + args.val_per_class].tolist()
        test += idx[args.per_class + args.val_per_class :].tolist()
    lab, val, test = np.array(sorted(lab)), np.array(sorted(val)), np.array(sorted(test))

    def put(name: str, split: str, Xs: np.ndarray, ys: np.ndarray) -> str:
        d = out / "npz" / name
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / f"{split}.npz", x=Xs[..., 0], y=np.array(names)[ys])
        ingest(d / f"{split}.npz", name=name, store=store, options=IngestOptions(format="npz"), workers=0)
        return name

    put("lab", "train", X[lab], y[lab])
    put("val", "val", X[val], y[val])
    put("test", "test", X[test], y[test])
    print(f"mnist10k: {len(lab)} labelled, {len(val)} validation, {len(test)} held-out test images", flush=True)

    # 1. the GAN, on the labelled images only
    cpu0 = time.process_time()
    gan_dir = Path(args.gan) if args.gan else out / "gan"
    if not args.gan:
        every = max(1, args.gan_epochs // 5)
        cfg = GanTrainConfig(epochs=args.gan_epochs, seed=0, threads=args.threads, sample_every=every,
                             aux_weight=args.aux_weight, diversity_weight=args.diversity_weight)  # fmt: skip
        s = train_gan(X[lab], y[lab], names, gan_dir, cfg, progress=sys.stdout.isatty(), data_ref="lab")
        print(f"GAN: {s['steps']} steps on {s['images']} images, {time.process_time() - cpu0:.0f} s CPU "
              f"({s['train_seconds']:.0f} s wall), checkpoint {s['content_sha256'][:16]}", flush=True)  # fmt: skip
    gan_cpu = time.process_time() - cpu0

    common = {"val_data": "val", "val_split": "val", "epochs": args.cnn_epochs, "batch_size": 32, "lr": 0.003,
              "width": args.width, "threads": args.threads}  # fmt: skip
    runs = out / "runs"
    acc: dict[str, list[float]] = {"a_real": [], "b_real+gan": [], "c_real+geometric": []}
    secs: dict[str, float] = {k: 0.0 for k in acc}
    gate_report: dict = {}

    def run(key: str, data: str, seed: int) -> Path:
        c0 = time.process_time()
        train(load_config(common | {"data": data, "seed": seed}), store, runs / f"{key}_s{seed}", progress=False)
        a = evaluate_run(runs / f"{key}_s{seed}", store, "test", "test", device="cpu")
        acc[key].append(a)
        secs[key] += time.process_time() - c0
        print(f"  seed {seed} {key:18s} held-out acc {a:.4f}  ({time.process_time() - c0:.0f} s CPU)", flush=True)
        return runs / f"{key}_s{seed}"

    copies = max(1, round(args.gan_per_class / args.per_class))
    for seed in range(args.seeds):
        run("a_real", "lab", seed)
        gen = GanParams(checkpoint=str(gan_dir), gate_checkpoint=str(runs / "a_real_s0"),
                        min_confidence=args.min_confidence, device="cpu",
                        max_candidates_factor=args.max_candidates_factor)  # fmt: skip
        fitted = gen.fit(FitData(X=X[lab], y=y[lab], class_names=names, modality="image"))
        g_rng = np.random.default_rng([seed, 0x6A7])
        made = [fitted.generate(k, args.gan_per_class, g_rng) for k in range(len(names))]
        gx = np.concatenate([g.X for g in made])
        gy = np.repeat(np.arange(len(names)), [len(g) for g in made])
        if seed == 0:
            gate_report = fitted.report()
            write_grid(np.concatenate([g.X[:8] for g in made]), names, out / "gan_samples.png")
            real = np.concatenate([X[lab][y[lab] == k][:8] for k in range(len(names))])
            write_grid(real, names, out / "real_samples.png")
            print("quality gate (gate: a_real seed 0; per class: intended-class fraction, mean confidence, Frechet "
                  "distance real vs generated in the gate's features):")  # fmt: skip
            for c, r in gate_report["classes"].items():
                print(f"  {c}: kept {r['kept']}/{r['candidates']}  intended {r['intended_fraction']:.3f}  "
                      f"confidence {r['mean_confidence']:.3f}  FD {r['frechet_distance']}")  # fmt: skip
        put(f"labgan{seed}", "train", np.concatenate([X[lab], gx]), np.concatenate([y[lab], gy]))
        run("b_real+gan", f"labgan{seed}", seed)
        geo = {"op": "affine", "rotate_limit": 10, "shift_limit": 0.1, "scale_range": [1.0, 1.0]}
        recipe = {"input": "lab", "output": f"labgeo{seed}", "seed": seed, "splits": ["train"],
                  "stages": [{"name": "geometric", "op": geo, "copies": copies, "keep_originals": True}]}  # fmt: skip
        build(load_recipe(recipe), store, workers=0)
        run("c_real+geometric", f"labgeo{seed}", seed)

    print(f"\nheld-out accuracy on {len(test)} images, SmallCNN width {args.width}, {args.cnn_epochs} epochs, "
          f"{args.seeds} seeds (mean +- standard error):")  # fmt: skip
    results = {}
    for k, v in acc.items():
        m, se = mean_se(v)
        results[k] = {"mean": m, "se": se, "runs": v, "cpu_seconds": round(secs[k], 1)}
        print(f"  {k:18s} {m:.4f} +- {se:.4f}   ({secs[k]:.0f} s CPU for {len(v)} runs)")
    total_cpu = time.process_time() - t_cpu
    print(f"GAN training {gan_cpu:.0f} s CPU; total {total_cpu:.0f} s CPU, {time.perf_counter() - t_wall:.0f} s wall")
    print(f"grids: {out / 'gan_samples.png'}, {out / 'real_samples.png'}; GAN: {gan_dir}")
    emit({"args": vars(args), "results": results, "gate": gate_report, "gan_cpu_seconds": round(gan_cpu, 1),
          "total_cpu_seconds": round(total_cpu, 1)}, args.json)  # fmt: skip
    (out / "results.json").write_text(json.dumps({"results": results, "gate": gate_report}, indent=2))


if __name__ == "__main__":
    main()
