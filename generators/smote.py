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
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.errors import AugsvcError

StrategyName = Literal["auto", "minority", "not minority", "not majority", "all"]
Ratio = Annotated[float, Field(gt=0, le=1)]
Strategy = Ratio | StrategyName | dict[str, Annotated[int, Field(ge=0)]]


class SmoteParams(BaseModel):
    """Recipe ``generator:`` parameters of the SMOTE family (defaults are imbalanced-learn's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["smote", "borderline", "adasyn", "smotenc"] = "smote"
    k_neighbors: int = Field(5, ge=1, description="same-class neighbours to interpolate towards (not adasyn)")
    sampling_strategy: Strategy = Field(
        "auto",
        description="float ratio minority/majority (two classes), auto, minority, not minority, not majority, all, "
        "or {class: target rows}",
    )
    kind: Literal["borderline-1", "borderline-2"] = Field("borderline-1", description="borderline only")
    m_neighbors: int = Field(10, ge=1, description="borderline: neighbours (any class) that decide 'danger'")
    n_neighbors: int = Field(5, ge=1, description="adasyn: neighbours that weight the seeds and pair with them")
    categorical_features: list[str] | None = Field(
        None, description="smotenc: categorical columns (default: the non-numeric ones)"
    )
    feature_column: str | None = Field(
        None, description="search neighbours in this embedding/list column instead of the raw features"
    )

    @field_validator("sampling_strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        forms = f"a ratio in (0, 1], one of {', '.join(get_args(StrategyName))}, or {{class: target rows}}"
        if isinstance(v, bool) or not isinstance(v, int | float | str | dict):
            raise ValueError(f"{v!r} is not a sampling strategy; give {forms}")
        if isinstance(v, int | float) and not 0 < v <= 1:
            raise ValueError(f"ratio {v} is outside (0, 1] (minority rows / majority rows after sampling)")
        if isinstance(v, str) and v not in get_args(StrategyName):
            raise ValueError(f"{v!r} is not a sampling strategy; give {forms}")
        if isinstance(v, dict):
            bad = {c: n for c, n in v.items() if isinstance(n, bool) or not isinstance(n, int) or n < 0}
            if bad:
                raise ValueError(f"target rows must be whole numbers >= 0, got {bad}")
        return v

    @model_validator(mode="after")
    def _method_fields(self) -> SmoteParams:
        only = {
            "kind": ("borderline",),
            "m_neighbors": ("borderline",),
            "n_neighbors": ("adasyn",),
            "k_neighbors": ("smote", "borderline", "smotenc"),
            "categorical_features": ("smotenc",),
        }
        for name, methods in only.items():
            if self.method not in methods and getattr(self, name) != type(self).model_fields[name].default:
                hint = " (adasyn's neighbours are n_neighbors)" if name == "k_neighbors" else ""
                raise ValueError(f"{name} applies to method {' or '.join(methods)}, not {self.method}{hint}")
        return self

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
    """New rows per class (only classes that get some), as imbalanced-learn's over-samplers would make them.

    Raises AugsvcError for a strategy that would shrink a class or names an unknown one, and for a class to
    oversample with too few rows for its neighbours.
    """
    from imblearn.utils import check_sampling_strategy

    counts = {str(c): int(n) for c, n in class_counts.items() if n > 0}
    if len(counts) < 2:
        raise AugsvcError(f"SMOTE needs at least two classes with rows; got {counts or 'none'}")
    strategy = params.sampling_strategy
    names = list(counts)
    if isinstance(strategy, dict):
        for c, target in strategy.items():
            if c not in counts:
                raise AugsvcError(f"sampling_strategy: unknown class {c!r}; classes are {', '.join(names)}")
            _check_not_shrinking(c, counts[c], target, f"sampling_strategy asks class {c!r} for {target} rows")
        strategy = {names.index(c): t for c, t in strategy.items()}
    elif isinstance(strategy, float):
        if len(counts) != 2:
            raise AugsvcError(
                f"sampling_strategy {strategy}: a ratio works for two classes only, there are {len(counts)}; "
                "give {class: target rows} instead"
            )
        major = max(counts, key=counts.get)
        for c, n in counts.items():
            if c != major:
                target = int(counts[major] * strategy)
                if target == n:  # imbalanced-learn refuses a ratio that adds nothing
                    raise AugsvcError(
                        f"sampling_strategy {strategy} x {counts[major]} ({major!r}) asks class {c!r} for {target} "
                        f"rows and it has {n} already; raise the ratio or drop the stage"
                    )
                _check_not_shrinking(
                    c, n, target, f"sampling_strategy {strategy} x {counts[major]} ({major!r}) asks class {c!r} "
                    f"for {target} rows"
                )  # fmt: skip
    y = np.repeat(np.arange(len(names)), list(counts.values()))
    try:
        out = check_sampling_strategy(strategy, y, "over-sampling")
    except ValueError as e:
        raise AugsvcError(f"sampling_strategy {params.sampling_strategy!r}: {e}") from None
    need = {names[int(c)]: int(n) for c, n in out.items() if n > 0}
    for c in need:
        _check_enough_rows(c, counts[c], params)
    if params.method == "borderline" and sum(counts.values()) < params.m_neighbors + 1:
        raise AugsvcError(
            f"borderline with m_neighbors={params.m_neighbors} needs at least {params.m_neighbors + 1} rows in all; "
            f"there are {sum(counts.values())}: lower m_neighbors"
        )
    return need


def _check_not_shrinking(cls: str, have: int, target: int, asked: str) -> None:
    if target < have:
        raise AugsvcError(
            f"{asked} but it has {have}; an over-sampler cannot shrink a class: ask for at least {have} rows "
            f"(or leave {cls!r} out)"
        )


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
    seed: int,
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
    rng = np.random.default_rng(seed)
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
