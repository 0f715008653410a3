"""SMOTE-family generator: parents and gaps, counts for every strategy form (against imbalanced-learn),
determinism, SMOTE-NC categories, images, errors, and one build through the runner."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE

from generators import build_generator
from generators.smote import (
    SmoteParams,
    apply_parents,
    features_to_images,
    generate,
    images_to_features,
    plan,
    tabular_features,
)
from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from schemas.errors import AugsvcError

METHODS = [
    {"method": "smote"},
    {"method": "borderline", "kind": "borderline-1"},
    {"method": "borderline", "kind": "borderline-2"},
    {"method": "adasyn"},
]


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian classes, 60 'neg' and 12 'pos' rows."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (60, 3)), rng.normal(1.5, 1, (12, 3))])
    y = np.array(["neg"] * 60 + ["pos"] * 12, dtype=object)
    return X, y


def three_classes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(0, 1, (100, 4)), rng.normal(1, 1, (30, 4)), rng.normal(-1, 1, (10, 4))])
    y = np.array(["a"] * 100 + ["b"] * 30 + ["c"] * 10, dtype=object)
    return X, y


def imblearn_counts(sampler, X: np.ndarray, y: np.ndarray) -> dict[str, int]:
    _, y_res = sampler.fit_resample(X, y)
    before, after = Counter(y), Counter(y_res)
    return {c: after[c] - before[c] for c in after if after[c] > before[c]}


def ours_counts(X: np.ndarray, y: np.ndarray, params: SmoteParams) -> dict[str, int]:
    need = plan(dict(Counter(y)), params)
    out = {c: len(generate(X, y, target_class=c, n_new=n, params=params, seed=1)) for c, n in need.items()}
    return {c: n for c, n in out.items() if n}


@pytest.mark.parametrize("spec", METHODS, ids=lambda s: s.get("kind", s["method"]))
def test_rows_lie_on_the_segment_between_recorded_parents(spec: dict) -> None:
    X, y = data()
    params = SmoteParams(**spec)
    s = generate(X, y, target_class="pos", n_new=48, params=params, seed=3)
    assert len(s) > 0 and s.X_new.shape == (len(s), 3) and s.X_new.dtype == np.float64
    lo, hi = np.minimum(X[s.parent_a], X[s.parent_b]), np.maximum(X[s.parent_a], X[s.parent_b])
    assert np.all((s.X_new >= lo - 1e-9) & (s.X_new <= hi + 1e-9))
    np.testing.assert_allclose(s.X_new, X[s.parent_a] + s.gap[:, None] * (X[s.parent_b] - X[s.parent_a]), atol=1e-9)
    assert np.all((s.gap >= 0) & (s.gap < 1)) and np.all(s.parent_b >= 0) and np.all(s.parent_a != s.parent_b)
    assert np.all(y[s.parent_a] == "pos")
    if spec.get("kind") == "borderline-2":  # pairs with any class; towards another class, at most half way
        other = y[s.parent_b] != "pos"
        assert other.any() and np.all(s.gap[other] < 0.5)
    else:
        assert np.all(y[s.parent_b] == "pos")


@pytest.mark.parametrize("spec", METHODS, ids=lambda s: s.get("kind", s["method"]))
def test_same_seed_same_rows_other_seed_other_rows(spec: dict) -> None:
    X, y = data()
    params = SmoteParams(**spec)
    a = generate(X, y, target_class="pos", n_new=30, params=params, seed=7)
    b = generate(X, y, target_class="pos", n_new=30, params=params, seed=7)
    c = generate(X, y, target_class="pos", n_new=30, params=params, seed=8)
    assert np.array_equal(a.X_new, b.X_new) and np.array_equal(a.parent_b, b.parent_b)
    assert np.array_equal(a.gap, b.gap)
    assert not np.array_equal(a.gap, c.gap)


@pytest.mark.parametrize(
    "strategy", ["auto", "minority", "not minority", "not majority", "all", {"b": 45, "c": 30}, {"a": 100, "c": 11}]
)
def test_counts_match_imblearn_for_every_strategy_form(strategy) -> None:
    X, y = three_classes()
    params = SmoteParams(sampling_strategy=strategy)
    expected = imblearn_counts(SMOTE(sampling_strategy=strategy, random_state=0), X, y)
    assert plan(dict(Counter(y)), params) == expected
    assert ours_counts(X, y, params) == expected


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0])
def test_ratio_counts_match_imblearn(ratio: float) -> None:
    X, y = data()
    expected = imblearn_counts(SMOTE(sampling_strategy=ratio, random_state=0), X, y)
    assert plan(dict(Counter(y)), SmoteParams(sampling_strategy=ratio)) == expected
    assert plan({"neg": 1433, "pos": 51}, SmoteParams(sampling_strategy=0.5)) == {"pos": 665}  # yeast4 to 1:2


@pytest.mark.parametrize(
    "spec,sampler",
    [
        ({"method": "borderline", "kind": "borderline-1"}, BorderlineSMOTE(kind="borderline-1", random_state=0)),
        ({"method": "borderline", "kind": "borderline-2"}, BorderlineSMOTE(kind="borderline-2", random_state=0)),
        ({"method": "borderline", "m_neighbors": 6, "k_neighbors": 3}, BorderlineSMOTE(m_neighbors=6, k_neighbors=3)),
        ({"method": "adasyn"}, ADASYN(random_state=0)),
        ({"method": "adasyn", "n_neighbors": 3}, ADASYN(n_neighbors=3)),
    ],
    ids=["b1", "b2", "b1-m6-k3", "adasyn", "adasyn-n3"],
)
@pytest.mark.parametrize("strategy", ["auto", "not majority", {"b": 61, "c": 33}])
def test_borderline_and_adasyn_counts_match_imblearn(spec: dict, sampler, strategy) -> None:
    X, y = three_classes()
    params = SmoteParams(**spec, sampling_strategy=strategy)
    assert ours_counts(X, y, params) == imblearn_counts(sampler.set_params(sampling_strategy=strategy), X, y)


def test_borderline_without_danger_rows_makes_none_as_imblearn_does() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (40, 2)), rng.normal(10, 0.1, (10, 2))])  # far apart: no border
    y = np.array([0] * 40 + [1] * 10)
    assert imblearn_counts(BorderlineSMOTE(random_state=0), X, y) == {}
    s = generate(X, y, target_class=1, n_new=30, params=SmoteParams(method="borderline"), seed=0)
    assert len(s) == 0 and s.X_new.shape == (0, 2)


def test_smote_matches_imblearn_in_distribution() -> None:
    X, y = data()
    X_res, _ = SMOTE(random_state=0).fit_resample(X, y)
    theirs = X_res[len(X) :]
    ours = generate(X, y, target_class="pos", n_new=len(theirs), params=SmoteParams(), seed=0).X_new
    # same seeds and neighbour table: per-feature means and spreads agree within sampling noise
    np.testing.assert_allclose(ours.mean(axis=0), theirs.mean(axis=0), atol=0.25)
    np.testing.assert_allclose(ours.std(axis=0), theirs.std(axis=0), rtol=0.25)


def test_smotenc_takes_categories_from_neighbours() -> None:
    rng = np.random.default_rng(1)
    # class 1: cluster near 0 that is 'red' but for one 'blue' row, cluster near 50 that is all 'green'
    num = np.concatenate([rng.normal(20, 5, 30), rng.normal(0, 0.5, 10), rng.normal(50, 0.5, 10)])
    colour = ["blue"] * 30 + ["red"] * 9 + ["blue"] + ["green"] * 10
    X = np.array([[float(v), c] for v, c in zip(num, colour, strict=True)], dtype=object)
    y = np.array([0] * 30 + [1] * 20)
    params = SmoteParams(method="smotenc", k_neighbors=5)
    s = generate(X, y, target_class=1, n_new=200, params=params, seed=0, categorical_mask=np.array([False, True]))
    near_zero = num[s.parent_a] < 25
    assert np.all(s.X_new[near_zero, 1] == "red")  # 'blue' is never the majority among a seed's 5 neighbours
    assert np.all(s.X_new[~near_zero, 1] == "green")
    assert np.all(y[s.parent_a] == 1) and np.all(y[s.parent_b] == 1)
    x = s.X_new[:, 0].astype(np.float64)
    np.testing.assert_allclose(x, num[s.parent_a] + s.gap * (num[s.parent_b] - num[s.parent_a]), atol=1e-9)
    again = generate(X, y, target_class=1, n_new=200, params=params, seed=0, categorical_mask=np.array([False, True]))
    assert np.array_equal(again.X_new, s.X_new)


def test_smotenc_mask_from_names_or_inferred() -> None:
    cols = {"x": [0.1, 0.2, 0.3], "sex": ["M", "F", "M"], "grade": [1.0, 2.0, 3.0]}
    X, mask = tabular_features(cols, SmoteParams(method="smotenc"))
    assert X.dtype == object and mask.tolist() == [False, True, False]
    _, mask = tabular_features(cols, SmoteParams(method="smotenc", categorical_features=["sex", "grade"]))
    assert mask.tolist() == [False, True, True]
    X, mask = tabular_features({"x": [1, 2], "z": [3.5, 4.0]}, SmoteParams())
    assert X.dtype == np.float64 and X.shape == (2, 2) and mask is None


def test_images_round_trip_and_synthesise() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (30, 4, 3, 1), dtype=np.uint8)
    feats = images_to_features(imgs)
    assert feats.shape == (30, 12) and feats.dtype == np.float64
    assert np.array_equal(features_to_images(feats, (4, 3, 1)), imgs)
    assert np.array_equal(features_to_images(np.array([[-3.0, 255.6, 1.5, 2.5]]), (2, 2, 1)).ravel(), [0, 255, 2, 2])
    y = np.array([0] * 24 + [1] * 6)
    s = generate(feats, y, target_class=1, n_new=10, params=SmoteParams(), seed=0)
    new = features_to_images(s.X_new, (4, 3, 1)).reshape(10, -1).astype(int)
    a, b = imgs[s.parent_a].reshape(10, -1).astype(int), imgs[s.parent_b].reshape(10, -1).astype(int)
    assert np.all((new >= np.minimum(a, b)) & (new <= np.maximum(a, b)))


def test_feature_column_space_then_raw_rows() -> None:
    X, y = data()
    embedding = X[:, :2] * 10.0  # neighbours searched here, rows made in X with the same parents and gaps
    s = generate(embedding, y, target_class="pos", n_new=20, params=SmoteParams(feature_column="emb"), seed=0)
    raw = apply_parents(X, s)
    np.testing.assert_allclose(raw[:, :2] * 10.0, s.X_new, atol=1e-9)


def test_shrinking_strategies_are_refused_with_class_count_and_target() -> None:
    with pytest.raises(AugsvcError, match=r"asks class 'a' for 50 rows but it has 100; .*cannot shrink.*at least 100"):
        plan({"a": 100, "b": 10}, SmoteParams(sampling_strategy={"a": 50}))
    with pytest.raises(AugsvcError, match=r"0.05 x 100 \('a'\) asks class 'b' for 5 rows but it has 10"):
        plan({"a": 100, "b": 10}, SmoteParams(sampling_strategy=0.05))
    with pytest.raises(AugsvcError, match=r"asks class 'b' for 10 rows and it has 10 already; raise the ratio"):
        plan({"a": 100, "b": 10}, SmoteParams(sampling_strategy=0.1))


def test_too_few_rows_for_the_neighbours() -> None:
    msg = "class 'b' has 4 rows but smote with k_neighbors=5 needs at least 6; lower k_neighbors to 3 or add rows"
    with pytest.raises(AugsvcError, match=msg):
        plan({"a": 100, "b": 4}, SmoteParams())
    with pytest.raises(AugsvcError, match="class 'b' has 3 rows but adasyn with n_neighbors=5 needs at least 6"):
        plan({"a": 100, "b": 3}, SmoteParams(method="adasyn"))
    X, y = data()
    with pytest.raises(AugsvcError, match="class 'pos' has 12 rows but smote with k_neighbors=12 needs at least 13"):
        generate(X, y, target_class="pos", n_new=5, params=SmoteParams(k_neighbors=12), seed=0)
    plan({"a": 100, "b": 4}, SmoteParams(k_neighbors=3))  # the suggested fix works


def test_other_plan_errors() -> None:
    with pytest.raises(AugsvcError, match="unknown class 'z'; classes are a, b"):
        plan({"a": 100, "b": 10}, SmoteParams(sampling_strategy={"z": 50}))
    with pytest.raises(AugsvcError, match="a ratio works for two classes only, there are 3"):
        plan({"a": 100, "b": 10, "c": 10}, SmoteParams(sampling_strategy=0.5))
    with pytest.raises(AugsvcError, match="at least two classes"):
        plan({"a": 100, "b": 0}, SmoteParams())


def test_non_numeric_features_without_smotenc() -> None:
    cols = {"x": [0.1, 0.2], "sex": ["M", "F"], "colour": ["red", "blue"]}
    with pytest.raises(AugsvcError, match=r"columns sex, colour are not numeric.*use method smotenc"):
        tabular_features(cols, SmoteParams())
    X = np.array([[0.1, "M"], [0.2, "F"], [0.3, "M"], [0.4, "F"]], dtype=object)
    with pytest.raises(AugsvcError, match=r"columns sex are not numeric, and borderline .*use method smotenc"):
        generate(X, np.array([0, 0, 1, 1]), target_class=1, n_new=2, params=SmoteParams(method="borderline",
                 k_neighbors=1, m_neighbors=2), seed=0, feature_names=["x", "sex"])  # fmt: skip
    with pytest.raises(AugsvcError, match="columns x have missing values"):
        tabular_features({"x": [0.1, None]}, SmoteParams())


def test_method_errors() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (40, 2)), rng.normal(10, 0.1, (10, 2))])
    y = np.array([0] * 40 + [1] * 10)
    with pytest.raises(AugsvcError, match="adasyn: no row of class 1 has a neighbour of another class.*smote"):
        generate(X, y, target_class=1, n_new=5, params=SmoteParams(method="adasyn"), seed=0)
    allcat = np.array([["a"], ["b"]] * 5, dtype=object)
    with pytest.raises(AugsvcError, match="smotenc needs numeric columns too"):
        generate(allcat, np.array([0, 1] * 5), target_class=1, n_new=2, params=SmoteParams(method="smotenc",
                 k_neighbors=2), seed=0)  # fmt: skip


def test_params_validate_at_load_time() -> None:
    assert SmoteParams().model_dump()["k_neighbors"] == 5
    with pytest.raises(AugsvcError, match="k_neighbors applies to method .*not adasyn .*n_neighbors"):
        build_generator({"method": "adasyn", "k_neighbors": 3})
    with pytest.raises(AugsvcError, match="m_neighbors applies to method borderline"):
        build_generator({"method": "smote", "m_neighbors": 3})
    with pytest.raises(AugsvcError, match="unknown key 'k'; allowed keys: method"):
        build_generator({"method": "smote", "k": 3})
    with pytest.raises(AugsvcError, match=r"sampling_strategy: ratio 1.5 is outside \(0, 1\]"):
        build_generator({"method": "smote", "sampling_strategy": 1.5})
    with pytest.raises(AugsvcError, match="sampling_strategy: 'majority' is not a sampling strategy; give a ratio"):
        build_generator({"method": "smote", "sampling_strategy": "majority"})
    with pytest.raises(AugsvcError, match=r"target rows must be whole numbers >= 0, got \{'pos': -1\}"):
        build_generator({"method": "smote", "sampling_strategy": {"pos": -1}})
    with pytest.raises(
        AugsvcError, match=r"recipe: stages\[0\].generator: kind applies to method borderline, not smote"
    ):
        load_recipe(
            {"input": "t", "output": "x", "stages": [{"generator": {"method": "smote", "kind": "borderline-2"}}]}
        )
    p = build_generator({"method": "borderline", "kind": "borderline-2", "sampling_strategy": {"pos": 10}})
    assert SmoteParams.model_validate(p.model_dump()) == p


def test_smote_stage_in_a_build(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["a,b,colour,Class"]
    for _ in range(40):
        lines.append(f"{rng.normal():.4f},{rng.normal():.4f},red,negative")
    for _ in range(8):
        lines.append(f"{rng.normal(2):.4f},{rng.normal(2):.4f},blue,positive")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "s")
    ingest(tmp_path / "t.csv", name="t", store=store, options=IngestOptions(format="tabular"), workers=0)
    spec = {"input": "t", "output": "bal", "seed": 0, "stages": [{"generator": {"method": "smote", "k_neighbors": 3}}]}
    with pytest.raises(
        AugsvcError, match="colour are categorical and smote interpolates numbers only; use method smotenc"
    ):
        build(load_recipe(spec), store, workers=0)
    spec["stages"][0]["generator"]["method"] = "smotenc"
    rep = build(load_recipe(spec), store, workers=0)
    assert rep.manifest.rows_per_class == {"negative": 40, "positive": 40}
    ds, v = store.resolve("bal")
    rows = pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in rep.manifest.shards]).to_pylist()
    by_id = {r["sample_id"]: r for r in rows}
    synth = [r for r in rows if r["lineage"]]
    assert len(synth) == 32
    for r in synth:
        step = json.loads(r["lineage"])[-1]
        pa_, pb = (by_id[p] for p in step["parents"])
        assert r["a"] == pytest.approx(pa_["a"] + step["gap"] * (pb["a"] - pa_["a"]))
        assert step["generator"] == "smotenc" and pa_["label"] == pb["label"] == 1 and r["colour"] == "blue"
    again = build(load_recipe(spec | {"output": "bal2"}), store, workers=0)
    assert again.version == rep.version
