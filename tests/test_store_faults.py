"""Fault injection, Lance style: every store mutation of an ingest, a split and a build fails in turn, before and
after it takes effect; each run ends in one line (or a published version), and a fresh process then sees only
complete versions and converges to the same id by running the job again. Plus kills between publish and tag,
stale staging, a read-only store, failing input and a store folder removed mid-run (no Ray: ``workers=0``)."""

from __future__ import annotations

import builtins
import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.split import split_version
from pipelines.store import Store
from schemas.errors import AugsvcError

ROWS = [("pos", f"a fine film number {i}") for i in range(6)] + [("neg", f"a dull film number {i}") for i in range(6)]
OPTS = {"format": "tsv", "shard_rows": 4}
RECIPE = {"seed": 3, "output": "aug", "stages": [{"op": {"op": "random_swap", "aug_p": 0.5}, "copies": 2}]}
ERRNOS = (errno.EIO, errno.ENOSPC, errno.EXDEV, errno.EROFS)


def _data(tmp: Path) -> Path:
    data = tmp / "t.tsv"
    data.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, t in ROWS))
    return data


def run_job(job: str, root: Path, data: Path, parent: str) -> str:
    """Run one job (``workers=0``); returns the version it published or found."""
    store = Store(root)
    if job == "ingest":
        return ingest(data, name="t", store=store, options=IngestOptions(**OPTS), workers=0).manifest.version
    if job == "split":
        return split_version(store, parent, val=0.25, test=0.25, seed=0).manifest.version
    return build(load_recipe(RECIPE | {"input": parent}), store, workers=0).version


class Faults:
    """Counts store mutations (writes, renames, folder creation) and fails the ``fail_at``-th one (or, with
    ``read_only``, every one)."""

    def __init__(
        self, fail_at: int | None = None, after: bool = False, code: int = errno.EIO, read_only: bool = False
    ) -> None:
        self.calls = 0
        self.fail_at, self.after, self.code, self.read_only = fail_at, after, code, read_only
        self.hit: str | None = None

    def _tick(self, what: str, fn, *args, **kwargs):
        k = self.calls
        self.calls += 1
        if k != self.fail_at and not self.read_only:
            return fn(*args, **kwargs)
        self.hit = what
        if self.after:
            fn(*args, **kwargs)
        raise OSError(self.code, os.strerror(self.code), str(args[0]) if args else None)

    def install(self, mp: pytest.MonkeyPatch) -> None:
        real_open, real_write, real_mkdir = builtins.open, pathlib.Path.write_bytes, os.mkdir
        real_replace, real_rename, real_mkstemp = os.replace, os.rename, tempfile.mkstemp

        def opener(file, mode="r", *a, **k):
            if any(c in mode for c in "wax+"):
                return self._tick(f"open {file}", real_open, file, mode, *a, **k)
            return real_open(file, mode, *a, **k)

        mp.setattr(builtins, "open", opener)
        mp.setattr(pathlib.Path, "write_bytes", lambda p, d: self._tick(f"write {p}", real_write, p, d))
        mp.setattr(os, "mkdir", lambda p, *a, **k: self._tick(f"mkdir {p}", real_mkdir, p, *a, **k))
        mp.setattr(os, "replace", lambda a, b, **k: self._tick(f"replace {b}", real_replace, a, b, **k))
        mp.setattr(os, "rename", lambda a, b, **k: self._tick(f"rename {b}", real_rename, a, b, **k))
        mp.setattr(tempfile, "mkstemp", lambda *a, **k: self._tick("mkstemp", real_mkstemp, *a, **k))


CHECK = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from pipelines.store import Store
    from tests.test_store_faults import run_job
    job, data, parent, expected, roots = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
    report = {}
    for root in roots:
        store = Store(root)
        visible = {ds: store.versions(ds) for ds in ("t", "aug")}
        bad = {f"{ds}@{v}": store.verify(ds, v) for ds, vs in visible.items() for v in vs if store.verify(ds, v)}
        again = run_job(job, Path(root), data, parent)
        report[root] = {"visible": visible, "bad": bad, "again": again,
                        "latest": store.resolve("aug" if job == "build" else "t")[1],
                        "verify": store.verify("aug" if job == "build" else "t", again)}
    print(json.dumps(report), flush=True)
    os._exit(0)  # skip interpreter teardown: a native thread pool aborted there once (SIGABRT after the output)
    """
)


@pytest.mark.parametrize("job", ["ingest", "split", "build"])
def test_each_mutation_fails_in_turn(job: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp_path)
    base = tmp_path / "base"
    parent = "t@" + run_job("ingest", base, data, "") if job != "ingest" else ""
    shutil.rmtree(base / "t" / ".staging", ignore_errors=True)
    # a clean run: how many mutations, and the id every rerun must reach
    clean = tmp_path / "clean"
    shutil.copytree(base, clean) if base.exists() else None
    counter = Faults()
    with monkeypatch.context() as mp:
        counter.install(mp)
        expected = run_job(job, clean, data, parent)
    assert counter.calls >= 4
    roots, outcomes = [], []
    for k in range(counter.calls):
        for after in (False, True):
            root = tmp_path / f"case-{k}-{int(after)}"
            shutil.copytree(base, root) if base.exists() else None
            fault = Faults(k, after, ERRNOS[k % len(ERRNOS)])
            with monkeypatch.context() as mp:
                fault.install(mp)
                try:
                    got = run_job(job, root, data, parent)
                    outcomes.append(("published", fault.hit))
                    assert got == expected
                except AugsvcError as e:
                    msg = str(e)
                    assert "\n" not in msg, msg
                    assert "published" in msg or "cannot" in msg, f"{fault.hit}: {msg}"
                    outcomes.append(("failed", fault.hit))
            roots.append(str(root))
    assert any(o == "failed" for o, _ in outcomes) and any(o == "published" for o, _ in outcomes)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK, job, str(data), parent, expected, *roots],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    parent_vid = parent.partition("@")[2]
    for root, r in report.items():
        assert r["bad"] == {}, root  # only complete versions are visible
        assert set(r["visible"]["t"] + r["visible"]["aug"]) <= {expected, parent_vid}, root
        assert r["again"] == expected and r["latest"] == expected and r["verify"] == [], root


KILL_AFTER_RENAME = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pipelines.store import Store
    Store.mark_latest = lambda self, dataset, version: os._exit(9)  # killed between the rename and the tag write
    from tests.test_store_faults import run_job
    run_job("ingest", Path(sys.argv[1]), Path(sys.argv[2]), "")
    """
)


def test_kill_between_publish_and_latest(tmp_path: Path) -> None:
    data = _data(tmp_path)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parent.parent)}
    p = subprocess.run([sys.executable, "-c", KILL_AFTER_RENAME, str(tmp_path / "s"), str(data)], env=env)
    assert p.returncode == 9
    store = Store(tmp_path / "s")
    (vid,) = store.versions("t")
    assert not (tmp_path / "s" / "t" / "tags" / "latest").exists()
    assert store.resolve("t") == ("t", vid)  # latest is derived
    assert run_job("ingest", tmp_path / "s", data, "") == vid  # the rerun repairs the tag
    assert (tmp_path / "s" / "t" / "tags" / "latest").read_text().strip() == vid


def test_tag_write_failure_after_publish_is_a_warning(tmp_path: Path, monkeypatch, caplog) -> None:
    data = _data(tmp_path)
    real = Store._write

    def no_tags(self, body, *parts):
        if "tags" in parts:
            raise OSError(errno.EIO, "Input/output error", parts[-1])
        return real(self, body, *parts)

    monkeypatch.setattr(Store, "_write", no_tags)
    vid = run_job("ingest", tmp_path / "s", data, "")  # published: no exception
    assert "tags/latest was not updated" in caplog.text
    assert Store(tmp_path / "s").resolve("t") == ("t", vid)


KILLED_INGEST = textwrap.dedent(
    """
    import os, sys
    import pyarrow as pa
    from pipelines.store import Store
    st = Store(sys.argv[1]).staging("t")
    st.write_shard(pa.table({"x": [1, 2]}))
    os._exit(9)
    """
)


def test_stale_staging_is_reclaimed_but_live_staging_is_not(tmp_path: Path) -> None:
    root = tmp_path / "s"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parent.parent)}
    for _ in range(2):
        assert subprocess.run([sys.executable, "-c", KILLED_INGEST, str(root)], env=env).returncode == 9
    store = Store(root)
    live = store.staging("t")  # this process holds it
    stale = sorted(p for p in (root / "t" / ".staging").iterdir() if p.is_dir() and p != live.dir)
    assert len(stale) == 2
    assert store.reclaim_staging("t") == []  # too young to be reclaimed automatically
    old = time.time() - 3600
    os.utime(stale[0], (old, old))
    store.staging("t").discard()  # the next job reclaims what is old and unlocked
    assert not stale[0].exists() and stale[1].exists() and live.dir.exists()
    assert store.reclaim_staging("t", min_age_s=0) == [stale[1].name]
    assert live.dir.exists()
    live.discard()
    assert [p.name for p in (root / "t" / ".staging").iterdir()] == []


def test_read_only_store_reingest_is_up_to_date(tmp_path: Path, monkeypatch, caplog) -> None:
    data = _data(tmp_path)
    root = tmp_path / "s"
    vid = run_job("ingest", root, data, "")
    store = Store(root)
    store.set_tag("t", "latest", vid)
    fault = Faults(code=errno.EROFS, read_only=True)
    with monkeypatch.context() as mp:
        fault.install(mp)
        assert run_job("ingest", root, data, "") == vid  # latest already right: nothing to write
        assert fault.hit is None
    other = run_job("split", root, data, f"t@{vid}")  # latest now points elsewhere
    with monkeypatch.context() as mp:
        fault = Faults(code=errno.EROFS, read_only=True)
        fault.install(mp)
        assert run_job("ingest", root, data, "") == vid  # up to date; the tag cannot move: a warning
        assert "tags/latest was not updated" in caplog.text
        with pytest.raises(AugsvcError, match="build failed in store .*Read-only file system.*nothing was published"):
            run_job("build", root, data, f"t@{other}")


def test_input_error_and_store_removed_mid_run_are_one_line(tmp_path: Path, monkeypatch) -> None:
    data = _data(tmp_path)
    real_open = builtins.open

    def eio(file, mode="r", *a, **k):
        if str(file) == str(data):
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real_open(file, mode, *a, **k)

    with monkeypatch.context() as mp:
        mp.setattr(builtins, "open", eio)
        with pytest.raises(AugsvcError) as e:
            run_job("ingest", tmp_path / "s", data, "")
    assert "\n" not in str(e.value) and "t.tsv" in str(e.value)
    vid = run_job("ingest", tmp_path / "s", data, "")
    import pipelines.stages.op as op_stage

    task = op_stage.rows_task

    def move_store_away(*a, **k):
        if (tmp_path / "s").exists():
            (tmp_path / "s").rename(tmp_path / "moved")
        return task(*a, **k)

    monkeypatch.setattr(op_stage, "rows_task", move_store_away)
    with pytest.raises(AugsvcError) as e:
        build(load_recipe(RECIPE | {"input": f"t@{vid}"}), Store(tmp_path / "s"), workers=0)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("build failed") and "nothing was published" in msg
