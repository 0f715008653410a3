"""``to_ray_dataset`` (issue 16, item 16): Ray Data reads a version's shards with what pyproject declares
(``ray[data]``: pandas; aiohttp for fsspec's HTTP filesystem, which Ray Data imports). Ray starts once here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from augsvc.stream import Stream, to_ray_dataset
from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
from tests.conftest import write_image

pytestmark = pytest.mark.usefixtures("ray_module")  # embedded Ray, started once per module


def test_declared_ray_data_dependencies_import() -> None:
    import pandas  # noqa: F401  (ray[data])
    from fsspec.implementations.http import HTTPFileSystem  # noqa: F401  (needs aiohttp)


def test_to_ray_dataset_reads_every_row_and_raw_pixels_decode_by_the_documented_rule(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(5):
            write_image(tmp_path / "imgs" / c / f"{i}.png", rng, size=8)
    store = Store(tmp_path / "store")
    opts = IngestOptions(shard_rows=3, image_storage="raw")
    ingest(tmp_path / "imgs", name="tiny", store=store, options=opts, workers=0)  # 10 rows in 4 shards
    ds = to_ray_dataset("tiny", store=store)
    rows = ds.take_all()
    assert ds.count() == 10 and len(rows) == 10
    streamed = {}
    for b in Stream("tiny", store=store, shuffle=False):
        streamed.update(zip(b["sample_id"], b["image"], strict=True))
    for r in rows:
        assert r["image_format"] == "raw"
        img = np.frombuffer(r["image"], np.uint8).reshape(r["height"], r["width"], r["channels"])  # README's rule
        assert np.array_equal(img, streamed[r["sample_id"]])
