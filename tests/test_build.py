"""Recipes and builds: plans, counts, lineage replay, determinism across worker counts, failures, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from augsvc.cli import app
from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build, replay
from pipelines.store import Store
from schemas import imagecodec
from schemas.errors import AugsvcError

FLIPROTATE = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30, "fill_mode": "reflect"}]


pytestmark = pytest.mark.usefixtures("ray_module")  # embedded Ray, started once per module


@pytest.fixture
def source(tmp_path: Path) -> Store:
    """An image version: 3 classes (6, 6, 2 images), 3 rows per shard, plus a val split."""
    from tests.conftest import write_image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for split, counts in (("train", {"cat": 6, "dog": 6, "eel": 2}), ("val", {"cat": 1, "dog": 1, "eel": 1})):
        for c, n in counts.items():
            for i in range(n):
                write_image(root / split / c / f"{c}{i}.png", rng, size=20)
    store = Store(tmp_path / "store")
    ingest(root, name="src", store=store, options=IngestOptions(shard_rows=3), workers=0)
    return store


def recipe(**kw):
    base = {"input": "src", "output": "aug", "seed": 7, "stages": [{"op": FLIPROTATE, "copies": 4}]}
    return load_recipe(base | kw)


def rows_of(store: Store, name: str) -> tuple:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return m, pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()


def shard_bytes(store: Store, name: str) -> list[bytes]:
    ds, v = store.resolve(name)
    return [(store.version_dir(ds, v) / s.path).read_bytes() for s in store.manifest(ds, v).shards]


def test_copies_counts_lineage_and_replay(source: Store) -> None:
    rep = build(recipe(), source, workers=0)
    m, rows = rows_of(source, "aug")
    assert m.splits["train"] == {"cat": 30, "dog": 30, "eel": 10} and m.splits["val"] == {"cat": 1, "dog": 1, "eel": 1}
    assert m.rows == 73 and m.parents == [f"src@{source.resolve('src')[1]}"] and not rep.up_to_date
    _, src_rows = rows_of(source, "src")
    by_id = {r["sample_id"]: r for r in src_rows}
    copies = [r for r in rows if r["lineage"]]
    assert len(copies) == 56 and len({r["sample_id"] for r in rows}) == 73
    r = recipe()
    for row in copies[:10]:
        step = json.loads(row["lineage"])[-1]
        parent = by_id[step["parent"]]
        assert row["label"] == parent["label"] and row["split"] == "train" and row["source"] == parent["source"]
        orig = imagecodec.decode(parent["image"], parent["image_format"], 20, 20, 3)
        got = imagecodec.decode(row["image"], row["image_format"], row["height"], row["width"], row["channels"])
        assert row["image_format"] == "raw"  # 20x20 <= 64x64: stored losslessly, so replay is exact
        assert np.array_equal(replay(r, orig, row["lineage"]), got)
    assert build(recipe(), source, workers=0).up_to_date


def test_same_bytes_with_0_1_2_workers(source: Store, tmp_path: Path) -> None:
    outs = []
    for w in (0, 1, 2):
        r = recipe(output=f"aug{w}")
        rep = build(r, source, workers=w)
        outs.append((rep.version, shard_bytes(source, f"aug{w}")))
    assert outs[0] == outs[1] == outs[2]
    assert build(recipe(seed=8, output="aug0"), source, workers=0).version != outs[0][0]


def test_target_per_class_balances_and_classes_filter(source: Store) -> None:
    r = recipe(stages=[{"op": FLIPROTATE, "target_per_class": 9}])
    build(r, source, workers=0)
    m, _ = rows_of(source, "aug")
    assert m.splits["train"] == {"cat": 9, "dog": 9, "eel": 9}
    r = recipe(output="only_eel", stages=[{"op": FLIPROTATE, "copies": 2, "classes": ["eel"], "keep_originals": True}])
    build(r, source, workers=0)
    m, _ = rows_of(source, "only_eel")
    assert m.splits["train"] == {"cat": 6, "dog": 6, "eel": 6}
    r = recipe(output="nokeep", stages=[{"op": FLIPROTATE, "copies": 2, "keep_originals": False}])
    build(r, source, workers=0)
    m, _ = rows_of(source, "nokeep")
    assert m.splits["train"] == {"cat": 12, "dog": 12, "eel": 4} and "val" not in m.splits
    with pytest.raises(AugsvcError, match="unknown class 'emu'; classes are cat, dog, eel"):
        build(recipe(stages=[{"op": FLIPROTATE, "classes": ["emu"]}]), source, workers=0)


def test_two_stages_chain_lineage(source: Store) -> None:
    r = recipe(stages=[{"op": {"op": "hflip"}, "copies": 1}, {"op": {"op": "brightness"}, "copies": 1}])
    build(r, source, workers=0)
    m, rows = rows_of(source, "aug")
    assert m.splits["train"] == {"cat": 24, "dog": 24, "eel": 8}
    deepest = max((json.loads(x["lineage"]) for x in rows if x["lineage"]), key=len)
    assert [s["stage"] for s in deepest] == [0, 1]


def test_progress_counts_tasks_against_a_total(source: Store) -> None:
    """Progress calls are (tasks done, total): a mix step (two rounds of tasks) after an op step, one task per
    shard each round, counted to the end against a total known from the start."""
    from pipelines import stages

    m = source.manifest(*source.resolve("src"))
    seen: list[tuple[int, int | None]] = []
    r = recipe(stages=[{"op": FLIPROTATE, "copies": 1}, {"mix": {"method": "mixup", "alpha": 0.4}, "copies": 1}])
    build(r, source, workers=0, progress=lambda d, t: seen.append((d, t)))
    want = sum(kind.task_rounds for kind, _ in stages.steps(r)) * len(m.shards)
    assert want == 3 * len(m.shards)  # the op step, the mix's scatter and its mix
    assert [d for d, _ in seen] == list(range(1, want + 1))
    assert {t for _, t in seen} == {want}


def test_recipe_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(AugsvcError, match=r"stages\[0\]: unknown key 'copis' \(did you mean 'copies'\?\)"):
        load_recipe({"input": "a", "output": "b", "stages": [{"op": FLIPROTATE, "copis": 2}]})
    with pytest.raises(AugsvcError, match=r"stages\[0\].op: op 'rotate': unknown key 'limt'"):
        load_recipe({"input": "a", "output": "b", "stages": [{"op": {"op": "rotate", "limt": 2}}]})
    with pytest.raises(AugsvcError, match="unknown op 'rotat'"):
        load_recipe({"input": "a", "output": "b", "stages": [{"op": {"op": "rotat"}}]})
    f = tmp_path / "r.yaml"
    f.write_text("input: a\noutput: b\nstages: [{op: {op: hflip}, copies: -1}]\n")
    with pytest.raises(AugsvcError, match=r"r.yaml: stages\[0\].copies"):
        load_recipe(f)
    r = load_recipe({"input": "a", "output": "b", "stages": [{"op": FLIPROTATE, "copies": 3}]})
    assert load_recipe(__import__("yaml").safe_load(r.to_yaml())) == r


def test_failing_op_names_sample_and_stage_and_publishes_nothing(source: Store, monkeypatch) -> None:
    def boom(x, params):
        raise ValueError("kernel exploded")

    from pipelines.transforms.image.geometric import Rotate

    monkeypatch.setattr(Rotate, "apply", lambda self, x, params: boom(x, params))
    with pytest.raises(
        AugsvcError, match=r"stage 0 \(stage-0\) failed on sample [0-9a-f]{16} \(source .*\): ValueError"
    ):
        build(recipe(), source, workers=0)
    assert source.versions("aug") == []


def test_interrupted_build_resumes_with_same_bytes(source: Store, monkeypatch) -> None:
    from pipelines.stages import op as op_stage

    real = op_stage.rows_task
    calls = []

    def flaky(plan, key, files):
        calls.append(key)
        if key == "s0-p2":
            raise KeyboardInterrupt  # the user pressed Ctrl-C while shard 2 was being built
        return real(plan, key, files)

    monkeypatch.setattr(op_stage, "rows_task", flaky)
    with pytest.raises(KeyboardInterrupt):
        build(recipe(), source, workers=0)
    assert source.versions("aug") == []
    monkeypatch.setattr(op_stage, "rows_task", real)
    rep = build(recipe(), source, workers=0)
    assert rep.reused_shards == 2
    build(recipe(output="clean"), source, workers=0)
    assert shard_bytes(source, "aug") == shard_bytes(source, "clean")


def test_modality_mismatch_and_preview(source: Store, tmp_path: Path) -> None:
    import cv2

    from pipelines.preview import render_preview

    out = render_preview(recipe(), source, tmp_path / "g.png", n=3, copies=2, cell=32)
    img = cv2.imread(str(out))
    # rows: cell + caption strip (14) + gap (4); plus the header strip (18); columns plus the class-name column (90)
    assert img.shape[0] == 3 * (32 + 14 + 4) + 18 and img.shape[1] == 3 * (32 + 4) + 12 + 90
    assert (img[:18, 90:] < 128).any() and (img[18:, :90] < 128).any()  # "original"/"derived N" and class names drawn


def test_cli_build_dry_run_json(source: Store, tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(recipe().to_yaml())
    res = CliRunner().invoke(app, ["build", str(f), "--dry-run", "--json", "--store", str(source.root)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rows_in"] == 17 and out["rows_out"] == 73 and out["dry_run"]
    assert source.versions("aug") == []
    res = CliRunner().invoke(app, ["ops", "--kind", "op", "--json"])
    ops = json.loads(res.stdout)
    assert ops["rotate"]["params"]["limit"]["default"] is not None and "hflip" in ops
    everything = json.loads(CliRunner().invoke(app, ["ops", "--json"]).stdout)
    assert {"op", "mix", "generator", "teacher"} <= set(everything)
    assert everything["mix"]["cutmix"]["params"]["alpha"]["default"] == 0.4
    assert everything["generator"]["smote"]["params"]["k_neighbors"]["default"] == 5
    assert "smoten" in everything["generator"] and "checkpoint" in everything["teacher"]["teacher"]["params"]
    one = json.loads(CliRunner().invoke(app, ["ops", "adasyn", "--json"]).stdout)
    assert one == {"generator": {"adasyn": everything["generator"]["adasyn"]}}
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.startswith("augsvc ")
