"""SMOTE-family generator: SMOTE, Borderline-SMOTE (1 and 2), ADASYN and SMOTE-NC, with recorded parents.

imbalanced-learn decides *how many* rows each class gets (``plan`` calls its ``check_sampling_strategy``, so every
strategy form it accepts works the same) and the selection rules below mirror its samplers; we draw the samples
ourselves because imbalanced-learn does not say which two rows (and which gap) made each synthetic row, and the
lineage needs that. For a numeric row ``new = X[a] + gap * (X[b] - X[a])`` exactly (float64):

- ``smote`` (``imblearn.over_sampling.SMOTE``, ``BaseSMOTE._make_samples``): ``a`` uniform over the class, ``b``
  uniform among its ``k_neighbors`` nearest same-class rows, ``gap ~ U(0, 1)``.
- ``borderline`` (``BorderlineSMOTE``, ``_in_danger_noise``): only "danger" rows seed (of their ``m_neighbors``
  nearest rows in the whole set, at least half but not all are of another class); borderline-1 pairs them with
  same-class neighbours, borderline-2 splits the rows Beta(10, 10)-wise between same-class neighbours (gap in
  [0, 1)) and neighbours of any class (gap in [0, 0.5)).
- ``adasyn`` (``ADASYN``): seeds are weighted by the share of other-class rows among their ``n_neighbors``
  nearest; the count per seed is the weight times ``n_new`` with the rounding remainder given to the largest
  fractions, so the total is exactly what the strategy asked (imblearn's own total can drift by rounding).
- ``smotenc`` (``SMOTENC``): numeric columns as SMOTE, distances over numeric columns plus one-hot categorical
  columns scaled by the median numeric standard deviation; each categorical value is the most frequent among
  the seed's ``k_neighbors`` (ties: the first in sorted order), so it need not lie "between" the parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from augsvc.errors import AugsvcError

Strategy = float | Literal["auto", "minority", "not minority", "not majority", "all"] | dict[str, int]


class SmoteParams(BaseModel):
    """Recipe ``generator:`` parameters of the SMOTE family (defaults in one place)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["smote", "borderline", "adasyn", "smotenc"] = "smote"
    k_neighbors: int = Field(5, ge=1, description="same-class neighbours to interpolate towards")
    sampling_strategy: Strategy = Field("auto", description="any form imbalanced-learn accepts; dict: class -> rows")
    kind: Literal["borderline-1", "borderline-2"] = "borderline-1"
    m_neighbors: int = Field(10, ge=1, description="borderline: neighbours that decide 'danger'")
    n_neighbors: int = Field(5, ge=1, description="adasyn: neighbours that weight the seeds")
    categorical_features: list[str] | None = Field(None, description="smotenc: categorical columns (default: inferred)")


@dataclass
class Synthetic:
    X_new: np.ndarray
    parent_a: np.ndarray
    parent_b: np.ndarray
    gap: np.ndarray


def plan(class_counts: dict[str, int], params: SmoteParams) -> dict[str, int]:
    """New rows per class (only classes that get rows), as imbalanced-learn's over-samplers would make."""
    from imblearn.utils import check_sampling_strategy

    counts = {c: n for c, n in class_counts.items() if n > 0}
    if len(counts) < 2:
        raise AugsvcError(f"SMOTE needs at least two classes with rows; got {counts}")
    strategy = params.sampling_strategy
    if isinstance(strategy, dict):
        for c, target in strategy.items():
            if c not in counts:
                raise AugsvcError(f"sampling_strategy: unknown class {c!r}; classes are {', '.join(counts)}")
            if target < counts[c]:
                raise AugsvcError(
                    f"sampling_strategy asks class {c!r} for {target} rows but it has {counts[c]}; "
                    "an over-sampler cannot shrink a class"
                )
    y = np.concatenate([np.full(n, c, dtype=object) for c, n in counts.items()])
    try:
        out = check_sampling_strategy(strategy, y, "over-sampling")
    except ValueError as e:
        raise AugsvcError(f"sampling_strategy {strategy!r}: {e}") from None
    need = {str(c): int(n) for c, n in out.items() if n > 0}
    k = params.k_neighbors if params.method != "adasyn" else params.n_neighbors
    for c in need:
        if counts[c] < k + 1:
            raise AugsvcError(
                f"class {c!r} has {counts[c]} rows but {params.method} with k_neighbors={k} needs at least {k + 1}; "
                f"lower k_neighbors to {max(1, counts[c] - 1)} or add rows"
            )
    return need


def _knn(X_fit: np.ndarray, X_query: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k).fit(X_fit).kneighbors(X_query, return_distance=False)


def _interpolate(X: np.ndarray, a: np.ndarray, b: np.ndarray, gap: np.ndarray) -> np.ndarray:
    return X[a] + gap[:, None] * (X[b] - X[a])


def generate(
    X: np.ndarray,
    y: np.ndarray,
    *,
    target_class: Any,
    n_new: int,
    params: SmoteParams,
    seed: int,
    categorical_mask: np.ndarray | None = None,
) -> Synthetic:
    """``n_new`` synthetic rows of ``target_class`` from the rows ``X`` (n, d) labelled ``y`` (every class)."""
    rng = np.random.default_rng(seed)
    idx_c = np.flatnonzero(y == target_class)
    k = params.k_neighbors
    if params.method == "smotenc":
        return _smotenc(X, idx_c, n_new, k, rng, categorical_mask)
    X = np.asarray(X, dtype=np.float64)
    if params.method == "adasyn":
        k = params.n_neighbors
    if len(idx_c) < k + 1:
        raise AugsvcError(f"class {target_class!r} has {len(idx_c)} rows; {params.method} needs at least {k + 1}")
    nn_same = _knn(X[idx_c], X[idx_c], k + 1)[:, 1:]  # local indices into idx_c, self excluded
    if params.method == "smote":
        seeds = np.arange(len(idx_c))
        pick = rng.integers(0, len(seeds) * k, size=n_new)
        rows, cols = pick // k, pick % k
        a, b = idx_c[seeds[rows]], idx_c[nn_same[seeds[rows], cols]]
        gap = rng.uniform(0.0, 1.0, size=n_new)
        return Synthetic(_interpolate(X, a, b, gap), a, b, gap)
    if params.method == "borderline":
        m = params.m_neighbors
        nn_all = _knn(X, X[idx_c], m + 1)[:, 1:]
        n_other = (y[nn_all] != target_class).sum(axis=1)
        danger = np.flatnonzero((n_other >= m / 2) & (n_other < m))
        if len(danger) == 0:
            raise AugsvcError(
                f"borderline: no row of class {target_class!r} is in danger (near the class border); use method smote"
            )
        if params.kind == "borderline-1":
            pick = rng.integers(0, len(danger) * k, size=n_new)
            rows, cols = danger[pick // k], pick % k
            a, b = idx_c[rows], idx_c[nn_same[rows, cols]]
            gap = rng.uniform(0.0, 1.0, size=n_new)
            return Synthetic(_interpolate(X, a, b, gap), a, b, gap)
        frac = rng.beta(10, 10)
        n1 = int(frac * n_new)
        pick = rng.integers(0, len(danger) * k, size=n1)
        rows1, cols1 = danger[pick // k], pick % k
        a1, b1 = idx_c[rows1], idx_c[nn_same[rows1, cols1]]
        g1 = rng.uniform(0.0, 1.0, size=n1)
        nn_any = _knn(X, X[idx_c], k + 1)[:, 1:]  # global indices
        pick = rng.integers(0, len(danger) * k, size=n_new - n1)
        rows2, cols2 = danger[pick // k], pick % k
        a2, b2 = idx_c[rows2], nn_any[rows2, cols2]
        g2 = rng.uniform(0.0, 0.5, size=n_new - n1)
        a, b, gap = np.concatenate([a1, a2]), np.concatenate([b1, b2]), np.concatenate([g1, g2])
        return Synthetic(_interpolate(X, a, b, gap), a, b, gap)
    # adasyn
    nn_all = _knn(X, X[idx_c], k + 1)[:, 1:]
    ratio = (y[nn_all] != target_class).sum(axis=1) / k
    if ratio.sum() == 0:
        raise AugsvcError(f"adasyn: class {target_class!r} has no other-class neighbours (nothing is hard to learn)")
    share = ratio / ratio.sum() * n_new
    per = np.floor(share).astype(int)
    rest = n_new - per.sum()
    per[np.argsort(-(share - per), kind="stable")[:rest]] += 1
    rows = np.repeat(np.arange(len(idx_c)), per)
    cols = rng.integers(0, k, size=n_new)
    a, b = idx_c[rows], idx_c[nn_same[rows, cols]]
    gap = rng.uniform(0.0, 1.0, size=n_new)
    return Synthetic(_interpolate(X, a, b, gap), a, b, gap)


def _smotenc(
    X: np.ndarray, idx_c: np.ndarray, n_new: int, k: int, rng: np.random.Generator, cat: np.ndarray | None
) -> Synthetic:
    if cat is None or not cat.any():
        raise AugsvcError("smotenc needs categorical features (categorical_features or non-numeric columns)")
    X = np.asarray(X, dtype=object)
    num = X[:, ~cat].astype(np.float64)
    cats = X[:, cat]
    median_std = float(np.median(num[idx_c].std(axis=0))) if num.shape[1] else 1.0
    onehots = []
    for j in range(cats.shape[1]):
        values = sorted({str(v) for v in cats[:, j]})
        pos = {v: i for i, v in enumerate(values)}
        oh = np.zeros((len(X), len(values)))
        oh[np.arange(len(X)), [pos[str(v)] for v in cats[:, j]]] = median_std
        onehots.append(oh)
    Z = np.hstack([num, *onehots])
    if len(idx_c) < k + 1:
        raise AugsvcError(f"smotenc: the class has {len(idx_c)} rows; needs at least {k + 1}")
    nn = _knn(Z[idx_c], Z[idx_c], k + 1)[:, 1:]
    pick = rng.integers(0, len(idx_c) * k, size=n_new)
    rows, cols = pick // k, pick % k
    a, b = idx_c[rows], idx_c[nn[rows, cols]]
    gap = rng.uniform(0.0, 1.0, size=n_new)
    out = np.empty((n_new, X.shape[1]), dtype=object)
    out[:, ~cat] = _interpolate(num, a, b, gap)
    for i in range(n_new):
        neigh = idx_c[nn[rows[i]]]
        for j in np.flatnonzero(cat):
            vals, counts = np.unique(np.array([str(v) for v in X[neigh, j]]), return_counts=True)
            out[i, j] = vals[int(np.argmax(counts))]
    return Synthetic(out, a, b, gap)


def images_to_features(images: np.ndarray) -> np.ndarray:
    """uint8 (n, h, w, c) -> float64 (n, h*w*c)."""
    return images.reshape(len(images), -1).astype(np.float64)


def features_to_images(features: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """float (n, h*w*c) -> uint8 (n, h, w, c), rounded half to even and clipped to [0, 255]."""
    return np.clip(np.rint(np.asarray(features, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(-1, *shape)
