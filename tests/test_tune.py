"""``augsvc tune``: a 2-trial search on a tiny generated image version in one module-scoped Ray session (table,
plot, best recipe that builds and trains, --test with two seeds, resume), space-file errors, the candidates drawn
from a space, offline copies in the trainer/stream, and ``trivial_augment``'s determinism."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pyarrow as pa
import pytest
import yaml

from augsvc.stream import Stream
from augsvc.tune.search import baseline, candidate, first_points, label, mean_se, recipe_of, train_config
from augsvc.tune.space import load_space
from pipelines.ingest.encode import write_parquet
from pipelines.store import Store
from pipelines.transforms.compose import build_op
from pipelines.transforms.image.policy import POLICY_OPS
from schemas.arrow import image_schema
from schemas.errors import AugsvcError


def _image(label: int, rng: np.random.Generator, size: int = 12) -> np.ndarray:
    """A bright square in the top-left (class 0) or bottom-right (class 1) quadrant over noise, RGB."""
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    h = size // 2
    off = 0 if label == 0 else h
    y, x = off + int(rng.integers(0, 2)), off + int(rng.integers(0, 2))
    img[y : y + h - 1, x : x + h - 1] = 220
    return img


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    s = Store(tmp_path_factory.mktemp("tune") / "store")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(72):
        split = "train" if i < 40 else "val" if i < 56 else "test"
        rows.append({"sample_id": f"{i:016x}", "label": i % 2, "soft_label": None, "split": split,
                     "source": f"gen:{i}", "lineage": None, "image": _image(i % 2, rng).tobytes(),
                     "image_format": "raw", "height": 12, "width": 12, "channels": 3})  # fmt: skip
    st = s.staging("squares")
    for split in ("train", "val", "test"):
        part = pa.Table.from_pylist([r for r in rows if r["split"] == split], schema=image_schema())
        st.add_shard_bytes(write_parquet(part), part.num_rows, split)
    s.publish(st, dataset="squares", definition={"test": "squares"}, modality="image",
              class_names=["top_left", "bottom_right"],
              extra={"image_storage": "raw"})  # fmt: skip
    return s


SPACE = {
    "data": "squares",
    "trials": 2,
    "epochs": 2,
    "grace_period": 1,
    "seeds": 2,
    "train": {"batch_size": 16, "lr": 0.01, "width": 0.25},
    "policies": ["trivial_augment", {"rand_augment": {"n": [1, 2], "magnitude": [3, 9]}}],
}


def _space_file(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def search(store, tmp_path_factory, ray_module):
    from augsvc.tune.search import tune_search

    out = tmp_path_factory.mktemp("tune_out") / "out"
    lines: list[str] = []
    summary = tune_search(load_space(SPACE), out, store=store.uri, test_split="test", echo=lines.append)
    return out, summary, lines


def test_search_writes_table_plot_and_recipe(search) -> None:
    out, summary, lines = search
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and [r["rank"] for r in rows] == ["1", "2"]
    assert {r["recipe"].split("(")[0] for r in rows} == {"trivial_augment", "rand_augment"}  # each policy once
    accs = [float(r["val_acc"]) for r in rows]
    assert accs == sorted(accs, reverse=True) and all(0.0 <= a <= 1.0 for a in accs)
    for r in rows:
        curve = [float(v) for v in r["curve"].split()]
        assert 1 <= int(r["epochs"]) == len(curve) <= 2 and max(curve) == pytest.approx(float(r["val_acc"]), abs=1e-4)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["best"]["recipe"] == rows[0]["recipe"]
    assert any("rank" in line and "recipe" in line for line in lines)  # the printed table
    assert summary["complete"] and summary["partial"] is None and not summary["interrupted"]
    assert not any(line.startswith("PARTIAL") for line in lines)
    assert all(r["status"] in ("completed", "stopped (ASHA)") for r in rows)
    assert all(int(r["steps"]) == 3 * int(r["epochs"]) for r in rows)  # 40 rows, batches of 16: 3 steps an epoch
    assert "PARTIAL" not in (out / "best_train.yaml").read_text()
    test = summary["test"]
    assert test["split"] == "test" and len(test["seeds"]) == 2
    for res in test["recipes"].values():
        assert len(res["runs"]) == 2 and res["mean"] == pytest.approx(np.mean(res["runs"]))
    assert "no augmentation" not in test["recipes"] and "none" in test["recipes"]  # the baseline ran
    with open(out / "test.csv") as f:
        assert len(list(csv.DictReader(f))) == 4  # (winner, baseline) x 2 seeds


def test_best_recipe_builds_and_trains_on_the_fly(search, store, tmp_path) -> None:
    from augsvc import api
    from augsvc.trainer.loop import load_config, train

    out, summary, _ = search
    recipe = yaml.safe_load((out / "best_recipe.yaml").read_text())
    assert recipe["stages"][0]["op"]["op"] in ("trivial_augment", "rand_augment")
    rep = api.build(str(out / "best_recipe.yaml"), store=store, workers=0)
    assert rep.manifest.rows_per_split["train"] == 80  # 40 originals + 1 copy each (copies: 1)
    cfg = load_config(str(out / "best_train.yaml")).model_copy(update={"epochs": 1})
    assert cfg.augment == str(out / "best_recipe.yaml")
    res = train(cfg, store, tmp_path / "run", progress=False)
    assert res["epochs"] == 1


def test_resume_of_a_finished_search_reuses_its_trials(search, store) -> None:
    from augsvc.tune.search import tune_search

    out, summary, _ = search
    again = tune_search(load_space(SPACE), out, store=store.uri, resume=True, echo=lambda s: None)
    assert again["trials"] == summary["trials"] == 2
    assert again["best"]["recipe"] == summary["best"]["recipe"]
    assert again["best"]["val_acc"] == summary["best"]["val_acc"]
    with pytest.raises(AugsvcError, match="already holds a search"):
        tune_search(load_space(SPACE), out, store=store.uri, echo=lambda s: None)
    with pytest.raises(AugsvcError, match=r"cannot resume the search in .*: its config changed \(epochs: 2 -> 3\)"):
        tune_search(load_space({**SPACE, "epochs": 3}), out, store=store.uri, resume=True, echo=lambda s: None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policies": ["rand_agment"]}, r"space.yaml: policies\[0\]: unknown op 'rand_agment'.*rand_augment"),
        ({"policies": [{"rand_augment": {"n": [3, 1]}}]}, r"rand_augment.n: range \[3, 1\] has lo > hi"),
        ({"policies": [{"rand_augment": {"magnitude": [0, 20]}}]}, r"outside the bounds \[0, 10\]"),
        ({"policies": [{"augmix": {"sevrity": [1, 2]}}]}, r"unknown parameter 'sevrity'.*severity"),
        ({"label_smoothing": [0.3, 0.1]}, r"label_smoothing: range \[0.3, 0.1\] has lo > hi"),
        ({"mix": [{"method": "mixpu"}]}, r"mix\[0\]: unknown method 'mixpu'"),
        ({"train": {"epochs": 3}}, r"train: epochs set by the search itself"),
        ({"train": {"batch_sise": 3}}, r"unknown key 'batch_sise'"),
        ({"polices": ["none"]}, r"unknown key 'polices'"),
        ({"policies": [{"fixed": {"stages": [{"op": {"op": "rotat"}}]}}]}, r"fixed: .*unknown op 'rotat'"),
        ({"grace_period": 5}, r"grace_period 5 is more than epochs 2"),
    ],
)
def test_space_errors_are_one_line(tmp_path, change, message) -> None:
    with pytest.raises(AugsvcError, match=message) as e:
        load_space(_space_file(tmp_path, {**SPACE, **change}))
    assert len(str(e.value).splitlines()) == 1


def test_missing_split_and_wrong_modality_before_ray(store, tmp_path) -> None:
    from augsvc.tune.search import tune_search

    with pytest.raises(AugsvcError, match=r"no rows in split 'dev' \(val_split.*augsvc split"):
        tune_search(load_space({**SPACE, "val_split": "dev"}), tmp_path / "o", store=store.uri)
    with pytest.raises(AugsvcError, match=r"policies\[0\]: random_swap is a text op; squares@\w+ is image"):
        tune_search(load_space({**SPACE, "policies": ["random_swap"]}), tmp_path / "o", store=store.uri)
    assert not (tmp_path / "o").exists()


def test_candidates_from_a_space() -> None:
    space = load_space({**SPACE, "policies": ["none", "trivial_augment", "rand_augment", {"augmix": {}}],
                        "mix": ["none", "cutmix"], "label_smoothing": [0.0, 0.2], "augment": ["on_the_fly", "offline"],
                        "offline_copies": [1, 3], "trials": 3})  # fmt: skip
    pts = first_points(space)
    assert [p["policy"] for p in pts] == [0, 1, 2]  # at most `trials` points, every policy in order
    assert pts[2]["p2.n"] == 2 and pts[2]["p2.magnitude"] == 9.0  # RandAugment at its defaults
    ra = candidate(space, {**pts[2], "augment": "offline", "offline_copies": 3})
    assert ra["label"] == "rand_augment(n=2, magnitude=9), offline x3"
    rec = recipe_of(space, ra, "squares@0123456789abcdef")
    assert rec["stages"] == [{"name": "rand_augment", "op": {"op": "rand_augment", "n": 2, "magnitude": 9.0},
                              "copies": 3, "keep_originals": True}]  # fmt: skip
    cfg = train_config(space, ra, "squares@0123456789abcdef", seed=5)
    assert cfg.augment_copies == 3 and cfg.seed == 5 and cfg.epochs == 2 and cfg.width == 0.25
    assert cfg.augment_cycle  # one fixed view per epoch: as many optimizer steps per epoch as on the fly
    mixed = candidate(space, {"policy": 3, "p3.severity": 4.5, "mix": 1, "mix1.alpha": 0.5, "label_smoothing": 0.1,
                              "augment": "on_the_fly", "offline_copies": 2})  # fmt: skip
    assert mixed["label"] == "augmix(severity=4.5) + cutmix(0.5) + ls 0.1"
    assert train_config(space, mixed, "squares@0123456789abcdef", 0).mix.alpha == 0.5
    none = candidate(space, {"policy": 0, "mix": 0, "label_smoothing": 0.0, "augment": "offline", "offline_copies": 2})
    assert none["augment"] == "on_the_fly" and recipe_of(space, none, "x@y") is None
    assert label(baseline()) == "none"
    assert mean_se([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0 / np.sqrt(3)))


def test_offline_copies_are_fixed_views(store, tmp_path) -> None:
    recipe = {"input": "squares", "output": "x", "stages": [{"op": {"op": "trivial_augment"}}]}

    def images(epoch: int, augment_epoch: int | None) -> np.ndarray:
        s = Stream("squares", store=store, split="train", shuffle=False, batch_size=64, epoch=epoch, recipe=recipe,
                   augment_epoch=augment_epoch)  # fmt: skip
        return next(iter(s))["image"]

    assert np.array_equal(images(0, 1), images(7, 1))  # a fixed copy is the same every epoch
    assert not np.array_equal(images(0, 1), images(0, 2))
    assert np.array_equal(images(3, None), images(0, 3))  # default: the epoch seeds the view


def test_trivial_augment_is_deterministic_and_draws_one_op_uniformly() -> None:
    op = build_op({"op": "trivial_augment", "magnitude_range": [2, 6]})
    x = np.random.default_rng(1).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    seen: dict[str, int] = {}
    for seed in range(600):
        y1, r1 = op(x, np.random.default_rng(seed))
        y2, r2 = op(x, np.random.default_rng(seed))
        assert np.array_equal(y1, y2) and r1 == r2
        assert len(r1["params"]["ops"]) == 1
        name, value = r1["params"]["ops"][0]
        top = POLICY_OPS[name][0]
        assert top * 0.2 - 1e-9 <= abs(value) <= top * 0.6 + 1e-9
        seen[name] = seen.get(name, 0) + 1
        if seed < 20:
            assert np.array_equal(op.apply(x, json.loads(json.dumps(r1))["params"]), y1)  # replay
    assert set(seen) == set(POLICY_OPS)  # every op of the list is drawn
    assert max(seen.values()) < 2.5 * min(seen.values())  # roughly uniform (50 expected each)


def test_cli_bad_space_is_one_line(tmp_path) -> None:
    import subprocess
    import sys

    bad = _space_file(tmp_path, {**SPACE, "policies": [{"rand_augment": {"n": [0, 3]}}]})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "augsvc", "tune", str(bad), "--out", str(tmp_path / "o")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {bad}: policies[0]: rand_augment.n: range [0, 3] is outside the bounds [1, 16]"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_budget_s": 0}, r"--budget 0: give a number of seconds above 0"),
        ({"time_budget_s": -5}, r"--budget -5: give a number of seconds above 0"),
        ({"seeds": 0}, r"--seeds 0: give 1 to 100 seeds"),
        ({"seeds": -1}, r"--seeds -1: give 1 to 100 seeds"),
        ({"test_split": "val"}, r"--test val: the search used split 'val' \(val_split\)"),
        ({"test_split": "train"}, r"--test train: the search used split 'train' \(train_split\)"),
    ],
)
def test_bad_options_refused_before_ray(store, tmp_path, kwargs, message) -> None:
    from augsvc.tune.search import tune_search

    with pytest.raises(AugsvcError, match=message) as e:
        tune_search(load_space(SPACE), tmp_path / "o", store=store.uri, **kwargs)
    assert len(str(e.value).splitlines()) == 1 and not (tmp_path / "o").exists()


def test_bad_out_refused_before_ray(store, tmp_path) -> None:
    from augsvc.tune.search import tune_search

    with pytest.raises(AugsvcError, match=r"--out is empty: give an output folder"):
        tune_search(load_space(SPACE), "", store=store.uri)
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(AugsvcError, match=r"--out .*taken is a file, not a folder: give another --out"):
        tune_search(load_space(SPACE), f, store=store.uri)


def test_train_config_checked_against_the_version_before_ray(store, tmp_path) -> None:
    from augsvc.tune.search import tune_search

    with pytest.raises(AugsvcError, match=r"train.model: text_cnn reads text versions; squares@\w+ is image \(use cnn"):
        tune_search(load_space({**SPACE, "train": {"model": "text_cnn"}}), tmp_path / "o", store=store.uri)
    with pytest.raises(AugsvcError, match=r"pretrained: .*missing.pth: no such weights file"):  # a backbone's weights
        space = {**SPACE, "train": {"model": "efficientnet_lite0", "pretrained": str(tmp_path / "missing.pth")}}
        tune_search(load_space(space), tmp_path / "o", store=store.uri)
    rows = [{"sample_id": f"{i:016x}", "label": None, "soft_label": None, "split": "train" if i < 4 else "val",
             "source": f"gen:{i}", "lineage": None, "image": _image(0, np.random.default_rng(i)).tobytes(),
             "image_format": "raw", "height": 12, "width": 12, "channels": 3} for i in range(6)]  # fmt: skip
    st = store.staging("blank")
    for split in ("train", "val"):
        part = pa.Table.from_pylist([r for r in rows if r["split"] == split], schema=image_schema())
        st.add_shard_bytes(write_parquet(part), part.num_rows, split)
    store.publish(st, dataset="blank", definition={"test": "blank"}, modality="image", class_names=[],
                  extra={"image_storage": "raw"})  # fmt: skip
    with pytest.raises(AugsvcError, match=r"augsvc tune .* needs labels, but blank@\w+ has none") as e:
        tune_search(load_space({**SPACE, "data": "blank"}), tmp_path / "o", store=store.uri)
    assert len(str(e.value).splitlines()) == 1 and not (tmp_path / "o").exists()


def _row(trial: str, curve: list[float], seconds: float = 1.0, error: str = "") -> dict:
    status = "error" if error else "completed"
    return {"trial": trial, "recipe": "" if error else trial, "val_acc": max(curve) if curve else float("nan"),
            "curve": curve, "seconds": seconds, "status": status, "error": error}  # fmt: skip


def test_no_result_messages_ties_and_error_lines() -> None:
    from augsvc.tune.search import check_rows, error_line, rank

    with pytest.raises(AugsvcError, match=r"^no trial finished within the budget \(0.01 s, 2 trial\(s\) started"):
        check_rows([_row("a_00000", []), _row("a_00001", [])], 0.01)
    with pytest.raises(AugsvcError, match=r"^every trial failed; the first: squares@x has none$"):
        check_rows([_row("a_00000", [], error="squares@x has none"), _row("a_00001", [], error="other")], None)
    check_rows([_row("a_00000", [0.5]), _row("a_00001", [], error="boom")], 0.01)  # one result is enough
    # equal accuracy: the earlier trial wins whatever the wall-clock seconds
    ranked = rank([_row("a_00002", [0.9], 1.0), _row("a_00001", [0.5, 0.9], 9.0), _row("a_00003", [], error="x"),
                   _row("a_00000", [0.7], 0.1)])  # fmt: skip
    assert [r["trial"] for r in ranked] == ["a_00001", "a_00002", "a_00000", "a_00003"]
    tb = "Traceback (most recent call last):\n  File ...\nschemas.errors.AugsvcError: train.model: bad\n"
    assert error_line(tb) == "train.model: bad"
    assert error_line("ray.exceptions.RayTaskError(KeyError): KeyError: 'vocab'") == "KeyError: 'vocab'"
    assert error_line(None) == ""


def test_max_concurrent_goes_to_the_search_algorithm() -> None:
    from augsvc.tune.search import search_alg

    assert search_alg(load_space({**SPACE, "max_concurrent": 1})).max_concurrent == 1
    assert search_alg(load_space(SPACE)).max_concurrent == 0  # 0: as the cluster allows


def test_failed_trial_line_says_why(capsys) -> None:
    from augsvc.tune.search import live_callback

    class FakeTrial:
        trial_id = "a_00001"

        def get_error(self) -> str:
            return "Traceback (most recent call last):\nschemas.errors.AugsvcError: squares@x: no rows in split 'val'"

    cb = live_callback(2, 2)
    cb.tty = False
    cb.on_trial_error(0, [], FakeTrial())
    assert capsys.readouterr().err.strip() == "trial a_00001 failed: squares@x: no rows in split 'val'"


def test_cli_seeds_zero_refused(tmp_path) -> None:
    import subprocess
    import sys

    space = _space_file(tmp_path, SPACE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    out = str(tmp_path / "o")
    cmd = [sys.executable, "-m", "augsvc", "tune", str(space), "--test", "test", "--seeds", "0", "--out", out]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--seeds" in r.stderr and not (tmp_path / "o").exists()


def test_search_with_a_frozen_pretrained_backbone(store, tmp_path, ray_module, monkeypatch) -> None:
    """`train.model` a pretrained backbone: every trial trains a head on the frozen EfficientNet-Lite0 (its
    features cached per offline copy) and the search ranks the recipes on that model."""
    from augsvc.tune.search import tune_search
    from generators.nets.backbones import lite0_weights_file

    if lite0_weights_file() is None:
        pytest.skip("extra 'pretrained' not installed")
    monkeypatch.setenv("AUGSVC_FEATURE_CACHE", str(tmp_path / "cache"))  # trial workers may use the default cache
    space = {**SPACE, "epochs": 1, "grace_period": 1, "augment": ["offline"], "offline_copies": 1,
             "policies": ["none", {"fixed": {"name": "flip", "stages": [{"op": [{"op": "hflip", "p": 1.0}]}]}}],
             "train": {"model": "efficientnet_lite0", "freeze_backbone": True, "resize": [32, 32], "batch_size": 16,
                       "lr": 0.01}}  # fmt: skip
    summary = tune_search(load_space(space), tmp_path / "out", store=store.uri, echo=lambda line: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "trials.csv")))
    assert summary["trials"] == 2 and {r["status"] for r in rows} == {"completed"}
    assert {r["recipe"] for r in rows} == {"none", "flip, offline x1"}
    assert all(0.0 <= float(r["val_acc"]) <= 1.0 for r in rows)


class _Result:
    """What ``outcome`` reads of a Ray Tune ``Result``."""

    def __init__(self, trial: str, curve: list[float], error: str | None = None) -> None:
        self.path = f"/x/search/trial_{trial}"
        self.error = error
        m = {"trial_id": trial, "curve": json.dumps(curve), "label": f"r{trial[-1]}", "steps": 3 * len(curve),
             "candidate": json.dumps(baseline())}  # fmt: skip
        self.metrics = m if curve else {}


def test_cut_and_never_run_trials_make_a_search_partial_never_asha_stopped() -> None:
    from augsvc.tune.results import outcome

    grid = [_Result("a_00000", [0.5, 0.6, 0.7]), _Result("a_00001", [0.4]), _Result("a_00002", [0.8]),
            _Result("a_00003", []), _Result("a_00004", [], error="boom")]  # fmt: skip
    rows, partial, interrupted = outcome(grid, 3, 5, {"a_00001"}, None, 10.0)
    status = {r["trial"]: r["status"] for r in rows}
    assert status == {"a_00000": "completed", "a_00001": "stopped (ASHA)", "a_00002": "interrupted",
                      "a_00003": "not run", "a_00004": "error"}  # fmt: skip
    assert interrupted and partial == (
        "the search was interrupted: of 5 trials 1 completed, 1 stopped (ASHA), 1 cut short, 1 error, 1 not run; "
        "the best is among the trials that ran"
    )
    rows, partial, interrupted = outcome(grid[:3], 3, 6, {"a_00001"}, 5.0, 5.2)  # the budget, and 3 never created
    assert not interrupted and {r["status"] for r in rows} == {"completed", "stopped (ASHA)", "cut (budget)"}
    assert partial.startswith(
        "the budget (5 s) ran out: of 6 trials 1 completed, 1 stopped (ASHA), 1 cut short, 3 not run"
    )
    rows, partial, interrupted = outcome(grid[:2], 3, 2, {"a_00001"}, 5.0, 9.0)  # all done (after the budget, too)
    assert partial is None and not interrupted


def test_a_partial_search_says_so_in_its_outputs_and_the_cli_exits_non_zero(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import augsvc.tune.search as search
    from augsvc.cli import app
    from augsvc.tune.results import outcome, write_outputs

    space = load_space(SPACE)
    rows, partial, _ = outcome([_Result("a_00000", [0.5]), _Result("a_00001", [])], 2, 2, set(), None, 1.0)
    write_outputs(space, "squares@0123456789abcdef", rows, tmp_path, partial=partial)
    assert "# PARTIAL SEARCH: the search was interrupted" in (tmp_path / "best_train.yaml").read_text()

    def fake_search(space, out, echo, **kw):
        echo(f"PARTIAL SEARCH: {partial}; continue it with --resume")
        return {"best": rows[0], "trials": 2, "seconds": 1.0, "files": {}, "partial": partial, "interrupted": True}

    monkeypatch.setattr(search, "tune_search", fake_search)
    res = CliRunner().invoke(app, ["tune", str(_space_file(tmp_path, SPACE)), "--out", str(tmp_path / "o")])
    assert res.exit_code == 130 and "best so far (PARTIAL search" in res.output and "PARTIAL SEARCH:" in res.output


def test_recording_asha_records_only_the_trials_it_stops_early(tmp_path) -> None:
    from augsvc.tune.asha import RecordingASHA
    from augsvc.tune.results import asha_stopped

    class T:
        def __init__(self, tid: str) -> None:
            self.trial_id = tid

    asha = RecordingASHA(record=tmp_path / "rec.txt", time_attr="epoch", metric="val_acc", mode="max", max_t=2,
                         grace_period=1, reduction_factor=2)  # fmt: skip
    trials = [T("a_00000"), T("a_00001"), T("a_00002")]
    for t in trials:
        asha.on_trial_add(None, t)
    accs = [0.9, 0.8, 0.1]
    decisions = [asha.on_trial_result(None, t, {"epoch": 1, "val_acc": a}) for t, a in zip(trials, accs, strict=True)]
    assert decisions == ["CONTINUE", "STOP", "STOP"]  # below the rung's top half
    assert asha_stopped(tmp_path / "rec.txt") == {"a_00001", "a_00002"}
    assert asha.on_trial_result(None, trials[0], {"epoch": 2, "val_acc": 0.95}) == "STOP"  # max_t: completed
    assert asha_stopped(tmp_path / "rec.txt") == {"a_00001", "a_00002"}


def test_live_table_tells_asha_stops_from_cut_and_never_run_trials(tmp_path, capsys) -> None:
    from augsvc.tune.search import live_callback

    class T:
        def __init__(self, tid: str) -> None:
            self.trial_id = tid

    (tmp_path / "rec.txt").write_text("a_00001\n")
    cb = live_callback(4, 3, tmp_path / "rec.txt")
    cb.tty = False
    for tid, epoch in (("a_00000", 3), ("a_00001", 1), ("a_00002", 2)):
        cb.on_trial_result(0, [], T(tid), {"epoch": epoch, "val_acc": 0.5, "label": tid})
    for tid in ("a_00000", "a_00001", "a_00002", "a_00003"):
        cb.on_trial_complete(0, [], T(tid))
    assert [r["status"] for r in cb.rows.values()] == ["done", "stopped (ASHA)", "cut short", "not run"]
