"""Ingest on embedded Ray (started once for this module): bad-input modes, determinism across worker counts,
the CLI, and stratified splits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from augsvc.cli import app
from pipelines.ingest import IngestOptions, ingest
from pipelines.split import split_version
from pipelines.store import Store
from schemas.errors import AugsvcError

pytestmark = pytest.mark.usefixtures("ray_module")  # embedded Ray, started once per module


@pytest.fixture
def dirty_folder(image_folder: Path) -> Path:
    (image_folder / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (image_folder / "cat" / "notes.txt").write_text("not an image")
    return image_folder


def shard_bytes(store: Store, name: str) -> tuple[str, list[bytes]]:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return v, [(store.version_dir(ds, v) / s.path).read_bytes() for s in m.shards]


def test_corrupt_image_fails_naming_the_file(dirty_folder: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with pytest.raises(AugsvcError, match=r"cat/notes.txt: not an image file"):
        ingest(dirty_folder, name="d", store=store, workers=2)
    (dirty_folder / "cat" / "notes.txt").unlink()
    with pytest.raises(AugsvcError, match=r"dog/broken.jpg: not a decodable image.*--on-error skip"):
        ingest(dirty_folder, name="d", store=store, options=IngestOptions(shard_rows=4), workers=2)
    assert store.versions("d") == []  # nothing half-published
    assert not any((tmp_path / "s" / "d" / ".staging").iterdir())


def test_skip_quarantines_and_finishes(dirty_folder: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    rep = ingest(dirty_folder, name="d", store=store, options=IngestOptions(on_error="skip"), workers=2)
    q = {(i.source, i.reason.split(" (")[0]) for i in rep.manifest.quarantine}
    assert q == {("cat/notes.txt", "not an image file"), ("dog/broken.jpg", "not a decodable image")}
    assert rep.manifest.rows == 19 and store.verify("d", rep.manifest.version) == []


def test_same_version_and_bytes_with_1_and_2_workers(image_folder: Path, tmp_path: Path) -> None:
    opts = IngestOptions(shard_rows=3, on_error="skip")
    runs = []
    for workers in (1, 2, 0):
        store = Store(tmp_path / f"s{workers}")
        ingest(image_folder, name="d", store=store, options=opts, workers=workers)
        runs.append(shard_bytes(store, "d"))
    assert len(runs[0][1]) == 7  # 19 rows / 3 per shard
    assert runs[0] == runs[1] == runs[2]
    store = Store(tmp_path / "s1")
    again = ingest(image_folder, name="d", store=store, options=opts, workers=2)
    assert again.up_to_date and again.manifest.version == runs[0][0]
    (image_folder / "cat" / "cat1.jpg").write_bytes((image_folder / "dog" / "dog1.jpg").read_bytes())
    changed = ingest(image_folder, name="d", store=store, options=opts, workers=2)
    assert not changed.up_to_date and changed.manifest.version != runs[0][0]
    assert len(store.versions("d")) == 2


def test_array_input_same_bytes_on_ray_as_in_process(tmp_path: Path) -> None:
    """The columnar path ships groups of array chunks to workers: same version and shards as in-process."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8), y=rng.integers(0, 3, 40))
    runs = []
    for workers in (2, 0):
        store = Store(tmp_path / f"s{workers}")
        ingest(tmp_path / "d.npz", name="d", store=store, options=IngestOptions(shard_rows=7), workers=workers)
        runs.append(shard_bytes(store, "d"))
    assert len(runs[0][1]) == 6 and runs[0] == runs[1]


def test_idx_read_by_workers_same_version_at_1_and_2_workers(tmp_path: Path) -> None:
    """IDX rows read by the Ray workers from their own row ranges (pipelines/ingest/ranged.py): the same version and
    shards at 1 and 2 workers as in-process, where the driver reads and hashes the blocks itself."""
    import gzip

    import numpy as np

    rng = np.random.default_rng(1)
    for prefix, n in (("train", 41), ("t10k", 17)):
        with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(np.array([0x0803, n, 5, 4], ">u4").tobytes() + rng.integers(0, 256, n * 20, np.uint8).tobytes())
        with gzip.open(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(np.array([0x0801, n], ">u4").tobytes() + rng.integers(0, 3, n, np.uint8).tobytes())
    runs = []
    for workers in (1, 2, 0):
        store = Store(tmp_path / f"s{workers}")
        ingest(tmp_path, name="d", store=store, options=IngestOptions(shard_rows=6), workers=workers)
        runs.append(shard_bytes(store, "d"))
    assert len(runs[0][1]) == 7 + 3  # 41 train rows / 6, 17 test rows / 6
    assert runs[0] == runs[1] == runs[2]


def test_every_shard_readable_by_pyarrow_alone(image_folder: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    ingest(image_folder, name="d", store=store, options=IngestOptions(shard_rows=5), workers=2)
    ds, v = store.resolve("d")
    manifest = json.loads((store.version_dir(ds, v) / "manifest.json").read_text())
    total = sum(pq.read_table(store.version_dir(ds, v) / s["path"]).num_rows for s in manifest["shards"])
    assert total == manifest["rows"] == 19


def test_split_is_stratified_and_keeps_duplicates_together(image_folder: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    for i in range(4):  # more duplicates of one image, across classes
        (image_folder / "dog" / f"dup{i}.png").write_bytes((image_folder / "cat" / "cat0.png").read_bytes())
    ingest(image_folder, name="d", store=store, workers=2)
    r = split_version(store, "d", val=0.2, test=0.2, seed=3)
    m = r.manifest
    assert m.parents and sum(sum(v.values()) for v in m.splits.values()) == m.rows == 23
    assert all(s.split in ("train", "val", "test") for s in m.shards)
    ds, v = store.resolve("d")
    rows = [row for s in m.shards for row in pq.read_table(store.version_dir(ds, v) / s.path).to_pylist()]
    dup = {r["split"] for r in rows if r["source"] in m.duplicates[0]}
    assert len(dup) == 1
    for cls in ("cat", "dog", "eel"):
        assert m.splits["test"].get(cls, 0) >= 1  # every class in test
    assert split_version(store, f"d@{m.parents[0].split('@')[1]}", val=0.2, test=0.2, seed=3).up_to_date
    with pytest.raises(AugsvcError, match="already has a 'val' split"):
        split_version(store, "d", val=0.1, test=0.0, seed=0)


def test_cli_ingest_show_verify_json(image_folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    st = str(tmp_path / "s")
    res = runner.invoke(app, ["ingest", str(image_folder), "--name", "d", "--store", st, "--json", "--workers", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rows"] == 19 and out["duplicate_groups"] == 1 and not out["up_to_date"]
    res = runner.invoke(app, ["verify", "d", "--store", st, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"]
    res = runner.invoke(app, ["show", "d", "--store", st])
    assert "eel: 7" in res.stdout


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from augsvc.cli import main; main()"]
    res = subprocess.run([*cmd, "ingest", str(tmp_path / "missing"), "--name", "x", "--store", str(tmp_path)],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 2 and "no such file or folder" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([*cmd, "ingest", str(tmp_path), "--name", "x", "--on-error", "ignore"],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 2 and "--on-error" in res.stderr and "Traceback" not in res.stderr
