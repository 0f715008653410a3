"""Label mixing: exact soft labels, kernels' edge cases, pairing across shards, determinism, batch API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.kernels.mixing import blend, paste_box
from pipelines.mixing import MixSpec, mix_batch, mix_labels, mix_pair, soft_of
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.stages.mix import plan_pairs
from pipelines.store import Store

COLOURS = {"black": 0, "grey": 128, "white": 255}


pytestmark = pytest.mark.usefixtures("ray_module")  # embedded Ray, started once per module


@pytest.fixture
def flat_store(tmp_path: Path) -> Store:
    """3 classes of flat-coloured 16x16 PNGs (4 each), 2 rows per shard, so a pasted box is countable."""
    import cv2

    for c, v in COLOURS.items():
        for i in range(4):
            p = tmp_path / "flat" / c / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), np.full((16, 16, 3), v, np.uint8))
    store = Store(tmp_path / "store")
    ingest(tmp_path / "flat", name="flat", store=store, options=IngestOptions(shard_rows=2), workers=0)
    return store


def rows(store: Store, name: str) -> list[dict]:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()


def mix_recipe(method: str, output: str = "mixed", **mix) -> dict:
    return {"input": "flat", "output": output, "seed": 1,
            "stages": [{"mix": {"method": method, "partner": "different_class", **mix}, "copies": 2}]}  # fmt: skip


def test_cutmix_soft_labels_equal_pasted_pixel_fractions(flat_store: Store) -> None:
    build(load_recipe(mix_recipe("cutmix", alpha=1.0)), flat_store, workers=0)
    m = flat_store.manifest(*flat_store.resolve("mixed"))
    assert m.soft_labels and m.rows == 12 + 24
    names = m.class_names
    mixed = [r for r in rows(flat_store, "mixed") if r["lineage"]]
    assert len(mixed) == 24
    for r in mixed:
        img = np.frombuffer(r["image"], np.uint8).reshape(16, 16, 3)
        step = json.loads(r["lineage"])[-1]
        soft = np.array(r["soft_label"])
        assert abs(soft.sum() - 1) < 1e-6
        present = {names[i]: w for i, w in enumerate(soft) if w > 0}
        for cname, w in present.items():
            frac = float((img[:, :, 0] == COLOURS[cname]).mean())
            assert abs(frac - w) < 1e-6, (cname, frac, w, step)
        assert r["label"] == int(np.argmax(soft)) or soft[r["label"]] == soft.max()


def test_mixup_and_average(flat_store: Store) -> None:
    build(load_recipe(mix_recipe("average", output="avg")), flat_store, workers=0)
    for r in [r for r in rows(flat_store, "avg") if r["lineage"]]:
        soft = sorted(w for w in r["soft_label"] if w > 0)
        assert soft == [0.5, 0.5]
        assert len(np.unique(np.frombuffer(r["image"], np.uint8))) == 1  # mean of two flat images is flat
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    b = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(blend(a, b, 1.0), a) and np.array_equal(blend(a, b, 0.0), b)
    assert np.array_equal(blend(a, b, 0.5), np.floor((a.astype(float) + b) / 2 + 0.5).astype(np.uint8))
    assert np.array_equal(paste_box(a, b, 0, 0, 0, 0), a)


def test_same_bytes_across_worker_counts(flat_store: Store) -> None:
    outs = []
    for w in (0, 1, 2):
        rep = build(load_recipe(mix_recipe("cutmix", output=f"m{w}", partner="any")), flat_store, workers=w)
        ds, v = f"m{w}", rep.version
        outs.append((v, [(flat_store.version_dir(ds, v) / s.path).read_bytes() for s in rep.manifest.shards]))
    assert outs[0] == outs[1] == outs[2]


def test_pairs_cross_shards_and_respect_partner_rule(flat_store: Store) -> None:
    from pipelines.storework import part_keys as _metas

    m = flat_store.manifest(*flat_store.resolve("flat"))
    vdir = flat_store.version_dir("flat", m.version)
    metas = _metas([[str(vdir / s.path)] for s in m.shards])
    where = {sid: i for i, meta in enumerate(metas) for sid, _, _ in meta}
    label = {sid: lab for meta in metas for sid, lab, _ in meta}
    recipe = load_recipe(mix_recipe("mixup"))
    pairs = plan_pairs(recipe, 0, metas, m.class_names)
    flat = [(d, a, p) for d, ps in pairs.items() for a, _, p in ps]
    assert len(flat) == 24 and all(label[a] != label[p] for _, a, p in flat)
    assert any(where[p] != d for d, _, p in flat)  # partners come from other shards
    r_any = load_recipe(mix_recipe("mixup", partner="any", p=0.5))
    n = sum(len(v) for v in plan_pairs(r_any, 0, metas, m.class_names).values())
    assert 0 < n < 24


def test_mixing_soft_labelled_rows_mixes_soft_labels(flat_store: Store) -> None:
    spec = {"input": "flat", "output": "twice", "seed": 3, "stages": [
        {"mix": {"method": "mixup", "partner": "different_class"}, "copies": 1},
        {"mix": {"method": "mixup", "partner": "any"}, "copies": 1}]}  # fmt: skip
    build(load_recipe(spec), flat_store, workers=0)
    all_rows = {r["sample_id"]: r for r in rows(flat_store, "twice")}
    second = [r for r in all_rows.values() if r["lineage"] and json.loads(r["lineage"])[-1]["stage"] == 1]
    checked = 0
    for r in second:
        step = json.loads(r["lineage"])[-1]
        pa_, pb = all_rows[step["parent"]], all_rows[step["partner"]]
        if pa_["soft_label"] is None and pb["soft_label"] is None:
            continue
        lam = step["mix"]["lam"]
        sa, sb = soft_of(pa_["label"], pa_["soft_label"], 3), soft_of(pb["label"], pb["soft_label"], 3)
        assert np.allclose(r["soft_label"], lam * sa + (1 - lam) * sb, atol=1e-6)
        checked += 1
    assert checked > 0


def test_label_smoothing_and_ties() -> None:
    s = soft_of(1, None, 4, eps=0.2)
    assert np.allclose(s, [0.05, 0.85, 0.05, 0.05])
    mixed, dom = mix_labels(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), 0.5)
    assert dom == 0 and np.allclose(mixed, [0.5, 0.5, 0])


def test_tabular_mixup() -> None:
    spec = MixSpec(method="tabular_mixup")
    out, lam, rec = mix_pair(spec, {"x": 1.0, "c": "red"}, {"x": 3.0, "c": "blue"}, np.random.default_rng(0),
                             {"x": "numeric", "c": "categorical"})  # fmt: skip
    assert out["x"] == pytest.approx(lam * 1 + (1 - lam) * 3) and out["c"] == ("red" if lam >= 0.5 else "blue")


def test_batch_api_numpy_and_torch() -> None:
    import torch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 12, 10, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 8)
    out, soft, lams = mix_batch(x, y, method="mixup", alpha=0.4, rng=np.random.default_rng(1), num_classes=4)
    assert out.shape == x.shape and out.dtype == np.uint8 and np.allclose(soft.sum(1), 1) and len(set(lams)) > 1
    xt = torch.rand(6, 3, 10, 12)
    yt = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float()
    out_t, soft_t, lams_t = mix_batch(xt, yt, method="cutmix", alpha=1.0, rng=np.random.default_rng(2))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == xt.shape and torch.allclose(soft_t.sum(1), torch.ones(6))
    changed = (out_t != xt).any(dim=1).float().mean(dim=(1, 2)).numpy()
    assert np.all(changed <= 1 - lams_t + 1e-6)  # pasted fraction never exceeds the label weight given to it
    xt2 = xt.clone()
    mix_batch(xt, yt, method="mixup", rng=np.random.default_rng(3))
    assert torch.equal(xt, xt2)  # not modified in place
