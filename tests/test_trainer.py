"""Companion trainer on images, text and a local Hugging Face model: losses by hand, learning with mixed (soft)
labels, resume, teacher stage == forward pass, fine-tuning groups, config errors, compare."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from augsvc.trainer.config import load_config
from augsvc.trainer.finetune import group_learning_rates, make_optimizer, set_trainable
from augsvc.trainer.loop import train
from augsvc.trainer.losses import classification_loss, distillation_loss, soft_cross_entropy
from augsvc.trainer.reports import compare
from generators.nets.classifier import load_model, logits_for_rows
from generators.nets.classifiers import SmallCNN, count_parameters
from pipelines.ingest.encode import write_parquet
from pipelines.recipes import load_recipe
from pipelines.store import Store
from schemas.arrow import image_schema, text_schema
from schemas.errors import AugsvcError


def _publish(store: Store, name: str, rows: list[dict], schema: pa.Schema, modality: str, classes: list[str]) -> None:
    st = store.staging(name)
    for split in sorted({r["split"] for r in rows}):
        part = pa.Table.from_pylist([r for r in rows if r["split"] == split], schema=schema)
        st.add_shard_bytes(write_parquet(part), part.num_rows, split)
    extra = {"image_storage": "raw"} if modality == "image" else None
    store.publish(st, dataset=name, definition={"test": name}, modality=modality, class_names=classes,
                  extra=extra)  # fmt: skip


def _image(label: int, rng: np.random.Generator, size: int = 12) -> np.ndarray:
    """A bright square in the top-left (class 0) or bottom-right (class 1) quadrant, over noise; 1 channel."""
    img = rng.integers(0, 60, (size, size, 1), dtype=np.uint8)
    h = size // 2
    y, x = (rng.integers(0, 2), rng.integers(0, 2)) if label == 0 else (h + rng.integers(0, 2), h + rng.integers(0, 2))
    img[y : y + h - 1, x : x + h - 1] = 220
    return img


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    s = Store(tmp_path_factory.mktemp("trainer") / "store")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(80):
        lab, img = i % 2, None
        img = _image(lab, rng)
        rows.append({"sample_id": f"i{i:03d}", "label": lab, "soft_label": None, "split": "train" if i < 60 else "val",
                     "source": f"gen:{i}", "lineage": None, "image": img.tobytes(), "image_format": "raw",
                     "height": 12, "width": 12, "channels": 1})  # fmt: skip
    _publish(s, "squares", rows, image_schema(), "image", ["top_left", "bottom_right"])
    pos, neg = ["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]
    texts = []
    for i in range(60):
        lab = i % 2
        words = [(pos if lab else neg)[(i // 2 + k) % 4] for k in range(2)] + ["the", "movie", "was"]
        rng.shuffle(words)
        texts.append({"sample_id": f"t{i:03d}", "label": lab, "soft_label": None, "split": "train" if i < 44 else "val",
                      "source": f"gen:{i}", "lineage": None, "text": " ".join(words)})  # fmt: skip
    _publish(s, "reviews", texts, text_schema(), "text", ["neg", "pos"])
    return s


def test_losses_against_hand_computed_values() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    logp = [[v - math.log(sum(math.exp(u) for u in row)) for v in row] for row in logits.tolist()]
    labels = torch.tensor([1, 0])
    hard = -(logp[0][1] + logp[1][0]) / 2
    assert classification_loss(logits, labels).item() == pytest.approx(hard, rel=1e-6)
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    want_soft = -(0.5 * logp[0][0] + 0.5 * logp[0][1] + 0.1 * logp[1][0] + 0.2 * logp[1][1] + 0.7 * logp[1][2]) / 2
    assert soft_cross_entropy(logits, soft).item() == pytest.approx(want_soft, rel=1e-6)
    assert classification_loss(logits, labels, soft).item() == pytest.approx(want_soft, rel=1e-6)  # soft wins
    eps = 0.3  # smoothed target: (1 - eps) on the label + eps / K everywhere
    smooth = -sum((1 - eps) * logp[i][y] + eps / 3 * sum(logp[i]) for i, y in enumerate([1, 0])) / 2
    assert classification_loss(logits, labels, label_smoothing=eps).item() == pytest.approx(smooth, rel=1e-6)
    assert smooth == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=eps).item(), rel=1e-6)
    teacher, t = torch.tensor([[0.0, 3.0, 0.0], [1.0, 1.0, 1.0]]), 3.0
    st = F.log_softmax(logits / t, dim=1)
    pt = F.softmax(teacher / t, dim=1)
    soft_t = -(pt * st).sum(1).mean().item()
    got = distillation_loss(logits, teacher, labels, temperature=t, lambda_hard=0.25, lambda_soft=0.75)
    assert got.item() == pytest.approx(0.25 * hard + 0.75 * 9.0 * soft_t, rel=1e-6)  # T^2 = 9
    only_soft = distillation_loss(logits, teacher, labels, temperature=1.0, lambda_hard=0.0, lambda_soft=1.0)
    assert only_soft.item() == pytest.approx(soft_cross_entropy(logits, F.softmax(teacher, 1)).item(), rel=1e-6)


def test_cnn_family_shapes_and_parameter_counts() -> None:
    small, wide = SmallCNN(1, 4, width=0.5), SmallCNN(1, 4, width=2.0)
    assert small(torch.zeros(2, 12, 20, 1, dtype=torch.uint8)).shape == (2, 4)
    assert SmallCNN(3, 5)(torch.rand(3, 3, 28, 16)).shape == (3, 5)  # float NCHW, another size
    assert 10 * count_parameters(small) < count_parameters(wide)
    assert len(small.layer_groups()) == 4 and sum(len(g) for g in small.layer_groups()) == len(list(small.parameters()))


def test_image_training_with_batch_mixing_learns_and_writes_reports(store: Store, tmp_path: Path) -> None:
    cfg = {"data": "squares", "epochs": 4, "batch_size": 16, "lr": 0.01, "width": 0.5, "mix": {"method": "mixup"}}
    s = train(load_config(cfg), store, tmp_path / "run", progress=False)
    hist = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert s["best_val_acc"] >= 0.9 and s["parameters"] == count_parameters(SmallCNN(1, 2, 0.5))
    csv_lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,train_acc,val_acc") and len(csv_lines) == 5
    assert (tmp_path / "run" / "val_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert load_config(tmp_path / "run" / "config.yaml").mix.method == "mixup"


def test_resume_with_mixing_continues_identically(store: Store, tmp_path: Path) -> None:
    cfg = {"data": "squares", "epochs": 3, "batch_size": 16, "width": 0.25, "seed": 5, "mix": {"method": "cutmix"}}
    train(load_config(cfg), store, tmp_path / "full", progress=False)
    train(load_config(cfg | {"epochs": 2}), store, tmp_path / "part", progress=False)
    train(load_config(cfg), store, tmp_path / "part", resume=True, progress=False)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_teacher_stage_logits_equal_forward_pass(store: Store, tmp_path: Path) -> None:
    train(load_config({"data": "squares", "epochs": 1, "width": 0.5}), store, tmp_path / "t", progress=False)
    ds, v = store.resolve("squares")
    m = store.manifest(ds, v)
    rows = pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()
    lm = load_model(tmp_path / "t")
    x = torch.from_numpy(np.stack([np.frombuffer(r["image"], np.uint8).reshape(12, 12, 1) for r in rows]))
    with torch.no_grad():
        expected = lm.model(x).numpy()
    got = logits_for_rows(lm, rows, batch_size=7, modality="image")
    assert got.dtype == np.float32 and got.shape == (80, 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    from pipelines.plan import make_plan
    from pipelines.stages.teacher import TeacherHost, TeacherPlan

    host = TeacherHost(TeacherPlan(make_plan(load_recipe({"input": "squares", "output": "x", "stages": [
        {"teacher": {"checkpoint": str(tmp_path / "t")}}]}), m, []), 0, str(tmp_path / "t"), 16, "cpu"))  # fmt: skip
    out = host.label_rows([dict(r) for r in rows[:5]])
    assert [r["sample_id"] for r in out] == [r["sample_id"] for r in rows[:5]]
    np.testing.assert_allclose(np.array([r["teacher_logits"] for r in out]), expected[:5], atol=1e-5)
    with pytest.raises(AugsvcError, match="trained on image rows, not text"):
        logits_for_rows(lm, rows, modality="text")


def test_text_cnn_vocab_travels_with_the_checkpoint(store: Store, tmp_path: Path) -> None:
    s = train(load_config({"data": "reviews", "epochs": 6, "batch_size": 8, "lr": 0.01}), store, tmp_path / "tx",
              progress=False)  # fmt: skip
    assert s["model"] == "text_cnn" and s["best_val_acc"] >= 0.8
    lm = load_model(tmp_path / "tx")
    assert {"good", "awful", "movie"} <= set(lm.prep.state["vocab"])
    rows = [{"text": "a great lovely movie"}, {"text": "awful dull was"}]
    assert logits_for_rows(lm, rows).argmax(1).tolist() == [1, 0]


def test_freeze_then_differential_learning_rates(store: Store, tmp_path: Path) -> None:
    assert group_learning_rates(4, 0.01, 0.5) == [0.00125, 0.0025, 0.005, 0.01]
    model = SmallCNN(1, 2)
    opt = make_optimizer(model, lr=0.01, base_lr_scale=0.1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])
    set_trainable(model, -1)
    assert [all(p.requires_grad for p in g) for g in model.layer_groups()] == [False, False, False, True]
    train(load_config({"data": "squares", "epochs": 1, "width": 0.5}), store, tmp_path / "base", progress=False)
    ft = {"data": "squares", "epochs": 2, "width": 0.5, "finetune_from": str(tmp_path / "base"), "freeze_epochs": 1,
          "unfreeze_groups": 1}  # fmt: skip
    train(load_config(ft | {"epochs": 1}), store, tmp_path / "ft1", progress=False)
    base = torch.load(tmp_path / "base" / "best.pt", weights_only=False)["model"]
    after_head_only = torch.load(tmp_path / "ft1" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(base[k], after_head_only[k]) for k in base if k.startswith("blocks.") and "weight" in k)
    assert not torch.equal(base["head.weight"], after_head_only["head.weight"])
    train(load_config(ft), store, tmp_path / "ft2", progress=False)
    ck = torch.load(tmp_path / "ft2" / "last.pt", weights_only=False)
    assert [g["lr"] for g in ck["optimizer"]["param_groups"]] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3])
    after = ck["model"]
    assert torch.equal(base["blocks.0.0.weight"], after["blocks.0.0.weight"])  # still frozen
    assert not torch.equal(base["blocks.2.0.weight"], after["blocks.2.0.weight"])  # the top group was unfrozen


def test_hugging_face_model_from_a_local_folder(store: Store, tmp_path: Path, monkeypatch) -> None:
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "fine", "lovely", "bad", "awful", "poor",
             "dull", "the", "movie", "was"]  # fmt: skip
    path = tmp_path / "tiny-bert"
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32, num_labels=3)  # fmt: skip
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    cfg = {"data": "reviews", "model": "hf", "hf_path": str(path), "epochs": 2, "batch_size": 8, "lr": 0.01,
           "freeze_epochs": 1, "max_len": 16}  # fmt: skip
    s = train(load_config(cfg), store, tmp_path / "hf", progress=False)
    assert s["model"] == "hf" and s["epochs"] == 2
    ck = torch.load(tmp_path / "hf" / "last.pt", weights_only=False)
    lrs = [g["lr"] for g in ck["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])  # embeddings, lower layers, upper layers, new head
    lm = load_model(tmp_path / "hf")
    assert logits_for_rows(lm, [{"text": "good movie"}, {"text": "the bad"}]).shape == (2, 2)
    with pytest.raises(AugsvcError, match="hf_path"):
        load_config({"data": "reviews", "model": "hf"})


def test_bad_config_keys_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: squares\nepochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(AugsvcError, match=r"bad.yaml: unknown key 'learning_rate'; allowed keys: data, train_split"):
        load_config(bad)
    with pytest.raises(
        AugsvcError,
        match=r"unknown key 'distill.temp' \(did you mean 'temperature'\?\); "
        r"allowed keys: temperature, lambda_hard",
    ):
        load_config({"data": "x", "distill": {"temp": 2}})
    with pytest.raises(AugsvcError, match=r"mix.method: Input should be 'mixup', 'cutmix' or 'average'"):
        load_config({"data": "x", "mix": {"method": "blend"}})
    with pytest.raises(AugsvcError, match="distill cannot be combined with mix"):
        load_config({"data": "x", "distill": {}, "mix": {}})


def test_compare_plots_and_tabulates_runs(store: Store, tmp_path: Path, capsys) -> None:
    for name, width in (("narrow", 0.25), ("wide", 0.5)):
        train(load_config({"data": "squares", "epochs": 2, "width": width}), store, tmp_path / name, progress=False)
    rows = compare([tmp_path / "narrow", tmp_path / "wide"], tmp_path / "c.png", table=True)
    assert [r["run"] for r in rows] == ["narrow", "wide"] and rows[0]["parameters"] < rows[1]["parameters"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "narrow" in printed and "best val acc" in printed
    with pytest.raises(AugsvcError, match="not a run directory"):
        compare([tmp_path], tmp_path / "d.png")
