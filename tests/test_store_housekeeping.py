"""Store housekeeping (issue 17): tags, rm, gc, ls, and suggestions for mistyped names."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from augsvc.cli import app
from pipelines.store import Store
from schemas.errors import AugsvcError
from schemas.suggest import close_names, did_you_mean


def _publish(store: Store, values: list[int], dataset: str = "ds", parents=None, seed=None) -> str:
    st = store.staging(dataset)
    # ``values`` make the content (and so the version id); every row is of the one class "a" (label 0)
    table = pa.table({"sample_id": [str(v) for v in values], "label": pa.array([0] * len(values), pa.int32())})
    st.write_shard(table)
    r = store.publish(st, dataset=dataset, definition={"kind": "test", "values": values}, modality="tabular",
                      class_names=["a"], parents=parents, seed=seed)  # fmt: skip
    return r.manifest.version


def test_suggestions_prefer_the_word_the_user_started():
    assert close_names("copy", ["name", "op", "mix", "copies", "classes"])[0] == "copies"
    assert did_you_mean("flower", ["flowers", "mnist"]) == "did you mean 'flowers'?"
    assert did_you_mean("zzz", ["flowers", "mnist"]) == ""


def test_mistyped_dataset_version_and_tag_get_suggestions(tmp_path):
    s = Store(tmp_path)
    _publish(s, [1, 2])
    with pytest.raises(AugsvcError, match="no dataset 'dss'.*did you mean 'ds'"):
        s.resolve("dss")
    with pytest.raises(AugsvcError, match="did you mean 'latest'"):
        s.resolve("ds@lates")
    with pytest.raises(AugsvcError, match="does not exist"):
        Store(tmp_path / "nope").resolve("ds")


def test_rm_refuses_while_tags_or_children_need_it(tmp_path):
    s = Store(tmp_path)
    a = _publish(s, [1, 2])
    b = _publish(s, [1, 2, 3])
    child = _publish(s, [9], dataset="kid", parents=[f"ds@{a}"])
    s.set_tag("ds", "prod", a)
    with pytest.raises(AugsvcError, match="tag 'prod'.*child version kid@"):
        s.remove_version("ds", a)
    assert s.exists("ds", a)
    notes = s.remove_version("ds", a, force=True)
    assert "tag 'prod' removed" in notes
    assert not (tmp_path / "ds" / a).exists() and s.exists("ds", b) and s.exists("kid", child)
    assert s.tags("ds") == {"latest": b}
    assert not [p for p in (tmp_path / "ds" / ".staging").iterdir()]  # the renamed-aside folder is gone too


def test_rm_of_latest_moves_latest_to_newest_remaining(tmp_path):
    s = Store(tmp_path)
    a = _publish(s, [1])
    time.sleep(1.1)  # created has second resolution
    b = _publish(s, [2])
    assert s.tags("ds")["latest"] == b
    notes = s.remove_version("ds", b)
    assert s.tags("ds")["latest"] == a and any("latest" in n for n in notes)


def test_gc_removes_orphans_and_old_staging_but_not_fresh_work(tmp_path):
    s = Store(tmp_path)
    v = _publish(s, [1, 2])
    dead, live, fresh = s.staging("ds"), s.staging("ds"), s.staging("ds").dir
    old, held = dead.dir, live.dir
    dead.release()  # its writer is gone; ``live`` is an old folder whose job still runs (its lock is held)
    past = time.time() - 7200
    for d in (old, held):
        (d / "shards" / "x.parquet").write_bytes(b"x")
        for p in [d, d / "shards", d / "shards" / "x.parquet"]:
            os.utime(p, (past, past))
    (tmp_path / "ds" / v / "shards" / "stray.parquet").write_bytes(b"y")
    (tmp_path / "ds" / "tags" / "gone").write_text("0123456789abcdef\n")
    assert len(s.gc(dry_run=True)) == 3 and old.exists()
    removed = s.gc()
    assert len(removed) == 3
    assert not old.exists() and fresh.exists() and held.exists()
    assert all(p.exists() for p in (tmp_path / "ds" / ".staging").glob("*.lock"))  # never a lock file
    assert not (tmp_path / "ds" / v / "shards" / "stray.parquet").exists()
    assert "gone" not in s.tags("ds") and s.verify("ds", v) == []


def test_cli_ls_tags_rm_and_missing_store(tmp_path):
    s = Store(tmp_path / "s")
    a = _publish(s, [1, 2], seed=0)
    cli = CliRunner()
    res = cli.invoke(app, ["ls", "--store", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "does not exist" in str(res.exception or res.output)
    res = cli.invoke(app, ["ls", "--store", str(tmp_path / "s")])
    assert res.exit_code == 0 and f"latest {a}" in res.output and "2 rows" in res.output
    res = cli.invoke(app, ["ls", "ds", "--store", str(tmp_path / "s")])
    assert "[latest]" in res.output and "2 rows" in res.output
    res = cli.invoke(app, ["tags", "ds", "--store", str(tmp_path / "s")])
    assert res.output.split() == ["latest", a]
    assert cli.invoke(app, ["rm", f"ds@{a}", "--store", str(tmp_path / "s")]).exit_code == 0
    assert s.versions("ds") == []


def test_publishing_another_version_says_latest_moved(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8), y=np.arange(12) % 2)
    cli = CliRunner()
    base = ["ingest", str(tmp_path / "d.npz"), "--name", "d", "--store", str(tmp_path / "s"), "--workers", "0"]
    first = cli.invoke(app, base)
    assert first.exit_code == 0 and "latest moved" not in first.output
    again = cli.invoke(app, base + ["--split", "val"])
    assert again.exit_code == 0
    assert len(Store(tmp_path / "s").versions("d")) == 2 and "latest moved from" in again.output
