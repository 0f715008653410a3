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
    """(columnar, record) results; the columnar path once more with the rows hashed by the (in-process) workers, which
    must give the same result as the driver hashing first."""
    out = []
    for k, mode in enumerate(("columnar", "record", "workers-hash")):
        with monkeypatch.context() as m:
            if mode == "record":
                _record_path(m)
            if mode == "workers-hash":
                m.setattr(driver_mod, "_workers_hash", lambda workers, address, opts: not opts.dedupe)
            store = Store(tmp / f"store{k}")
            m_ = ingest(src, name="d", store=store, options=IngestOptions(**opts), workers=0).manifest
            shards = [(store.version_dir("d", m_.version) / s.path).read_bytes() for s in m_.shards]
            out.append((m_.version, m_.rows, m_.class_names, m_.rows_per_class, m_.quarantine, m_.duplicates, shards))
    assert out[2] == out[0], "rows hashed by the workers: another result than the driver hashing first"
    return out[:2]


def _idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, label_code: int = 0x08) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    head = np.array([0x0803, n, h, w], ">u4")  # magic: 0, 0, type (uint8), dimensions
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(head.tobytes() + images.astype(np.uint8).tobytes())
    lab = np.array([(label_code << 8) | 1, n], ">u4").tobytes()
    dt = {0x08: np.uint8, 0x0D: ">f4"}[label_code]
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(lab + labels.astype(dt).tobytes())


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
    cols, recs = _both(tmp_path / "in", tmp_path, monkeypatch, **opts)
    assert cols == recs
    assert cols[1] > 0


def test_idx_bad_float_labels_are_quarantined_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    labels = np.array([0, 1.5, 2, np.nan, 1, 0, 2, 1], np.float32)
    _idx(tmp_path / "in", "train", rng.integers(0, 256, (8, 4, 4), dtype=np.uint8), labels, label_code=0x0D)
    cols, recs = _both(tmp_path / "in", tmp_path, monkeypatch, on_error="skip", shard_rows=3)
    assert cols == recs
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
    cols, recs = _both(tmp_path / "d.npz", tmp_path, monkeypatch, on_error="skip", shard_rows=6)
    assert cols == recs
    assert cols[1] == len(x) - 1 - (x.shape[-1] == 4)  # the bad soft label; the transparent RGBA row


def test_npz_hard_labels_and_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(8).integers(0, 256, (9, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(9) % 2)
    cols, recs = _both(tmp_path / "d.npz", tmp_path, monkeypatch, image_storage="raw")
    assert cols == recs
    with pytest.raises(AugsvcError, match=r"d.npz#0: image is 12x12 = 144 pixels, above the limit of 100"):
        ingest(tmp_path / "d.npz", name="e", store=Store(tmp_path / "s"), options=IngestOptions(max_pixels=100),
               workers=0)  # fmt: skip
