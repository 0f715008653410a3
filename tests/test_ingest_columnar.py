"""The columnar ingest of array inputs (``pipelines/ingest/columnar.py``) gives what the record path gives.

Each case ingests the same input twice, once as it runs (array blocks) and once with the reader's blocks hidden (one
``Record`` per image, the path every version of these inputs was made with before), and compares the version id,
the manifest (rows, classes, splits, quarantine, duplicates) and every shard's bytes.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.ingest import driver as driver_mod
from pipelines.store import Store
from schemas.errors import AugsvcError


def _record_path(monkeypatch: pytest.MonkeyPatch) -> None:
    real = driver_mod.open_source

    def without_blocks(path, opts):
        src = real(path, opts)
        assert src.blocks is not None, "an array reader without blocks: the columnar path is not taken"
        return dataclasses.replace(src, blocks=None)

    monkeypatch.setattr(driver_mod, "open_source", without_blocks)


def _both(src: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch, **opts) -> list[tuple]:
    """(columnar, record) results and how many tasks read their rows themselves; the columnar path once more with the
    rows hashed by the (in-process) workers (IDX: read by them too), which must give the same result as the driver
    hashing first."""
    out = []
    ranged = []  # tasks whose rows the workers read themselves (IDX: pipelines/ingest/ranged.py)
    for k, mode in enumerate(("columnar", "record", "workers-hash")):
        with monkeypatch.context() as m:
            if mode == "record":
                _record_path(m)
            if mode == "workers-hash":
                m.setattr(driver_mod, "_workers_hash", lambda workers, address, opts: not opts.dedupe)
                real = driver_mod.encode_ranged_chunks
                m.setattr(driver_mod, "encode_ranged_chunks", lambda *a, real=real: ranged.append(a) or real(*a))
            store = Store(tmp / f"store{k}")
            m_ = ingest(src, name="d", store=store, options=IngestOptions(**opts), workers=0).manifest
            shards = [(store.version_dir("d", m_.version) / s.path).read_bytes() for s in m_.shards]
            counts = (m_.rows_per_class, m_.rows_per_split, m_.splits)
            out.append((m_.version, m_.rows, m_.class_names, counts, m_.quarantine, m_.duplicates, shards))
    assert out[2] == out[0], "rows hashed by the workers: another result than the driver hashing first"
    return out[:2] + [len(ranged)]


def _idx(
    folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, label_code: int = 0x08, gz: bool = True
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    head = np.array([0x0803, n, h, w], ">u4")  # magic: 0, 0, type (uint8), dimensions
    path = folder / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}"
    with gzip.open(path, "wb") if gz else open(path, "wb") as f:
        f.write(head.tobytes() + images.astype(np.uint8).tobytes())
    lab = np.array([(label_code << 8) | 1, n], ">u4").tobytes()
    dt = {0x08: np.uint8, 0x0D: ">f4"}[label_code]
    lab_path = folder / f"{prefix}-labels-idx1-ubyte{'.gz' if gz else ''}"
    with gzip.open(lab_path, "wb") if gz else open(lab_path, "wb") as f:
        f.write(lab + labels.astype(dt).tobytes())
    return path


@pytest.mark.parametrize(
    "opts",
    [{}, {"shard_rows": 7}, {"dedupe": True, "shard_rows": 5}, {"classes": ["0", "1"], "on_error": "skip"}],
    ids=["default", "small-shards", "dedupe", "classes"],
)
def test_idx_two_splits_same_bytes_and_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opts: dict) -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (23, 6, 5), dtype=np.uint8)
    train[9] = train[2]  # a duplicate
    _idx(tmp_path / "in", "train", train, rng.integers(0, 3, 23))
    _idx(tmp_path / "in", "t10k", rng.integers(0, 256, (11, 6, 5), dtype=np.uint8), rng.integers(0, 3, 11))
    cols, recs, ranged = _both(tmp_path / "in", tmp_path, monkeypatch, **opts)
    assert cols == recs
    assert cols[1] > 0
    assert (ranged > 0) == (not opts.get("dedupe"))  # --dedupe needs every digest first: the driver reads blocks


@pytest.mark.parametrize("inflate", ["installed", "zlib"])
@pytest.mark.parametrize("damage", ["none", "truncated", "corrupt"])
def test_idx_read_by_workers_or_again_over_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, inflate: str
) -> None:
    """Uncompressed and gzip IDX files read by the workers; a gzip file shorter than its header says is read over
    blocks at once (its trailer states another size), one whose data is corrupt behind a right trailer is found by
    the worker and read again over blocks: the same rows and quarantine as the record path in every case, with
    ISA-L's inflate (when installed) and with zlib's."""
    if inflate == "zlib":
        import zlib

        from pipelines.ingest.readers import arrays

        monkeypatch.setattr(arrays, "_inflate", zlib)
    rng = np.random.default_rng(9)
    _idx(tmp_path / "in", "a", rng.integers(0, 256, (13, 8, 8), dtype=np.uint8), rng.integers(0, 3, 13), gz=False)
    path = _idx(tmp_path / "in", "b", rng.integers(0, 256, (2000, 8, 8), dtype=np.uint8), rng.integers(0, 3, 2000))
    data = path.read_bytes()
    if damage == "truncated":  # header says 2000 images, the file holds 1500
        path.write_bytes(gzip.compress(gzip.decompress(data)[: 16 + 1500 * 64]))
    if damage == "corrupt":  # the middle of the deflate stream cut out, the trailer (crc, size) kept
        path.write_bytes(data[: len(data) // 3] + data[2 * len(data) // 3 :])
    cols, recs, ranged = _both(tmp_path / "in", tmp_path, monkeypatch, on_error="skip", shard_rows=400)
    assert cols == recs
    assert (ranged > 0) == (damage != "truncated")
    assert bool(cols[4]) == (damage != "none")  # the quarantine names the damaged file


def test_idx_bad_float_labels_are_quarantined_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    labels = np.array([0, 1.5, 2, np.nan, 1, 0, 2, 1], np.float32)
    _idx(tmp_path / "in", "train", rng.integers(0, 256, (8, 4, 4), dtype=np.uint8), labels, label_code=0x0D)
    cols, recs, ranged = _both(tmp_path / "in", tmp_path, monkeypatch, on_error="skip", shard_rows=3)
    assert cols == recs and ranged > 0
    assert len(cols[4]) == 2  # 1.5 and nan


def _rgba() -> np.ndarray:
    x = np.random.default_rng(3).integers(0, 256, (19, 8, 8, 4), dtype=np.uint8)
    x[..., 3] = 255
    x[7, 2, 2, 3] = 10
    return x


@pytest.mark.parametrize(
    "x",
    [
        np.random.default_rng(2).integers(0, 256, (19, 8, 8, 3), dtype=np.uint8),  # RGB, raw in one buffer
        _rgba(),  # opaque alpha dropped, a transparent row quarantined: per-row path
        np.random.default_rng(4).integers(0, 65536, (19, 8, 8), dtype=np.uint16),  # 16-bit scaled
        np.random.default_rng(5).random((19, 8, 8)).astype(np.float32),  # floats: per-row path
        np.random.default_rng(6).integers(0, 256, (19, 70, 70, 3), dtype=np.uint8),  # above 64x64: JPEG, per row
    ],
    ids=["rgb", "rgba", "uint16", "float", "jpeg"],
)
def test_npz_soft_labels_same_bytes_and_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, x: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    y = rng.dirichlet(np.ones(3), len(x)).astype(np.float32)
    y[4] = [0.5, 0.7, 0.1]  # does not sum to 1: a bad item
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cols, recs, ranged = _both(tmp_path / "d.npz", tmp_path, monkeypatch, on_error="skip", shard_rows=6)
    assert cols == recs and ranged == 0  # NPZ: the driver reads the blocks
    assert cols[1] == len(x) - 1 - (x.shape[-1] == 4)  # the bad soft label; the transparent RGBA row


def test_npz_hard_labels_and_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(8).integers(0, 256, (9, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(9) % 2)
    cols, recs, _ = _both(tmp_path / "d.npz", tmp_path, monkeypatch, image_storage="raw")
    assert cols == recs
    with pytest.raises(AugsvcError, match=r"d.npz#0: image is 12x12 = 144 pixels, above the limit of 100"):
        ingest(tmp_path / "d.npz", name="e", store=Store(tmp_path / "s"), options=IngestOptions(max_pixels=100),
               workers=0)  # fmt: skip


@pytest.mark.parametrize("gz", [True, False])
def test_ranged_tasks_decompress_each_gzip_file_about_once(gz: bool) -> None:
    """Tasks of rows read by the workers: a gzip file (decompressed from its start by every task that reads it) is
    cut into at most one task per worker and every task starts at a file; plain files are cut by size alone."""
    from pipelines.ingest.ranged import RangedFile, ranged_chunks, ranged_tasks

    ns = [6000, 1000, 1000, 1000]
    files = [RangedFile(f"/f{i}", f"f{i}", "train", gz, "|u1", (8, 8), n, 16, ["0"] * n, {}) for i, n in enumerate(ns)]
    chunks = list(ranged_chunks(files, [np.arange(n) for n in ns], 100))
    assert sum(len(r) for c in chunks for _, r in c.pieces) == sum(ns)
    for workers in (1, 2):
        tasks = list(ranged_tasks(iter(chunks), files, target_bytes=64 * 1000, workers=workers))
        assert [c for t in tasks for c in t] == chunks  # every chunk once, in order
        starts = [t[0].pieces[0] for t in tasks]
        if gz:
            assert sum(fi == 0 for fi, _ in starts) == workers  # the big file: one task per worker
            assert all(r[0] == 0 for fi, r in starts if fi > 0)  # the others: a task each, from their first row
        else:
            assert sum(fi == 0 for fi, _ in starts) == 6  # the big file by size alone: 384 kB in tasks of 64 kB


@pytest.mark.parametrize("mode", ["driver-hashes", "workers-read"])
def test_idx_files_of_two_shapes_in_one_split_are_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A shard holds one pixel layout and the rows of several files are cut into shards together, so two image files
    of one split with different image shapes are refused up front, naming both files (once a numpy concatenate
    traceback from inside a chunk)."""
    rng = np.random.default_rng(3)
    _idx(tmp_path / "in", "a", rng.integers(0, 256, (5, 6, 5), dtype=np.uint8), rng.integers(0, 2, 5))
    _idx(tmp_path / "in", "b", rng.integers(0, 256, (5, 8, 8), dtype=np.uint8), rng.integers(0, 2, 5))
    if mode == "workers-read":
        monkeypatch.setattr(driver_mod, "_workers_hash", lambda workers, address, opts: not opts.dedupe)
    with pytest.raises(AugsvcError, match=r"b-images-idx3-ubyte.gz: items of 8x8 uint8, but .*a-images-idx3-ubyte"):
        ingest(tmp_path / "in", name="d", store=Store(tmp_path / "s"), workers=0)
    assert not (tmp_path / "s" / "d").exists() or not any((tmp_path / "s" / "d").glob("[0-9a-f]*"))
