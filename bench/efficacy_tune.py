"""Does the recipe `augsvc tune` finds beat no augmentation and the usual recipes on held-out data?

Flowers (``--parts flowers``): flowers5 ingested with duplicates dropped and resized to 64x64; per class (seeded
permutation) 100 images for training, 50 for validation, the rest (about 3,500) as the test split. The trainer's
small CNN. Arms, each retrained with ``--seeds`` seeds and scored once on the test split (mean +- standard error):
no augmentation, flip + rotate (hflip p=0.5, rotate 30 reflect), RandAugment at its default (n=2, magnitude=9),
TrivialAugment, and the winner of an ``augsvc tune`` search (policies none / flip+rotate / RandAugment ranges /
TrivialAugment / AugMix severity, mixup and cutmix alpha, label smoothing, offline copies vs on the fly) that only
saw the train and validation splits. All augmentation is applied on the fly by the stream.

TREC-6 (``--parts trec``): 50 questions per class for training and 25 for validation drawn from TREC.train, scored
on TREC.test (500). The text CNN arms (no augmentation, the EDA-style noise recipe of bench/efficacy_text.py, the
tuned recipe) go through the same search and retraining; the bag-of-words logistic regression (1-2 grams) is fit
on a build of each recipe (4 copies, or the tuned number of offline copies) per seed.

The full run (``--scale 1``) is 24 trials of up to 20 epochs per search, width-1 CNN, 3 seeds, a search budget of
3,600 s wall (2 CPU hours on 2 cores). ``--scale`` multiplies trials and epochs, ``--budget`` caps each search's
wall time, ``--trials``/``--epochs`` override the scaled values, ``--width`` sets the CNN width; the script prints
what it reduced.

    python bench/efficacy_tune.py [--parts flowers,trec] [--scale 1] [--budget 3600] [--width 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench._util import emit, shared  # noqa: E402

FULL = {"trials": 24, "epochs": 20, "budget": 3600.0, "width": 1.0, "seeds": 3}
FLIPROTATE = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30, "fill_mode": "reflect"}]
NOISE = {"op": "some_of", "n": [1, 2], "ops": [{"op": "random_swap", "aug_p": 0.1}, {"op": "random_delete",
         "aug_p": 0.1}, {"op": "keyboard_typo", "aug_p": 0.1}, {"op": "char_swap", "aug_p": 0.1}]}  # fmt: skip


def rows_of(store, ref: str) -> list[dict]:
    ds, v = store.resolve(ref)
    m = store.manifest(ds, v)
    return pa.concat_tables([store.read_shard(ds, v, s.path) for s in m.shards]).to_pylist()


def publish_splits(store, name: str, rows: list[dict], schema, modality: str, class_names: list[str], **extra):
    """Publish rows (each with its ``split``) as one version, one shard per split."""
    from pipelines.storeshards import write_parquet

    st = store.staging(name)
    for split in ("train", "val", "test"):
        part = sorted((r for r in rows if r["split"] == split), key=lambda r: r["sample_id"])
        table = pa.Table.from_pylist(part, schema=schema)
        st.add_shard_bytes(write_parquet(table), table.num_rows, split)
    r = store.publish(st, dataset=name, definition={"kind": "bench-subset", "name": name}, modality=modality,
                      class_names=class_names, extra=extra)  # fmt: skip
    return r.manifest.splits


def assign(rows: list[dict], n_train: int, n_val: int, seed: int, rest: bool) -> list[dict]:
    """Per class, a seeded permutation: the first ``n_train`` rows train, the next ``n_val`` val, the rest test
    (``rest``) or dropped."""
    out = []
    labels = sorted({r["label"] for r in rows})
    for c in labels:
        mine = sorted((r for r in rows if r["label"] == c), key=lambda r: r["sample_id"])
        order = np.random.default_rng([seed, c]).permutation(len(mine))
        for k, i in enumerate(order):
            split = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            if split != "test" or rest:
                out.append({**mine[i], "split": split})
    return out


def scaled(args) -> dict:
    s = args.scale
    plan = {"trials": args.trials or max(6, round(FULL["trials"] * s)),
            "epochs": args.epochs or max(3, round(FULL["epochs"] * s)),
            "budget": args.budget, "width": args.width, "seeds": args.seeds}  # fmt: skip
    reduced = [f"{k} {plan[k]} (full {FULL[k]})" for k in FULL if plan[k] != FULL[k]]
    print("reduced run: " + "; ".join(reduced) if reduced else "full run", flush=True)
    return plan


def report(title: str, arms: dict[str, dict], n_test: int) -> None:
    print(f"\n{title} (test split, {n_test} rows, mean +- standard error over seeds):")
    base = arms.get("no augmentation", {}).get("mean")
    for name, r in arms.items():
        gain = f"  ({(r['mean'] - base) * 100:+.1f} points)" if base is not None and name != "no augmentation" else ""
        print(f"  {name:32s} {r['mean']:.4f} +- {r['se']:.4f}{gain}   {r.get('recipe', '')}")


def flowers(args, plan: dict, tmp: Path) -> dict:
    from augsvc.tune.search import baseline, candidate, retrain_and_test, tune_search
    from augsvc.tune.space import load_space
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store
    from schemas.arrow import image_schema

    store = Store(tmp / "store")
    rep = ingest(shared("flowers5"), name="flowers_all", store=store, workers=0,
                 options=IngestOptions(dedupe=True, resize=(64, 64), on_error="skip"))  # fmt: skip
    m = rep.manifest
    rows = assign(rows_of(store, "flowers_all"), 100, 50, seed=0, rest=True)
    splits = publish_splits(store, "flowers", rows, image_schema(), "image", m.class_names, image_storage="raw")
    n_test = sum(splits["test"].values())
    n_train, n_val = sum(splits["train"].values()), sum(splits["val"].values())
    print(f"flowers: {m.rows} images after dropping {m.duplicates_dropped} duplicates; "
          f"train {n_train}, val {n_val}, test {n_test}", flush=True)  # fmt: skip
    policies = ["none", {"fixed": {"name": "fliprotate", "stages": [{"op": FLIPROTATE}]}}, "trivial_augment",
                {"rand_augment": {"n": [1, 3], "magnitude": [0, 10]}}, {"augmix": {"severity": [1, 10]}}]  # fmt: skip
    space = load_space({
        "data": "flowers", "seed": 0, "trials": plan["trials"], "epochs": plan["epochs"],
        "grace_period": max(1, plan["epochs"] // 2), "seeds": plan["seeds"],
        "train": {"batch_size": 32, "lr": 0.003, "width": plan["width"], "model": "cnn"},
        "policies": policies, "mix": ["none", {"method": "mixup", "alpha": [0.1, 0.4]}, {"method": "cutmix",
        "alpha": [0.5, 1.0]}], "label_smoothing": [0.0, 0.15], "augment": ["on_the_fly", "offline"],
        "offline_copies": [1, 4],
    })  # fmt: skip
    t0 = time.perf_counter()
    summary = tune_search(space, tmp / "tune_flowers", store=store.uri, time_budget_s=plan["budget"])
    search_s = time.perf_counter() - t0
    import json

    best = json.loads(summary["best"]["candidate"])
    arms = {"no augmentation": baseline(),
            "flip + rotate": candidate(space, {"policy": 1, "mix": 0, "augment": "on_the_fly", "label_smoothing": 0.0,
                                               "offline_copies": 1}),
            "RandAugment (n=2, m=9)": _with(candidate, space, 3, {"p3.n": 2, "p3.magnitude": 9.0}),
            "TrivialAugment": _with(candidate, space, 2, {}),
            "tuned": best}  # fmt: skip
    t1 = time.perf_counter()
    space = space.model_copy(update={"test_split": "test"})  # only now: the search never saw it
    res = retrain_and_test(space, summary["ref"], store, list(arms.values()), tmp / "tune_flowers", name="arms")
    out = {name: {**res["recipes"][c["label"]], "recipe": c["label"]} for name, c in arms.items()}
    report(f"flowers5, 64x64, small CNN width {plan['width']}, {plan['epochs']} epochs", out, n_test)
    print(f"search {search_s:.0f} s wall ({summary['trials']} trials), retraining {time.perf_counter() - t1:.0f} s")
    return {"arms": out, "search_seconds": search_s, "trials": summary["trials"], "n_test": n_test}


def _with(candidate, space, policy: int, params: dict) -> dict:
    cfg = {"policy": policy, "mix": 0, "augment": "on_the_fly", "label_smoothing": 0.0, "offline_copies": 1}
    return candidate(space, {**cfg, **params})


def bow_accuracy(train: list[dict], test: list[dict]) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(ngram_range=(1, 2), lowercase=True), LogisticRegression(max_iter=3000))
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    return float(np.mean(model.predict([r["text"] for r in test]) == np.array([r["label"] for r in test])))


def trec(args, plan: dict, tmp: Path) -> dict:
    import json

    from augsvc.tune.search import baseline, mean_se, recipe_of, retrain_and_test, tune_search
    from augsvc.tune.space import load_space
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store
    from schemas.arrow import text_schema

    store = Store(tmp / "store_trec")
    rep = ingest(shared("trec6"), name="trec_all", store=store, workers=0,
                 options=IngestOptions(format="lines", encoding="latin-1"))  # fmt: skip
    names = rep.manifest.class_names
    everything = rows_of(store, "trec_all")
    rows = assign([r for r in everything if r["split"] == "train"], 50, 25, seed=0, rest=False)
    rows += [r for r in everything if r["split"] == "test"]
    splits = publish_splits(store, "trec", rows, text_schema(), "text", names)
    n_test = sum(splits["test"].values())
    print(f"\nTREC-6: train {sum(splits['train'].values())}, val {sum(splits['val'].values())}, test {n_test}")
    epochs = max(5, plan["epochs"] * 2)  # 300 questions: an epoch is ~10 steps
    space = load_space({
        "data": "trec", "seed": 0, "trials": plan["trials"], "epochs": epochs,
        "grace_period": max(1, epochs // 2), "seeds": plan["seeds"],
        "train": {"model": "text_cnn", "batch_size": 32, "lr": 0.002, "max_len": 40},
        "policies": ["none", {"fixed": {"name": "eda-noise", "stages": [{"op": NOISE}]}},
                     {"random_swap": {"aug_p": [0.05, 0.3]}}, {"random_delete": {"aug_p": [0.05, 0.3]}},
                     {"keyboard_typo": {"aug_p": [0.02, 0.2]}}, {"char_swap": {"aug_p": [0.02, 0.2]}}],
        "label_smoothing": [0.0, 0.15], "augment": ["on_the_fly", "offline"], "offline_copies": [1, 4],
    })  # fmt: skip
    t0 = time.perf_counter()
    summary = tune_search(space, tmp / "tune_trec", store=store.uri, time_budget_s=plan["budget"])
    search_s = time.perf_counter() - t0
    best = json.loads(summary["best"]["candidate"])
    from augsvc.tune.search import candidate

    noise = candidate(space, {"policy": 1, "augment": "on_the_fly", "label_smoothing": 0.0, "offline_copies": 4})
    arms = {"no augmentation": baseline(), "eda-noise": noise, "tuned": best}
    space = space.model_copy(update={"test_split": "test"})  # only now: the search never saw it
    res = retrain_and_test(space, summary["ref"], store, list(arms.values()), tmp / "tune_trec", name="arms")
    cnn = {name: {**res["recipes"][c["label"]], "recipe": c["label"]} for name, c in arms.items()}
    report(f"TREC-6 50/class, text CNN, {epochs} epochs", cnn, n_test)
    test_rows = [r for r in rows if r["split"] == "test"]
    bow = {}
    for name, c in arms.items():
        accs = []
        for seed in res["seeds"]:
            recipe = recipe_of(space, {**c, "augment": "offline", "copies": c.get("copies") or 4}, summary["ref"])
            if recipe is None:
                train_rows = [r for r in rows if r["split"] == "train"]
            else:
                recipe = {**recipe, "seed": seed, "output": f"trec_bow_{len(bow)}_{seed}"}
                b = build(load_recipe(recipe), store, workers=0)
                train_rows = [r for r in rows_of(store, f"{b.manifest.dataset}@{b.version}") if r["split"] == "train"]
            accs.append(bow_accuracy(train_rows, test_rows))
        mean, se = mean_se(accs)
        bow[name] = {"mean": mean, "se": se, "runs": accs, "recipe": c["label"]}
    report("TREC-6 50/class, bag-of-words logistic regression on a build of each recipe", bow, n_test)
    return {"cnn": cnn, "bow": bow, "search_seconds": search_s, "trials": summary["trials"], "n_test": n_test}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="flowers,trec")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full trials and epochs")
    ap.add_argument("--trials", type=int, help="trials per search (overrides --scale)")
    ap.add_argument("--epochs", type=int, help="most epochs per trial, images (text: twice this; overrides --scale)")
    ap.add_argument("--budget", type=float, default=FULL["budget"], help="wall seconds per search")
    ap.add_argument("--width", type=float, default=FULL["width"], help="CNN width multiplier")
    ap.add_argument("--seeds", type=int, default=FULL["seeds"])
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    ap.add_argument("--json")
    args = ap.parse_args()
    plan = scaled(args)
    t0 = time.perf_counter()
    out = {"plan": plan}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(args.keep or d)
        tmp.mkdir(parents=True, exist_ok=True)
        if "flowers" in args.parts:
            out["flowers"] = flowers(args, plan, tmp)
        if "trec" in args.parts:
            out["trec"] = trec(args, plan, tmp)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s wall")
    emit(out, args.json)


if __name__ == "__main__":
    main()
