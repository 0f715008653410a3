"""The Python API as the one boundary: its read surface (datasets, versions, tags, shards), the cheap plan, and the
``augsvc ingest`` flags made from ``IngestOptions``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from augsvc import api
from augsvc.cli import app
from pipelines.ingest import FORMATS, IngestOptions
from schemas.errors import AugsvcError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("api")
    src = root / "reviews.jsonl"
    rows = [{"text": f"review number {i} is {'good' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"}
            for i in range(12)]  # fmt: skip
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = str(root / "store")
    api.ingest(src, "reviews", store=store, workers=0, split="train", shard_rows=5)
    return store


def test_reads_go_through_the_api(store: str) -> None:
    assert api.datasets(store) == ["reviews"]
    (v,) = api.versions("reviews", store=store)
    assert api.resolve("reviews", store=store) == ("reviews", v) and api.tags("reviews", store=store) == {"latest": v}
    assert api.tag(f"reviews@{v}", "first", store=store) == ("reviews", v)
    assert api.tags("reviews", store=store) == {"first": v, "latest": v}
    m = api.show("reviews@first", store=store)
    assert [s.rows for s in m.shards] == [5, 5, 2]
    t = api.read_shard("reviews", 1, ["sample_id", "label", "nope"], store=store)
    assert t.column_names == ["sample_id", "label"] and t.num_rows == 5
    assert api.open_shard("reviews", m.shards[2], store=store).metadata.num_rows == 2
    with pytest.raises(AugsvcError, match=r"reviews@\w+ has 3 shard\(s\); there is no shard 3"):
        api.read_shard("reviews", 3, store=store)
    with pytest.raises(AugsvcError, match="did you mean 'reviews'"):
        api.versions("review", store=store) or api.resolve("review", store=store)
    with pytest.raises(AugsvcError, match="does not exist"):
        api.datasets(Path(store) / "nowhere", require_store=True)
    for bad in ("reviews\n", "a/b", ".."):
        with pytest.raises(AugsvcError, match="is not valid"):
            api.check_name(bad)


def test_plan_checks_manifests_without_rehashing_and_build_rehashes(store: str, tmp_path: Path) -> None:
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    m = api.show("reviews", store=copy)
    shard = copy / "reviews" / m.version / m.shards[0].path
    t = pq.read_table(shard)
    pq.write_table(t.set_column(t.column_names.index("text"), "text", pa.array(["edited"] * t.num_rows)), shard)
    recipe = {"input": "reviews", "output": "aug", "seed": 1, "stages": [{"op": {"op": "random_swap"}, "copies": 1}]}
    plan = api.plan(recipe, store=copy)
    assert plan.dry_run and not plan.up_to_date and plan.rows_in == 12 and plan.rows_out == 24
    with pytest.raises(AugsvcError, match="failed verification: shards/part-00000.parquet: sha256 or size differs"):
        api.build(recipe, store=copy, workers=0)
    assert api.versions("aug", store=copy) == []


def test_ingest_flags_are_the_options_fields(tmp_path: Path) -> None:
    text = CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"}).output
    for name, field in IngestOptions.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in text and field.description.split("(")[0].strip() in " ".join(text.split()), name
    assert "--header" in text and "--no-header" in text and "--no-dedupe" not in text
    assert ", ".join(FORMATS[:-1]) + " or " + FORMATS[-1] in text
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps({"text": f"t {i}", "label": "x" if i % 2 else "y"}) + "\n" for i in range(4)))
    args = ["ingest", str(src), "--name", "a", "--store", str(tmp_path / "s"), "--workers", "0", "--json"]
    res = CliRunner().invoke(app, [*args, "--classes", "y, x", "--max-pixels", "0", "--split", "val"])
    assert res.exit_code == 0, res.output
    m = api.show("a", store=tmp_path / "s")
    assert m.class_names == ["y", "x"] and m.rows_per_split == {"val": 4}
    assert m.definition["options"]["max_pixels"] is None and m.definition["options"]["classes"] == ["y", "x"]
    res = CliRunner().invoke(app, [*args, "--format", "nope"])
    assert res.exit_code != 0 and "format (--format)" in str(res.exception or res.output)
