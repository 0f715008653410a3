"""Every benchmark that ``make bench`` runs (and ``bench/train_loop.py``) runs to the end in its ``--quick`` mode.

A smoke test, not a timing: no rate or ratio is asserted. The benches read ``AUGSVC_SHARED_DATA``; this test points it
at tiny stand-ins of the shared datasets (``tests/test_readme.make_shared_data``) and sets ``AUGSVC_BENCH_TINY=1``, so
every bench shrinks to a few items and repeats and starts no Ray (``bench/_util.tiny``). All benches run in one
subprocess (imports of albumentations, torch and nlpaug are paid once) and each must write its JSON results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme import make_shared_data

ROOT = Path(__file__).resolve().parents[1]
# bench/efficacy_* and textgen_in_build train models (minutes): they are not part of `make bench`
BENCHES = ["ingest", "image_storage", "image_ops", "text_ops", "build", "smote", "mixing", "stream", "train_loop"]
BENCHES.append("service")

RUNNER = """
import runpy, sys, traceback
failed = []
for name, out in zip(sys.argv[1::2], sys.argv[2::2]):
    sys.argv = [f"bench/{name}.py", "--quick", "--json", out]
    try:
        runpy.run_path(f"bench/{name}.py", run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            failed.append(f"{name}: exit {e.code}")
    except Exception:
        traceback.print_exc()
        failed.append(f"{name}: {traceback.format_exc().splitlines()[-1]}")
if failed:
    sys.exit("failed: " + "; ".join(failed))
"""


def test_every_bench_runs_quick(tmp_path: Path) -> None:
    pytest.importorskip("nlpaug", reason="the bench extra is not installed: pip install -e '.[bench]'")
    data = tmp_path / "shared" / "data"
    make_shared_data(data)
    (data / "flowers5" / "rose" / "broken.jpg").unlink()  # the benches read clean inputs
    outs = {b: tmp_path / f"{b}.json" for b in BENCHES}
    env = os.environ | {"AUGSVC_SHARED_DATA": str(data), "AUGSVC_BENCH_TINY": "1", "PYTHONPATH": str(ROOT)}
    args = [x for b in BENCHES for x in (b, str(outs[b]))]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    for b, out in outs.items():
        assert out.exists(), f"bench/{b}.py --quick wrote no results"
        assert json.loads(out.read_text()), f"bench/{b}.py --quick wrote empty results"
