"""Refusals found by a first user of the trainer: a fine-tuning base of another width, a validation split without
labels, training sizes below the CNN's minimum, an encoder checkpoint as curriculum scorer, view recipes that never
change an image, progressive_resize steps never reached, pacing messages naming the rule of the chosen pacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from augsvc.streamviews import check_view_recipe
from augsvc.trainer.config import load_config
from augsvc.trainer.finetune import load_base
from augsvc.trainer.loop import train
from generators.nets.prep import Prep, build_model
from pipelines.ingest import ingest
from pipelines.store import Store
from schemas.errors import AugsvcError
from tests.conftest import write_image


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """An image folder: train/{a,b}/ with 6 images each, val/{a,b}/ with 2 each, test/ with 4 loose images."""
    tmp = tmp_path_factory.mktemp("fixes")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c in ("a", "b"):
            for i in range(n):
                write_image(tmp / "imgs" / split / c / f"{i}.png", rng, size=16)
    for i in range(4):
        write_image(tmp / "imgs" / "test" / f"loose{i}.png", rng, size=16)
    s = Store(tmp / "store")
    ingest(tmp / "imgs", name="f", store=s, workers=0)
    return s


def base(**kw) -> dict:
    return {"data": "f", "width": 0.25, "threads": 1, "epochs": 1, "batch_size": 6, "seed": 0} | kw


def test_load_base_refuses_other_width_or_architecture_and_loads_the_encoder_otherwise() -> None:
    small = build_model("cnn", 2, Prep("image"), 0.25, 3).state_dict()
    with pytest.raises(AugsvcError, match=r"finetune_from: \d+ encoder tensors differ in shape .* width"):
        load_base(build_model("cnn", 2, Prep("image"), 0.5, 3), small)
    with pytest.raises(AugsvcError, match="none of its encoder tensors match"):
        load_base(build_model("cnn", 2, Prep("image"), 0.25, 3), {"head.weight": small["head.weight"]})
    other_classes = build_model("cnn", 5, Prep("image"), 0.25, 3)  # only the head differs: fine
    assert load_base(other_classes, small) == ["head.bias", "head.weight"]
    assert torch.equal(other_classes.state_dict()["blocks.0.0.weight"], small["blocks.0.0.weight"])


def test_train_refuses_finetune_from_a_run_of_another_width(store: Store, tmp_path: Path) -> None:
    train(load_config(base()), store, tmp_path / "small", progress=False)
    with pytest.raises(AugsvcError, match=r"finetune_from .*small.*width 0.25; this run: model cnn, width 0.5"):
        cfg = load_config(base(width=0.5, finetune_from=str(tmp_path / "small")))
        train(cfg, store, tmp_path / "w", progress=False)
    assert not (tmp_path / "w" / "best.pt").exists()


def test_finetune_prints_how_many_tensors_it_loaded(store: Store, tmp_path: Path, capsys) -> None:
    train(load_config(base()), store, tmp_path / "first", progress=False)
    train(load_config(base(finetune_from=str(tmp_path / "first"))), store, tmp_path / "ft", progress=True)
    n = len(build_model("cnn", 2, Prep("image"), 0.25, 3).state_dict()) - 2  # all but head.weight, head.bias
    assert f"first: loaded {n} tensors (2 new: the head)" in capsys.readouterr().err


def test_train_refuses_a_val_split_without_labels(store: Store, tmp_path: Path) -> None:
    m = store.manifest(*store.resolve("f"))
    assert m.rows_per_split["test"] == 4 and not sum(m.splits.get("test", {}).values())
    with pytest.raises(AugsvcError, match="val_split 'test'.* needs labels.*none labelled"):
        train(load_config(base(val_split="test")), store, tmp_path / "t", progress=False)


def test_sizes_below_the_cnn_minimum_and_unused_resize_steps_are_refused() -> None:
    with pytest.raises(AugsvcError, match=r"progressive_resize\[0\]: size \[4, 4\]: .* at least 8"):
        load_config(base(progressive_resize=[{"from_epoch": 0, "size": [4, 4]}]))
    with pytest.raises(AugsvcError, match=r"pretrain.resize: size \[4, 4\]: .* at least 8"):
        load_config(base(pretrain={"resize": [4, 4]}))
    with pytest.raises(AugsvcError, match="from_epoch 3 is never reached with epochs: 3"):
        load_config(base(epochs=3, progressive_resize=[{"from_epoch": 3, "size": [8, 8]}]))
    with pytest.raises(AugsvcError, match="progressive_resize: empty list"):
        load_config(base(progressive_resize=[]))
    assert load_config(base(epochs=3, progressive_resize=[{"from_epoch": 2, "size": [8, 8]}])).progressive_resize


def test_curriculum_pacing_messages_name_the_rule_of_the_chosen_pacing() -> None:
    with pytest.raises(AugsvcError, match="exponential pacing multiplies .* inc must be > 1") as e:
        load_config(base(curriculum={"inc": 0.5}))
    assert "linear" not in str(e.value)


def test_curriculum_refuses_an_encoder_checkpoint(store: Store, tmp_path: Path) -> None:
    from augsvc.curriculum import model_difficulty

    torch.save({"model": {}, "kind": "cnn", "width": 0.25, "class_names": [], "modality": "image"},
               tmp_path / "encoder.pt")  # fmt: skip
    with pytest.raises(AugsvcError, match="encoder checkpoint .* cannot score difficulty; give .* trained"):
        model_difficulty("f", str(tmp_path / "encoder.pt"), store=store)


def test_view_recipes_that_never_change_an_image_are_refused() -> None:
    def recipe(stages: list) -> dict:
        return {"input": "f", "output": "v", "seed": 0, "stages": stages}

    with pytest.raises(AugsvcError, match="pretrain.augment: every op has p: 0, so views would be identical"):
        check_view_recipe(recipe([{"op": [{"op": "hflip", "p": 0.0}]}]), "pretrain.augment")
    with pytest.raises(AugsvcError, match="pretrain.augment: no label-invariant op stage"):
        check_view_recipe(recipe([{"mix": {"method": "mixup", "alpha": 0.4}}]), "pretrain.augment")
    check_view_recipe(recipe([{"op": [{"op": "hflip", "p": 0.0}, {"op": "hflip", "p": 0.5}]}]), "pretrain.augment")
