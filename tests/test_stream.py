"""Streaming iterator invariants: exactly once per epoch across ranks and workers, seeded order, resume,
soft labels, shard integrity, on-the-fly augmentation, torch DataLoader."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from augsvc.stream import Stream, as_torch_dataset
from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
from schemas.arrow import text_schema
from schemas.errors import AugsvcError
from tests.conftest import write_image


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    tmp = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        for i in range(9):
            write_image(tmp / "imgs" / c / f"{i}.png", rng, size=8)
    s = Store(tmp / "store")
    ingest(tmp / "imgs", name="img", store=s, options=IngestOptions(shard_rows=4), workers=0)  # 27 rows, 7 shards
    st = s.staging("soft")
    rows = [{"sample_id": f"s{i:02d}", "label": i % 2, "soft_label": [0.25, 0.75] if i % 3 else None, "split": "train",
             "source": f"x:{i}", "lineage": None, "text": f"text {i}"} for i in range(10)]  # fmt: skip
    st.write_shard(pa.Table.from_pylist(rows, schema=text_schema()))
    s.publish(st, dataset="soft", definition={"k": 1}, modality="text", class_names=["n", "p"],
              extra={"soft_labels": True})  # fmt: skip
    return s


def ids(stream: Stream) -> list[str]:
    return [sid for b in stream for sid in b["sample_id"]]


@pytest.mark.parametrize("world_size,workers", [(1, 1), (2, 1), (3, 2), (4, 3), (1, 8)])
def test_every_sample_exactly_once_per_epoch(store: Store, world_size: int, workers: int) -> None:
    seen = Counter()
    for rank in range(world_size):
        for w in range(workers):
            s = Stream("img", store=store, batch_size=5, seed=1, epoch=2, rank=rank, world_size=world_size,
                       worker=w, num_workers=workers, shuffle_window=6)  # fmt: skip
            seen.update(ids(s))
    assert len(seen) == 27 and set(seen.values()) == {1}


def test_torch_dataloader_resume_equals_uninterrupted(store: Store) -> None:
    import torch

    def loader(ds):
        return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)

    ds = as_torch_dataset("img", store=store, batch_size=2, seed=4, epoch=1, shuffle_window=5)
    full = [list(b["sample_id"]) for b in loader(ds)]
    for stop in (3, 8):
        ds2 = as_torch_dataset("img", store=store, batch_size=2, seed=4, epoch=1, shuffle_window=5)
        ds2.load_state_dict(ds.state_dict(stop, num_workers=2))
        assert full[:stop] + [list(b["sample_id"]) for b in loader(ds2)] == full
    with pytest.raises(AugsvcError, match="3 workers"):
        ds.load_state_dict({**ds.state_dict(2, num_workers=2), "seen": [0, 0, 0]})
        ds.state_dict(1, num_workers=2)


def test_order_is_a_function_of_seed_and_epoch(store: Store) -> None:
    a = ids(Stream("img", store=store, seed=1, epoch=0, batch_size=4))
    assert a == ids(Stream("img", store=store, seed=1, epoch=0, batch_size=7))
    assert a != ids(Stream("img", store=store, seed=1, epoch=1, batch_size=4))
    assert a != ids(Stream("img", store=store, seed=2, epoch=0, batch_size=4))
    plain = ids(Stream("img", store=store, shuffle=False))
    m = store.manifest(*store.resolve("img"))
    import pyarrow.parquet as pq

    stored = [
        sid
        for sh in m.shards
        for sid in pq.read_table(store.version_dir("img", m.version) / sh.path)["sample_id"].to_pylist()
    ]
    assert plain == stored


@pytest.mark.parametrize("stop_after", [1, 2, 4])
def test_resume_equals_uninterrupted(store: Store, stop_after: int) -> None:
    kw = {"store": store, "seed": 3, "batch_size": 3, "rank": 1, "world_size": 2, "shuffle_window": 5}
    full = ids(Stream("img", epoch=1, **kw))
    s = Stream("img", epoch=1, **kw)
    got = []
    for i, b in enumerate(s):
        got += list(b["sample_id"])
        if i + 1 == stop_after:
            break
    state = json.loads(json.dumps(s.state_dict()))
    resumed = Stream("img", **kw)
    resumed.load_state_dict(state)
    assert got + ids(resumed) == full
    other = Stream("img", **{**kw, "rank": 0, "world_size": 3})
    with pytest.raises(AugsvcError, match="cannot resume: .*world_size=2"):
        other.load_state_dict(state)


def test_text_version_exactly_once_and_split_filter(store: Store) -> None:
    for world_size in (1, 3, 12):  # 12 consumers > 10 rows: some consumers get nothing, none twice
        seen = Counter(sid for r in range(world_size) for sid in ids(Stream("soft", store=store, batch_size=3,
                                                                           rank=r, world_size=world_size)))  # fmt: skip
        assert len(seen) == 10 and set(seen.values()) == {1}
    b = next(iter(Stream("soft", store=store, batch_size=10, split="train")))
    assert len(b["text"]) == 10 and b["text"].dtype == object
    assert ids(Stream("soft", store=store, split="val")) == []  # untagged shard: rows filtered by their split


def test_seeds_cannot_collide() -> None:
    from augsvc.stream import SHARD_ORDER, stream_rng

    a = stream_rng(SHARD_ORDER, 1, 0).permutation(50)
    assert not np.array_equal(a, stream_rng(SHARD_ORDER, 0, 1).permutation(50))
    assert not np.array_equal(a, stream_rng(SHARD_ORDER, 1 << 32, 0).permutation(50))
    assert np.array_equal(a, stream_rng(SHARD_ORDER, 1, 0).permutation(50))


def test_drop_last_and_pad_equalise_ranks(store: Store) -> None:
    padded = [list(Stream("img", store=store, rank=r, world_size=4, pad=True, batch_size=2)) for r in range(4)]
    counts = [sum(len(b["sample_id"]) for b in bs) for bs in padded]
    assert counts == [7, 7, 7, 7]  # 27 rows over 4 ranks: one rank repeats one sample, flagged
    flags = np.concatenate([b["padded"] for bs in padded for b in bs])
    real = Counter(
        sid for bs in padded for b in bs for sid, p in zip(b["sample_id"], b["padded"], strict=True) if not p
    )
    assert flags.sum() == 1 and len(real) == 27 and set(real.values()) == {1}
    dropped = [len(ids(Stream("img", store=store, rank=r, world_size=3, drop_last=True, batch_size=2)))
               for r in range(3)]  # fmt: skip
    assert len(set(dropped)) == 1 and dropped[0] % 2 == 0


def test_soft_labels_pass_through_and_one_hot(store: Store) -> None:
    batches = list(Stream("soft", store=store, batch_size=10, shuffle=False))
    soft = batches[0]["soft_label"]
    assert soft.shape == (10, 2) and np.allclose(soft[1], [0.25, 0.75]) and np.allclose(soft[0], [1, 0])
    b = next(iter(Stream("img", store=store, batch_size=4, one_hot=True)))
    assert b["image"].shape == (4, 8, 8, 3) and b["image"].dtype == np.uint8
    assert np.array_equal(b["soft_label"].argmax(1), b["label"])


def test_tampered_or_missing_shard_is_named(store: Store, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(store.root, root)
    s2 = Store(root)
    m = s2.manifest(*s2.resolve("img"))
    p = s2.version_dir("img", m.version) / m.shards[2].path
    p.write_bytes(p.read_bytes()[:-3] + b"xyz")
    with pytest.raises(AugsvcError, match="shard shards/part-00002.parquet does not match its sha256"):
        ids(Stream("img", store=s2, shuffle=False))
    p.unlink()
    with pytest.raises(AugsvcError, match="shard shards/part-00002.parquet is missing"):
        ids(Stream("img", store=s2, shuffle=False))


def test_on_the_fly_augmentation_replays_per_epoch(store: Store) -> None:
    recipe = {"input": "img", "output": "x", "seed": 5, "stages": [{"op": [{"op": "rotate", "limit": 45}]}]}

    def images(epoch: int) -> dict:
        out = {}
        for b in Stream("img", store=store, batch_size=9, epoch=epoch, recipe=recipe, shuffle=False):
            out.update(zip(b["sample_id"], b["image"], strict=True))
        return out

    e0, e0b, e1 = images(0), images(0), images(1)
    plain = {
        sid: img
        for b in Stream("img", store=store, shuffle=False)
        for sid, img in zip(b["sample_id"], b["image"], strict=True)
    }
    assert all(np.array_equal(e0[k], e0b[k]) for k in e0)
    assert any(not np.array_equal(e0[k], e1[k]) for k in e0)
    assert any(not np.array_equal(e0[k], plain[k]) for k in e0)


def test_on_the_fly_augmentation_is_the_same_on_any_layout_and_after_resume(store: Store) -> None:
    """A sample's augmented view depends on (recipe seed, epoch, stage, sample) only: 1 consumer, 2 ranks x 3
    workers and a stream resumed mid-epoch all give each sample the same pixels."""
    ops = [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 30}]
    recipe = {"input": "img", "output": "x", "seed": 3, "stages": [{"op": ops}, {"op": [{"op": "vflip", "p": 0.5}]}]}

    def views(streams: list[Stream]) -> dict:
        return {sid: img for s in streams for b in s for sid, img in zip(b["sample_id"], b["image"], strict=True)}

    opts = {"store": store, "batch_size": 4, "seed": 1, "epoch": 1, "recipe": recipe}
    one = views([Stream("img", **opts)])
    many = views([Stream("img", rank=r, world_size=2, worker=w, num_workers=3, **opts) for r in range(2)
                  for w in range(3)])  # fmt: skip
    first = Stream("img", **opts)
    it = iter(first)
    head = [next(it), next(it)]
    resumed = Stream("img", **opts)
    resumed.load_state_dict(first.state_dict())
    again = {sid: img for b in head for sid, img in zip(b["sample_id"], b["image"], strict=True)} | views([resumed])
    assert len(one) == 27 and one.keys() == many.keys() == again.keys()
    assert all(np.array_equal(one[k], many[k]) and np.array_equal(one[k], again[k]) for k in one)
    plain = views([Stream("img", store=store, batch_size=4, seed=1, epoch=1)])
    assert sum(not np.array_equal(one[k], plain[k]) for k in one) > 20  # rotate always changes the pixels


def test_batch_threads_do_not_change_batches(store: Store) -> None:
    """Decoding and augmenting a batch's images in 3 threads gives the batches of 1 thread, byte for byte."""
    recipe = {"input": "img", "output": "x", "seed": 2, "stages": [{"op": [{"op": "rotate", "limit": 30}]}]}
    opts = {"store": store, "batch_size": 27, "seed": 0, "recipe": recipe}
    (one,), (three,) = list(Stream("img", batch_threads=1, **opts)), list(Stream("img", batch_threads=3, **opts))
    assert list(one["sample_id"]) == list(three["sample_id"]) and np.array_equal(one["image"], three["image"])
    with pytest.raises(AugsvcError, match="batch_threads must be an integer >= 1"):
        Stream("img", store=store, batch_threads=0)


def test_next_epochs_reuse_the_shards_read(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Global order: a stream's second epoch opens no shard again and equals a fresh stream's epoch (one consumer,
    and each of two consumers, which keep whole shards while they fit); with ``keep_shards=False`` or a window order
    every epoch reads its shards."""
    opened: list[str] = []
    real = Store.open_shard

    def counted(self: Store, dataset: str, version: str, info: object) -> object:
        opened.append(info.path)
        return real(self, dataset, version, info)

    monkeypatch.setattr(Store, "open_shard", counted)
    s = Stream("img", store=store, batch_size=5, seed=4)
    first = ids(s)
    assert len(opened) == 7
    s.set_epoch(1)
    assert ids(s) == ids(Stream("img", store=store, batch_size=5, seed=4, epoch=1)) != first
    assert len(opened) == 14  # 7 for the first epoch, 0 for the second, 7 for the fresh stream
    for kw in ({"keep_shards": False}, {"shuffle_window": 8}):
        s, before = Stream("img", store=store, batch_size=5, **kw), len(opened)
        ids(s), ids(s)
        assert len(opened) - before == 14, kw
    two = [Stream("img", store=store, batch_size=5, seed=4, worker=w, num_workers=2) for w in range(2)]
    before = len(opened)
    assert [ids(s) for s in two] == [ids(Stream("img", store=store, batch_size=5, seed=4, worker=w, num_workers=2))
                                     for w in range(2)]  # fmt: skip
    for s in two:
        s.set_epoch(1)
    assert sorted(ids(two[0]) + ids(two[1])) == sorted(first)  # every sample once in epoch 1
    assert len(opened) - before == 28  # whole shards kept by each consumer: epoch 1 reads none


def test_bgr_to_rgb_swap_is_numpys_channel_reversal() -> None:
    """The decode path's OpenCV channel swap gives exactly the bytes of ``x[..., 2::-1]`` (3 and 4 channels,
    non-contiguous input, 16-bit input scaled first)."""
    from schemas.imagecodec import normalise

    rng = np.random.default_rng(0)
    for shape in [(5, 7, 3), (5, 7, 4), (33, 17, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        for a in (x, x[::2, ::3]):
            out = normalise(a, bgr=True)
            assert out.flags.c_contiguous and np.array_equal(out, a[:, :, 2::-1])
    wide = rng.integers(0, 1 << 16, (4, 4, 3), dtype=np.uint16)
    assert np.array_equal(normalise(wide, bgr=True), (wide >> 8).astype(np.uint8)[:, :, ::-1])


def test_batch_mixing_in_the_stream(store: Store) -> None:
    b = next(iter(Stream("img", store=store, batch_size=6, mix={"method": "mixup", "alpha": 0.4})))
    assert b["soft_label"].shape == (6, 3) and np.allclose(b["soft_label"].sum(1), 1) and len(b["lam"]) == 6


def test_torch_dataloader_two_workers_sees_everything_once(store: Store) -> None:
    import torch

    ds = as_torch_dataset("img", store=str(store.root), batch_size=4, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    seen = Counter()
    for b in loader:
        assert isinstance(b["image"], torch.Tensor) and b["image"].dtype == torch.uint8
        seen.update(b["sample_id"])
    assert len(seen) == 27 and set(seen.values()) == {1}


def test_kept_shards_are_bounded_by_decoded_bytes(tmp_path, monkeypatch) -> None:
    """keep_shards keeps decoded shards across epochs only up to KEEP_BYTES; the rest are read again each epoch,
    and the batches are the same either way."""
    import augsvc.stream as S

    store = Store(tmp_path / "store")
    rows = [{"x": float(i), "label": "ab"[i % 2]} for i in range(60)]
    src = tmp_path / "t.csv"
    src.write_text("x,label\n" + "".join(f"{r['x']},{r['label']}\n" for r in rows))
    m = ingest(
        src, name="t", store=store, workers=0, options=IngestOptions(label_column="label", shard_rows=10)
    ).manifest
    assert len(m.shards) == 6

    def epochs(limit: int | None) -> tuple[list, int]:
        if limit is not None:
            monkeypatch.setattr(S, "KEEP_BYTES", limit)
        s = S.Stream("t", store=store, batch_size=8, seed=3)
        out = [np.concatenate([b["sample_id"] for b in s]) for _ in range(2)]
        return out, len(s._kept)

    full, kept_all = epochs(None)
    one_shard = S._nbytes(S.Stream("t", store=store, batch_size=8)._read_shard(0))
    part, kept_some = epochs(2 * one_shard)
    assert kept_all == 6 and 1 <= kept_some <= 2
    assert all((a == b).all() for a, b in zip(full, part, strict=True))
