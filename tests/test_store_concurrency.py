"""Concurrent writers on one store, as separate processes running the CLI (``--workers 0``, no Ray).

N identical builds, a different build, identical ingests and identical splits start at the same moment (a file
barrier after start-up) with every build task slowed down, so they overlap: each must exit 0, identical jobs publish
one version, the others report it up to date, and every version verifies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store

ROWS = [("pos", f"a fine film number {i} with a good cast") for i in range(12)]
ROWS += [("neg", f"a dull film number {i} with a tired plot") for i in range(12)]

# the CLI, after waiting at a barrier; build tasks are slowed so that identical builds overlap
CLI = """
import os, sys, time
from pathlib import Path
import pipelines.stages.op as runner  # where op-step tasks live
task = runner.rows_task
def slow(*a, **k):
    time.sleep(0.4)
    return task(*a, **k)
runner.rows_task = slow
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
sys.argv = ["augsvc", *sys.argv[2:]]
from augsvc.cli import main
main()
"""


def _recipe(path: Path, parent: str, seed: int) -> Path:
    stage = {"op": {"op": "random_swap", "aug_p": 0.5}, "copies": 2}
    path.write_text(yaml.safe_dump({"input": parent, "output": "aug", "seed": seed, "stages": [stage]}))
    return path


def test_identical_and_different_jobs_at_once(tmp_path: Path) -> None:
    data = tmp_path / "t.tsv"
    data.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, t in ROWS))
    other = tmp_path / "u.tsv"
    other.write_text("label\ttext\n" + "".join(f"{lab}\t{t} again\n" for lab, t in ROWS))
    store = Store(tmp_path / "store")
    rep = ingest(data, name="t", store=store, options=IngestOptions(format="tsv", shard_rows=6), workers=0)
    parent = f"t@{rep.manifest.version}"  # exact: the splits below move t's latest
    r1, r2 = _recipe(tmp_path / "r1.yaml", parent, 1), _recipe(tmp_path / "r2.yaml", parent, 2)
    common = ["--store", str(store.root), "--json"]
    jobs = (
        [("build1", ["build", str(r1), "--workers", "0", *common])] * 3
        + [("build2", ["build", str(r2), "--workers", "0", *common])]
        + [("ingest", ["ingest", str(other), "--name", "u", "--format", "tsv", "--workers", "0", *common])] * 3
        + [("split", ["split", parent, "--val", "0.25", "--test", "0.25", *common])] * 2
    )
    go = tmp_path / "go"
    procs = [
        (kind, subprocess.Popen([sys.executable, "-c", CLI, str(go), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True))
        for kind, args in jobs
    ]  # fmt: skip
    time.sleep(1.0)  # let every process import and reach the barrier
    go.touch()
    results: dict[str, list[dict]] = {}
    for kind, p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"{kind} exited {p.returncode}: {err[-2000:]}"
        assert "Traceback" not in err
        results.setdefault(kind, []).append(json.loads(out.strip().splitlines()[-1]))
    for kind in results:  # one version per content
        assert len({r["version"] for r in results[kind]}) == 1, kind
    # identical builds serialise on the build lock: one publishes, the others wait and find it up to date
    assert sorted(r["up_to_date"] for r in results["build1"]) == [False, True, True]
    assert results["build2"][0]["version"] != results["build1"][0]["version"]
    fresh = Store(store.root)
    assert sorted(fresh.versions("aug")) == sorted({results["build1"][0]["version"], results["build2"][0]["version"]})
    assert fresh.versions("u") == [results["ingest"][0]["version"]]
    assert len(fresh.versions("t")) == 2  # the ingested version and its split child
    for ds in ("aug", "u", "t"):
        for v in fresh.versions(ds):
            assert fresh.verify(ds, v) == [], f"{ds}@{v}"
    # nothing is left in staging but the (empty) lock files of the builds
    for ds in ("aug", "u", "t"):
        left = (
            [p.name for p in (store.root / ds / ".staging").iterdir()]
            if (store.root / ds / ".staging").exists()
            else []
        )
        assert all(n.startswith("build-") and n.endswith(".lock") for n in left), left
