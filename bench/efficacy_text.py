"""Does text augmentation help a small classifier? TREC-6 with 500 labelled questions.

For each of a few seeds: 500 (and 1,000) questions are drawn, stratified, from TREC.train; a bag-of-words
logistic regression (word 1-2 grams, sklearn) is trained on the 500 alone, on the 500 plus 4 augmented copies of
each made by an augsvc build (EDA-style word and character ops under the 20% mutation cap), and on 1,000
unaugmented questions; all are evaluated on the 500 questions of TREC.test. Prints mean accuracy over the seeds.

    python bench/efficacy_text.py [--seeds 3] [--json out.json]
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
import pyarrow.parquet as pq  # noqa: E402

from bench._util import emit, shared  # noqa: E402

STAGE = {
    "name": "eda",
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


def rows_of(store, name: str) -> list[dict]:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()


def subset(store, src_rows: list[dict], name: str, n: int, seed: int, class_names: list[str]) -> None:
    """Publish a stratified subset of n training rows as its own version (so a recipe can build on it)."""
    from sklearn.model_selection import train_test_split

    from pipelines.ingest.encode import write_parquet
    from schemas.arrow import text_schema

    labels = [r["label"] for r in src_rows]
    keep, _ = train_test_split(src_rows, train_size=n, stratify=labels, random_state=seed)
    keep.sort(key=lambda r: r["sample_id"])
    st = store.staging(name)
    table = pa.Table.from_pylist(keep, schema=text_schema())
    st.add_shard_bytes(write_parquet(table), table.num_rows, "train")
    counts = {c: sum(1 for r in keep if r["label"] == i) for i, c in enumerate(class_names)}
    store.publish(st, dataset=name, definition={"kind": "subset", "n": n, "seed": seed}, modality="text",
                  class_names=class_names, rows_per_class=counts, extra={"splits": {"train": counts}})  # fmt: skip


def accuracy(train: list[dict], test: list[dict]) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(ngram_range=(1, 2), lowercase=True), LogisticRegression(max_iter=3000))
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    return float(np.mean(model.predict([r["text"] for r in test]) == np.array([r["label"] for r in test])))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    from augsvc.store import Store
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.runner import build
    from schemas.recipe import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        rep = ingest(shared("trec6"), name="trec", store=store,
                     options=IngestOptions(format="lines", encoding="latin-1"), workers=0)  # fmt: skip
        names = rep.manifest.class_names
        everything = rows_of(store, "trec")
        train = [r for r in everything if r["split"] == "train"]
        test = [r for r in everything if r["split"] == "test"]
        res: dict[str, list[float]] = {"500": [], "500+aug": [], "1000": []}
        for seed in range(args.seeds):
            subset(store, train, f"t500s{seed}", 500, seed, names)
            subset(store, train, f"t1000s{seed}", 1000, seed, names)
            recipe = load_recipe({"input": f"t500s{seed}", "output": f"aug{seed}", "seed": seed, "stages": [STAGE]})
            build(recipe, store, workers=0)
            res["500"].append(accuracy(rows_of(store, f"t500s{seed}"), test))
            res["500+aug"].append(accuracy(rows_of(store, f"aug{seed}"), test))
            res["1000"].append(accuracy(rows_of(store, f"t1000s{seed}"), test))
            print(f"seed {seed}: 500 {res['500'][-1]:.3f} | 500 + 4 aug copies {res['500+aug'][-1]:.3f} | "
                  f"1000 {res['1000'][-1]:.3f}")  # fmt: skip
    summary = {k: round(float(np.mean(v)), 4) for k, v in res.items()}
    print(f"TREC-6 test accuracy (mean of {args.seeds} seeds, bag-of-words logistic regression): "
          f"500 unaugmented {summary['500']:.3f} | 500 + augsvc EDA recipe {summary['500+aug']:.3f} | "
          f"1,000 unaugmented {summary['1000']:.3f}")  # fmt: skip
    emit({"per_seed": res, "mean": summary}, args.json)


if __name__ == "__main__":
    main()
