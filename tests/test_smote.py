"""SMOTE-family generator: parents and gaps, counts for every strategy form, determinism, errors, builds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augsvc.errors import AugsvcError
from augsvc.store import Store
from generators.smote import SmoteParams, features_to_images, generate, images_to_features, plan
from pipelines.ingest import IngestOptions, ingest
from pipelines.runner import build
from schemas.recipe import load_recipe


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (60, 3)), rng.normal(1.5, 1, (12, 3))])
    y = np.array(["neg"] * 60 + ["pos"] * 12, dtype=object)
    return X, y


@pytest.mark.parametrize("method,kind", [("smote", None), ("borderline", "borderline-1"),
                                         ("borderline", "borderline-2"), ("adasyn", None)])  # fmt: skip
def test_rows_lie_between_recorded_parents(method: str, kind: str | None) -> None:
    X, y = data()
    params = SmoteParams(method=method, **({"kind": kind} if kind else {}))
    s = generate(X, y, target_class="pos", n_new=48, params=params, seed=3)
    assert s.X_new.shape == (48, 3)
    assert np.allclose(s.X_new, X[s.parent_a] + s.gap[:, None] * (X[s.parent_b] - X[s.parent_a]), atol=1e-12)
    assert np.all(y[s.parent_a] == "pos") and np.all((s.gap >= 0) & (s.gap <= 1))
    if method != "borderline" or kind == "borderline-1":
        assert np.all(y[s.parent_b] == "pos")
    again = generate(X, y, target_class="pos", n_new=48, params=params, seed=3)
    assert np.array_equal(again.X_new, s.X_new)
    assert not np.array_equal(generate(X, y, target_class="pos", n_new=48, params=params, seed=4).X_new, s.X_new)


def test_plan_counts_match_imblearn_forms() -> None:
    counts = {"a": 100, "b": 30, "c": 10}
    assert plan(counts, SmoteParams()) == {"b": 70, "c": 90}
    assert plan(counts, SmoteParams(sampling_strategy="minority")) == {"c": 90}
    assert plan(counts, SmoteParams(sampling_strategy={"b": 50})) == {"b": 20}
    assert plan({"neg": 1433, "pos": 51}, SmoteParams(sampling_strategy=0.5)) == {"pos": 665}


def test_plan_errors_are_clear() -> None:
    with pytest.raises(AugsvcError, match="asks class 'a' for 50 rows but it has 100; .* cannot shrink"):
        plan({"a": 100, "b": 10}, SmoteParams(sampling_strategy={"a": 50}))
    with pytest.raises(AugsvcError, match="class 'b' has 4 rows but smote with k_neighbors=5 needs at least 6; lower"):
        plan({"a": 100, "b": 4}, SmoteParams())
    with pytest.raises(AugsvcError, match="unknown class 'z'"):
        plan({"a": 100, "b": 10}, SmoteParams(sampling_strategy={"z": 50}))


def test_smotenc_takes_categories_from_neighbours() -> None:
    rng = np.random.default_rng(1)
    X = np.array([[float(v), "red" if i % 3 else "blue"] for i, v in enumerate(rng.normal(0, 1, 40))], dtype=object)
    y = np.array([0] * 30 + [1] * 10)
    mask = np.array([False, True])
    s = generate(X, y, target_class=1, n_new=20, params=SmoteParams(method="smotenc"), seed=0, categorical_mask=mask)
    assert set(s.X_new[:, 1]) <= {"red", "blue"}
    num = X[:, 0].astype(float)
    assert np.allclose(s.X_new[:, 0].astype(float), num[s.parent_a] + s.gap * (num[s.parent_b] - num[s.parent_a]))


def test_images_round_trip() -> None:
    imgs = np.random.default_rng(0).integers(0, 256, (5, 4, 3, 1), dtype=np.uint8)
    assert np.array_equal(features_to_images(images_to_features(imgs), (4, 3, 1)), imgs)


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
    with pytest.raises(AugsvcError, match="colour are categorical; use method smotenc"):
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
        assert step["generator"] == "smotenc" and pa_["label"] == pb["label"] == 1
    again = build(load_recipe(spec | {"output": "bal2"}), store, workers=0)
    assert again.version == rep.version
    with pytest.raises(AugsvcError, match="generator: unknown key 'k'"):
        load_recipe({"input": "t", "output": "x", "stages": [{"generator": {"method": "smote", "k": 3}}]})
