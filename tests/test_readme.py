"""Every command of README.md's usage sections (then docs/trainer.md's and docs/streaming.md's) runs as written,
in order, on a fresh store (issue 17).

The README reads real datasets from ``../shared/data``; this test writes tiny stand-ins with the same names and
formats under ``<tmp>/shared/data`` and runs the commands from ``<tmp>/work`` (a copy of ``examples/``), so the
relative paths resolve there and nothing outside the test is read. ``augsvc`` is this checkout's CLI.
Marked ``readme``; it runs in the default (CI) test selection.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.readme


#: docs whose command blocks continue the README's session (they assume its datasets); other docs blocks are
#: fragments (YAML snippets, a function signature, the data-flow diagram) or set-up, not commands.
DOCS_WITH_COMMANDS = ("docs/trainer.md", "docs/streaming.md")


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced shell or Python block after the set-up section (set-up installs packages)."""
    text = text[text.index("## Use") :] if "## Use" in text else text
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)
    return [(lang or "sh", body) for lang, body in blocks if lang in ("", "sh", "python")]


def _write_jpg(path: Path, rng: np.random.Generator, size: int = 32) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, 3)
    img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), img)


def make_shared_data(data: Path) -> None:
    """Tiny files with the names and formats of the README's datasets."""
    rng = np.random.default_rng(0)
    for c in ("daisy", "dandelion", "rose", "sunflower", "tulip"):
        for i in range(10):
            _write_jpg(data / "flowers5" / c / f"{c}{i:02d}.jpg", rng, size=24)
    (data / "flowers5" / "rose" / "broken.jpg").write_bytes(b"not a jpeg")  # --on-error skip quarantines it
    qs = ["How did serfdom develop ?", "What is caf\xe9 au lait ?", "Who wrote Hamlet ?", "Where is Rome ?",
          "When did it end ?", "Why is the sky blue ?"]  # fmt: skip
    labels = ["DESC:manner", "ENTY:food", "HUM:ind", "LOC:city", "NUM:date", "DESC:reason"]
    (data / "trec6").mkdir(parents=True)
    for name, n in (("TREC.train", 5), ("TREC.test", 2)):
        lines = [f"{labels[i % 6]} {qs[i % 6]} {j}" for i in range(6) for j in range(n)]
        (data / "trec6" / name).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (data / "sms_spam").mkdir()
    sms = ["Label\tSMS"] + [f"{'spam' if i % 4 == 0 else 'ham'}\tmessage number {i} here" for i in range(24)]
    (data / "sms_spam" / "SMSSpamCollection").write_text("\n".join(sms) + "\n")
    (data / "keel").mkdir()
    cols = ["Mcg", "Gvh", "Alm", "Mit", "Erl", "pox", "Vac", "Nuc"]
    rows = [",".join(cols + ["Class"])]
    for i in range(160):
        pos = i % 5 == 0
        x = rng.normal(0.6 if pos else 0.4, 0.1, len(cols)).round(2)
        rows.append(",".join(map(str, x)) + ("," + ("positive" if pos else "negative")))
    (data / "keel" / "yeast4.csv").write_text("\n".join(rows) + "\n")
    (data / "mnist10k").mkdir()
    n = 100
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    with gzip.open(data / "mnist10k" / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(np.array([0x803, n, 28, 28], ">u4").tobytes() + imgs.tobytes())
    with gzip.open(data / "mnist10k" / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(np.array([0x801, n], ">u4").tobytes() + (np.arange(n) % 10).astype(np.uint8).tobytes())
    (data / "multi30k").mkdir()
    for part in ("train", "val", "test_2016_flickr"):
        for lang, word in (("en", "a dog runs"), ("de", "ein Hund rennt")):
            with gzip.open(data / "multi30k" / f"{part}.{lang}.gz", "wt") as f:
                f.write("".join(f"{word} {i}\n" for i in range(6)))


def test_readme_commands_run_in_order(tmp_path):
    data = tmp_path / "shared" / "data"
    make_shared_data(data)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "augsvc"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m augsvc "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT),
               AUGSVC_STAGING=str(tmp_path / "staging"), NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1",
               MPLBACKEND="Agg")  # fmt: skip
    env.pop("AUGSVC_STORE", None)
    env.pop("RAY_ADDRESS", None)
    blocks = readme_blocks((ROOT / "README.md").read_text())
    for doc in DOCS_WITH_COMMANDS:
        blocks += readme_blocks((ROOT / doc).read_text())
    assert blocks, "README has no usage blocks"
    ran = 0
    for lang, body in blocks:
        if lang == "python":
            cmd = [sys.executable, "-c", body]
        else:
            lines = [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            if not lines:
                continue
            cmd = ["bash", "-euo", "pipefail", "-c", "\n".join(lines)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        print(f"{time.perf_counter() - t0:6.1f} s  {body.strip().splitlines()[0][:90]}")  # shown with pytest -s
        assert r.returncode == 0, f"README block failed:\n{body}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
        ran += 1
    assert ran >= 5
    assert (work / "grid.png").is_file() and (work / "compare.png").is_file()
    assert (work / "runs" / "base" / "metrics.csv").is_file() and (work / "runs" / "aug" / "best.pt").is_file()
    assert (work / "runs" / "fliprotate" / "best.pt").is_file()  # docs/trainer.md ran too
