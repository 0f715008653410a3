"""The torch runtime (``generators/runtime.py``): one device resolver, one seeded session, atomic checkpoints."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from generators.runtime import (
    load_checkpoint,
    resolve_device,
    rng_state,
    save_checkpoint,
    seeded_session,
    set_rng_state,
)
from schemas.errors import AugsvcError

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = not torch.cuda.is_available()


# -- devices ------------------------------------------------------------------------------------------------------


def test_auto_is_cuda_when_present_else_cpu() -> None:
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(not NO_CUDA, reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_one_line(asked: str) -> None:
    with pytest.raises(AugsvcError, match=rf"^teacher: device '{asked}' asked for, but torch sees no CUDA GPU") as e:
        resolve_device(asked, what="teacher: device")
    assert "\n" not in str(e.value)


def test_unknown_and_absent_devices_are_one_line() -> None:
    with pytest.raises(AugsvcError, match=r"device 'gpu0' is not a device; use auto, cpu, cuda"):
        resolve_device("gpu0")
    if not torch.backends.mps.is_available():
        with pytest.raises(AugsvcError, match="no Apple MPS device"):
            resolve_device("mps")


@pytest.mark.skipif(not NO_CUDA, reason="checks the message on a machine without CUDA")
def test_train_cli_with_device_cuda_on_a_cpu_machine_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data: nothing\nepochs: 1\ndevice: cuda\n")
    args = ["train", str(cfg), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "r")]
    r = subprocess.run([sys.executable, "-m", "augsvc", *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: device 'cuda' asked for, but torch sees no CUDA GPU here; use auto or cpu"


# -- seeded sessions ----------------------------------------------------------------------------------------------


def _draws() -> tuple[float, float, float]:
    return float(torch.rand(1)), float(np.random.random()), random.random()


def test_session_seeds_torch_restores_the_callers_and_leaves_numpy_and_python_alone() -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    threads = torch.get_num_threads()
    expected = _draws()
    after = _draws()
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    with seeded_session(7, torch.device("cpu"), threads=1):
        assert torch.get_num_threads() == 1
        first = _draws()
        assert first[1:] == expected[1:]  # numpy's and Python's global generators: neither seeded nor reset
    with seeded_session(7):
        assert first[0] == float(torch.rand(1))  # same seed, same torch draws
    with seeded_session(8):
        assert first[0] != float(torch.rand(1))
    assert torch.get_num_threads() == threads
    # torch continues as if nothing had happened; numpy and Python where the session's own draws left them
    assert _draws() == (expected[0], *after[1:])


def test_session_restores_on_an_exception_and_with_no_seed() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    with pytest.raises(ValueError), seeded_session(1, threads=1):
        torch.rand(10)
        raise ValueError("boom")
    assert torch.equal(before, torch.get_rng_state()) and torch.get_num_threads() == threads
    with seeded_session(None):
        torch.rand(10)
    assert torch.equal(before, torch.get_rng_state())


def test_rng_state_round_trips_and_reads_the_old_form() -> None:
    with seeded_session(3):
        st = rng_state(torch.device("cpu"))
        assert set(st) == {"cpu"}  # torch's alone: nothing draws from numpy's or Python's global generators
        a = torch.rand(4)
        set_rng_state(st, torch.device("cpu"))
        assert torch.equal(torch.rand(4), a)
        old = torch.get_rng_state()  # checkpoints before the runtime stored torch's CPU state alone
        t = float(torch.rand(1))
        set_rng_state(old)
        assert float(torch.rand(1)) == t
        np.random.seed(1)
        np_before = np.random.get_state()[1].copy()
        set_rng_state({**st, "numpy": np.random.RandomState(5).get_state(), "python": random.Random(5).getstate()})
        assert (np.random.get_state()[1] == np_before).all()  # older checkpoints' numpy/python parts are ignored


# -- checkpoints --------------------------------------------------------------------------------------------------


def test_checkpoint_bytes_are_torch_saves_and_rng_travels(tmp_path: Path) -> None:
    state = {"w": torch.arange(6.0), "epoch": 2}
    save_checkpoint(tmp_path / "a.pt", state)
    torch.save(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes()[:4] == b"PK\x03\x04"
    assert load_checkpoint(tmp_path / "a.pt")["epoch"] == 2
    assert torch.equal(load_checkpoint(tmp_path / "b.pt")["w"], state["w"])  # files written before still load
    with seeded_session(4):
        save_checkpoint(tmp_path / "c.pt", state, rng_device=torch.device("cpu"))
        nxt = torch.rand(3)
    with seeded_session(99):
        load_checkpoint(tmp_path / "c.pt", restore_rng=torch.device("cpu"))
        assert torch.equal(torch.rand(3), nxt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "c.pt"]  # no temporary file left


def test_text_model_checkpoints_of_before_restore_their_torch_rng(tmp_path: Path) -> None:
    with seeded_session(6):
        torch.save({"step": 3, "torch_rng": torch.get_rng_state()}, tmp_path / "state.pt")  # the old text-model form
        nxt = float(torch.rand(1))
    with seeded_session(0):
        assert load_checkpoint(tmp_path / "state.pt", restore_rng=torch.device("cpu"))["step"] == 3
        assert float(torch.rand(1)) == nxt


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "last.pt"
    save_checkpoint(p, {"epoch": 1})

    def dies_halfway(obj, f, *a, **k):  # a kill or ENOSPC in the middle of torch.save
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(p, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(p)["epoch"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(
    "damage", [lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b'{"epoch": 1}', lambda b: b"PK\x03\x04junk"]
)
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path: Path, damage) -> None:
    p = tmp_path / "last.pt"
    save_checkpoint(p, {"w": torch.arange(1000)})
    p.write_bytes(damage(p.read_bytes()))
    with pytest.raises(AugsvcError, match=r"last\.pt: not a readable torch resume checkpoint \(truncated") as e:
        load_checkpoint(p, what="resume checkpoint", fix="delete it to start again without --resume")
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("; delete it to start again without --resume")
    with pytest.raises(AugsvcError, match=r"nope\.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_read_checkpoint_of_a_truncated_best_pt_is_one_line(tmp_path: Path) -> None:
    from generators.nets.classifier import read_checkpoint

    (tmp_path / "best.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(AugsvcError, match=r"best\.pt: not a readable torch classifier checkpoint .*augsvc train"):
        read_checkpoint(tmp_path)


# -- ownership ----------------------------------------------------------------------------------------------------


def _source_calls(needles: tuple[str, ...]) -> list[str]:
    hits = []
    for pkg in ("schemas", "generators", "pipelines", "augsvc"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == ROOT / "generators" / "runtime.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute):
                    dotted = ast.unparse(node)
                    if dotted in needles:
                        hits.append(f"{path.relative_to(ROOT)}:{node.lineno} {dotted}")
    return hits


def test_only_the_runtime_resolves_devices_seeds_and_writes_checkpoints() -> None:
    owned = ("torch.cuda.is_available", "torch.random.fork_rng", "torch.save", "torch.load", "torch.manual_seed",
             "torch.set_num_threads", "torch.set_rng_state", "torch.get_rng_state")  # fmt: skip
    assert _source_calls(owned) == []


def test_no_global_numpy_or_python_generator_anywhere() -> None:
    """Every draw takes an explicit generator (STYLE.md, habit 2): no call of numpy's or Python's module-level
    random functions in the four packages, the runtime included (it seeds torch's alone)."""
    hits = []
    for pkg in ("schemas", "generators", "pipelines", "augsvc"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name == "random" for a in node.names):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno} import random")
                if isinstance(node, ast.ImportFrom) and node.module in ("random", "numpy.random"):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module} import")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    module = ast.unparse(node.func.value)  # np.random.seed(...) -> np.random
                    explicit = ("default_rng", "Generator", "SeedSequence", "PCG64", "Philox", "BitGenerator")
                    if module in ("np.random", "numpy.random") and node.func.attr not in explicit:
                        hits.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}.{node.func.attr}")
    assert hits == []


def test_pretrain_does_not_import_the_loop() -> None:
    tree = ast.parse((ROOT / "augsvc" / "trainer" / "pretrain.py").read_text(encoding="utf-8"))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "augsvc.trainer.loop" not in mods
