"""Trainer: losses against hand-computed values, learning, resume, teacher logits, fine-tuning groups, reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from augsvc.trainer.loop import compare, load_config, train
from augsvc.trainer.losses import classification_loss, distillation_loss, soft_cross_entropy
from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.split import split_version
from pipelines.store import Store
from schemas.errors import AugsvcError


def test_losses_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    p = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    assert soft_cross_entropy(logits, torch.tensor([[0.3, 0.7]])).item() == pytest.approx(
        -(0.3 * math.log(p[0]) + 0.7 * math.log(p[1])), rel=1e-6
    )
    smoothed = classification_loss(logits, torch.tensor([0]), label_smoothing=0.2)
    assert smoothed.item() == pytest.approx(-(0.9 * math.log(p[0]) + 0.1 * math.log(p[1])), rel=1e-6)
    t = 2.0
    teacher = torch.tensor([[0.0, 2.0]])
    st = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # student softmax at T=2
    tt = [1 / (1 + math.exp(1)), math.exp(1) / (1 + math.exp(1))]  # teacher softmax at T=2
    soft_ce = -(tt[0] * math.log(st[0]) + tt[1] * math.log(st[1]))
    hard_ce = -math.log(p[0])
    got = distillation_loss(logits, teacher, torch.tensor([0]), temperature=t, lambda_hard=0.3, lambda_soft=0.7)
    assert got.item() == pytest.approx(0.3 * hard_ce + 0.7 * t * t * soft_ce, rel=1e-6)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    tmp = tmp_path_factory.mktemp("trainer")
    rng = np.random.default_rng(0)
    lines = ["x1,x2,colour,Class"]
    for i in range(120):
        c = i % 2
        lines.append(f"{rng.normal(2 * c):.3f},{rng.normal(-c):.3f},{'red' if c else 'blue'},{'pos' if c else 'neg'}")
    (tmp / "t.csv").write_text("\n".join(lines) + "\n")
    s = Store(tmp / "store")
    ingest(tmp / "t.csv", name="t", store=s, options=IngestOptions(format="tabular"), workers=0)
    split_version(s, "t", val=0.25, test=0.0, seed=0)
    return s


def test_training_reduces_loss_and_writes_reports(store: Store, tmp_path: Path) -> None:
    summary = train(load_config({"data": "t", "epochs": 4, "batch_size": 16, "lr": 0.01}), store, tmp_path / "r",
                    progress=False)  # fmt: skip
    hist = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] and summary["best_val_acc"] > 0.8
    for f in ("best.pt", "last.pt", "metrics.csv", "config.yaml", "val_accuracy.png", "summary.json"):
        assert (tmp_path / "r" / f).is_file()
    rows = compare([tmp_path / "r", tmp_path / "r"], tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000 and rows[0]["best_val_acc"] == summary["best_val_acc"]


def test_resume_continues_identically(store: Store, tmp_path: Path) -> None:
    cfg = {"data": "t", "epochs": 3, "batch_size": 16, "lr": 0.01, "seed": 3}
    train(load_config(cfg), store, tmp_path / "full", progress=False)
    train(load_config(cfg | {"epochs": 1}), store, tmp_path / "part", progress=False)
    train(load_config(cfg), store, tmp_path / "part", resume=True, progress=False)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a last.pt cut short (a kill during a write by an older version) is one line naming the file, no traceback
    last = tmp_path / "part" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(AugsvcError, match=r"last\.pt: not a readable torch resume checkpoint .*delete it to start"):
        train(load_config(cfg | {"epochs": 4}), store, tmp_path / "part", resume=True, progress=False)


def test_global_random_state_untouched(store: Store, tmp_path: Path) -> None:
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    train(load_config({"data": "t", "epochs": 1, "threads": 1}), store, tmp_path / "g", progress=False)
    assert torch.equal(before, torch.get_rng_state()) and torch.get_num_threads() == threads


def test_bad_config_names_the_key() -> None:
    hint = r"unknown key 'epoch' \(did you mean 'epochs'\?\); allowed keys: data, train_split"
    with pytest.raises(AugsvcError, match=hint):
        load_config({"data": "t", "epoch": 3})
    with pytest.raises(AugsvcError, match="lr: Input should be greater than 0"):
        load_config({"data": "t", "lr": -1})


def test_teacher_stage_logits_match_forward_and_distillation_runs(store: Store, tmp_path: Path) -> None:
    from generators.nets.classifier import load_model

    train(
        load_config({"data": "t", "epochs": 3, "width": 2.0, "lr": 0.01}), store, tmp_path / "teacher", progress=False
    )
    recipe = load_recipe({"input": "t", "output": "t_teach", "splits": ["train", "val"],
                          "stages": [{"teacher": {"checkpoint": str(tmp_path / "teacher")}}]})  # fmt: skip
    rep = build(recipe, store, workers=0)
    ds, v = store.resolve("t_teach")
    rows = pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in rep.manifest.shards]).to_pylist()
    model, prep, _ = load_model(tmp_path / "teacher")
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in ("x1", "x2", "colour")}
    with torch.no_grad():
        expected = model(prep.inputs(batch)).numpy()
    got = np.array([r["teacher_logits"] for r in rows], dtype=np.float32)
    assert np.allclose(got, expected, atol=1e-5)
    student = {"data": "t_teach", "epochs": 3, "lr": 0.01, "width": 0.5, "distill": {"temperature": 2.0}}
    s = train(load_config(student), store, tmp_path / "student", progress=False)
    assert s["best_val_acc"] > 0.7
    with pytest.raises(AugsvcError, match="no teacher_logits"):
        train(load_config({"data": "t", "epochs": 1, "distill": {}}), store, tmp_path / "x", progress=False)


def test_finetune_freezes_then_uses_differential_learning_rates(store: Store, tmp_path: Path) -> None:
    from augsvc.trainer import loop

    train(load_config({"data": "t", "epochs": 1}), store, tmp_path / "base", progress=False)
    cfg = load_config({"data": "t", "epochs": 2, "finetune_from": str(tmp_path / "base"), "freeze_epochs": 1,
                       "lr": 0.01, "base_lr_scale": 0.1})  # fmt: skip
    from generators.nets.classifiers import TabularMLP

    opt = loop._optimizer(cfg, TabularMLP(4, 2))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.01])
    s = train(cfg, store, tmp_path / "ft", progress=False)
    assert s["epochs"] == 2


def test_config_file_messages_name_the_file_and_key(tmp_path) -> None:
    (tmp_path / "cfg.yaml").write_text("data: x\nmodel: hf\n")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(AugsvcError, match=r"cfg.yaml: model: hf needs hf_path"):
        load_config(tmp_path / "cfg.yaml")
    with pytest.raises(AugsvcError, match=r"empty.yaml: missing required key 'data'"):
        load_config(tmp_path / "empty.yaml")
