"""Contrastive views in the stream (deterministic per sample, resumable, the same across ranks and DataLoader
workers, two views that differ) and unlabelled image folders (ingest, split, builds, refusals naming the stage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from augsvc.stream import Stream, as_torch_dataset
from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.split import split_version
from pipelines.store import Store
from schemas.errors import AugsvcError
from tests.conftest import write_image

RECIPE = {"input": "u", "output": "views", "seed": 7, "stages": [{"op": [
    {"op": "random_resized_crop", "size": [12, 12], "scale_range": [0.3, 1.0]},
    {"op": "hflip", "p": 0.5}, {"op": "color_jitter", "p": 0.8}]}]}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    tmp = tmp_path_factory.mktemp("views")
    rng = np.random.default_rng(0)
    for i in range(14):
        write_image(tmp / "flat" / f"img{i:02d}.png", rng, size=12)
    (tmp / "flat" / "notes.txt").write_text("not an image")
    s = Store(tmp / "store")
    rep = ingest(tmp / "flat", name="u", store=s, options=IngestOptions(shard_rows=4, on_error="skip"), workers=0)
    s.set_tag("u", "raw", rep.manifest.version)  # the tests read u@raw: the split below moves u@latest
    return s


def views_by_id(batches) -> dict[str, np.ndarray]:
    out = {}
    for b in batches:
        v = np.asarray(b["views"])
        for j, sid in enumerate(b["sample_id"]):
            out[sid] = v[:, j]
    return out


def test_unlabelled_ingest_has_null_labels_and_no_classes(store: Store) -> None:
    m = store.manifest(*store.resolve("u@raw"))
    assert m.class_names == [] and m.rows == 14 and m.rows_per_split == {"train": 14}
    assert [q.source for q in m.quarantine] == ["notes.txt"]  # the text file is a bad item, not dropped silently
    t = store.read_shard(m.dataset, m.version, m.shards[0].path, ["label"])
    assert t["label"].null_count == t.num_rows
    assert not store.verify(m.dataset, m.version)
    b = next(iter(Stream("u@raw", store=store, batch_size=5)))
    assert (b["label"] == -1).all() and b["image"].shape == (5, 12, 12, 3)


def test_views_differ_and_are_fixed_per_sample_epoch_and_seed(store: Store) -> None:
    def epoch_views(**kw):
        return views_by_id(Stream("u@raw", store=store, recipe=RECIPE, views=2, **({"batch_size": 4} | kw)))

    a = epoch_views(seed=1, epoch=0)
    assert len(a) == 14 and all(v.shape == (2, 12, 12, 3) and v.dtype == np.uint8 for v in a.values())
    assert all(not np.array_equal(v[0], v[1]) for v in a.values())  # two independent views
    # the same views whatever the batch size, order seed, ranks and workers (keyed by sample, not position)
    b = epoch_views(seed=5, epoch=0, batch_size=3)
    parts = {}
    for rank in range(2):
        for w in range(2):
            parts |= epoch_views(seed=1, epoch=0, rank=rank, world_size=2, worker=w, num_workers=2)
    for other in (b, parts):
        assert a.keys() == other.keys() and all(np.array_equal(a[k], other[k]) for k in a)
    c = epoch_views(seed=1, epoch=1)  # a new epoch draws new views
    assert sum(np.array_equal(a[k], c[k]) for k in a) == 0
    plain = views_by_id([{"sample_id": b["sample_id"], "views": b["image"][None]}
                         for b in Stream("u@raw", store=store, batch_size=4, recipe=RECIPE)])  # fmt: skip
    assert sum(np.array_equal(plain[k][0], a[k][0]) for k in a) == 0  # views have their own seeds
    s = Stream("u@raw", store=store, batch_size=4, recipe=RECIPE, views=3)
    assert np.asarray(next(iter(s))["views"]).shape[0] == 3


def test_views_resume_exactly(store: Store) -> None:
    full = list(Stream("u@raw", store=store, batch_size=3, seed=2, epoch=1, recipe=RECIPE, views=2))
    s = Stream("u@raw", store=store, batch_size=3, seed=2, epoch=1, recipe=RECIPE, views=2)
    it = iter(s)
    head = [next(it), next(it)]
    state = s.state_dict()
    del it
    again = Stream("u@raw", store=store, batch_size=3, seed=2, epoch=1, recipe=RECIPE, views=2)
    again.load_state_dict(state)
    rest = list(again)
    assert len(head) + len(rest) == len(full)
    for x, y in zip(head + rest, full, strict=True):
        assert list(x["sample_id"]) == list(y["sample_id"]) and np.array_equal(x["views"], y["views"])


def test_views_through_dataloader_workers(store: Store) -> None:
    import torch

    ds = as_torch_dataset("u@raw", store=store, batch_size=4, seed=1, recipe=RECIPE, views=2)
    got = views_by_id({"sample_id": b["sample_id"], "views": b["views"].numpy()}
                      for b in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))  # fmt: skip
    want = views_by_id(Stream("u@raw", store=store, batch_size=4, seed=1, recipe=RECIPE, views=2))
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_views_refusals(store: Store) -> None:
    with pytest.raises(AugsvcError, match="needs a recipe"):
        Stream("u@raw", store=store, views=2)
    with pytest.raises(AugsvcError, match="views and mix"):
        Stream("u@raw", store=store, views=2, recipe=RECIPE, mix={"method": "mixup", "alpha": 0.4})
    with pytest.raises(AugsvcError, match="views must be"):
        Stream("u@raw", store=store, views=0)


def test_unlabelled_split_build_and_refusals(store: Store) -> None:
    r = split_version(store, "u@raw", val=0.0, test=0.25, seed=0)
    assert r.manifest.rows_per_split == {"test": 4, "train": 10} and r.manifest.class_names == []
    rec = {"input": f"u@{r.manifest.version}", "output": "u2", "seed": 0}
    b = build(load_recipe(rec | {"stages": [{"op": {"op": "hflip"}, "copies": 2}]}), store, workers=0)
    assert b.manifest.rows_per_split == {"test": 4, "train": 30}  # plain copies work without labels
    for stage, who in (({"mix": {"method": "mixup"}, "name": "blend"}, r"stages\[0\] \(blend: mix stage\)"),
                       ({"generator": {"method": "smote"}}, r"stages\[0\] \(generator stage\)"),
                       ({"op": {"op": "hflip"}, "target_per_class": 5}, r"stages\[0\] \(op: classes")):  # fmt: skip
        with pytest.raises(AugsvcError, match=who + ".* needs labels, but u@.* has none"):
            build(load_recipe(rec | {"stages": [stage]}), store, workers=0)


def test_folder_without_class_folders_or_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(AugsvcError, match="no class folders and no images"):
        ingest(
            tmp_path / "empty", name="e", store=Store(tmp_path / "s"), workers=0, options=IngestOptions(format="images")
        )


def test_training_a_classifier_on_unlabelled_rows_is_refused_before_pretraining(store: Store, tmp_path: Path) -> None:
    from augsvc.trainer.loop import load_config, train

    cfg = {"data": "u@raw", "epochs": 1, "threads": 1}
    with pytest.raises(AugsvcError, match=r"augsvc train \(.*\) needs labels, but u@.* has none"):
        train(load_config(cfg), store, tmp_path / "r", progress=False)
    with pytest.raises(AugsvcError, match="needs labels"):
        train(load_config(cfg | {"pretrain": {"epochs": 1, "batch_size": 4}}), store, tmp_path / "p", progress=False)
    assert not (tmp_path / "p" / "pretrain").exists()  # refused before any pretraining
    done = train(load_config(cfg | {"epochs": 0, "pretrain": {"epochs": 1, "batch_size": 4}}), store, tmp_path / "q",
                 progress=False)  # fmt: skip
    assert done["pretrain"]["finished"] and (tmp_path / "q" / "pretrain" / "encoder.pt").is_file()
