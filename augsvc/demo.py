"""``augsvc demo``: the whole flow that exists, on small bundled data, with embedded local Ray.

Inputs are made in the work folder from data the project ships (``augsvc/demo_data/reviews.tsv``) or that
scikit-learn ships (its 8x8 digits and iris tables): nothing is downloaded.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

DIGITS_PER_CLASS = 30


def make_inputs(root: Path) -> dict[str, Path]:
    """Write the demo inputs under ``root``; returns their paths."""
    import cv2
    from sklearn.datasets import load_digits, load_iris

    root.mkdir(parents=True, exist_ok=True)
    digits_dir = root / "digits"
    if digits_dir.exists():
        shutil.rmtree(digits_dir)
    d = load_digits()
    counts: dict[int, int] = {}
    for img, y in zip(d.images, d.target, strict=True):
        y = int(y)
        if counts.get(y, 0) >= DIGITS_PER_CLASS:
            continue
        counts[y] = counts.get(y, 0) + 1
        px = cv2.resize((img * 255.0 / 16.0).astype(np.uint8), (32, 32), interpolation=cv2.INTER_LINEAR)
        out = digits_dir / str(y) / f"{y}_{counts[y]:03d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), px)
    (digits_dir / "3" / "3_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this file was truncated")
    reviews = root / "reviews.tsv"
    reviews.write_bytes(resources.files("augsvc").joinpath("demo_data/reviews.tsv").read_bytes())
    iris = load_iris()
    iris_csv = root / "iris.csv"
    with open(iris_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names] + ["species"])
        for x, y in zip(iris.data, iris.target, strict=True):
            w.writerow([f"{v:g}" for v in x] + [iris.target_names[y]])
    return {"digits": digits_dir, "reviews": reviews, "iris": iris_csv}


def run_demo(workdir: str | Path, *, workers: int | None = None, echo: Callable[[str], None] = print) -> None:
    from augsvc import api

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(workdir)
    inputs = make_inputs(work / "inputs")
    root = work / "store"
    store = api.open_store(root)  # one handle for every call below (and the trainer's streams)
    echo(f"demo inputs in {work / 'inputs'}, store in {root}")

    def report(title: str, rep) -> None:
        m = rep.manifest
        state = "up to date" if rep.up_to_date else "published"
        echo(f"\n== {title}: {m.dataset}@{m.version} {state}, {m.rows} rows, classes {m.rows_per_class}")
        for q in m.quarantine:
            where = f"{q.source}:{q.line}" if q.line is not None else q.source
            echo(f"   quarantined {where}: {q.reason}")
        if rep.ray_start_seconds > 0.5:
            echo(f"   (Ray start-up {rep.ray_start_seconds:.1f} s, total {rep.seconds:.1f} s)")

    report(
        "1. ingest digit images", api.ingest(inputs["digits"], "digits", store=store, workers=workers, on_error="skip")
    )
    sp = api.split("digits", val=0.1, test=0.2, seed=0, store=store)
    echo(f"\n== 2. split digits -> {sp.manifest.version}: " + ", ".join(
        f"{k} {sum(v.values())}" for k, v in sp.manifest.splits.items()
    ))  # fmt: skip
    report(
        "3. ingest reviews TSV",
        api.ingest(inputs["reviews"], "reviews", store=store, workers=workers, format="tsv", on_error="skip"),
    )
    iris = api.ingest(inputs["iris"], "iris", store=store, workers=workers, format="tabular", label_column="species")
    report("4. ingest iris table", iris)
    digits_recipe = api.load_recipe(
        {
            "input": "digits",
            "output": "digits_aug",
            "seed": 0,
            "stages": [
                {"name": "geometry+value", "copies": 3, "op": [
                    {"op": "rotate", "limit": 15, "fill_mode": "constant"},
                    {"op": "shift", "limit": 0.1},
                    {"op": "sometimes", "p": 0.5, "ops": [{"op": "brightness"}, {"op": "contrast"}]},
                ]},
            ],
        }
    )  # fmt: skip
    b = api.build(digits_recipe, store=store, workers=workers)
    m = b.manifest
    echo(f"\n== 5. build digits_aug@{b.version}: {b.rows_in} -> {m.rows} rows "
         f"(train {sum(m.splits['train'].values())}, val/test untouched) in {b.seconds:.1f} s")  # fmt: skip
    grid = api.preview(digits_recipe, work / "digits_preview.png", store=store, n=8, copies=4, cell=64)
    echo(f"   preview of originals beside 4 copies: {grid}")
    reviews_recipe = api.load_recipe(
        {
            "input": "reviews",
            "output": "reviews_aug",
            "seed": 0,
            "stages": [{"name": "eda", "copies": 2, "op": {"op": "one_of", "ops": [
                {"op": "random_swap"}, {"op": "random_delete"}, {"op": "keyboard_typo"}]}}],
        }
    )  # fmt: skip
    b = api.build(reviews_recipe, store=store, workers=workers)
    echo(f"\n== 6. build reviews_aug@{b.version}: {b.rows_in} -> {b.manifest.rows} rows; for example:")
    _show_text_example(store, f"reviews_aug@{b.version}", echo)
    from augsvc.trainer.loop import compare, evaluate_run, load_config, train

    runs = work / "runs"
    aug_rows = sum(m.splits["train"].values())
    base_rows = sum(sp.manifest.splits["train"].values())
    aug_epochs = 8
    base_epochs = max(1, round(aug_epochs * aug_rows / base_rows))  # the same number of optimizer steps
    base_cfg = {"val_data": "digits", "val_split": "val", "batch_size": 32, "lr": 0.003, "width": 0.5}
    echo(f"\n== 7. train a small CNN on digits, without and with the augmented copies, at equal optimizer steps "
         f"({base_epochs} epochs of {base_rows} rows vs {aug_epochs} of {aug_rows}); test on digits test")  # fmt: skip
    results = {}
    n_test = sum(sp.manifest.splits["test"].values())
    for name, data, epochs in (("baseline", "digits", base_epochs), ("augmented", "digits_aug", aug_epochs)):
        results[name] = train(load_config(base_cfg | {"data": data, "epochs": epochs}), store, runs / name,
                              overwrite=True, progress=False)  # fmt: skip
        acc = evaluate_run(runs / name, store, "digits", "test")
        lo, hi = accuracy_interval(acc, n_test)
        results[name]["test_acc"] = acc
        echo(f"   {name:9s} best val acc {results[name]['best_val_acc']:.3f} (epoch {results[name]['best_epoch']}); "
             f"test acc {acc:.3f} (95% interval {lo:.2f}-{hi:.2f}, {n_test} images)")  # fmt: skip
    diff = results["augmented"]["test_acc"] - results["baseline"]["test_acc"]
    se = sum(a * (1 - a) / n_test for a in (results["augmented"]["test_acc"], results["baseline"]["test_acc"])) ** 0.5
    verdict = "larger than" if abs(diff) > 1.96 * max(se, 1e-12) else "within"
    echo(
        f"   difference {diff:+.3f} is {verdict} the uncertainty of {n_test} test images (+-{1.96 * se:.3f}); "
        "a demo, not a benchmark: see bench/efficacy_image.py for a measured comparison"
    )
    rows = compare([runs / "baseline", runs / "augmented"], work / "compare.png")
    echo(f"   plot of both runs: {work / 'compare.png'} ({len(rows)} runs)")
    checks = [api.verify(f"{ds}@{v}", store=store) for ds in api.datasets(store) for v in api.versions(ds, store=store)]
    problems = [p for r in checks for p in r.problems]
    echo(f"\n== 8. verify every version: {'ok' if not problems else problems}")
    echo(f"\nNext: augsvc ls --store {root}; augsvc show digits --store {root}")


def accuracy_interval(acc: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (default 95%) of an accuracy measured on ``n`` examples."""
    if n <= 0:
        return 0.0, 1.0
    centre = (acc + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((acc * (1 - acc) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _show_text_example(store: Any, ref: str, echo: Callable[[str], None]) -> None:
    import json

    from augsvc import api

    table = api.read_shard(ref, 0, store=store)
    rows = table.to_pylist()
    originals = {r["sample_id"]: r["text"] for r in rows if not r["lineage"]}
    for r in [r for r in rows if r["lineage"]][:3]:
        parent = json.loads(r["lineage"])[-1]["parent"]
        echo(f"   {originals.get(parent, '?')!r}\n     -> {r['text']!r}")
