"""Issue 17: what a new user trips over (execution choice, split advice, progress lines, small truths)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pipelines.executor import SMALL_BYTES, choose_workers
from schemas.errors import AugsvcError


def test_choose_workers_small_jobs_run_in_process():
    n, why = choose_workers(20, 1_500_000, None, None, 10_000)
    assert n == 0 and "in-process" in why and "--workers" in why
    n, why = choose_workers(1, 10 * SMALL_BYTES, None, None, None)  # one task: nothing to parallelise
    assert n == 0


def test_choose_workers_large_jobs_and_overrides(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    n, why = choose_workers(100, 2 * SMALL_BYTES, None, None, None)
    assert n == 4 and "Ray" in why
    assert choose_workers(100, 2 * SMALL_BYTES, 0, None)[0] == 0  # --workers 0 wins
    assert choose_workers(2, 10, 3, None)[0] == 3  # --workers 3 wins over "small"
    assert choose_workers(2, 10, None, "ray://x:10001")[0] == 4  # a cluster address means Ray
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert choose_workers(2, 10, None, None)[0] == 4


def test_ingest_small_input_says_in_process(tmp_path, capsys):
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), y=np.arange(30) % 3)
    rep = ingest(tmp_path / "d.npz", name="d", store=Store(tmp_path / "s"), options=IngestOptions())
    assert rep.ray_start_seconds == 0.0
    assert "running in-process" in capsys.readouterr().err


def test_split_without_train_rows_gives_advice_that_works(tmp_path):
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.split import split_version
    from pipelines.store import Store

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 2)
    s = Store(tmp_path / "s")
    ingest(tmp_path / "d.npz", name="d", store=s, options=IngestOptions(split="test"), workers=0)
    with pytest.raises(AugsvcError, match="--split train"):
        split_version(s, "d", val=0.1, test=0.2, seed=0)
    ingest(tmp_path / "d.npz", name="d", store=s, options=IngestOptions(split="train"), workers=0)
    r = split_version(s, "d", val=0.1, test=0.2, seed=0)
    assert set(r.manifest.splits) == {"train", "val", "test"}


def test_plain_progress_prints_lines_not_blanks():
    from augsvc.progress import PlainProgress

    out = io.StringIO()
    with PlainProgress("ingest x", every=0.0, out=out) as update:
        update(5, 10)
        update(10, 10)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ingest x: 5/10") and lines[-1].startswith("ingest x: 10/10") and "done" in lines[-1]
    assert all(line.strip() for line in lines)


@pytest.fixture
def split_store(tmp_path):
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.split import split_version
    from pipelines.store import Store

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 2)
    s = Store(tmp_path / "s")
    ingest(tmp_path / "d.npz", name="d", store=s, options=IngestOptions(), workers=0)
    split_version(s, "d", val=0.25, test=0.25, seed=0)
    return s


def test_stream_over_eval_splits_defaults_to_train_and_says_so(split_store):
    from augsvc.stream import Stream

    m = split_store.manifest(*split_store.resolve("d"))
    with pytest.warns(UserWarning, match="split='train'"):
        st = Stream("d", store=split_store, batch_size=100, columns=["split"])
    got = np.concatenate([b["split"] for b in st])
    assert set(got) == {"train"} and len(got) == m.rows_per_split["train"]
    every = np.concatenate([b["split"] for b in Stream("d", store=split_store, batch_size=100, split="all",
                                                        columns=["split"])])  # fmt: skip
    assert len(every) == m.rows
    with pytest.raises(AugsvcError, match="did you mean 'train'"):
        Stream("d", store=split_store, split="trian")


def test_streamed_batches_have_no_teacher_logits_column_of_nones(split_store):
    from augsvc.stream import Stream

    b = next(iter(Stream("d", store=split_store, split="train", batch_size=8)))
    assert "teacher_logits" not in b and "image" in b


def test_op_descriptions_name_only_parameters_the_op_accepts():
    """`augsvc ops` prints each op's first doc line: a ``name`` written there must be a parameter (issue 17:
    random_swap/random_crop described an ``n`` they reject), unless it is a value the op draws (``..._range``)."""
    import re

    from pipelines.transforms.base import registry

    for name, cls in registry().items():
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        for word in re.findall(r"``([a-z_]+)``", doc):
            drawn = re.search(rf"``{word}`` drawn", doc) or f"{word}_range" in cls.model_fields
            assert word in cls.model_fields or drawn, f"{name}: doc names {word!r}, which is not a parameter"


def test_training_reports_are_one_based_pinned_and_name_the_best_epoch(tmp_path, capsys):
    import csv

    import yaml

    from augsvc.trainer.loop import load_config, train
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.split import split_version
    from pipelines.store import Store

    rng = np.random.default_rng(0)
    lines = ["x1,x2,Class"] + [f"{rng.normal(2 * (i % 2)):.3f},{rng.normal():.3f},{'ab'[i % 2]}" for i in range(80)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    s = Store(tmp_path / "s")
    ingest(tmp_path / "t.csv", name="t", store=s, options=IngestOptions(format="tabular"), workers=0)
    split_version(s, "t", val=0.25, test=0.0, seed=0)
    summary = train(load_config({"data": "t", "epochs": 3, "lr": 0.01}), s, tmp_path / "r", progress=True)
    with open(tmp_path / "r" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    accs = [float(r["val_acc"]) for r in rows]
    assert summary["best_epoch"] == 1 + accs.index(max(accs))
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    ds, v = s.resolve("t")
    assert saved["data"] == f"{ds}@{v}" and saved["val_data"] == f"{ds}@{v}" and saved["model"] == "mlp"
    assert load_config(tmp_path / "r" / "config.yaml").epochs == 3
    err = capsys.readouterr().err  # no terminal here: one plain line per epoch, the first with an estimate
    assert "epoch 1/3" in err and "s for the 2 epoch(s) left" in err and "epoch 3/3" in err


def test_every_typed_name_gets_the_same_suggestions(tmp_path):
    from augsvc.trainer.config import load_config
    from pipelines.recipes import load_recipe
    from pipelines.transforms.base import get_op_class

    with pytest.raises(AugsvcError, match="did you mean 'hflip'"):
        get_op_class("hflpi")
    f = tmp_path / "r.yaml"
    f.write_text("input: a\noutput: b\nstages:\n  - op: {op: hflip}\n    copy: 2\n")
    with pytest.raises(AugsvcError, match=r"stages\[0\]: unknown key 'copy' \(did you mean 'copies'\?\)"):
        load_recipe(f)
    with pytest.raises(AugsvcError, match="did you mean 'epochs'"):
        load_config({"data": "x", "epoch": 3})


def test_json_mode_silences_status_lines_only_while_it_runs(capsys):
    from augsvc.progress import progress
    from pipelines.executor import status

    with progress("x", quiet=True) as update:
        update(1, 2)
        status("hidden")
    status("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "shown" in err
