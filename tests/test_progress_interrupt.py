"""Issue 26 (5): long work is not silent off a terminal, a long run says so up front, and Ctrl-C in train,
train-gan, train-lm, train-translator, build and tune exits 130 with what was kept and the exact resume command."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import generators.progress as gp
from augsvc.interrupt import EXIT_INTERRUPTED, command_line, on_interrupt
from augsvc.stage_reports import report_lines, report_warnings

# -- progress lines ------------------------------------------------------------------------------------------------


def test_fmt_seconds() -> None:
    assert [gp.fmt_seconds(s) for s in (4.2, 200, 1500, 35_400, 7200)] == [
        "4 s",
        "3 min 20 s",
        "25 min",
        "9 h 50 min",
        "2 h",
    ]


def test_plain_steps_give_step_fields_elapsed_and_time_left(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(gp.time, "monotonic", lambda: now[0])
    buf = io.StringIO()
    rep = gp.PlainSteps("train-gan", every=10, out=buf)
    for step in range(1, 11):
        now[0] += 3.0  # 3 s per step: a line every 10 s, the last one at the end
        rep(step, 10, epoch="1/2", loss_d=1.23456)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "train-gan: step 4/10 (40%), epoch 1/2, loss_d 1.235; 9 s elapsed, about 18 s left"
    assert lines[-1].startswith("train-gan: step 10/10 (100%)") and "left" not in lines[-1]
    assert len(lines) == 3  # steps 4, 8 (every 10 s) and 10 (the end)
    quiet = io.StringIO()
    short = gp.PlainSteps("x", every=10, out=quiet)
    short(1, 2)
    short(2, 2)
    assert quiet.getvalue() == ""  # work shorter than the interval prints nothing


def test_the_interval_comes_from_the_environment(monkeypatch) -> None:
    from schemas.errors import AugsvcError

    monkeypatch.delenv("AUGSVC_PROGRESS_EVERY", raising=False)
    assert gp.plain_every() == 10.0 and gp.plain_every(3) == 3
    monkeypatch.setenv("AUGSVC_PROGRESS_EVERY", "60")
    assert gp.PlainSteps("x").every == 60.0 and gp.plain_every(0) == 0
    monkeypatch.setenv("AUGSVC_PROGRESS_EVERY", "soon")
    with pytest.raises(AugsvcError, match="AUGSVC_PROGRESS_EVERY='soon': give seconds"):
        gp.plain_every()


def test_a_long_run_says_so_once_from_its_first_steps(monkeypatch) -> None:
    now = [0.0]
    monkeypatch.setattr(gp.time, "monotonic", lambda: now[0])
    buf = io.StringIO()
    rep = gp.PlainSteps("train-gan", every=1e9, out=buf, hint="fewer --epochs shortens it")
    rep(0, 62_500)  # the clock starts at the first report (a resumed run is timed on its own steps)
    for step in range(1, 8):
        now[0] += 1.0
        rep(step, 62_500)
    lines = buf.getvalue().splitlines()
    assert lines == [
        "train-gan: this run will take about 17 h 22 min at the pace of its first 5 steps (1 s per step, "
        "62,500 steps); fewer --epochs shortens it"
    ]
    clock = gp.StepClock()
    now[0] = 0.0
    clock.tick(0)
    now[0] = 10.0
    assert clock.long_run("x", 100, 120) is None  # 12 s in all: short runs say nothing


def test_train_off_a_terminal_prints_lines_within_an_epoch(tmp_path: Path) -> None:
    """``augsvc train`` through a pipe (a log, CI): step lines inside the epoch, not only one line per epoch."""
    import os
    import re
    import subprocess
    import sys

    import yaml

    from augsvc import api

    x = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", x=x, y=np.arange(12) % 2)
    api.ingest(tmp_path / "tiny.npz", "tiny", store=tmp_path / "store", workers=0)
    api.split("tiny", val=1 / 3, test=0.0, store=tmp_path / "store")  # 8 train rows, 4 val
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": "tiny", "epochs": 2, "batch_size": 2, "width": 0.25, "device": "cpu",
                                   "threads": 1}))  # fmt: skip
    # a line per step: the test does not wait 10 s (one OpenMP thread: spinning threads crawl on a busy machine)
    env = {**os.environ, "AUGSVC_PROGRESS_EVERY": "0", "OMP_NUM_THREADS": "1"}
    args = ["train", str(cfg), "--out", str(tmp_path / "run"), "--store", str(tmp_path / "store")]
    r = subprocess.run([sys.executable, "-m", "augsvc", *args], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("train: step ")]
    pattern = (r"train: step (\d+)/8 \(\d+%\), epoch ([12])/2, batch (\d)/4, loss [\d.e+-]+, acc [\d.]+, "
               r"rows/s [\d,]+; [\w ]+ elapsed")  # fmt: skip
    got = [re.match(pattern, x) for x in lines]
    assert lines and all(got), lines
    assert [m.group(3) for m in got if m.group(2) == "1"][:2] == ["1", "2"]  # within the first epoch, step by step
    assert any(m.group(2) == "2" for m in got) and "epoch 1/2: val acc" in r.stderr  # the epoch lines stay


def test_build_display_shows_model_work_inside_a_task() -> None:
    """A task's model work (a fine-tune) reports through the build's display instead of leaving it at 0/1."""
    from augsvc.progress import PlainProgress

    buf = io.StringIO()
    with PlainProgress("build out", every=0, out=buf) as bar:
        bar(0, 1)
        report = gp.task_progress("lambada fine-tune")
        for s in (1, 2, 3):
            report(s, 3, loss=2.0)
        bar(1, 1)
    out = buf.getvalue()
    assert "build out: lambada fine-tune: step 3/3 (100%), loss 2; " in out
    assert out.splitlines()[-1].startswith("build out: 1/1")
    lines = io.StringIO()
    outside = gp.task_progress("lambada fine-tune", every=0)  # no display open: plain lines of its own
    assert isinstance(outside, gp.PlainSteps)
    outside.out = lines
    outside(1, 2)
    assert lines.getvalue().startswith("lambada fine-tune: step 1/2 (50%)")


# -- stage reports as text ------------------------------------------------------------------------------------------


def test_stage_reports_print_as_tables_with_warning_lines() -> None:
    rep = {
        "train": {
            "checkpoint_sha256": "ab" * 32,
            "min_confidence": None,
            "classes": {
                "bar": {"candidates": 4, "kept": 4, "intended_fraction": 1.0},
                "dot": {"candidates": 4, "kept": 4, "intended_fraction": 0.0},
            },  # fmt: skip
            "warnings": ["class 'dot': the gate assigns only 0% of its 4 generated rows to 'dot'"],
        }
    }
    lines = report_lines("gan", rep)
    assert lines[0] == f"  stage gan, split train: checkpoint_sha256 {'ab' * 8}..., min_confidence none"
    assert lines[1].split() == ["classes", "candidates", "kept", "intended_fraction"]
    assert lines[3].split() == ["dot", "4", "4", "0"]
    assert (
        lines[-1]
        == "  WARNING stage gan, split train: class 'dot': the gate assigns only 0% of its 4 generated rows to 'dot'"
    )
    teacher = {"train": {"rows_scored": 10, "agreement": 0.3, "agreement_per_class": {"a": 0.5}},
               "warnings": ["split train: the teacher's argmax agrees with only 30%"]}  # fmt: skip
    assert report_warnings({"teacher": teacher}) == [
        "stage teacher: split train: the teacher's argmax agrees with only 30%"
    ]
    assert "    agreement_per_class: a 0.5" in report_lines("teacher", teacher)


# -- Ctrl-C ---------------------------------------------------------------------------------------------------------


def _toy_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def train(
        config: str,
        out: str = typer.Option("runs/x", "--out"),
        epochs: int = 10,
        resume: bool = typer.Option(False, "--resume"),
        quiet: bool = False,
    ):
        with on_interrupt(lambda: f"{out}/last.pt holds epoch 3 of {epochs}"):
            raise KeyboardInterrupt

    @app.command()
    def build(recipe: str, workers: int = 0):
        with on_interrupt(lambda: "nothing was published", rerun=True):
            raise KeyboardInterrupt

    return app


def test_interrupt_exits_130_with_what_was_kept_and_the_exact_command() -> None:
    app = _toy_app()
    r = CliRunner().invoke(app, ["train", "my config.yaml", "--out", "runs/a", "--epochs", "7", "--quiet"])
    assert r.exit_code == EXIT_INTERRUPTED
    assert r.stderr.strip() == (
        "interrupted: runs/a/last.pt holds epoch 3 of 7; resume with: augsvc train 'my config.yaml' --out runs/a "
        "--epochs 7 --quiet --resume"
    )
    r = CliRunner().invoke(app, ["train", "c.yaml", "--resume"])
    assert r.stderr.strip().endswith("resume with: augsvc train c.yaml --resume")  # --resume once
    r = CliRunner().invoke(app, ["build", "r.yaml", "--workers", "2"])
    assert r.exit_code == 130 and r.stderr.strip().endswith("resume with: augsvc build r.yaml --workers 2")
    assert command_line("--resume").startswith("augsvc ")  # outside a command: the process's own arguments


def _images_store(tmp_path: Path):
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    rng = np.random.default_rng(0)
    src = tmp_path / "raw"
    src.mkdir()
    np.savez(src / "train.npz", x=rng.integers(0, 255, (6, 12, 12), dtype=np.uint8), y=np.array(["a", "b"] * 3))
    store = Store(tmp_path / "store")
    ingest(src / "train.npz", name="shapes", store=store, options=IngestOptions(format="npz"), workers=0)
    return store


def test_ctrl_c_in_train_gan_train_build_and_tune(tmp_path: Path, monkeypatch) -> None:
    import torch
    import yaml

    import augsvc.api
    import augsvc.trainer.loop
    import augsvc.tune.search
    import generators.gan.train
    from augsvc.cli import app

    _images_store(tmp_path)
    at = str(tmp_path / "store")

    def gan_stops(X, y, names, out, cfg, **kw):
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": 1}, Path(out) / "last.pt")
        raise KeyboardInterrupt

    monkeypatch.setattr(generators.gan.train, "train_gan", gan_stops)
    out = tmp_path / "gan"
    r = CliRunner().invoke(app, ["models", "train-gan", "shapes", "--out", str(out), "--epochs", "5", "--store", at])
    assert r.exit_code == 130
    assert r.stderr.strip() == (
        f"interrupted: {out}/last.pt holds epoch 2 of 5 (gan.pt: the last sample grid's epoch); resume with: "
        f"augsvc models train-gan shapes --out {out} --epochs 5 --store {at} --resume"
    )

    def train_stops(cfg, store, out_dir, **kw):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(augsvc.trainer.loop, "train", train_stops)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": "shapes", "epochs": 3}))
    r = CliRunner().invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run"), "--store", at])
    assert r.exit_code == 130 and "no epoch had finished" in r.stderr
    assert r.stderr.strip().endswith(f"resume with: augsvc train {cfg} --out {tmp_path / 'run'} --store {at} --resume")

    monkeypatch.setattr(augsvc.api, "build", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"input": "shapes", "output": "flipped", "stages": [{"op": {"op": "hflip"}}]}))
    r = CliRunner().invoke(app, ["build", str(recipe), "--workers", "0", "--store", at])
    assert r.exit_code == 130
    assert "interrupted: nothing was published; 0 finished task(s) kept in " in r.stderr
    assert r.stderr.strip().endswith(f"resume with: augsvc build {recipe} --workers 0 --store {at}")

    monkeypatch.setattr(augsvc.tune.search, "tune_search", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    space = Path(__file__).resolve().parents[1] / "examples" / "tune_trec.yaml"
    r = CliRunner().invoke(app, ["tune", str(space), "--out", str(tmp_path / "t"), "--store", at])
    assert r.exit_code == 130 and f"kept in {tmp_path / 't' / 'search'}" in r.stderr
    assert r.stderr.strip().endswith(f"--out {tmp_path / 't'} --store {at} --resume")


@pytest.mark.parametrize("command", ["train-lm", "train-translator"])
def test_ctrl_c_in_text_model_training(tmp_path: Path, monkeypatch, command: str) -> None:
    import torch

    from augsvc.cli import app
    from generators.textgen import lm as M
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    src = tmp_path / "raw"
    src.mkdir()
    store = Store(tmp_path / "store")
    if command == "train-lm":
        (src / "t.tsv").write_text("label\ttext\n" + "".join(f"{'ab'[i % 2]}\tsome words {i}\n" for i in range(8)))
        ingest(src / "t.tsv", name="txt", store=store, options=IngestOptions(format="tsv"), workers=0)
        args = ["models", "train-lm", "txt"]
    else:
        for lang, w in (("en", "a dog"), ("de", "ein Hund")):
            (src / f"train.{lang}").write_text("".join(f"{w} {i}\n" for i in range(8)))
        ingest(src, name="par", store=store, options=IngestOptions(src_lang="en", tgt_lang="de"), workers=0)
        args = ["models", "train-translator", "par", "--src", "en", "--tgt", "de"]

    def stops(model, tok, examples, settings, *, out=None, on_step=None, **kw):
        on_step(1, settings.steps, 3.0)
        (Path(out) / "checkpoint").mkdir(parents=True)
        torch.save({"step": 10}, Path(out) / "checkpoint" / "state.pt")
        raise KeyboardInterrupt

    monkeypatch.setattr(M, "train", stops)
    out = tmp_path / "m"
    at = str(tmp_path / "store")
    r = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "20", "--vocab-size", "300", "--store", at])
    assert r.exit_code == 130, r.output
    assert f"interrupted: {out / 'checkpoint'} holds step 10 of 20; resume with: augsvc models {command}" in r.stderr
    assert r.stderr.strip().endswith("--steps 20 --vocab-size 300 --store " + at + " --resume")
