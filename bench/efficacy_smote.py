"""Does SMOTE from augsvc help on imbalanced data? All 20 KEEL sets in ../shared/data/keel.

Stratified 5-fold cross-validation (shuffle, random_state 0) of a fixed classifier (default a decision tree,
``DecisionTreeClassifier(random_state=0)``; ``--classifier logreg``: ``StandardScaler`` then
``LogisticRegression(max_iter=2000)``; categorical columns one-hot encoded), trained on each training fold as
it is and after ``generators.smote`` balanced that fold to 1:1 (``sampling_strategy: auto``, ``k_neighbors`` 5, or
one less than the fold's minority rows when fewer; SMOTE-NC when a set has non-numeric columns, e.g. abalone's Sex;
seed = fold). Test folds are never resampled. Prints minority-class F1 and G-mean (sqrt(sensitivity *
specificity)) pooled over the held-out folds, and how many sets improved on each.

    python bench/efficacy_smote.py [--classifier tree|logreg] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._util import emit, shared  # noqa: E402
from generators.smote import SmoteParams, generate, plan, tabular_features  # noqa: E402


def load(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r]
    names, body = rows[0][:-1], rows[1:]
    X = np.array([[v.strip() for v in r[:-1]] for r in body], dtype=object)
    y = np.array(["positive" if r[-1].strip() == "positive" else "negative" for r in body], dtype=object)
    return names, X, y


def encode(X: np.ndarray, cat: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
    parts = [X[:, ~cat].astype(np.float64)]
    for j, vals in zip(np.flatnonzero(cat), levels, strict=True):
        parts.append((X[:, j].astype(str)[:, None] == vals[None, :]).astype(np.float64))
    return np.hstack(parts)


def balanced(names: list[str], X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The training fold plus the SMOTE rows that bring every class to the majority's count."""
    counts = {c: int((y == c).sum()) for c in ("negative", "positive")}
    probe = SmoteParams(method="smotenc")
    _, mask = tabular_features({n: X[:, j] for j, n in enumerate(names)}, probe)
    method = "smotenc" if mask.any() else "smote"
    params = SmoteParams(method=method, k_neighbors=max(1, min(5, min(counts.values()) - 1)))
    Xf, mask = tabular_features({n: X[:, j] for j, n in enumerate(names)}, params)
    new_X, new_y = [Xf], [y]
    for c, n_new in plan(counts, params).items():
        syn = generate(Xf, y, target_class=c, n_new=n_new, params=params, seed=seed, categorical_mask=mask)
        new_X.append(syn.X_new)
        new_y.append(np.full(len(syn), c, dtype=object))
    return np.vstack(new_X), np.concatenate(new_y), method


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pos, neg = y == "positive", y == "negative"
    tp, fn = int((pred[pos] == "positive").sum()), int((pred[pos] != "positive").sum())
    tn, fp = int((pred[neg] == "negative").sum()), int((pred[neg] != "negative").sum())
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    gmean = float(np.sqrt(tp / max(tp + fn, 1) * tn / max(tn + fp, 1)))
    return {"f1": round(f1, 4), "gmean": round(gmean, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classifier", choices=["tree", "logreg"], default="tree")
    ap.add_argument("--json")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    def classifier():
        if args.classifier == "tree":
            return DecisionTreeClassifier(random_state=0)
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

    results = {}
    print(f"classifier: {classifier()}; 5-fold stratified CV, shuffle, random_state 0")
    print(f"{'set':24s} {'rows':>5s} {'pos':>4s} {'method':>8s} | {'F1 base':>7s} {'F1 smote':>8s} | "
          f"{'G base':>6s} {'G smote':>7s}")  # fmt: skip
    for path in sorted(shared("keel").glob("*.csv")):
        names, X, y = load(path)
        cat = np.array([not _numeric(X[:, j]) for j in range(X.shape[1])])
        levels = [np.unique(X[:, j].astype(str)) for j in np.flatnonzero(cat)]
        pred = {"base": np.empty(len(y), dtype=object), "smote": np.empty(len(y), dtype=object)}
        method = "smote"
        for fold, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)):
            X_bal, y_bal, method = balanced(names, X[tr], y[tr], seed=fold)
            for name, (Xf, yf) in {"base": (X[tr], y[tr]), "smote": (X_bal, y_bal)}.items():
                clf = classifier().fit(encode(Xf, cat, levels), yf)
                pred[name][te] = clf.predict(encode(X[te], cat, levels))
        row = {name: scores(p, y) for name, p in pred.items()} | {
            "rows": len(y),
            "positives": int((y == "positive").sum()),
        }
        results[path.stem] = row
        print(f"{path.stem:24s} {len(y):5d} {row['positives']:4d} {method:>8s} | {row['base']['f1']:7.3f} "
              f"{row['smote']['f1']:8.3f} | {row['base']['gmean']:6.3f} {row['smote']['gmean']:7.3f}")  # fmt: skip
    f1_up = sum(r["smote"]["f1"] > r["base"]["f1"] for r in results.values())
    g_up = sum(r["smote"]["gmean"] > r["base"]["gmean"] for r in results.values())
    mean = {k: {m: round(float(np.mean([r[k][m] for r in results.values()])), 4) for m in ("f1", "gmean")}
            for k in ("base", "smote")}  # fmt: skip
    n = len(results)
    print(f"mean over {n} sets: F1 {mean['base']['f1']:.3f} -> {mean['smote']['f1']:.3f}, "
          f"G-mean {mean['base']['gmean']:.3f} -> {mean['smote']['gmean']:.3f}")  # fmt: skip
    print(f"SMOTE improved minority F1 on {f1_up} of {n} sets and G-mean on {g_up} of {n}")
    emit(
        {"classifier": args.classifier, "sets": results, "mean": mean, "f1_improved": f1_up, "gmean_improved": g_up},
        args.json,
    )


def _numeric(col: np.ndarray) -> bool:
    try:
        col.astype(np.float64)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    main()
