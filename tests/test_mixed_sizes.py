"""Images of several sizes (issue 16, item 14): batch mixing and training refuse them in one line that suggests a
resize, and resize them when asked (``Stream(resize=...)``, train config ``resize``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from augsvc.stream import Stream
from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
from schemas.errors import AugsvcError


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    tmp = tmp_path_factory.mktemp("sizes")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for c in ("a", "b"):
            for i in range(n):
                h, w = (8, 8) if i % 2 else (6, 10)
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                img[:, :, 0] = 255 if c == "a" else 0
                (tmp / "imgs" / split / c).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp / "imgs" / split / c / f"{i}.png"), img)
    s = Store(tmp / "store")
    ingest(tmp / "imgs", name="sizes", store=s, options=IngestOptions(), workers=0)
    return s


@pytest.mark.parametrize("method", ["cutmix", "mixup"])
def test_mixing_over_several_sizes_is_refused_with_a_resize_hint(store: Store, method: str) -> None:
    with pytest.raises(AugsvcError, match=r"holds images of several sizes \(6x10, 8x8\); batch mixing needs one size"):
        Stream("sizes", store=store, split="train", batch_size=8, mix={"method": method})
    b = next(iter(Stream("sizes", store=store, split="train", batch_size=8, mix={"method": method}, resize=(8, 8))))
    assert b["image"].shape == (8, 8, 8, 3) and b["soft_label"].shape == (8, 2)
    assert (b["soft_label"].max(1) < 1).any()  # mixed for real: labels are no longer one-hot


def test_resize_without_mixing_stacks_the_batch(store: Store) -> None:
    plain = next(iter(Stream("sizes", store=store, split="train", batch_size=4, shuffle=False)))
    assert isinstance(plain["image"], list)  # several sizes, as stored
    b = next(iter(Stream("sizes", store=store, split="train", batch_size=4, shuffle=False, resize=[5, 7])))
    assert b["image"].shape == (4, 5, 7, 3) and b["image"].dtype == np.uint8
    with pytest.raises(AugsvcError, match="resize must be"):
        Stream("sizes", store=store, resize=(0, 4))


def test_train_refuses_several_sizes_and_resizes_when_asked(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from augsvc.trainer.config import load_config
    from augsvc.trainer.loop import train

    base = {"data": "sizes", "epochs": 1, "batch_size": 8, "width": 0.25}
    with pytest.raises(AugsvcError, match=r"several sizes.*resize"):
        train(load_config(base | {"mix": {"method": "cutmix"}}), store, tmp_path / "a", progress=False)
    with pytest.raises(AugsvcError, match=r"a batch holds images of several sizes.*'resize: \[H, W\]'"):
        train(load_config(base), store, tmp_path / "b", progress=False)
    summary = train(load_config(base | {"mix": {"method": "cutmix"}, "resize": [8, 8]}), store, tmp_path / "c",
                    progress=False)  # fmt: skip
    assert 0.0 <= summary["best_val_acc"] <= 1.0
