"""Tampered versions: verify, the stream, build and split all refuse them with one-line errors, and nothing outside
the store is ever read through a store file or a name (no Ray: everything runs with ``workers=0``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from augsvc.stream import Stream
from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.split import split_version
from pipelines.store import Store
from schemas.errors import AugsvcError

ROWS = [("pos", f"a fine film number {i}") for i in range(6)] + [("neg", f"a dull film number {i}") for i in range(6)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store with one text version of 12 rows in 3 shards; (store root, version)."""
    tmp = tmp_path_factory.mktemp("tamper")
    data = tmp / "t.tsv"
    data.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, t in ROWS))
    store = Store(tmp / "store")
    rep = ingest(data, name="t", store=store, options=IngestOptions(format="tsv", shard_rows=4), workers=0)
    assert len(rep.manifest.shards) == 3
    return store.root, rep.manifest.version


@pytest.fixture
def store(clean: tuple[Path, str], tmp_path: Path) -> Store:
    shutil.copytree(clean[0], tmp_path / "store")
    return Store(tmp_path / "store")


def _edit(store: Store, vid: str, change: Callable[[dict], None]) -> None:
    path = store.version_dir("t", vid) / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def _shard(store: Store, vid: str, i: int) -> Path:
    return store.version_dir("t", vid) / "shards" / f"part-{i:05d}.parquet"


def _flip(store: Store, vid: str) -> None:
    p = _shard(store, vid, 1)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def _swap(store: Store, vid: str) -> None:  # same row count, other rows: only the hash can tell
    shutil.copyfile(_shard(store, vid, 2), _shard(store, vid, 0))


def _manifest_bytes(data: Callable[[bytes], bytes]) -> Callable[[Store, str], None]:
    def tamper(store: Store, vid: str) -> None:
        p = store.version_dir("t", vid) / "manifest.json"
        p.write_bytes(data(p.read_bytes()))

    return tamper


def _rows_one_shard(store: Store, vid: str) -> None:  # totals no longer add up
    _edit(store, vid, lambda m: m["shards"][0].update(rows=3))


def _rows_consistently(store: Store, vid: str) -> None:  # every total edited too: only the Parquet footer tells
    def change(m: dict) -> None:
        m["shards"][0]["rows"] -= 1
        m["rows"] -= 1
        m["rows_per_class"]["neg"] -= 1
        m["rows_per_split"]["train"] -= 1
        m["splits"]["train"]["neg"] -= 1

    _edit(store, vid, change)


def _cut_classes(store: Store, vid: str) -> None:
    _edit(store, vid, lambda m: m.update(class_names=m["class_names"][:1]))


def _outside(kind: str) -> Callable[[Store, str], None]:
    """Point shard 0 at an exact copy outside the version (same bytes, size and sha256)."""

    def tamper(store: Store, vid: str) -> None:
        outside = store.root.parent / "outside.parquet"
        shutil.copyfile(_shard(store, vid, 0), outside)
        path = str(outside) if kind == "absolute" else "shards/../../../outside.parquet"
        _edit(store, vid, lambda m: m["shards"][0].update(path=path))

    return tamper


def _definition(store: Store, vid: str) -> None:
    _edit(store, vid, lambda m: m["definition"].update(kind="other"))


TAMPERS = {
    "byte_flip": _flip,
    "shard_swap": _swap,
    "truncated_manifest": _manifest_bytes(lambda b: b[: len(b) // 2]),
    "empty_manifest": _manifest_bytes(lambda b: b""),
    "brace_manifest": _manifest_bytes(lambda b: b"{"),
    "binary_manifest": _manifest_bytes(lambda b: b"\xff\xfe" + b[2:]),
    "edited_shard_rows": _rows_one_shard,
    "edited_rows_consistently": _rows_consistently,
    "cut_class_names": _cut_classes,
    "absolute_shard_path": _outside("absolute"),
    "relative_escape_path": _outside("relative"),
    "edited_definition": _definition,
}


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg, msg
    return msg


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_verify_stream_build_and_split_refuse(name: str, store: Store, clean: tuple[Path, str]) -> None:
    vid = clean[1]
    ref = f"t@{vid}"
    assert store.verify("t", vid) == []
    TAMPERS[name](store, vid)
    problems = store.verify("t", vid)
    assert problems and all("\n" not in p for p in problems)
    with pytest.raises(AugsvcError) as e:
        list(Stream(ref, store=store, shuffle=False, batch_size=4))
    _one_line(e)
    recipe = load_recipe({"input": ref, "output": "aug", "seed": 1, "stages": [{"op": {"op": "random_swap"}}]})
    with pytest.raises(AugsvcError) as e:
        build(recipe, store, workers=0)
    assert "outside.parquet" not in _one_line(e) or name.endswith("path")
    with pytest.raises(AugsvcError) as e:
        split_version(store, ref, val=0.25, test=0.25, seed=0)
    _one_line(e)
    assert store.versions("aug") == [] and store.versions("t") == [vid]  # nothing derived from it


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from augsvc.cli import main; main()", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("name", ["brace_manifest", "absolute_shard_path", "byte_flip"])
def test_cli_gives_one_line(name: str, store: Store, clean: tuple[Path, str]) -> None:
    vid = clean[1]
    TAMPERS[name](store, vid)
    where = ["--store", str(store.root)]
    show = _cli("show", "t", *where)
    verify = _cli("verify", "t", *where)
    assert verify.returncode == 1 and "FAILED" in verify.stdout and "Traceback" not in verify.stderr
    ls = _cli("ls", "t", *where)
    assert ls.returncode == 0 and vid in ls.stdout
    if name == "byte_flip":  # the manifest itself is fine: show works, the shard check is verify's
        assert show.returncode == 0
        return
    assert show.returncode == 2 and show.stderr.count("\n") == 1 and show.stderr.startswith("error: ")
    assert "damaged" in ls.stdout


def test_tags_names_and_ids_stay_inside_the_store(store: Store, clean: tuple[Path, str], tmp_path: Path) -> None:
    vid = clean[1]
    other = Store(tmp_path / "other")
    shutil.copytree(store.root / "t", other.root / "u")  # another store's dataset, reachable by a relative path
    tags = store.root / "t" / "tags"
    # a tag file holding a path (or anything but a version id) is refused, not followed
    for content in (str(other.root / "u" / vid), "../../other/u/" + vid, "", "0123456789abcdef"):
        (tags / "evil").write_text(content + "\n")
        with pytest.raises(AugsvcError, match="evil") as e:
            store.resolve("t@evil")
        _one_line(e)
    (tags / "latest").write_text(str(other.root / "u" / vid))
    with pytest.raises(AugsvcError, match="not a version id"):
        store.resolve("t")
    # dataset names cannot climb out of the store, or end in a newline
    for name in ("../other/u", "..", "t/..", "t\n", "/etc"):
        with pytest.raises(AugsvcError, match="not valid"):
            store.versions(name)
        with pytest.raises(AugsvcError, match="not valid"):
            store.resolve(name)
    ls = _cli("ls", "../other/u", "--store", str(store.root))
    assert ls.returncode == 2 and ls.stdout == "" and "not valid" in ls.stderr
    # tags shaped like ids are refused; an exact id resolves before a tag file of that name
    (tags / "latest").write_text(vid + "\n")
    for bad in ("prod\n", "0123456789abcdef", "../x"):
        with pytest.raises(AugsvcError):
            store.set_tag("t", bad, vid)
    store.set_tag("t", "prod", vid)
    assert store.resolve("t@prod") == ("t", vid)
    (tags / vid).write_text("0123456789abcdef\n")  # a shadowing tag file written by hand
    assert store.resolve(f"t@{vid}") == ("t", vid)


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the sha256 computations of shard checks (``storeshards.check_shard``)."""
    from pipelines import storeshards

    calls: list[int] = []
    real = storeshards.sha256_bytes

    def counted(data: bytes) -> str:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(storeshards, "sha256_bytes", counted)
    return calls


def test_unchanged_shard_is_hashed_once_per_process(
    store: Store, clean: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_hashes(monkeypatch)
    m = store.manifest("t", clean[1])
    first = store.read_verified_shard("t", clean[1], m.shards[1])
    assert len(calls) == 1
    again = Store(store.root).read_verified_shard("t", clean[1], m.shards[1])  # another handle, same process
    assert len(calls) == 1 and again.equals(first)
    assert list(Stream("t", store=store, shuffle=False)) and len(calls) == 3  # shards 0 and 2 are new, 1 is not
    assert store.verify("t", clean[1]) == [] and len(calls) == 6  # verify always hashes


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["mtime-changed", "mtime-put-back"])
def test_shard_modified_after_a_verified_read_is_refused(
    keep_mtime: bool, store: Store, clean: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    calls = _count_hashes(monkeypatch)
    m = store.manifest("t", clean[1])
    store.read_verified_shard("t", clean[1], m.shards[1])
    p = _shard(store, clean[1], 1)
    before = p.stat()
    _flip(store, clean[1])  # same size, other bytes
    if keep_mtime:  # ctime still moves, so the memo does not trust the file
        os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    with pytest.raises(AugsvcError, match="shard shards/part-00001.parquet does not match its sha256"):
        store.read_verified_shard("t", clean[1], m.shards[1])
    assert len(calls) == 2
