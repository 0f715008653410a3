"""SimCLR pretraining: NT-Xent and the schedule by hand, the loss falls on an easy case, exact resume, the caller's
random state untouched, fine-tuning loads the encoder (linear probe keeps it, full fine-tune moves it)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from augsvc.trainer.loop import load_config, train
from augsvc.trainer.pretrain import lr_at, nt_xent, pretrain
from generators.nets.classifier import read_checkpoint
from generators.nets.prep import Prep, build_model
from pipelines.ingest import ingest
from pipelines.split import split_version
from pipelines.store import Store
from schemas.errors import AugsvcError

EASY = {"input": "x", "output": "y", "seed": 0, "stages": [{"op": {"op": "hflip", "p": 0.5}}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """Two classes of 16x16 images (reddish vs bluish noise), 20 each, split 30 train / 10 val."""
    import cv2

    tmp = tmp_path_factory.mktemp("pretrain")
    rng = np.random.default_rng(0)
    for c, ch in (("red", 2), ("blue", 0)):  # OpenCV writes BGR
        for i in range(20):
            img = rng.integers(0, 120, (16, 16, 3), dtype=np.uint8)
            img[..., ch] += 120
            (tmp / "imgs" / c).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp / "imgs" / c / f"{i}.png"), img)
    s = Store(tmp / "store")
    ingest(tmp / "imgs", name="col", store=s, workers=0)
    split_version(s, "col", val=0.25, test=0.0, seed=0)
    return s


def cfg(**pre) -> dict:
    return {"data": "col", "width": 0.25, "threads": 1, "epochs": 0, "seed": 1,
            "pretrain": {"epochs": 2, "batch_size": 10, "lr": 0.01, "warmup_epochs": 0.5} | pre}  # fmt: skip


def test_nt_xent_by_hand() -> None:
    z1, z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = 0.5
    z = torch.cat([z1, z2])
    sim = (z @ z.T).tolist()
    want, hits = 0.0, 0
    for i, pos in enumerate([2, 3, 0, 1]):
        others = [j for j in range(4) if j != i]
        want += -(sim[i][pos] / t - math.log(sum(math.exp(sim[i][j] / t) for j in others))) / 4
        hits += max(others, key=lambda j: sim[i][j]) == pos
    loss, acc = nt_xent(z1, z2, t)
    assert loss.item() == pytest.approx(want, rel=1e-6) and acc.item() == pytest.approx(hits / 4)


def test_schedule_warms_up_then_follows_a_cosine() -> None:
    lrs = [lr_at(s, 10, 2, 1.0) for s in range(10)]
    assert lrs[:2] == [0.5, 1.0] and lrs[2] == pytest.approx(1.0)
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


def test_loss_falls_on_an_easy_case_and_reports_are_written(store: Store, tmp_path: Path) -> None:
    before = torch.get_rng_state()
    c = load_config(cfg(epochs=4, augment=EASY, lr=0.003))
    s = pretrain(c, store, tmp_path / "p", progress=False)
    assert torch.equal(before, torch.get_rng_state())  # the caller's random state is untouched
    with open(tmp_path / "p" / "loss.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert s["steps"] == 4 * 3 and s["finished"]  # 30 train rows // 10 per batch
    for f in ("encoder.pt", "last.pt", "loss_steps.csv", "loss.png", "summary.json"):
        assert (tmp_path / "p" / f).is_file()
    enc = read_checkpoint(tmp_path / "p")  # the directory resolves to encoder.pt
    assert enc["class_names"] == [] and not any(k.startswith("head.") for k in enc["model"])


def test_resume_gives_the_uninterrupted_weights(store: Store, tmp_path: Path) -> None:
    c = load_config(cfg())
    pretrain(c, store, tmp_path / "full", progress=False)
    pretrain(c, store, tmp_path / "part", progress=False, stop_after=1)
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=False)["epoch"] == 0
    pretrain(c, store, tmp_path / "part", progress=False, resume=True)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 6 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"][-1]["loss"] == b["history"][-1]["loss"]
    with pytest.raises(AugsvcError, match="cannot resume pretraining.*temperature"):
        pretrain(load_config(cfg(temperature=0.2)), store, tmp_path / "part", progress=False, resume=True)


def test_finetune_loads_the_encoder_linear_probe_keeps_it(store: Store, tmp_path: Path) -> None:
    probe = cfg(epochs=1) | {"epochs": 2, "unfreeze_groups": 0, "batch_size": 10, "lr": 0.01}
    summary = train(load_config(probe), store, tmp_path / "probe", progress=False)
    enc = torch.load(tmp_path / "probe" / "pretrain" / "encoder.pt", weights_only=False)
    # the encoder as loaded: every encoder weight lands in the classifier unchanged
    model = build_model("cnn", 2, Prep("image"), 0.25, 3)
    from augsvc.trainer.finetune import load_base

    skipped = load_base(model, enc["model"])
    assert skipped == ["head.bias", "head.weight"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in enc["model"].items())
    # linear probe: only the head trained, so the encoder's weights are still the pretrained ones
    best = torch.load(tmp_path / "probe" / "best.pt", weights_only=False)["model"]
    weights = [k for k in enc["model"] if k.endswith(("weight", "bias"))]
    assert weights and all(torch.equal(best[k], enc["model"][k]) for k in weights)
    assert summary["best_val_acc"] >= 0.0 and summary["epochs"] == 2
    # full fine-tune from the same encoder (finetune_from: the pretrain directory) moves every layer
    full = {k: v for k, v in probe.items() if k not in ("pretrain", "unfreeze_groups")}
    train(load_config(full | {"finetune_from": str(tmp_path / "probe" / "pretrain")}), store, tmp_path / "ft",
          progress=False)  # fmt: skip
    ft = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["model"]
    assert all(not torch.equal(ft[k], enc["model"][k]) for k in weights if k.endswith("weight"))


def test_config_refusals(store: Store, tmp_path: Path) -> None:
    with pytest.raises(AugsvcError, match="epochs: 0 only makes sense with pretrain"):
        load_config({"data": "col", "epochs": 0})
    with pytest.raises(AugsvcError, match="drop finetune_from"):
        load_config(cfg() | {"finetune_from": "runs/x"})
    with pytest.raises(AugsvcError, match="pretrain.temprature|temprature"):
        load_config(cfg(temprature=0.1))
    with pytest.raises(AugsvcError, match="batch_size 64 is larger than the 30 rows"):
        pretrain(load_config(cfg(batch_size=64)), store, tmp_path / "x", progress=False)


def test_worked_examples_validate() -> None:
    root = Path(__file__).resolve().parents[1] / "examples"
    simclr = load_config(root / "train_flowers_simclr.yaml")
    assert simclr.pretrain is not None and simclr.pretrain.split == "train" and simclr.fine_tuning
    probe = load_config(root / "train_flowers_linear_probe.yaml")
    assert probe.unfreeze_groups == 0 and probe.finetune_from == "runs/simclr/pretrain"
