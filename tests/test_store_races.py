"""Housekeeping racing live jobs (issue 30, items 10-12 and 15): ``gc``, ``rm`` and ``tag`` hit at chosen moments
through the store's rename hook (``storefs.before_rename``) or a build's progress callback; links and
FIFOs inside a store; names that read as something else."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines import storefs
from pipelines.store import Store
from schemas.errors import AugsvcError


def _publish(store: Store, values: list[int], dataset: str = "ds", parents=None) -> str:
    st = store.staging(dataset)
    table = pa.table({"sample_id": [str(v) for v in values], "label": pa.array([0] * len(values), pa.int32())})
    st.write_shard(table)
    r = store.publish(st, dataset=dataset, definition={"kind": "test", "values": values}, modality="tabular",
                      class_names=["a"], parents=parents)  # fmt: skip
    return r.manifest.version


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch):
    """Install ``fn(what, src, dst)`` as the rename hook for one test."""

    def install(fn) -> None:
        monkeypatch.setattr(storefs, "before_rename", fn)

    return install


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """An image version ``src`` (2 classes x 3 tiny images, one row per shard) to build from."""
    from pipelines.ingest import IngestOptions, ingest
    from tests.conftest import write_image

    root = tmp_path_factory.mktemp("races")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(3):
            write_image(root / "imgs" / c / f"{i}.png", rng, size=8)
    ingest(root / "imgs", name="src", store=Store(root / "store"), options=IngestOptions(shard_rows=2), workers=0)
    return root / "store"


RECIPE = {"input": "src", "output": "aug", "seed": 0, "stages": [{"op": [{"op": "hflip"}], "copies": 1}]}


# -- gc ------------------------------------------------------------------------------------------------------------
def test_gc_at_the_publish_rename_leaves_the_version_whole(tmp_path: Path, hook) -> None:
    """gc --min-age 0 runs at the instant a publish renames its staging folder: the folder is locked, so gc leaves
    it, and the published version has every shard."""
    store = Store(tmp_path)
    seen = []

    def gc_now(what, src, dst):
        if what == "publish":
            seen.append(Store(tmp_path).gc(min_age_s=0))

    hook(gc_now)
    v = _publish(store, [1, 2, 3])
    assert seen and not any(".staging" in line for line in seen[0])
    assert store.verify("ds", v) == []


def test_gc_never_touches_a_live_build_or_a_lock_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _publish(store, [1])
    st = store.staging_keyed("ds", "build-0123456789abcdef")  # a build that has run for hours: its lock is held
    (st.dir / "work").mkdir()
    (st.dir / "work" / "part.parquet").write_bytes(b"finished work")
    old = 1_000_000.0
    for p in (st.dir, st.dir / "work", st.dir / "work" / "part.parquet", st.dir / "shards"):
        os.utime(p, (old, old))
    assert Store(tmp_path).gc(min_age_s=0) == []
    assert (st.dir / "work" / "part.parquet").exists() and st.lock.path.exists()
    st.release()  # the build died: its folder goes, its lock file stays
    removed = Store(tmp_path).gc(min_age_s=0)
    assert any("build-0123456789abcdef" in line for line in removed) and not st.dir.exists()
    assert st.lock.path.exists()


def test_gc_keeps_a_tag_that_moved_to_a_new_version_after_it_listed(tmp_path: Path, monkeypatch) -> None:
    """A tag that dangled when gc listed the versions but points at a published version when gc comes to delete it
    (a publish in between) stays."""
    store = Store(tmp_path)
    _publish(store, [1])
    (tmp_path / "ds" / "tags" / "next").write_text("0123456789abcdef\n")
    real = Store.versions

    def publish_after_listing(self, dataset):
        out = real(self, dataset)
        if dataset == "ds" and not getattr(self, "_raced", False):
            self._raced = True
            v = _publish(Store(tmp_path), [7])
            (tmp_path / "ds" / "tags" / "next").write_text(v + "\n")
        return out

    monkeypatch.setattr(Store, "versions", publish_after_listing)
    Store(tmp_path).gc(min_age_s=0)
    monkeypatch.undo()
    assert Store(tmp_path).resolve("ds@next")[1] in Store(tmp_path).versions("ds")


# -- rm ------------------------------------------------------------------------------------------------------------
def test_rm_refuses_a_parent_while_a_child_build_runs(images: Path) -> None:
    """rm without --force, run in the middle of a build that derives from the version, is refused; the build
    publishes and its lineage names a version that exists."""
    from augsvc import api

    store = Store(images)
    parent = store.resolve("src")[1]
    refusals = []

    def rm_mid_build(done: int, _total) -> None:
        if done == 1:
            with pytest.raises(AugsvcError, match="being read by a running job") as e:
                Store(images).remove_version("src", parent)
            refusals.append(str(e.value))

    rep = api.build(RECIPE, store=store, workers=0, progress=rm_mid_build)
    assert refusals and store.exists("src", parent)
    assert store.manifest("aug", rep.version).parents == [f"src@{parent}"]
    assert "src@" + parent in [p for p in store.manifest("aug", rep.version).parents]


def test_a_build_whose_parent_was_removed_first_says_so(images: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(images, root)
    store = Store(root)
    parent = store.resolve("src")[1]
    store.remove_version("src", parent, force=True)
    with pytest.raises(AugsvcError, match="no dataset 'src'|removed"):
        from augsvc import api

        api.build(RECIPE | {"input": f"src@{parent}"}, store=store, workers=0)


def test_tag_racing_rm_never_dangles(tmp_path: Path, hook) -> None:
    """A ``tag`` issued while rm renames the version away waits for rm and is then refused: no dangling tag."""
    store = Store(tmp_path)
    _publish(store, [1])
    v = _publish(store, [2])
    results: list[object] = []
    threads: list[threading.Thread] = []

    def tag_now(what, src, dst):
        if what == "rm":

            def tag() -> None:
                try:
                    Store(tmp_path).set_tag("ds", "mine", v)
                    results.append("tagged")
                except AugsvcError as e:
                    results.append(e)

            threads.append(threading.Thread(target=tag))
            threads[0].start()

    hook(tag_now)
    store.remove_version("ds", v)
    hook(None)
    threads[0].join(timeout=30)
    assert len(results) == 1 and isinstance(results[0], AugsvcError)  # "no such version" or "was removed"
    tags = Store(tmp_path).tags("ds")
    assert all(Store(tmp_path).exists("ds", x) for x in tags.values())


def test_rm_fault_at_its_rename_leaves_the_version_whole(tmp_path: Path, hook) -> None:
    store = Store(tmp_path)
    _publish(store, [1])
    v = _publish(store, [2])

    def fail(what, src, dst):
        if what == "rm":
            raise OSError(5, "Input/output error", str(src))

    hook(fail)
    with pytest.raises(OSError):
        store.remove_version("ds", v)
    hook(None)
    assert store.verify("ds", v) == [] and all(store.exists("ds", x) for x in store.tags("ds").values())


# -- names that read as something else -----------------------------------------------------------------------------
def test_hex_tag_cannot_shadow_an_id_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a, b = _publish(store, [1]), _publish(store, [2])
    with pytest.raises(AugsvcError, match="would shadow"):
        store.set_tag("ds", b[:4], a)
    (tmp_path / "ds" / "tags" / b[:4]).write_text(a + "\n")  # written by hand, or before this rule
    with pytest.raises(AugsvcError, match="both a tag"):
        store.resolve(f"ds@{b[:4]}")
    with pytest.raises(AugsvcError, match="both a tag"):
        store.remove_version(*store.resolve(f"ds@{b[:4]}"), force=True)
    assert store.exists("ds", a) and store.exists("ds", b)
    store.set_tag("ds", "cafe" if not b.startswith("cafe") and not a.startswith("cafe") else "beef", a)


def test_a_recipe_cannot_build_on_its_own_moving_output() -> None:
    from pipelines.recipes import load_recipe

    with pytest.raises(AugsvcError, match="also the input"):
        load_recipe({"input": "ds", "output": "ds", "stages": [{"op": [{"op": "hflip"}]}]})
    with pytest.raises(AugsvcError, match="also the input"):
        load_recipe({"input": "ds@latest", "output": "ds", "stages": [{"op": [{"op": "hflip"}]}]})
    load_recipe({"input": "ds@0123456789abcdef", "output": "ds", "stages": [{"op": [{"op": "hflip"}]}]})


@pytest.mark.parametrize(
    "recipe, match",
    [
        ({"splits": []}, "splits"),
        ({"stages": [{"op": [{"op": "hflip"}], "copies": True}]}, "copies"),
        ({"stages": [{"op": [{"op": "hflip"}], "target_per_class": 10**12}]}, "at most"),
    ],
)
def test_recipe_values_that_read_as_something_else(recipe: dict, match: str) -> None:
    from pipelines.recipes import load_recipe

    base = {"input": "src", "output": "aug", "stages": [{"op": [{"op": "hflip"}]}]}
    with pytest.raises(AugsvcError, match=match):
        load_recipe(base | recipe)


# -- links and FIFOs inside the store (CLI and store read paths; the service and stream in their own tests) ---------
def test_links_out_of_the_store_are_never_followed(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from augsvc.cli import app

    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:do not show\n")
    store = Store(tmp_path / "s")
    v = _publish(store, [1, 2])
    os.symlink(secret, tmp_path / "s" / "ds" / "tags" / "evil")
    assert "evil" not in store.tags("ds")
    with pytest.raises(AugsvcError) as e:
        store.resolve("ds@evil")
    assert "do not show" not in str(e.value)
    res = CliRunner().invoke(app, ["tags", "ds", "--store", str(tmp_path / "s")])
    assert "evil" not in res.output and "do not show" not in res.output
    # a shard linked out of the store: refused by every reader, reported by verify
    shard = tmp_path / "s" / "ds" / v / "shards" / "part-00000.parquet"
    (tmp_path / "copy.parquet").write_bytes(shard.read_bytes())
    shard.unlink()
    os.symlink(tmp_path / "copy.parquet", shard)
    with pytest.raises(AugsvcError, match="outside the store"):
        store.read_shard("ds", v, "shards/part-00000.parquet")
    assert any("outside the store" in p for p in store.verify("ds", v))
    res = CliRunner().invoke(app, ["verify", f"ds@{v}", "--store", str(tmp_path / "s")])
    assert res.exit_code != 0 and "outside the store" in res.output
    # a manifest linked out of the store: the version is not visible
    m = tmp_path / "s" / "ds" / v / "manifest.json"
    (tmp_path / "m.json").write_bytes(m.read_bytes())
    m.unlink()
    os.symlink(tmp_path / "m.json", m)
    assert v not in store.versions("ds")


def test_a_fifo_shard_is_refused_not_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    v = _publish(store, [1, 2])
    shard = tmp_path / "ds" / v / "shards" / "part-00000.parquet"
    shard.unlink()
    os.mkfifo(shard)
    assert any("not a regular file" in p for p in store.verify("ds", v))  # returns: a FIFO is never opened
    with pytest.raises(AugsvcError, match="not a regular file"):
        store.read_shard("ds", v, "shards/part-00000.parquet")


def test_the_stream_refuses_a_linked_shard(tmp_path: Path) -> None:
    from augsvc.stream import Stream

    store = Store(tmp_path / "s")
    v = _publish(store, [1, 2])
    shard = tmp_path / "s" / "ds" / v / "shards" / "part-00000.parquet"
    (tmp_path / "copy.parquet").write_bytes(shard.read_bytes())
    shard.unlink()
    os.symlink(tmp_path / "copy.parquet", shard)
    with pytest.raises(AugsvcError, match="outside the store"):
        for _ in Stream(f"ds@{v}", store=store, batch_size=2):
            pass


def test_read_only_store_reports_up_to_date_image_ingest_and_split(tmp_path: Path, monkeypatch) -> None:
    """Re-running an image ingest (streaming mode) or a split whose version exists writes nothing."""
    import errno

    from augsvc import api
    from tests.conftest import write_image
    from tests.test_store_faults import Faults

    rng = np.random.default_rng(0)
    for c in "ab":
        for i in range(4):
            write_image(tmp_path / "imgs" / c / f"{i}.png", rng, size=8)
    store = Store(tmp_path / "s")
    r = api.ingest(tmp_path / "imgs", "im", store=store, workers=0)
    sp = api.split(f"im@{r.version}", store=store, val=0.25, test=0.25)
    with monkeypatch.context() as mp:
        Faults(code=errno.EROFS, read_only=True).install(mp)
        again = api.split(f"im@{r.version}", store=store, val=0.25, test=0.25)
        assert again.up_to_date and again.version == sp.version
        again = api.ingest(tmp_path / "imgs", "im", store=store, workers=0)
        assert again.up_to_date and again.version == r.version


def test_a_shard_removed_under_a_job_says_so(tmp_path: Path) -> None:
    from pipelines import storefs

    with pytest.raises(AugsvcError, match="removed while this job ran"):
        storefs.read_table(str(tmp_path / "gone.parquet"))
