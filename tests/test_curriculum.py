"""Curriculum (pacing functions, easy-to-hard stream order, determinism, resume, ranks x workers), progressive
resizing, label subsets, and distillation through a transfer set (teacher logits on unlabelled rows and on copies,
a student trained on them)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from augsvc.curriculum import Curriculum, Pacing, difficulty_from_logits, report_lines, teacher_difficulty
from augsvc.stream import Stream
from augsvc.trainer.config import load_config
from augsvc.trainer.loop import train
from augsvc.trainer.losses import classification_loss, distillation_loss
from augsvc.trainer.schedule import ResizeStep, epoch_resize
from pipelines.ingest.encode import write_parquet
from pipelines.labelsubset import label_subset
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from schemas.arrow import image_schema
from schemas.errors import AugsvcError

N_TRAIN = 60


def _image(label: int, rng: np.random.Generator, size: int = 12) -> np.ndarray:
    """A bright square in the top-left (class 0) or bottom-right (class 1) quadrant, over noise; 1 channel."""
    img = rng.integers(0, 60, (size, size, 1), dtype=np.uint8)
    h = size // 2
    y, x = (rng.integers(0, 2), rng.integers(0, 2)) if label == 0 else (h + rng.integers(0, 2), h + rng.integers(0, 2))
    img[y : y + h - 1, x : x + h - 1] = 220
    return img


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """``squares``: 60 train rows in 3 shards, 20 val rows; 12x12 grey, two classes, every row with teacher logits
    (class 1's logit = row index / 10: row i's difficulty is known)."""
    s = Store(tmp_path_factory.mktemp("curriculum") / "store")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_TRAIN + 20):
        lab = i % 2
        rows.append({"sample_id": f"i{i:03d}", "label": lab, "soft_label": None,
                     "split": "train" if i < N_TRAIN else "val", "source": f"gen:{i}", "lineage": None,
                     "teacher_logits": [0.0, i / 10.0], "image": _image(lab, rng).tobytes(), "image_format": "raw",
                     "height": 12, "width": 12, "channels": 1})  # fmt: skip
    st = s.staging("squares")
    schema = image_schema()
    for lo, hi in ((0, 20), (20, 40), (40, 60), (60, 80)):
        part = pa.Table.from_pylist(rows[lo:hi], schema=schema)
        st.add_shard_bytes(write_parquet(part), part.num_rows, "train" if lo < N_TRAIN else "val")
    definition = {"test": "squares", "recipe": {"stages": [{"teacher": {"checkpoint": "x"}}]}}
    s.publish(st, dataset="squares", definition=definition, modality="image", class_names=["top_left", "bottom_right"],
              extra={"image_storage": "raw"})  # fmt: skip
    return s


def _ids(stream: Stream) -> list[str]:
    return [x for b in stream for x in b["sample_id"]]


# -- pacing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pacing", "expected"),
    [
        (Pacing("linear", 0.2, 0.2, 1), [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]),
        (Pacing("linear", 0.25, 0.5, 2), [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]),
        (Pacing("step", 0.1, 0.3, 2), [0.1, 0.1, 0.4, 0.4, 0.7, 0.7, 1.0]),
        (Pacing("exponential", 0.1, 2.0, 1), [0.1, 0.2, 0.4, 0.8, 1.0]),
        (Pacing("exponential", 0.3, 1.5, 2), [0.3, 0.3, 0.45, 0.45, 0.675, 0.675, 1.0]),
    ],
)
def test_pacing_functions_are_monotone_and_reach_the_full_set(pacing: Pacing, expected: list[float]) -> None:
    got = [pacing.fraction(e) for e in range(len(expected))]
    assert got == pytest.approx(expected)
    long = [pacing.fraction(e) for e in range(40)]
    assert all(a <= b for a, b in zip(long, long[1:], strict=False)) and long[-1] == 1.0
    assert pacing.full_from() == next(e for e, f in enumerate(long) if f == 1.0)
    for n in (1, 7, 60, 1001):  # coverage: ceil(f * n) rows, never more than n, at least one
        sizes = [pacing.size(e, n) for e in range(40)]
        assert sizes[0] == max(1, math.ceil(round(pacing.start * n, 9))) and sizes[-1] == n
        assert all(1 <= a <= b <= n for a, b in zip(sizes, sizes[1:], strict=False))


def test_pacing_refuses_settings_that_never_reach_the_full_set() -> None:
    with pytest.raises(AugsvcError, match="exponential pacing multiplies .* inc must be > 1"):
        Pacing("exponential", 0.5, 1.0, 1)
    with pytest.raises(AugsvcError, match="linear pacing adds inc .* inc must be > 0") as e:
        Pacing("linear", 0.5, -0.5, 1)
    assert "exponential" not in str(e.value)  # the message names only the rule of the chosen pacing
    with pytest.raises(AugsvcError, match="starting fraction"):
        Pacing("linear", 0.0, 0.1, 1)
    with pytest.raises(AugsvcError, match="linear, step or exponential"):
        Pacing("cosine", 0.5, 0.1, 1)  # type: ignore[arg-type]


def test_difficulty_from_logits_uses_the_true_label_or_the_prediction() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 3.0]])
    p = 1 / (1 + math.exp(-2))
    got = difficulty_from_logits(logits, np.array([0, 0, -1]))
    assert got == pytest.approx([1 - p, p, 1 - 1 / (1 + math.exp(-3))])
    loss = difficulty_from_logits(logits, np.array([0, 0, -1]), "loss")
    assert loss == pytest.approx([-math.log(p), -math.log(1 - p), -math.log(1 / (1 + math.exp(-3)))])


# -- stream order --------------------------------------------------------------------------------------------
def test_teacher_difficulty_follows_the_logits_in_storage_order(store: Store) -> None:
    d = teacher_difficulty("squares", store=store)
    p1 = 1 / (1 + np.exp(-np.arange(N_TRAIN) / 10.0))  # p(class 1) of row i
    expected = np.where(np.arange(N_TRAIN) % 2 == 1, 1 - p1, p1)
    np.testing.assert_allclose(d, expected, rtol=1e-6)


def test_curriculum_epochs_grow_from_easy_to_hard_and_cover_every_row_at_full_pace(store: Store) -> None:
    scores = np.arange(N_TRAIN, dtype=float)[::-1].copy()  # row i has difficulty 59 - i: the last rows are easiest
    cur = Curriculum(scores, Pacing("exponential", 0.25, 2.0, 1))
    seen = []
    for epoch in range(4):
        ids = _ids(Stream("squares", store=store, split="train", batch_size=7, epoch=epoch, seed=3, curriculum=cur))
        seen.append(ids)
        n = cur.pacing.size(epoch, N_TRAIN)
        assert len(ids) == len(set(ids)) == n
        assert set(ids) == {f"i{i:03d}" for i in range(N_TRAIN - n, N_TRAIN)}  # exactly the n easiest
    assert [len(s) for s in seen] == [15, 30, 60, 60]
    assert seen[2] != seen[3]  # full-pace epochs: every row once, in a new order each epoch
    again = _ids(Stream("squares", store=store, split="train", batch_size=5, epoch=1, seed=3, curriculum=cur))
    assert again == seen[1]  # a pure function of (scores, pacing, seed, epoch): batch size does not matter


def test_curriculum_ties_are_broken_by_a_seeded_draw(store: Store) -> None:
    cur = Curriculum(np.zeros(N_TRAIN), Pacing("step", 0.5, 0.5, 1))
    a = _ids(Stream("squares", store=store, split="train", seed=1, curriculum=cur))
    b = _ids(Stream("squares", store=store, split="train", seed=1, curriculum=cur))
    c = _ids(Stream("squares", store=store, split="train", seed=2, curriculum=cur))
    assert a == b and len(a) == 30 and set(a) != set(c)


def test_curriculum_is_consistent_across_ranks_and_workers(store: Store) -> None:
    cur = Curriculum(np.linspace(0, 1, N_TRAIN), Pacing("linear", 0.5, 0.25, 1))
    single = _ids(Stream("squares", store=store, split="train", epoch=1, seed=4, curriculum=cur, shuffle_window=8))
    parts = [
        _ids(
            Stream(
                "squares",
                store=store,
                split="train",
                epoch=1,
                seed=4,
                curriculum=cur,
                rank=r,
                world_size=2,
                worker=w,
                num_workers=2,
                shuffle_window=8,
            )
        )  # fmt: skip
        for r in range(2)
        for w in range(2)
    ]
    flat = [x for p in parts for x in p]
    assert len(flat) == len(set(flat)) == len(single) == 45 and set(flat) == set(single)


def test_curriculum_resume_is_exact_and_refuses_other_scores(store: Store) -> None:
    cur = Curriculum(np.linspace(1, 0, N_TRAIN), Pacing("step", 0.4, 0.3, 1))
    kw = {"store": store, "split": "train", "batch_size": 4, "epoch": 1, "seed": 9, "curriculum": cur}
    full = _ids(Stream("squares", **kw))
    s = Stream("squares", **kw)
    it = iter(s)
    head = [x for _ in range(3) for x in next(it)["sample_id"]]
    state = json.loads(json.dumps(s.state_dict()))
    del it
    t = Stream("squares", **kw)
    t.load_state_dict(state)
    assert head + _ids(t) == full and len(full) == 42
    other = Stream("squares", **(kw | {"curriculum": Curriculum(np.linspace(0, 1, N_TRAIN), cur.pacing)}))
    with pytest.raises(AugsvcError, match="curriculum"):
        other.load_state_dict(state)
    with pytest.raises(AugsvcError, match="difficulty scores for a split of 60 rows"):
        _ids(Stream("squares", store=store, split="train", curriculum=Curriculum(np.zeros(5))))


# -- trainer options -----------------------------------------------------------------------------------------
def test_progressive_resize_schedule() -> None:
    steps = [ResizeStep(from_epoch=0, size=(8, 8)), ResizeStep(from_epoch=2, size=(10, 10))]
    assert [epoch_resize(steps, (12, 12), e) for e in range(4)] == [(8, 8), (8, 8), (10, 10), (10, 10)]
    assert epoch_resize([ResizeStep(from_epoch=1, size=(8, 8))], None, 0) is None
    with pytest.raises(AugsvcError, match="from_epoch values must strictly increase"):
        load_config({"data": "x", "progressive_resize": [{"from_epoch": 2, "size": [8, 8]},
                                                          {"from_epoch": 1, "size": [10, 10]}]})  # fmt: skip
    with pytest.raises(AugsvcError, match=r"unknown key 'progressive_resize\[0\].epoch'.*keys: from_epoch, size"):
        load_config({"data": "x", "progressive_resize": [{"epoch": 2, "size": [8, 8]}]})
    with pytest.raises(AugsvcError, match="curriculum: exponential pacing|curriculum.*> 1"):
        load_config({"data": "x", "curriculum": {"inc": 0.5}})


def test_trainer_curriculum_and_progressive_resize(store: Store, tmp_path: Path, monkeypatch) -> None:
    sizes: list = []
    real = Stream.__init__

    def spy(self, *a, **kw):  # record the size each training epoch streams at
        if kw.get("shuffle") and kw.get("curriculum") is not None:
            sizes.append(kw.get("resize"))
        real(self, *a, **kw)

    monkeypatch.setattr(Stream, "__init__", spy)
    cfg = {"data": "squares", "epochs": 3, "batch_size": 8, "lr": 0.01, "width": 0.25, "resize": [12, 12],
           "curriculum": {"difficulty": "teacher", "pacing": "linear", "start": 0.5, "inc": 0.25},
           "progressive_resize": [{"from_epoch": 0, "size": [8, 8]}]}  # fmt: skip
    train(load_config(cfg), store, tmp_path / "run", progress=False)
    hist = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["samples"] for h in hist] == [30, 45, 60]
    assert sizes == [(8, 8), (8, 8), (8, 8)]
    # issue 26: the run reports what the curriculum did (curriculum.json; the same lines on stderr with progress)
    rep = json.loads((tmp_path / "run" / "curriculum.json").read_text())
    assert [(e["epoch"], e["rows"]) for e in rep["epochs"]] == [(1, 30), (2, 45), (3, 60)]
    assert rep["full_from_epoch"] == 3 and rep["source"] == "teacher" and rep["pacing"]["kind"] == "linear"
    want = teacher_difficulty("squares", store=store)
    assert rep["difficulty"]["rows"] == N_TRAIN and rep["difficulty"]["p50"] == round(float(np.median(want)), 4)
    assert {c: v["rows"] for c, v in rep["difficulty_per_class"].items()} == {"top_left": 30, "bottom_right": 30}
    lines = report_lines(rep)
    assert lines[0].startswith(f"curriculum: difficulty of {N_TRAIN} rows: mean ")
    assert "rows per epoch 1: 30 (50%), 2: 45 (75%), 3: 60 (100%); every row from epoch 3" in lines[-1]
    ck = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert ck["resize"] == (12, 12) or list(ck["resize"]) == [12, 12]
    # resume continues identically
    train(load_config(cfg | {"epochs": 2}), store, tmp_path / "part", progress=False)
    train(load_config(cfg), store, tmp_path / "part", resume=True, progress=False)
    a = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


# -- transfer set ------------------------------------------------------------------------------------------------
def test_losses_leave_unlabelled_rows_to_the_soft_term() -> None:
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]], requires_grad=True)
    y = torch.tensor([0, -1, -1])
    assert classification_loss(logits, y).item() == pytest.approx(classification_loss(logits[:1], y[:1]).item())
    none = classification_loss(logits[1:], y[1:])
    none.backward()
    assert none.item() == 0.0 and torch.count_nonzero(logits.grad) == 0
    t = torch.tensor([[0.0, 3.0], [3.0, 0.0], [1.0, 0.0]])
    full = distillation_loss(logits, t, y, temperature=2.0, lambda_hard=0.5, lambda_soft=0.5)
    soft_only = distillation_loss(logits, t, y, temperature=2.0, lambda_hard=0.0, lambda_soft=0.5)
    hard = classification_loss(logits[:1], y[:1])
    assert full.item() == pytest.approx(soft_only.item() + 0.5 * hard.item(), rel=1e-6)


def test_transfer_set_teacher_logits_on_unlabelled_rows_and_copies_then_a_student(store: Store, tmp_path: Path):
    teacher = tmp_path / "teacher"
    train(load_config({"data": "squares", "epochs": 3, "batch_size": 8, "lr": 0.01, "width": 0.5}), store, teacher,
          progress=False)  # fmt: skip
    r = label_subset(store, "squares", labelled=0.2, seed=0, output="few")
    m = r.manifest
    assert m.rows == 80 and sum(m.rows_per_class.values()) == 12 + 20 and store.verify("few", m.version) == []
    rec = {"input": "few", "output": "few_teach", "seed": 1, "splits": ["train"],
           "stages": [{"name": "flip", "op": {"op": "hflip", "p": 1.0}, "copies": 1},
                      {"teacher": {"checkpoint": str(teacher)}}]}  # fmt: skip
    out = build(load_recipe(rec), store, workers=0).manifest
    assert out.rows_per_split["train"] == 2 * N_TRAIN  # unlabelled rows got their copy too
    # issue 26: the teacher stage reports rows scored, agreement with the labels it could check, confidence, entropy
    rep = out.stage_reports["stage-1"]["train"]
    assert rep["rows_scored"] == 2 * N_TRAIN and rep["labelled"] == 2 * 12
    assert 0 <= rep["agreement"] <= 1 and 0.5 <= rep["mean_confidence"] <= 1 and 0 <= rep["mean_entropy"] <= np.log(2)
    assert set(rep["agreement_per_class"]) == {"top_left", "bottom_right"}
    assert store.verify("few_teach", out.version) == []
    cols = ["label", "teacher_logits", "lineage", "image"]
    s = Stream("few_teach", store=store, split="train", shuffle=False, columns=cols)
    rows = [{k: b[k][j] for k in ["sample_id", *cols]} for b in s for j in range(len(b["sample_id"]))]
    unl = [r for r in rows if r["label"] == -1]
    copies = [r for r in rows if r["lineage"]]
    assert len(unl) == 2 * 48 and len(copies) == N_TRAIN and all(r["teacher_logits"] is not None for r in rows)
    from generators.nets.classifier import load_model

    lm = load_model(teacher)
    x = torch.from_numpy(np.stack([r["image"] for r in rows]))
    with torch.no_grad():
        want = lm.model(x).numpy()
    np.testing.assert_allclose(np.stack([r["teacher_logits"] for r in rows]), want, atol=1e-4)
    # the student: hard labels on the 12 labelled rows (and their copies), soft targets on all 120
    cfg = {"data": "few_teach", "val_data": "squares", "epochs": 3, "batch_size": 16, "lr": 0.01, "width": 0.25,
           "distill": {"temperature": 2.0}}  # fmt: skip
    s = train(load_config(cfg), store, tmp_path / "student", progress=False)
    hist = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert all(h["samples"] == 2 * N_TRAIN for h in hist) and np.isfinite([h["train_loss"] for h in hist]).all()
    assert s["best_val_acc"] >= 0.8
    # without distillation the unlabelled rows are left out of the loss; the run still trains on the labelled ones
    plain = train(load_config(cfg | {"distill": None}), store, tmp_path / "plain", progress=False)
    assert plain["epochs"] == 3
    with pytest.raises(AugsvcError, match="fraction of labelled rows"):
        label_subset(store, "squares", labelled=0.0)


def test_label_subset_command_drops_or_thins_the_unlabelled_rows(store: Store) -> None:
    from typer.testing import CliRunner

    from augsvc.cli import app

    res = CliRunner().invoke(app, ["label-subset", "squares", "--labelled", "0.5", "--unlabelled", "drop",
                                   "--output", "half", "--store", str(store.root), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert (info["labelled"], info["unlabelled"]) == (30, 0)
    m = store.manifest(*store.resolve("half"))
    assert m.rows_per_split == {"train": 30, "val": 20} and m.splits["train"] == {"top_left": 15, "bottom_right": 15}
    thin = label_subset(store, "squares", labelled=0.5, unlabelled_keep=0.5, output="thin").manifest
    n_unl = thin.rows_per_split["train"] - 30
    assert 5 <= n_unl <= 25 and store.verify("thin", thin.version) == []
    again = label_subset(store, "squares", labelled=0.5, unlabelled_keep=0.5, output="thin")
    assert again.up_to_date and again.manifest.version == thin.version
    with pytest.raises(AugsvcError, match=r"--labelled 0.001 keeps no label of the 60 labelled row"):
        label_subset(store, "squares", labelled=0.001, output="none")
    with pytest.raises(AugsvcError, match="with --unlabelled drop none are kept"):
        label_subset(store, "squares", labelled=0.5, unlabelled="drop", unlabelled_keep=0.5, output="none")


def test_build_counts_unlabelled_rows_from_the_published_version(store: Store) -> None:
    """A build's result counts what was published, rows without a label under "-", so the counts add up."""
    from augsvc import api

    label_subset(store, "squares", labelled=0.5, output="halfc")
    spec = {"input": "halfc", "output": "halfc_aug", "seed": 0, "stages": [{"op": [{"op": "hflip"}], "copies": 1}]}
    res = api.build(spec, store=store, workers=0)
    assert res.rows_out == res.manifest.rows
    assert res.counts_out["train"]["-"] == 2 * 30  # the 30 train rows without a label, plus a copy of each
    assert sum(res.counts_out["train"].values()) == res.manifest.rows_per_split["train"]
