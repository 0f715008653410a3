"""Does a curriculum (easy-to-hard epochs with a pacing function) help a small CNN on flowers5 with 10% labels?

flowers5 (../shared/data/flowers5, ~4,300 photos, 5 classes) is ingested with duplicates removed and resized to
``--size``, split by class (seed 0) into validation (10%, model selection), a held-out test split (20%) and
training rows, of which a stratified 10% of all images keep their label (``pipelines.labelsubset.label_subset``,
the rest of the training rows are left out: this bench is about ordering, not unlabelled data).

Per seed: a baseline run (shuffled epochs), then a curriculum run whose difficulty scores come from that baseline's
best model (Hacohen and Weinshall's "self-taught" scoring: a first model trained on the same data, per-row
``1 - p(true label)``), with exponential pacing. Same budget: the curriculum run gets the number of epochs whose samples
come closest to the baseline's (its early epochs hold fewer rows); both print the samples they saw.
Test accuracy on the held-out split; mean and standard error over ``--seeds``; CPU seconds.

    nice -n 10 python bench/efficacy_curriculum.py [--size 64] [--epochs 15] [--seeds 0 1 2] [--per-class N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, mean_se, reduced_options, scale_line, shared  # noqa: E402

FULL = {"size": 64, "epochs": 15, "width": 1.0, "seeds": [0, 1, 2], "per_class": None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=FULL["size"])
    ap.add_argument("--epochs", type=int, default=FULL["epochs"], help="baseline epochs (the budget)")
    ap.add_argument("--seeds", type=int, nargs="+", default=FULL["seeds"])
    ap.add_argument("--per-class", type=int, default=FULL["per_class"], help="first N images per class (scale down)")
    ap.add_argument("--labelled", type=float, default=0.1, help="fraction of all images with a label")
    ap.add_argument("--width", type=float, default=FULL["width"])
    ap.add_argument("--pacing", default="exponential")
    ap.add_argument("--start", type=float, default=0.3)
    ap.add_argument("--inc", type=float, default=1.5)
    ap.add_argument("--step-length", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    ap.add_argument("--json")
    args = ap.parse_args()

    from augsvc.curriculum import Pacing
    from augsvc.trainer.loop import evaluate_run, load_config, train
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.labelsubset import label_subset
    from pipelines.split import split_version
    from pipelines.store import Store

    reduced = reduced_options(args, FULL)
    print(scale_line(reduced), flush=True)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    tmp = Path(tempfile.mkdtemp(prefix="efficacy-curriculum-"))
    src = shared("flowers5")
    if args.per_class:
        src = tmp / "flowers"
        for cls in sorted(p for p in shared("flowers5").iterdir() if p.is_dir()):
            (src / cls.name).mkdir(parents=True)
            for f in sorted(cls.iterdir())[: args.per_class]:
                shutil.copy(f, src / cls.name / f.name)
    store = Store(tmp / "store")
    opts = IngestOptions(dedupe=True, resize=(args.size, args.size), on_error="skip")
    ingest(src, name="flowers", store=store, options=opts, workers=0)
    val, test = 0.1, 0.2
    split_version(store, "flowers", val=val, test=test, seed=0)
    label_subset(store, "flowers", labelled=args.labelled / (1 - val - test), seed=0, unlabelled="drop", output="few")
    m = store.manifest(*store.resolve("few"))
    n = m.rows_per_split["train"]
    print(f"flowers: {m.duplicates_dropped} duplicates dropped; splits {m.rows_per_split} (train = labelled)")
    pacing = Pacing(args.pacing, args.start, args.inc, args.step_length)
    budget = args.epochs * n
    cur_epochs, seen = 0, 0
    while seen < budget:  # the epoch count whose samples come closest to the baseline's
        nxt = pacing.size(cur_epochs, n)
        if seen + nxt - budget > budget - seen:
            break
        seen += nxt
        cur_epochs += 1
    fracs = [round(pacing.fraction(e), 3) for e in range(pacing.full_from() + 1)]
    print(f"pacing {pacing}: fractions {fracs}; budget {budget} samples: baseline {args.epochs} epochs, "
          f"curriculum {cur_epochs} epochs ({seen})")  # fmt: skip
    common = {"data": "few", "val_split": "val", "batch_size": 32, "lr": 0.003, "width": args.width,
              "threads": args.threads}  # fmt: skip
    cur = {"pacing": args.pacing, "start": args.start, "inc": args.inc, "step_length": args.step_length}
    runs = tmp / "runs"
    results: dict[str, dict] = {"baseline": {"test_acc": [], "samples": [], "cpu_s": 0.0},
                                "curriculum": {"test_acc": [], "samples": [], "cpu_s": 0.0}}  # fmt: skip
    for seed in args.seeds:
        first = {"difficulty": str(runs / f"baseline-s{seed}")}  # the scoring model: this seed's baseline
        for name, cfg in (("baseline", {"epochs": args.epochs}),
                          ("curriculum", {"epochs": cur_epochs, "curriculum": cur | first})):  # fmt: skip
            c0 = time.process_time()
            s = train(load_config(common | cfg | {"seed": seed}), store, runs / f"{name}-s{seed}", progress=False)
            acc = evaluate_run(runs / f"{name}-s{seed}", store, "few", "test")
            samples = sum(h["samples"] for h in json.loads((runs / f"{name}-s{seed}" / "metrics.json").read_text()))
            r = results[name]
            r["test_acc"].append(acc)
            r["samples"].append(samples)
            r["cpu_s"] += time.process_time() - c0
            print(f"  {name:10s} seed {seed}: val {s['best_val_acc']:.4f}  test {acc:.4f}  samples {samples}  "
                  f"({time.process_time() - c0:.0f} CPU s)", flush=True)  # fmt: skip
    print(f"\nheld-out test accuracy ({m.rows_per_split.get('test', 0)} images), mean +- s.e. over seeds {args.seeds}:")
    summary = {}
    for name, r in results.items():
        mu, se = mean_se(r["test_acc"])
        summary[name] = {"mean": mu, "se": se, **r}
        print(f"  {name:10s} {mu:.4f} +- {se:.4f}  ({r['cpu_s']:.0f} CPU s)")
    print(f"curriculum vs baseline: {(summary['curriculum']['mean'] - summary['baseline']['mean']) * 100:+.2f} points")
    wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    print(f"total {wall:.0f} s wall, {cpu:.0f} s CPU (this process)")
    emit({"splits": m.rows_per_split, "results": summary, "args": vars(args), "reduced": reduced,
          "curriculum_epochs": cur_epochs}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
