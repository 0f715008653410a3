"""SMOTE-family generator: SMOTE, Borderline-SMOTE (1 and 2), ADASYN and SMOTE-NC, with recorded parents and gaps.

SMOTE (Chawla et al., 2002) makes a minority row between a row of the class and one of its ``k_neighbors`` nearest
same-class rows; Borderline-SMOTE (Han et al., 2005) seeds only from rows near the class border; ADASYN (He et al.,
2008) seeds more often from rows surrounded by other classes; SMOTE-NC handles categorical columns.

imbalanced-learn (0.14) decides *how many* rows each class gets (``plan`` calls ``imblearn.utils.
check_sampling_strategy``, so every strategy form it accepts means the same here), builds the neighbour searches
(``imblearn.utils.check_neighbors_object``) and the borderline "danger" set (``BaseSMOTE._in_danger_noise``). The
sample draws mirror its samplers; we make them ourselves because imbalanced-learn does not say which two rows (and
which gap) made each synthetic row, and the lineage needs that. Every numeric synthetic value is, exactly in float64,
``X_new = X[a] + gap * (X[b] - X[a])``:

- ``smote`` (``BaseSMOTE._make_samples``): ``a`` and ``b`` uniform over (class row, one of its ``k_neighbors``
  nearest same-class rows); ``gap ~ U[0, 1)``.
- ``borderline`` (``BorderlineSMOTE._fit_resample``): seeds are the "danger" rows, those whose ``m_neighbors``
  nearest rows of the whole set are at least half but not all of other classes. borderline-1 pairs them with
  same-class neighbours; borderline-2 with their ``k_neighbors`` nearest rows of any class, and a pair with a row of
  another class has its gap multiplied by ``U[0, 0.5)`` (``BaseSMOTE._generate_samples``), so it stays nearer the
  seed. A class without danger rows gets no rows, as in imbalanced-learn.
- ``adasyn`` (``ADASYN._fit_resample``): each class row seeds ``rint(w * n_new)`` rows, ``w`` its share of
  other-class rows among its ``n_neighbors`` nearest (normalised over the class), paired with one of its
  ``n_neighbors`` nearest same-class rows; the rounding makes the total differ from ``n_new`` by a few rows, exactly
  as imbalanced-learn's does.
- ``smotenc`` (``SMOTENC._fit_resample``, ``_generate_samples``): neighbours are searched over the numeric columns
  plus the one-hot categorical columns scaled by ``median(std of the class's numeric columns) / sqrt(2)``; numeric
  columns interpolate as SMOTE, each categorical column takes the value most frequent among the seed's
  ``k_neighbors`` neighbours (ties drawn uniformly), so it need not be either parent's.

Every draw comes from ``np.random.default_rng(seed)`` in a fixed order (pairs, gaps, then tie-breaks), so a seed
gives the same rows whatever runs it. The build runner derives the seed per (recipe seed, stage, class, split).

>>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0], [6.0, 5.0], [5.0, 6.0]])
>>> y = np.array(["a", "a", "a", "a", "b", "b", "b"])
>>> params = SmoteParams(k_neighbors=2)
>>> plan({"a": 4, "b": 3}, params)
{'b': 1}
>>> s = generate(X, y, target_class="b", n_new=1, params=params, seed=0)
>>> bool(np.allclose(s.X_new, X[s.parent_a] + s.gap[:, None] * (X[s.parent_b] - X[s.parent_a])))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from generators import register_generator
from generators.base import FitData, Fitted, Generated, Generator
from schemas.errors import AugsvcError


@register_generator("smote", "borderline", "adasyn", "smotenc", "smoten")
class SmoteParams(Generator):
    """SMOTE family (imbalanced-learn 0.14): SMOTE, Borderline-SMOTE, ADASYN, SMOTE-NC and SMOTEN.

    Recipe ``generator:`` parameters; defaults are imbalanced-learn's."""

    modalities: ClassVar[tuple[str, ...]] = ("tabular", "image")

    method: Literal["smote", "borderline", "adasyn", "smotenc", "smoten"] = "smote"
    k_neighbors: int = Field(5, ge=1, description="same-class neighbours to interpolate towards (not adasyn)")
    kind: Literal["borderline-1", "borderline-2"] = Field("borderline-1", description="borderline only")
    m_neighbors: int = Field(10, ge=1, description="borderline: neighbours (any class) that decide 'danger'")
    n_neighbors: int = Field(5, ge=1, description="adasyn: neighbours that weight the seeds and pair with them")
    categorical_features: list[str] | None = Field(
        None, description="smotenc: categorical columns (default: the columns the manifest calls categorical)"
    )
    feature_column: str | None = Field(
        None, description="search neighbours in this embedding/list column instead of the raw features"
    )

    @model_validator(mode="after")
    def _method_fields(self) -> SmoteParams:
        only = {
            "kind": ("borderline",),
            "m_neighbors": ("borderline",),
            "n_neighbors": ("adasyn",),
            "k_neighbors": ("smote", "borderline", "smotenc", "smoten"),
            "categorical_features": ("smotenc",),
        }
        for name, methods in only.items():
            if self.method not in methods and getattr(self, name) != type(self).model_fields[name].default:
                hint = " (adasyn's neighbours are n_neighbors)" if name == "k_neighbors" else ""
                raise ValueError(f"{name} applies to method {' or '.join(methods)}, not {self.method}{hint}")
        return self

    def check_counts(self, needing: dict[str, int], class_counts: dict[str, int]) -> None:
        for c in needing:
            _check_enough_rows(c, class_counts[c], self)
        total = sum(class_counts.values())
        if self.method == "borderline" and total < self.m_neighbors + 1:
            raise AugsvcError(
                f"borderline with m_neighbors={self.m_neighbors} needs at least {self.m_neighbors + 1} rows in all; "
                f"there are {total}: lower m_neighbors"
            )

    def check_data(self, modality: str, class_names: list[str], features: dict[str, str]) -> None:
        super().check_data(modality, class_names, features)
        if modality == "image" and self.method in ("smotenc", "smoten"):
            raise AugsvcError(f"{self.method} is for tables with categorical columns; use smote on images")
        if modality != "tabular":
            return
        cat = [f for f, k in features.items() if k == "categorical"]
        if self.categorical_features is not None:
            unknown = [f for f in self.categorical_features if f not in features]
            if unknown:
                raise AugsvcError(
                    f"categorical_features: unknown columns {', '.join(unknown)}; columns are {', '.join(features)}"
                )
            cat = list(self.categorical_features)
        if self.method == "smoten":
            num = [f for f in features if f not in cat]
            if num:
                raise AugsvcError(
                    f"smoten works on categorical columns only; {', '.join(num)} are numeric (use smotenc)"
                )
        elif self.method == "smotenc":
            if not cat:
                raise AugsvcError("smotenc needs at least one categorical column (categorical_features); use smote")
            if len(cat) == len(features):
                raise AugsvcError("every column is categorical: use method smoten")
        elif cat:
            raise AugsvcError(
                f"columns {', '.join(cat)} are categorical and {self.method} interpolates numbers only; use method "
                f"smotenc (or smoten when every column is categorical)"
            )
        if self.feature_column is not None and self.feature_column not in features:
            raise AugsvcError(
                f"feature_column: unknown column {self.feature_column!r}; columns are {', '.join(features)}"
            )

    def fit(self, data: FitData, model: Any = None) -> Fitted:
        return _SmoteFitted(self, data)

    @property
    def neighbours(self) -> tuple[str, int]:
        """(parameter name, value) of the same-class neighbour count this method needs."""
        return ("n_neighbors", self.n_neighbors) if self.method == "adasyn" else ("k_neighbors", self.k_neighbors)


@dataclass(frozen=True)
class Synthetic:
    """New rows and how each was made: ``X_new[i] = X[parent_a[i]] + gap[i] * (X[parent_b[i]] - X[parent_a[i]])``
    on numeric features (``parent_a`` is the seed row, of the target class; row indices into the ``X`` given)."""

    X_new: np.ndarray
    parent_a: np.ndarray
    parent_b: np.ndarray
    gap: np.ndarray

    def __len__(self) -> int:
        return len(self.gap)


# -- planning ------------------------------------------------------------------------------------------------------


def plan(class_counts: dict[str, int], params: SmoteParams) -> dict[str, int]:
    """New rows per class (only classes that get some), as imbalanced-learn's over-samplers would make them
    (``params.targets``: :func:`generators.base.normalise_targets` plus the neighbour-count checks).

    Raises AugsvcError for a strategy that would shrink a class or names an unknown one, and for a class to
    oversample with too few rows for its neighbours.
    """
    return params.targets(class_counts)


def _check_enough_rows(cls: Any, have: int, params: SmoteParams) -> None:
    name, k = params.neighbours
    if have < k + 1:
        fix = f"lower {name} to {have - 1} or add rows" if have >= 2 else "add rows (SMOTE needs two rows to pair)"
        raise AugsvcError(
            f"class {cls!r} has {have} rows but {params.method} with {name}={k} needs at least {k + 1}; {fix}"
        )


# -- features ------------------------------------------------------------------------------------------------------


def tabular_features(columns: Mapping[str, Sequence[Any]], params: SmoteParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Feature columns (name -> values, in column order) -> ``(X, categorical_mask)`` for ``generate``.

    Numeric methods get float64 ``X`` and mask None; smotenc gets an object ``X`` and the mask of its categorical
    columns (``categorical_features``, or else the non-numeric columns).
    """
    names = list(columns)
    if not names:
        raise AugsvcError("SMOTE needs at least one feature column")
    cols = [np.asarray(columns[f], dtype=object) for f in names]
    missing = [f for f, c in zip(names, cols, strict=True) if any(v is None or v != v for v in c)]
    if missing:
        raise AugsvcError(f"columns {', '.join(missing)} have missing values; SMOTE needs complete rows")
    numeric = [_is_numeric(c) for c in cols]
    if params.method != "smotenc":
        bad = [f for f, ok in zip(names, numeric, strict=True) if not ok]
        if bad:
            raise AugsvcError(_non_numeric_message(bad, params.method))
        return np.column_stack([c.astype(np.float64) for c in cols]), None
    if params.categorical_features is not None:
        unknown = [f for f in params.categorical_features if f not in columns]
        if unknown:
            raise AugsvcError(f"categorical_features: unknown columns {', '.join(unknown)}; columns are {names}")
        mask = np.array([f in params.categorical_features for f in names])
    else:
        mask = ~np.array(numeric)
    return np.column_stack(cols), mask


def _is_numeric(col: np.ndarray) -> bool:
    try:
        col.astype(np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _non_numeric_message(columns: list[str], method: str) -> str:
    return (
        f"columns {', '.join(columns)} are not numeric, and {method} interpolates numbers only; "
        f"use method smotenc (categorical_features: [{', '.join(columns)}])"
    )


def images_to_features(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w[, c]) -> float64 (n, h*w*c), the space SMOTE interpolates pixels in."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 3:
        raise AugsvcError(f"images_to_features wants uint8 (n, h, w[, c]) images, got {images.dtype} {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64)


def features_to_images(features: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """float (n, h*w*c) -> uint8 (n, *shape), rounded half to even and clipped to [0, 255]."""
    return np.clip(np.rint(np.asarray(features, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(-1, *shape)


def apply_parents(X: np.ndarray, syn: Synthetic) -> np.ndarray:
    """The synthetic rows in another representation ``X`` of the same rows (for example the pixels, when the
    neighbours were searched in a ``feature_column`` embedding): ``X[a] + gap * (X[b] - X[a])``."""
    X = np.asarray(X, dtype=np.float64)
    return _interpolate(X, syn.parent_a, syn.parent_b, syn.gap)


# -- generation ----------------------------------------------------------------------------------------------------


def generate(
    X: np.ndarray,
    y: np.ndarray,
    *,
    target_class: Any,
    n_new: int,
    params: SmoteParams,
    seed: int | np.random.Generator,
    categorical_mask: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
) -> Synthetic:
    """About ``n_new`` synthetic rows of ``target_class`` from ``X`` (n, d) labelled ``y`` (all classes: borderline
    and adasyn look at the other classes). Exactly ``n_new`` for smote and smotenc; see the module doc for the
    borderline and adasyn counts, which follow imbalanced-learn. ``feature_names`` only improve error messages."""
    y = np.asarray(y)
    if len(y) != len(X):
        raise AugsvcError(f"X has {len(X)} rows but y has {len(y)} labels")
    idx_c = np.flatnonzero(y == target_class)
    _check_enough_rows(target_class, len(idx_c), params)
    if params.method == "smoten":
        raise AugsvcError("smoten has its own kernel: call smoten()")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    names = list(feature_names) if feature_names is not None else [f"column {j}" for j in range(np.shape(X)[1])]
    if params.method == "smotenc":
        return _smotenc(np.asarray(X, dtype=object), idx_c, n_new, params.k_neighbors, rng, categorical_mask, names)
    X = _as_float(X, names, params.method)
    if params.method == "smote":
        nn = _neighbours(X[idx_c], X[idx_c], params.k_neighbors)
        rows, cols = _pick(len(idx_c), params.k_neighbors, n_new, rng)
        a, b = idx_c[rows], idx_c[nn[rows, cols]]
        return _synthetic(X, a, b, rng.uniform(0.0, 1.0, size=n_new))
    if params.method == "borderline":
        return _borderline(X, y, idx_c, target_class, n_new, params, rng)
    return _adasyn(X, y, idx_c, target_class, n_new, params.n_neighbors, rng)


def _as_float(X: np.ndarray, names: list[str], method: str) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind in "fiub":
        return X.astype(np.float64, copy=False)
    bad = [names[j] for j in range(X.shape[1]) if not _is_numeric(X[:, j])]
    if bad:
        raise AugsvcError(_non_numeric_message(bad, method))
    return X.astype(np.float64)


def _neighbours(X_fit: np.ndarray, X_query: np.ndarray, k: int) -> np.ndarray:
    """Indices (into ``X_fit``) of the ``k`` nearest rows of each query row, the row itself excluded (the query rows
    are rows of ``X_fit``), as imbalanced-learn's ``nn.kneighbors(X_class)[:, 1:]``."""
    from imblearn.utils import check_neighbors_object

    nn = check_neighbors_object("k_neighbors", k, additional_neighbor=1)
    return nn.fit(X_fit).kneighbors(X_query, return_distance=False)[:, 1:]


def _pick(n_seeds: int, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(seed, neighbour column) pairs uniform over the ``n_seeds x k`` neighbour table (``_make_samples``)."""
    pick = rng.integers(0, n_seeds * k, size=n)
    return pick // k, pick % k


def _interpolate(X: np.ndarray, a: np.ndarray, b: np.ndarray, gap: np.ndarray) -> np.ndarray:
    return X[a] + gap[:, None] * (X[b] - X[a])


def _synthetic(X: np.ndarray, a: np.ndarray, b: np.ndarray, gap: np.ndarray) -> Synthetic:
    return Synthetic(_interpolate(X, a, b, gap), a.astype(np.int64), b.astype(np.int64), gap)


def _empty(d: int) -> Synthetic:
    no = np.zeros(0, dtype=np.int64)
    return Synthetic(np.zeros((0, d)), no, no.copy(), np.zeros(0))


def _borderline(
    X: np.ndarray, y: np.ndarray, idx_c: np.ndarray, target: Any, n_new: int, p: SmoteParams, rng: np.random.Generator
) -> Synthetic:
    from imblearn.over_sampling import BorderlineSMOTE
    from imblearn.utils import check_neighbors_object

    if len(X) < p.m_neighbors + 1:
        raise AugsvcError(f"borderline with m_neighbors={p.m_neighbors} needs {p.m_neighbors + 1} rows, got {len(X)}")
    nn_m = check_neighbors_object("m_neighbors", p.m_neighbors, additional_neighbor=1).fit(X)
    danger = idx_c[BorderlineSMOTE()._in_danger_noise(nn_m, X[idx_c], target, y, kind="danger")]
    if len(danger) == 0:  # imbalanced-learn skips the class
        return _empty(X.shape[1])
    k = p.k_neighbors
    if p.kind == "borderline-1":
        nn = idx_c[_neighbours(X[idx_c], X[danger], k)]
    else:
        nn = _neighbours(X, X[danger], k)
    rows, cols = _pick(len(danger), k, n_new, rng)
    a, b = danger[rows], nn[rows, cols]
    gap = rng.uniform(0.0, 1.0, size=n_new)
    if p.kind == "borderline-2":
        other = y[b] != target
        gap[other] *= rng.uniform(0.0, 0.5, size=int(other.sum()))
    return _synthetic(X, a, b, gap)


def _adasyn(
    X: np.ndarray, y: np.ndarray, idx_c: np.ndarray, target: Any, n_new: int, k: int, rng: np.random.Generator
) -> Synthetic:
    ratio = (y[_neighbours(X, X[idx_c], k)] != target).sum(axis=1) / k
    if not ratio.sum():
        raise AugsvcError(
            f"adasyn: no row of class {target!r} has a neighbour of another class, so there is nothing to weight "
            "by; use method smote"
        )
    per_seed = np.rint(ratio / ratio.sum() * n_new).astype(np.int64)
    if not per_seed.sum():
        raise AugsvcError(f"adasyn: {n_new} new rows of class {target!r} round to none per seed; ask for more rows")
    rows = np.repeat(np.arange(len(idx_c)), per_seed)
    cols = rng.integers(0, k, size=len(rows))
    nn = _neighbours(X[idx_c], X[idx_c], k)
    return _synthetic(X, idx_c[rows], idx_c[nn[rows, cols]], rng.uniform(0.0, 1.0, size=len(rows)))


def _smotenc(
    X: np.ndarray,
    idx_c: np.ndarray,
    n_new: int,
    k: int,
    rng: np.random.Generator,
    cat: np.ndarray | None,
    names: list[str],
) -> Synthetic:
    if cat is None:
        cat = np.array([not _is_numeric(X[:, j]) for j in range(X.shape[1])])
    cat = np.asarray(cat, dtype=bool)
    if not cat.any():
        raise AugsvcError("smotenc needs at least one categorical column (categorical_features); use method smote")
    if cat.all():
        raise AugsvcError("smotenc needs numeric columns too: every column is categorical (imbalanced-learn: SMOTEN)")
    num_cols, cat_cols = np.flatnonzero(~cat), np.flatnonzero(cat)
    bad = [names[j] for j in num_cols if not _is_numeric(X[:, j])]
    if bad:
        raise AugsvcError(f"columns {', '.join(bad)} are not numeric; list them in categorical_features")
    num = X[:, num_cols].astype(np.float64)
    levels, codes = [], []
    for j in cat_cols:
        values, inverse = np.unique(X[:, j].astype(str), return_inverse=True)
        levels.append(values)
        codes.append(inverse)
    median_std = float(np.median(num[idx_c].std(axis=0)))
    scale = median_std / np.sqrt(2)  # SMOTENC: each differing category adds median_std to the squared distance
    Z = [num[idx_c]] + [np.eye(len(v))[c[idx_c]] * scale for v, c in zip(levels, codes, strict=True)]
    nn = _neighbours(np.hstack(Z), np.hstack(Z), k)
    rows, cols = _pick(len(idx_c), k, n_new, rng)
    a, b = idx_c[rows], idx_c[nn[rows, cols]]
    gap = rng.uniform(0.0, 1.0, size=n_new)
    out = np.empty((n_new, X.shape[1]), dtype=object)
    out[:, num_cols] = _interpolate(num, a, b, gap)
    neigh = idx_c[nn[rows]]  # (n_new, k) the seed's neighbours vote
    for j, values, code in zip(cat_cols, levels, codes, strict=True):
        votes = np.zeros((n_new, len(values)))
        np.add.at(votes, (np.arange(n_new)[:, None], code[neigh]), 1.0)
        votes += rng.uniform(0.0, 0.5, size=votes.shape)  # uniform choice among tied maxima
        out[:, j] = values[np.argmax(votes, axis=1)]
    return Synthetic(out, a.astype(np.int64), b.astype(np.int64), gap)


def smoten(
    codes: np.ndarray, y: np.ndarray, *, target_class: Any, n_new: int, k_neighbors: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """SMOTEN (imbalanced-learn's ``SMOTEN``, after Chawla et al. 2002): all-categorical rows.

    ``codes`` int (n, d): each column's category codes. Neighbours of each class row are its ``k_neighbors + 1``
    nearest class rows (itself included, as imbalanced-learn) under the Value Difference Metric fitted on every row;
    each new row takes, column by column, the most frequent code among a uniformly drawn seed's neighbours (ties:
    the smallest code, as ``scipy.stats.mode``). Returns (new codes (n_new, d), neighbour rows (n_new, k + 1)), row
    indices into ``codes``.
    """
    from imblearn.metrics.pairwise import ValueDifferenceMetric
    from sklearn.neighbors import NearestNeighbors

    idx_c = np.flatnonzero(np.asarray(y) == target_class)
    if len(idx_c) < k_neighbors + 1:
        raise AugsvcError(
            f"class {target_class!r} has {len(idx_c)} rows but smoten with k_neighbors={k_neighbors} needs at "
            f"least {k_neighbors + 1}; lower k_neighbors or add rows"
        )
    n_cat = [int(codes[:, j].max()) + 1 for j in range(codes.shape[1])]
    vdm = ValueDifferenceMetric(n_categories=n_cat).fit(codes, np.asarray(y))
    dist = vdm.pairwise(codes[idx_c])
    nn = NearestNeighbors(n_neighbors=k_neighbors + 1, metric="precomputed").fit(dist)
    neigh = nn.kneighbors(dist, return_distance=False)
    seeds = rng.integers(0, len(idx_c), size=n_new)
    rows = idx_c[neigh[seeds]]  # (n_new, k + 1)
    out = np.empty((n_new, codes.shape[1]), dtype=np.int64)
    for j in range(codes.shape[1]):
        counts = np.zeros((n_new, n_cat[j]), dtype=np.int64)
        np.add.at(counts, (np.arange(n_new)[:, None], codes[rows, j]), 1)
        out[:, j] = counts.argmax(axis=1)  # first maximum = smallest code among ties
    return out, rows


class _SmoteFitted(Fitted):
    """The SMOTE family fitted on one split: features prepared once, rows made per class."""

    def __init__(self, params: SmoteParams, data: FitData) -> None:
        self.params, self.data = params, data
        self.y = np.asarray(data.y)
        if data.modality == "image":
            self.shape = tuple(data.X.shape[1:])
            self.X = images_to_features(data.X)
            self.mask = None
            self.names = None
        else:
            self.names = list(data.features)
            cat_names = params.categorical_features
            if cat_names is None:
                cat_names = [f for f, k in data.features.items() if k == "categorical"]
            self.mask = np.array([f in cat_names for f in self.names])
            X = np.asarray(data.X, dtype=object).reshape(len(self.y), len(self.names))
            for j, f in enumerate(self.names):
                if self.mask[j]:
                    bad = [i for i, v in enumerate(X[:, j]) if v is None]
                    kind = "missing"
                else:
                    col = np.array([np.nan if v is None else v for v in X[:, j]], dtype=np.float64)
                    bad = np.flatnonzero(~np.isfinite(col)).tolist()
                    kind = "missing or infinite"
                    X[:, j] = col
                if bad:
                    raise AugsvcError(
                        f"column {f!r} has a {kind} value in {data.where(bad[0])}"
                        f"{f' and {len(bad) - 1} more rows' if len(bad) > 1 else ''}; SMOTE needs complete, finite "
                        "rows: fill or drop them before this stage"
                    )
            if params.method in ("smotenc", "smoten"):
                self.X = X
            else:
                self.X = X.astype(np.float64)
        self.space = self.X if data.embedding is None else np.asarray(data.embedding, dtype=np.float64)

    def generate(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        p = self.params
        if p.method == "smoten":
            levels, codes = [], []
            for j in range(self.X.shape[1]):
                values, inverse = np.unique(self.X[:, j].astype(str), return_inverse=True)
                levels.append(values)
                codes.append(inverse)
            new, rows = smoten(np.stack(codes, axis=1), self.y, target_class=label, n_new=n,
                               k_neighbors=p.k_neighbors, rng=rng)  # fmt: skip
            X_new = np.empty(new.shape, dtype=object)
            for j, values in enumerate(levels):
                X_new[:, j] = values[new[:, j]]
            return Generated(X_new, [tuple(int(i) for i in r) for r in rows], [{} for _ in range(n)])
        syn = generate(self.space, self.y, target_class=label, n_new=n, params=p, seed=rng,
                       categorical_mask=self.mask if p.method == "smotenc" else None,
                       feature_names=self.names)  # fmt: skip
        if self.space is self.X:
            X_new = syn.X_new
        else:
            if p.method == "smotenc":
                raise AugsvcError("feature_column works with smote, borderline and adasyn, not smotenc")
            X_new = apply_parents(self.X, syn)
        if self.data.modality == "image":
            X_new = features_to_images(X_new, self.shape)
        parents = [(int(a), int(b)) for a, b in zip(syn.parent_a, syn.parent_b, strict=True)]
        return Generated(X_new, parents, [{"gap": float(g)} for g in syn.gap])
