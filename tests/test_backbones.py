"""Pretrained image backbones in the trainer (``generators/nets/backbones.py``): the offline EfficientNet-Lite0
ImageNet weights (extra ``pretrained``) under a linear or Flatten head, frozen (features cached once) or fine-tuned,
a teacher stage from such a run, the mapping onto timm's ``tf_efficientnet_lite0`` (identical logits), and the
one-line refusals. Images are 64 px, one epoch: the point is that the real weights load and train, not accuracy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from augsvc.stream import Stream
from augsvc.trainer.config import load_config
from augsvc.trainer.loop import evaluate_run, train
from generators.nets.backbones import lite0_to_timm, lite0_weights_file, open_backbone
from generators.nets.classifier import load_model, logits_for_rows
from pipelines.ingest import ingest
from pipelines.labelsubset import label_subset
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from schemas.errors import AugsvcError
from tests.conftest import write_image

pytestmark = pytest.mark.skipif(lite0_weights_file() is None, reason="extra 'pretrained' not installed")


def _timm_importable() -> bool:
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm  # noqa: F401
    except Exception:  # a torchvision built for another torch fails at import with RuntimeError
        return False
    return True


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """train/{a,b}/ with 4 images each, val/{a,b}/ with 2 each, 64 px."""
    tmp = tmp_path_factory.mktemp("bb")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in ("a", "b"):
            for i in range(n):
                write_image(tmp / "imgs" / split / c / f"{i}.png", rng, size=64)
    s = Store(tmp / "store")
    ingest(tmp / "imgs", name="f", store=s, workers=0)
    return s


def base(**kw) -> dict:
    return {"data": "f", "model": "efficientnet_lite0", "resize": [64, 64], "threads": 1, "epochs": 1,
            "batch_size": 4, "seed": 0} | kw  # fmt: skip


def test_frozen_flatten_head_caches_features_and_prints_what_it_loaded(
    store: Store, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("AUGSVC_FEATURE_CACHE", str(tmp_path / "cache"))
    cfg = load_config(base(freeze_backbone=True, head="flatten", head_dropout=0.5, epochs=2))
    s = train(cfg, store, tmp_path / "frozen", progress=True)
    err = capsys.readouterr().err
    sha = s["backbone"]["sha256"]
    assert f"backbone efficientnet_lite0 (efficientnet_lite): weights {lite0_weights_file()} (sha256 {sha[:16]})" in err
    assert "flatten head; frozen" in err and err.count("through the frozen backbone, cached") == 2
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # train and val, once each
    assert s["backbone"]["frozen"] and 0.0 <= s["best_val_acc"] <= 1.0
    # the backbone did not move (frozen, batch norm in eval), only the head
    ref = open_backbone("efficientnet_lite0", None)[0].state_dict()
    got = torch.load(tmp_path / "frozen" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(got["trunk." + k], v) for k, v in ref.items())
    # a second run reads the cache; the checkpoint alone (no weights file read) evaluates like training did
    train(cfg, store, tmp_path / "again", progress=True)
    assert "cached" not in capsys.readouterr().err
    assert evaluate_run(tmp_path / "frozen", store, "f", "val") == s["best_val_acc"]
    # fixed augmented copies are cached per copy; on-the-fly views go through the backbone (validation cached)
    flip = {"input": "f", "output": "f_aug", "stages": [{"op": [{"op": "hflip", "p": 1.0}]}]}
    train(load_config(base(freeze_backbone=True, augment=flip, augment_copies=1)), store, tmp_path / "c", progress=True)
    assert capsys.readouterr().err.count("cached in") == 1 and len(list((tmp_path / "cache").glob("*.npz"))) == 3
    train(load_config(base(freeze_backbone=True, augment=flip)), store, tmp_path / "fly", progress=True)
    assert "cached in" not in capsys.readouterr().err


def test_full_fine_tuning_with_freeze_epochs_moves_the_backbone(store: Store, tmp_path: Path) -> None:
    flip = {"input": "f", "output": "f_aug", "stages": [{"op": [{"op": "hflip", "p": 0.5}]}]}
    cfg = load_config(base(epochs=2, freeze_epochs=1, augment=flip))
    train(cfg, store, tmp_path / "ft", progress=False)
    ref = open_backbone("efficientnet_lite0", None)[0].state_dict()
    got = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["model"]  # after the unfrozen epoch
    moved = [k for k, v in ref.items() if v.is_floating_point() and not torch.equal(got["trunk." + k], v)]
    assert any(k.startswith("net._conv_stem") for k in moved) and any(k.startswith("net._bn1") for k in moved)
    lm = load_model(tmp_path / "ft")  # the teacher stage's loader: rebuilt from the checkpoint alone
    assert lm.meta["resize"] == (64, 64) or list(lm.meta["resize"]) == [64, 64]
    rows = [{"image": np.zeros((50, 70, 3), np.uint8)}, {"image": np.full((64, 64, 3), 200, np.uint8)}]
    out = logits_for_rows(lm, rows)
    assert out.shape == (2, 2) and np.isfinite(out).all()


def test_teacher_stage_with_a_backbone_run_then_a_distilled_small_cnn(
    store: Store, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("AUGSVC_FEATURE_CACHE", str(tmp_path / "cache"))
    teacher = tmp_path / "teacher"
    train(load_config(base(freeze_backbone=True, lr=0.01)), store, teacher, progress=False)
    label_subset(store, "f", labelled=0.5, seed=0, output="half")  # a transfer set: half the rows unlabelled
    rec = {"input": "half", "output": "half_teach", "seed": 1, "splits": ["train"],
           "stages": [{"teacher": {"checkpoint": str(teacher), "batch_size": 3}}]}  # fmt: skip
    build(load_recipe(rec), store, workers=0)
    cols = ["label", "teacher_logits", "image"]
    rows = [{k: b[k][j] for k in cols} for b in Stream("half_teach", store=store, split="train", shuffle=False,
                                                      columns=cols) for j in range(len(b["label"]))]  # fmt: skip
    assert sum(r["label"] == -1 for r in rows) == 4 and all(r["teacher_logits"] is not None for r in rows)
    want = logits_for_rows(load_model(teacher), [{"image": r["image"]} for r in rows])
    np.testing.assert_allclose(np.stack([r["teacher_logits"] for r in rows]), want, atol=1e-4)
    cfg = {"data": "half_teach", "val_data": "f", "epochs": 1, "batch_size": 4, "width": 0.25, "threads": 1,
           "distill": {"temperature": 2.0}}  # fmt: skip
    s = train(load_config(cfg), store, tmp_path / "student", progress=False)
    assert s["distilled"] and s["model"] == "cnn"


def test_refusals_are_one_line(tmp_path: Path, store: Store) -> None:
    with pytest.raises(AugsvcError, match=r"pretrained: .*nope.pth: no such weights file"):
        open_backbone("efficientnet_lite0", str(tmp_path / "nope.pth"))
    with pytest.raises(AugsvcError, match="pretrained: hub downloads weights; set allow_download"):
        open_backbone("resnet18", "hub")
    with pytest.raises(AugsvcError, match="needs 'pretrained:'"):
        open_backbone("resnet18", None)
    with pytest.raises(AugsvcError, match="freeze_backbone only apply to a pretrained backbone"):
        load_config({"data": "f", "freeze_backbone": True})
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(AugsvcError, match="not EfficientNet-Lite0 weights"):
        open_backbone("efficientnet_lite0", str(bad))


@pytest.mark.skipif(not _timm_importable(), reason="timm not importable (needs a torchvision matching torch)")
def test_lite0_weights_mapped_onto_timm_give_identical_logits() -> None:
    import timm
    from efficientnet_lite_pytorch import EfficientNet

    path = lite0_weights_file()
    theirs = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path), num_classes=1000).eval()
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ours.load_state_dict(lite0_to_timm(torch.load(path, map_location="cpu", weights_only=True)))
    x = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
        # the trainer's timm path reads the package's file as it is (mapped on load)
        trunk, info = open_backbone("tf_efficientnet_lite0", str(path))
        torch.testing.assert_close(trunk.eval()(x), theirs.extract_features(x), atol=1e-5, rtol=1e-5)
    assert info.input_size == (3, 224, 224) and info.mean == (0.5, 0.5, 0.5) and info.interpolation == "bicubic"
