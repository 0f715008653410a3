"""Does SMOTE from augsvc help on imbalanced data? All 20 KEEL sets in ../shared/data/keel.

Stratified 5-fold cross-validation (shuffle, seed 0) of a decision tree (sklearn, random_state 0; categorical
columns one-hot encoded), trained on each training fold as it is and after balancing it to 1:1 with
``generators.smote`` (SMOTE-NC when a set has categorical columns; k_neighbors lowered when a fold's minority is
tiny). Minority-class F1 and G-mean (sqrt(sensitivity * specificity)) on the held-out folds, pooled over folds.

    python bench/efficacy_smote.py [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._util import emit, shared  # noqa: E402
from generators.smote import SmoteParams, generate  # noqa: E402


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = list(csv.reader(path.read_text().splitlines()))
    body = [r for r in rows[1:] if r]  # rows[0] is the header
    X = np.array([r[:-1] for r in body], dtype=object)
    y = np.array([1 if r[-1].strip() == "positive" else 0 for r in body])
    cat = np.array([not _numeric(X[:, j]) for j in range(X.shape[1])])
    for j in np.flatnonzero(~cat):
        X[:, j] = X[:, j].astype(float)
    return X, y, cat


def _numeric(col: np.ndarray) -> bool:
    try:
        col.astype(float)
    except ValueError:
        return False
    return True


def encode(X: np.ndarray, cat: np.ndarray, levels: list[list[str]]) -> np.ndarray:
    parts = [X[:, ~cat].astype(float)]
    for j, vals in zip(np.flatnonzero(cat), levels, strict=True):
        parts.append(np.array([[str(v) == lv for lv in vals] for v in X[:, j]], dtype=float))
    return np.hstack(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    from sklearn.model_selection import StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier

    results = {}
    print(f"{'set':24s} {'rows':>5s} {'min':>4s} | {'F1 base':>7s} {'F1 smote':>8s} | {'G base':>6s} {'G smote':>7s}")
    for path in sorted(shared("keel").glob("*.csv")):
        X, y, cat = load(path)
        levels = [sorted({str(v) for v in X[:, j]}) for j in np.flatnonzero(cat)]
        pred = {"base": np.zeros_like(y), "smote": np.zeros_like(y)}
        for fold, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)):
            Xtr, ytr = X[tr], y[tr]
            n_min = int((ytr == 1).sum())
            n_new = int((ytr == 0).sum()) - n_min
            params = SmoteParams(method="smotenc" if cat.any() else "smote", k_neighbors=max(1, min(5, n_min - 1)))
            syn = generate(Xtr if cat.any() else Xtr.astype(float), ytr, target_class=1, n_new=n_new, params=params,
                           seed=fold, categorical_mask=cat if cat.any() else None)  # fmt: skip
            X_bal = np.vstack([Xtr, syn.X_new])
            y_bal = np.concatenate([ytr, np.ones(n_new, dtype=int)])
            for name, (Xf, yf) in {"base": (Xtr, ytr), "smote": (X_bal, y_bal)}.items():
                clf = DecisionTreeClassifier(random_state=0).fit(encode(Xf, cat, levels), yf)
                pred[name][te] = clf.predict(encode(X[te], cat, levels))
        row = {}
        for name, p in pred.items():
            tp = int(((p == 1) & (y == 1)).sum())
            fp = int(((p == 1) & (y == 0)).sum())
            fn = int(((p == 0) & (y == 1)).sum())
            tn = int(((p == 0) & (y == 0)).sum())
            f1 = 2 * tp / max(2 * tp + fp + fn, 1)
            gmean = float(np.sqrt(tp / max(tp + fn, 1) * tn / max(tn + fp, 1)))
            row[name] = {"f1": round(f1, 4), "gmean": round(gmean, 4)}
        results[path.stem] = row
        print(f"{path.stem:24s} {len(y):5d} {int(y.sum()):4d} | {row['base']['f1']:7.3f} {row['smote']['f1']:8.3f} | "
              f"{row['base']['gmean']:6.3f} {row['smote']['gmean']:7.3f}")  # fmt: skip
    f1_up = sum(r["smote"]["f1"] > r["base"]["f1"] for r in results.values())
    g_up = sum(r["smote"]["gmean"] > r["base"]["gmean"] for r in results.values())
    print(f"SMOTE improved minority F1 on {f1_up} of {len(results)} sets and G-mean on {g_up} of {len(results)}")
    emit({"sets": results, "f1_improved": f1_up, "gmean_improved": g_up}, args.json)


if __name__ == "__main__":
    main()
