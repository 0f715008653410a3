"""What the trainer says must be what happened (issue 26): a resumed run refuses a changed config and an existing
run folder is not overwritten silently; a model that cannot read the version, or an unusable ``hf_path``, is
refused before any work and leaves no run folder; ``compare`` refuses folders that are not runs in one line;
per-class precision/recall/F1 and macro-F1 in the reports and ``augsvc evaluate``; offline copies cycled one view
per epoch train as many optimizer steps per epoch as on-the-fly augmentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from augsvc.trainer.config import load_config
from augsvc.trainer.loop import score_run, train, train_streams
from augsvc.trainer.reports import compare
from pipelines.ingest.encode import write_parquet
from pipelines.store import Store
from schemas.arrow import image_schema, text_schema
from schemas.errors import AugsvcError
from schemas.resume import config_changes

ROOT = Path(__file__).parents[1]


def _publish(store: Store, name: str, rows: list[dict], schema: pa.Schema, modality: str, classes: list[str]) -> None:
    st = store.staging(name)
    for split in sorted({r["split"] for r in rows}):
        part = pa.Table.from_pylist([r for r in rows if r["split"] == split], schema=schema)
        st.add_shard_bytes(write_parquet(part), part.num_rows, split)
    extra = {"image_storage": "raw"} if modality == "image" else None
    store.publish(st, dataset=name, definition={"test": name, "first": rows[0]["sample_id"]}, modality=modality,
                  class_names=classes, extra=extra)  # fmt: skip


def _squares(n: int, seed: int) -> list[dict]:
    """``n`` 8x8 grey images, three classes (a bright band at the top, middle or bottom), split 60/20/20."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lab = i % 3
        img = rng.integers(0, 60, (8, 8, 1), dtype=np.uint8)
        img[lab * 3 : lab * 3 + 2] = 230
        split = "train" if i < 0.6 * n else "val" if i < 0.8 * n else "test"
        rows.append({"sample_id": f"{seed}-{i:04d}", "label": lab, "soft_label": None, "split": split,
                     "source": f"gen:{i}", "lineage": None, "image": img.tobytes(), "image_format": "raw",
                     "height": 8, "width": 8, "channels": 1})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    s = Store(tmp_path_factory.mktemp("trust") / "store")
    _publish(s, "bands", _squares(45, 0), image_schema(), "image", ["top", "middle", "bottom"])
    texts = [{"sample_id": f"t{i:03d}", "label": i % 2, "soft_label": None, "split": "train" if i < 12 else "val",
              "source": f"gen:{i}", "lineage": None, "text": ["good film", "bad film"][i % 2]}
             for i in range(16)]  # fmt: skip
    _publish(s, "reviews", texts, text_schema(), "text", ["pos", "neg"])
    return s


def cfg(**kw) -> dict:
    return {"data": "bands", "epochs": 1, "batch_size": 9, "width": 0.25, "threads": 1, "seed": 0} | kw


def test_resume_refuses_a_changed_config_naming_each_key(store: Store, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(load_config(cfg()), store, run, progress=False)
    before = (run / "config.yaml").read_text()
    changed = r"its config changed \(lr: 0.001 -> 0.01; optimizer: adam -> sgd\); train with the run's own config"
    with pytest.raises(AugsvcError, match=r"cannot resume the run in .*run: " + changed) as e:
        train(load_config(cfg(lr=0.01, optimizer="sgd", epochs=2)), store, run, resume=True, progress=False)
    assert len(str(e.value).splitlines()) == 1
    assert (run / "config.yaml").read_text() == before  # the run's description is untouched
    # other training data: a new version under the same name moves `bands` (latest) elsewhere
    old_ref = yaml.safe_load(before)["data"]
    _publish(store, "bands", _squares(45, 1), image_schema(), "image", ["top", "middle", "bottom"])
    new_ref = "@".join(store.resolve("bands"))
    with pytest.raises(AugsvcError, match=rf"data: {old_ref} -> {new_ref}; val_data: {old_ref} -> {new_ref}"):
        train(load_config(cfg(epochs=2)), store, run, resume=True, progress=False)
    # epochs (and device, threads) may change: the run trains on and config.yaml records the new length
    s = train(load_config(cfg(data=old_ref, epochs=2)), store, run, resume=True, progress=False)
    assert s["epochs"] == 2 and yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2


def test_pretraining_alone_then_fine_tuning_is_the_same_run(store: Store, tmp_path: Path) -> None:
    pre = cfg(epochs=0, pretrain={"epochs": 1, "batch_size": 9})
    train(load_config(pre), store, tmp_path / "run", progress=False)
    s = train(load_config(pre | {"epochs": 1}), store, tmp_path / "run", resume=True, progress=False)
    assert s["epochs"] == 1 and (tmp_path / "run" / "best.pt").is_file()


def test_an_existing_run_folder_needs_resume_or_overwrite(store: Store, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(AugsvcError, match=r"no run to resume .*drop --resume"):
        train(load_config(cfg()), store, run, resume=True, progress=False)
    train(load_config(cfg()), store, run, progress=False)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(AugsvcError, match=r"run already holds a run \(config.yaml, last.pt, metrics.json\): pass "
                       r"--resume to continue it, --overwrite to start it again, or give a new --out$"):  # fmt: skip
        train(load_config(cfg(lr=0.01)), store, run, progress=False)
    with pytest.raises(AugsvcError, match="pass one of them"):
        train(load_config(cfg()), store, run, resume=True, overwrite=True, progress=False)
    train(load_config(cfg(lr=0.01)), store, run, overwrite=True, progress=False)
    assert yaml.safe_load((run / "config.yaml").read_text())["lr"] == 0.01
    assert (run / "notes.txt").read_text() == "mine"  # --overwrite removes the trainer's files only


def test_an_edited_augment_recipe_file_is_a_changed_config(store: Store, tmp_path: Path) -> None:
    recipe = tmp_path / "aug.yaml"
    recipe.write_text(yaml.safe_dump({"input": "bands", "output": "x", "stages": [{"op": {"op": "hflip"}}]}))
    run = tmp_path / "run"
    train(load_config(cfg(augment=str(recipe))), store, run, progress=False)
    assert yaml.safe_load((run / "config.yaml").read_text())["augment"]["stages"][0]["op"]["op"] == "hflip"
    recipe.write_text(yaml.safe_dump({"input": "bands", "output": "x", "stages": [{"op": {"op": "vflip"}}]}))
    with pytest.raises(AugsvcError, match=r"augment.stages: .*hflip.* -> .*vflip"):
        train(load_config(cfg(augment=str(recipe), epochs=2)), store, run, resume=True, progress=False)


def test_config_changes_names_nested_keys_and_sections() -> None:
    assert config_changes({"mix": None, "lr": 1}, {"mix": {"alpha": 0.4}, "lr": 1}) == ["mix.alpha: (absent) -> 0.4"]
    assert config_changes({"epochs": 1, "x": [1]}, {"epochs": 5, "x": [2]}, ignore=["epochs"]) == ["x: [1] -> [2]"]


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        (
            "bands",
            {"model": "text_cnn"},
            r"model: text_cnn reads text versions; bands@\w+ is image \(use cnn or (\w+ or )*hf",
        ),
        ("reviews", {"model": "cnn"}, r"model: cnn reads image versions; reviews@\w+ is text \(use hf or text_cnn"),
        ("reviews", {"model": "mlp"}, r"model: mlp reads tabular versions; reviews@\w+ is text"),
        ("bands", {"mix": {"method": "mixup"}, "data": "reviews"}, r"mix: batch mixing works on image batches"),
        ("bands", {"train_split": "dev"}, r"train_split: bands@\w+ has no split 'dev'"),
    ],
)
def test_a_model_that_cannot_read_the_version_is_refused_before_any_work(
    store: Store, tmp_path: Path, data: str, extra: dict, message: str
) -> None:
    with pytest.raises(AugsvcError, match=message) as e:
        train(load_config(cfg(data=data) | extra), store, tmp_path / "run", progress=False)
    assert len(str(e.value).splitlines()) == 1
    assert not (tmp_path / "run").exists()  # no run folder holding only config.yaml


def test_an_unusable_hf_path_is_refused_before_any_work(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    empty = tmp_path / "empty"
    empty.mkdir()
    marian = tmp_path / "marian"
    marian.mkdir()
    (marian / "config.json").write_text(json.dumps({"model_type": "marian"}))
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 8, "hidden_size": 8}))
    cases = [(tmp_path / "nowhere", r"hf_path: .*nowhere is not a folder; give a local Hugging Face model folder"),
             (empty, r"hf_path: .*empty has no config.json"),
             (marian, r"hf_path: .*marian is a marian model, which transformers has no sequence classification head"),
             (bert, r"hf_path: .*bert holds no weights \(model.safetensors or pytorch_model.bin\)")]  # fmt: skip
    for path, message in cases:
        with pytest.raises(AugsvcError, match=message):
            train(
                load_config(cfg(data="reviews", model="hf", hf_path=str(path))), store, tmp_path / "r", progress=False
            )
    assert not (tmp_path / "r").exists()


def test_cli_refusals_are_one_line(store: Store, tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump(cfg(model="text_cnn")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "augsvc", "train", str(conf), "--out", str(tmp_path / "o"), "--store", store.uri]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "model: text_cnn reads" in r.stderr
    assert not (tmp_path / "o").exists()


def test_compare_refuses_folders_that_are_not_runs_in_one_line(store: Store, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(load_config(cfg()), store, run, progress=False)
    for name, content, message in (("obj", {"val_acc": 0.5}, r"holds a JSON dict, not per-epoch rows"),
                                   ("empty", [], r"holds an empty list"),
                                   ("other", [{"loss": 1.0}], r"row 0 has no numeric val_acc"),
                                   ("text", "{not json", r"not JSON")):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(AugsvcError, match=message) as e:
            compare([run, tmp_path / name], tmp_path / "c.png")
        assert len(str(e.value).splitlines()) == 1 and "pass the --out folder of 'augsvc train'" in str(e.value)


def test_per_class_scores_in_reports_and_augsvc_evaluate(store: Store, tmp_path: Path) -> None:
    from sklearn.metrics import f1_score

    run = tmp_path / "run"
    s = train(load_config(cfg(data="reviews", epochs=2, batch_size=4, lr=0.01)), store, run, progress=False)
    hist = json.loads((run / "metrics.json").read_text())
    assert all(0 <= h["val_macro_f1"] <= 1 and h["steps"] == 3 for h in hist)
    assert set(s["best_val_per_class"]) == {"pos", "neg"} and s["best_val_macro_f1"] == pytest.approx(
        np.mean([c["f1"] for c in s["best_val_per_class"].values()])
    )
    res = score_run(run, store, split="val")
    assert res["accuracy"] == pytest.approx(s["best_val_acc"]) and res["rows"] == 4
    assert res["per_class"]["pos"]["support"] == res["per_class"]["neg"]["support"] == 2
    # scikit-learn's macro F1 over the same predictions
    from generators.nets.classifier import load_model, logits_for_rows

    lm = load_model(run)
    val = [{"text": t, "label": i % 2} for i, t in enumerate(["good film", "bad film"] * 2)]
    pred = logits_for_rows(lm, val).argmax(1)
    assert res["macro_f1"] == pytest.approx(f1_score([r["label"] for r in val], pred, average="macro"))
    from typer.testing import CliRunner

    from augsvc.cli import app

    base = ["evaluate", str(run), "--store", store.uri]
    r = CliRunner().invoke(app, [*base, "--split", "val", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["per_class"] == res["per_class"]
    r = CliRunner().invoke(app, [*base, "--split", "val"])
    assert "macro-F1" in r.stdout and "recall" in r.stdout and "neg" in r.stdout
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "augsvc", *base]  # the error line as the installed command prints it
    r = subprocess.run([*cmd, "--split", "test"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        f"error: --split test: {res['data']} has no split 'test' (has train, val)"
    ]


def test_cycled_offline_copies_train_as_many_steps_per_epoch_as_on_the_fly(store: Store, tmp_path: Path) -> None:
    aug = {"input": "bands", "output": "x", "stages": [{"op": {"op": "hflip"}}]}
    c = load_config(cfg(augment=aug, augment_copies=2, augment_cycle=True))
    ref = "@".join(store.resolve("bands"))
    views = [[(s.augment_epoch, s.recipe is not None) for s in train_streams(c, ref, store, e, None)] for e in range(4)]
    assert views == [[(None, False)], [(0, True)], [(1, True)], [(None, False)]]  # original, copy 0, copy 1, ...
    fly = train(load_config(cfg(augment=aug, epochs=3)), store, tmp_path / "fly", progress=False)
    off = train(load_config(cfg(augment=aug, augment_copies=2, augment_cycle=True, epochs=3)), store,
                tmp_path / "off", progress=False)  # fmt: skip
    steps = [[h["steps"] for h in json.loads((tmp_path / r / "metrics.json").read_text())] for r in ("fly", "off")]
    assert fly["epochs"] == off["epochs"] == 3 and steps[0] == steps[1] == [3, 3, 3]
    with pytest.raises(AugsvcError, match="augment_cycle needs augment_copies"):
        load_config(cfg(augment=aug, augment_cycle=True))


def test_preview_shows_rows_generated_without_a_parent(tmp_path: Path, request) -> None:
    """A generator that draws from a model (GAN, LAMBADA) records no parent: preview shows its rows on lines of
    their own, marked as such, instead of dropping them (an empty table or an error before)."""
    from typing import ClassVar, Literal

    import generators
    from generators.base import Fitted, Generated, Generator
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.preview import NO_PARENT, preview_lines, render_preview, render_table
    from pipelines.recipes import load_recipe

    class Noise(Generator):
        modalities: ClassVar[tuple[str, ...]] = ("tabular", "image")
        method: Literal["test_noise"] = "test_noise"

        def fit(self, data, model=None):
            class Draw(Fitted):
                def generate(self, label, n, rng):
                    if data.modality == "image":
                        x = rng.integers(0, 255, (n, *data.X.shape[1:]), dtype=np.uint8)
                    else:
                        x = np.array([[float(v) for v in rng.normal(size=data.X.shape[1])] for _ in range(n)], object)
                    return Generated(x, [() for _ in range(n)], [{"z": i} for i in range(n)])

            return Draw()

    generators.GENERATORS.register("test_noise", obj=Noise)  # this test only: the generator suite never sees it
    request.addfinalizer(lambda: generators.GENERATORS.unregister("test_noise"))
    rng = np.random.default_rng(0)
    (tmp_path / "t.csv").write_text("a,b,Class\n" + "".join(f"{rng.normal():.3f},{rng.normal():.3f},{c}\n"
                                                             for c in ["neg"] * 8 + ["pos"] * 3))  # fmt: skip
    s = Store(tmp_path / "s")
    ingest(tmp_path / "t.csv", name="t", store=s, options=IngestOptions(format="tabular"), workers=0)
    recipe = load_recipe({"input": "t", "output": "g", "stages": [{"generator": {"method": "test_noise"}}]})
    m, lines = preview_lines(recipe, s, n=4, copies=2)
    assert [(o["label"], o.get(NO_PARENT), len(k)) for o, k in lines] == [(1, True, 2)]  # pos gets 5 rows, 2 shown
    table = render_table(recipe, s, n=4, copies=2)
    assert "| pos (no parent) | (generated without a parent) | pos test_noise: a=" in table
    img = Store(tmp_path / "img")
    _publish(img, "bands", _squares(12, 0)[:10], image_schema(), "image", ["top", "middle", "bottom"])
    rec = load_recipe({"input": "bands", "output": "g", "stages": [{"generator": {"method": "test_noise",
                                                                               "n_per_class": 2}}]})  # fmt: skip
    out = render_preview(rec, img, tmp_path / "g.png", n=6, copies=2, cell=16)
    assert out.stat().st_size > 100
    assert [o.get(NO_PARENT) for o, _ in preview_lines(rec, img, n=6, copies=2)[1]] == [True] * 3
