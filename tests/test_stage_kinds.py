"""The stage-kind protocol: a new kind is one class plus a registration (no runner change), every built-in kind
previews and replays, model-backed stages run in actor pools, and dry runs refuse what builds would refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel, ConfigDict, Field

from pipelines.executor import run_actor_map
from pipelines.ingest import IngestOptions, ingest
from pipelines.preview import preview_lines, render_preview, render_table
from pipelines.recipes import load_recipe
from pipelines.runner import build, replay
from pipelines.stages import register_stage_kind, unregister_stage_kind
from pipelines.stages.base import StageKind, StepContext, selected_labels, stage_name
from pipelines.store import Store
from pipelines.tasks import PartOut, read_part, write_rows
from schemas import imagecodec
from schemas.errors import AugsvcError


def rows_of(store: Store, name: str) -> list[dict]:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()


@pytest.fixture
def text_store(tmp_path: Path) -> Store:
    lines = ["label,text"] + [f"{'pos' if i % 3 else 'neg'},sample number {i} is here" for i in range(12)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "s")
    ingest(tmp_path / "t.csv", name="txt", store=store, options=IngestOptions(format="csv"), workers=0)
    return store


# -- a new stage kind: one class plus a registration ----------------------------------------------------------------


class ShoutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    suffix: str = Field("!", min_length=1)


def shout_task(plan: Any, key: str, files: list[str]) -> PartOut:
    base, k, suffix = plan
    rows = read_part(files).to_pylist()
    out = []
    for r in rows:
        out.append(r)
        new = dict(r, sample_id=r["sample_id"][::-1], text=r["text"].upper() + suffix)
        new["lineage"] = json.dumps([{"stage": k, "name": "shout", "parent": r["sample_id"]}])
        out.append(new)
    return write_rows(base, key, out)


class ShoutStage(StageKind):
    """Adds an upper-cased copy of every text row (a test kind)."""

    key = "shout"
    description = "upper-case copy of each text row"

    def parse(self, spec: Any) -> ShoutSpec:
        return ShoutSpec(**(spec or {}))

    def check(self, recipe, k, manifest) -> None:
        if manifest.modality != "text":
            raise AugsvcError(f"stages[{k}]: shout works on text rows")

    def estimate(self, recipe, k, rows, class_names):
        return [x for r in rows for x in (r, (r[0][::-1], r[1], r[2]))]

    def run(self, ctx: StepContext, ks: list[int], parts: list[list[str]]) -> list[list[str]]:
        spec = (ctx.plan, ks[0], ctx.recipe.stages[ks[0]].built.suffix)
        keys = [(f"s{ctx.step}-p{i}", (files,)) for i, files in enumerate(parts)]
        res = ctx.run(shout_task, spec, keys)
        return [res[key] for key, _ in keys]

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        suffix = ctx.recipe.stages[k].built.suffix
        out = []
        for r in rows:
            lineage = json.dumps([{"stage": k, "name": stage_name(ctx.recipe, k), "parent": r["sample_id"]}])
            out += [r, dict(r, sample_id=r["sample_id"][::-1], text=r["text"].upper() + suffix, lineage=lineage)]
        return out


@pytest.fixture
def shout():
    register_stage_kind(ShoutStage)
    yield
    unregister_stage_kind("shout")


def test_a_registered_kind_runs_through_build_dry_run_and_preview(text_store: Store, shout) -> None:
    spec = {"input": "txt", "output": "loud", "stages": [{"shout": {"suffix": "?!"}}]}
    dry = build(load_recipe(spec), text_store, dry_run=True)
    assert sum(dry.plan.counts_out["train"].values()) == 24 and dry.manifest is None
    rep = build(load_recipe(spec), text_store, workers=0)
    texts = sorted(r["text"] for r in rows_of(text_store, "loud"))
    assert len(texts) == 24 and "SAMPLE NUMBER 3 IS HERE?!" in texts
    table = render_table(load_recipe(spec), text_store, n=3, copies=1)
    assert "?!" in table and table.count("\n") == 5
    assert build(load_recipe(spec | {"output": "loud2"}), text_store, workers=0).version == rep.version
    with pytest.raises(AugsvcError, match=r"recipe: stages\[0\].shout: .*suffix"):
        load_recipe({"input": "txt", "output": "x", "stages": [{"shout": {"suffix": ""}}]})


def test_unknown_kind_key_suggests(text_store: Store) -> None:
    with pytest.raises(AugsvcError, match=r"stages\[0\]: unknown key 'mixx' \(did you mean 'mix'\?\)"):
        load_recipe({"input": "txt", "output": "x", "stages": [{"mixx": {}}]})
    with pytest.raises(AugsvcError, match=r"stages\[0\]: unknown key 'copy' \(did you mean 'copies'\?\)"):
        load_recipe({"input": "txt", "output": "x", "stages": [{"op": {"op": "random_swap"}, "copy": 2}]})


# -- images: cutmix preview and replay ------------------------------------------------------------------------------


@pytest.fixture
def image_store(tmp_path: Path) -> Store:
    from tests.conftest import write_image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        for i in range(5):
            write_image(tmp_path / "imgs" / c / f"{c}{i}.png", rng, size=16)
    store = Store(tmp_path / "s")
    ingest(tmp_path / "imgs", name="img", store=store, options=IngestOptions(shard_rows=4), workers=0)
    return store


def _img(row: dict) -> np.ndarray:
    return imagecodec.decode(row["image"], row["image_format"], row["height"], row["width"], row["channels"])


def test_cutmix_previews_pairs_and_replays_exactly(image_store: Store, tmp_path: Path) -> None:
    stages = [{"op": {"op": "hflip", "p": 0.5}}, {"mix": {"method": "cutmix", "alpha": 1.0}, "copies": 2}]
    spec = {"input": "img", "output": "cm", "seed": 3, "stages": stages}
    recipe = load_recipe(spec)
    m, lines = preview_lines(recipe, image_store, n=4, copies=3)
    assert lines and all(kids for _, kids in lines)
    assert any("mix" in json.loads(k["lineage"])[-1] for _, kids in lines for k in kids)
    out = render_preview(recipe, image_store, tmp_path / "cm.png", n=4, copies=3, cell=32)
    assert out.is_file()
    build(recipe, image_store, workers=0)
    rows = rows_of(image_store, "cm")
    src = {r["sample_id"]: r for r in rows_of(image_store, "img")}
    by_id = {r["sample_id"]: r for r in rows}
    mixed = [r for r in rows if r["lineage"] and "mix" in json.loads(r["lineage"])[-1]]
    assert mixed
    for r in mixed[:6]:
        steps = json.loads(r["lineage"])
        mix_step = steps[-1]
        anchor_lineage = json.dumps(steps[:-1], separators=(",", ":")) if steps[:-1] else None
        root = steps[0]["parent"]
        partner_row = by_id[mix_step["partner"]]
        partner = _img(partner_row)
        got = replay(recipe, _img(src[root]), r["lineage"], partners={mix_step["partner"]: partner})
        assert np.array_equal(got, _img(r)), anchor_lineage
    with pytest.raises(AugsvcError, match="replay it with the partner"):
        replay(recipe, _img(src[json.loads(mixed[0]["lineage"])[0]["parent"]]), mixed[0]["lineage"])


# -- tabular: SMOTE-family preview, item fixes ----------------------------------------------------------------------


def tabular_store(tmp_path: Path, header: str, rows: list[str]) -> Store:
    (tmp_path / "t.csv").write_text("\n".join([header, *rows]) + "\n")
    store = Store(tmp_path / "s")
    ingest(tmp_path / "t.csv", name="t", store=store, options=IngestOptions(format="tabular"), workers=0)
    return store


def test_smote_preview_shows_synthetic_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [f"{rng.normal():.3f},{rng.normal():.3f},neg" for _ in range(30)]
    rows += [f"{rng.normal(3):.3f},{rng.normal(3):.3f},pos" for _ in range(6)]
    store = tabular_store(tmp_path, "a,b,Class", rows)
    recipe = load_recipe(
        {"input": "t", "output": "b", "stages": [{"generator": {"method": "smote", "k_neighbors": 3}}]}
    )
    table = render_table(recipe, store, n=5, copies=2)
    assert "pos smote: a=" in table
    m, lines = preview_lines(recipe, store, n=5, copies=2)
    assert all(json.loads(k["lineage"])[-1]["generator"] == "smote" for _, kids in lines for k in kids)


def test_smote_names_the_column_and_row_of_an_infinite_value(tmp_path: Path) -> None:
    rows = [f"{i},{i % 5},neg" for i in range(20)] + [f"{i},{i},pos" for i in range(5)] + ["inf,1,pos"]
    # ingest refuses the infinite cell itself (issue 30); SMOTE's own check guards versions written before that
    with pytest.raises(AugsvcError, match=r"t.csv:27: column 'a': 'inf' is not a finite number"):
        tabular_store(tmp_path, "a,b,Class", rows)
    store = tabular_store(tmp_path, "a,b,Class", rows[:-1] + [",1,pos"])  # a missing value is a null: SMOTE names it
    recipe = load_recipe(
        {"input": "t", "output": "b", "stages": [{"generator": {"method": "smote", "k_neighbors": 2}}]}
    )
    with pytest.raises(AugsvcError, match=r"column 'a' has a missing or infinite value in row \d+ \(source t.csv:"):
        build(recipe, store, workers=0)


def test_smotenc_keeps_integer_coded_categories_and_checks_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [f"{rng.normal():.3f},{rng.integers(1, 4)},neg" for _ in range(30)]
    rows += [f"{rng.normal(2):.3f},{rng.integers(1, 4)},pos" for _ in range(6)]
    store = tabular_store(tmp_path, "x,grade,Class", rows)
    gen = {"method": "smotenc", "k_neighbors": 3, "categorical_features": ["grade"]}
    build(load_recipe({"input": "t", "output": "b", "stages": [{"generator": gen}]}), store, workers=0)
    synth = [r for r in rows_of(store, "b") if r["lineage"]]
    assert len(synth) == 24 and {r["grade"] for r in synth} <= {1.0, 2.0, 3.0}
    bad = {"input": "t", "output": "c", "stages": [{"generator": gen | {"categorical_features": ["grdae"]}}]}
    with pytest.raises(AugsvcError, match=r"categorical_features: unknown columns grdae; columns are x, grade"):
        build(load_recipe(bad), store, dry_run=True)


def test_smoten_balances_an_all_categorical_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    colours, sizes = ["red", "green", "blue"], ["s", "m", "l"]
    rows = [f"{colours[rng.integers(0, 3)]},{sizes[rng.integers(0, 2)]},neg" for _ in range(25)]
    rows += [f"{colours[rng.integers(1, 3)]},{sizes[rng.integers(1, 3)]},pos" for _ in range(7)]
    store = tabular_store(tmp_path, "colour,size,Class", rows)
    with pytest.raises(AugsvcError, match="every column is categorical: use method smoten"):
        build(load_recipe({"input": "t", "output": "b", "stages": [{"generator": {"method": "smotenc"}}]}), store)
    rep = build(load_recipe({"input": "t", "output": "b", "stages": [{"generator": {"method": "smoten",
                                                                                     "k_neighbors": 3}}]}), store,
                workers=0)  # fmt: skip
    assert rep.manifest.rows_per_class == {"neg": 25, "pos": 25}
    synth = [r for r in rows_of(store, "b") if r["lineage"]]
    assert {r["colour"] for r in synth} <= {"red", "green", "blue"} and {r["size"] for r in synth} <= set(sizes)
    assert all(len(json.loads(r["lineage"])[-1]["parents"]) == 4 for r in synth)  # the seed and its 3 neighbours


def test_dry_run_refuses_what_the_build_would(text_store: Store, tmp_path: Path) -> None:
    base = {"input": "txt", "output": "o", "stages": [{"op": {"op": "random_swap"}}]}

    def dry(**kw):
        return build(load_recipe(base | kw), text_store, dry_run=True)

    with pytest.raises(AugsvcError, match="target_per_class must be rows >= 0"):
        dry(stages=[{"op": {"op": "random_swap"}, "target_per_class": -5}])
    with pytest.raises(AugsvcError, match=r"splits: 'nosuchsplit' not in txt \(it has train\)"):
        dry(splits=["nosuchsplit"])
    with pytest.raises(AugsvcError, match="leaves no rows"):
        dry(stages=[{"op": {"op": "random_swap"}, "copies": 0, "keep_originals": False}])
    with pytest.raises(AugsvcError, match="output dataset name 'bad/name' is not valid"):
        dry(output="bad/name")
    with pytest.raises(AugsvcError, match=r"stages\[0\].teacher: .*no checkpoint"):
        dry(stages=[{"teacher": {"checkpoint": str(tmp_path / "missing")}}])
    (tmp_path / "r.yaml").write_text("input: txt\noutput: o\ninput: other\nstages: [{op: {op: random_swap}}]\n")
    with pytest.raises(AugsvcError, match=r"r.yaml:3: not valid YAML: key 'input' is given twice"):
        load_recipe(tmp_path / "r.yaml")


def test_selected_labels_suggest_a_class(text_store: Store) -> None:
    r = load_recipe({"input": "txt", "output": "o", "stages": [{"op": {"op": "random_swap"}, "classes": ["poss"]}]})
    with pytest.raises(AugsvcError, match=r"unknown class 'poss' \(did you mean 'pos'\?\)"):
        selected_labels(r, 0, ["neg", "pos"])


# -- actor pools ---------------------------------------------------------------------------------------------------


class Counter:
    """A model-backed callable: its constructor is the expensive load, recorded in a folder."""

    def __init__(self, folder: str) -> None:
        import os
        import uuid

        self.folder = folder
        Path(folder, f"{os.getpid()}-{uuid.uuid4().hex}").write_text("loaded")

    def __call__(self, x: int) -> int:
        return x * 10


def test_actor_map_loads_once_in_process(tmp_path: Path) -> None:
    out = list(run_actor_map(Counter, str(tmp_path), [(i,) for i in range(5)], workers=0))
    assert out == [0, 10, 20, 30, 40] and len(list(tmp_path.iterdir())) == 1


@pytest.mark.usefixtures("ray_module")
def test_actor_pool_loads_once_per_actor_and_keeps_order(tmp_path: Path) -> None:
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import a test module
    out = list(run_actor_map(Counter, str(tmp_path), [(i,) for i in range(8)], workers=2))
    assert out == [i * 10 for i in range(8)]
    assert 1 <= len(list(tmp_path.iterdir())) <= 2


# -- shared stage keys a kind ignores are refused, not silently dropped ----------------------------------------------


@pytest.mark.parametrize(
    ("stage", "key"),
    [
        ({"generator": {"method": "smote", "k_neighbors": 2}, "target_per_class": 10}, "target_per_class"),
        ({"generator": {"method": "smote", "k_neighbors": 2}, "copies": 3}, "copies"),
        ({"mix": {"method": "mixup", "alpha": 0.4}, "target_per_class": 5}, "target_per_class"),
        ({"teacher": {"checkpoint": "runs/t"}, "copies": 2}, "copies"),
    ],
)
def test_stage_keys_a_kind_ignores_are_refused(stage: dict, key: str) -> None:
    with pytest.raises(AugsvcError, match=rf"stages\[0\]\.{key}: a \w+ stage does not use {key}"):
        load_recipe({"input": "a", "output": "b", "stages": [stage]})


def test_mix_on_a_partly_unlabelled_version_mixes_labelled_rows_only(tmp_path: Path) -> None:
    """After label-subset, rows without a label pass through a mix stage untouched; anchors and partners are
    labelled rows (a mix needs both soft labels)."""
    from pipelines.labelsubset import label_subset
    from tests.conftest import write_image

    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        for i in range(6):
            write_image(tmp_path / "imgs" / c / f"{i}.png", rng, size=12)
    store = Store(tmp_path / "img")
    ingest(tmp_path / "imgs", name="src", store=store, options=IngestOptions(shard_rows=4), workers=0)
    label_subset(store, "src", labelled=0.5, output="part")
    spec = {"input": "part", "output": "mixed", "seed": 2,
            "stages": [{"mix": {"method": "mixup", "alpha": 0.4}, "copies": 1}]}  # fmt: skip
    build(load_recipe(spec), store, workers=0)
    rows = rows_of(store, "mixed")
    unlabelled = [r for r in rows if r["label"] is None]
    mixed = [r for r in rows if r["lineage"] and json.loads(r["lineage"])]
    assert len(unlabelled) == 6 and len(mixed) == 6 and len(rows) == 18
    plain = {r["sample_id"] for r in unlabelled}
    for r in mixed:
        step = json.loads(r["lineage"])[-1]
        assert not ({step.get("parent"), step.get("partner")} & plain), step
        assert r["soft_label"] is not None and abs(sum(r["soft_label"]) - 1) < 1e-5
