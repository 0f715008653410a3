"""Fuzz every ingest reader (issue 16): truncations, bit flips, wrong magic, huge fields, deep nesting, NULs and
wrong types, in both error modes. A run must end in an AugsvcError of one line, or in a published version whose
quarantine accounts for every bad item: the first bad item that ``on_error="fail"`` stops at is in the skip-mode
quarantine, no item is both a row and quarantined, and for line formats and image folders rows + quarantined items
equal the items of the input. Seeded and bounded (a few seconds)."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
from schemas.errors import AugsvcError

MUTANTS_PER_FORMAT = int(os.environ.get("AUGSVC_FUZZ_MUTANTS", "8"))  # more for a deeper local run


def _img(ext: str, rng: np.random.Generator, h: int = 12, w: int = 10) -> bytes:
    return cv2.imencode(ext, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))[1].tobytes()


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _idx(rng: np.random.Generator, n: int = 6) -> tuple[bytes, bytes]:
    images = b"\0\0\x08\x03" + struct.pack(">III", n, 5, 5) + rng.integers(0, 256, n * 25, dtype=np.uint8).tobytes()
    labels = b"\0\0\x08\x01" + struct.pack(">I", n) + bytes(i % 3 for i in range(n))
    return images, labels


def corpus(rng: np.random.Generator) -> dict[str, tuple[dict[str, bytes], str, str, dict]]:
    """format -> (files {relative path: bytes}, the path to ingest, the file to mutate, ingest options)."""
    csv_text = b'label,text\nham,"hello, there"\nspam,win a "prize" now\nham,"two\nlines"\nspam,last one\n'
    images, labels = _idx(rng)
    return {
        "images": (
            {
                "d/a/x.jpg": _img(".jpg", rng),
                "d/a/y.png": _img(".png", rng),
                "d/b/z.webp": _img(".webp", rng),
                "d/b/w.bmp": _img(".bmp", rng),
            },
            "d",
            "*",
            {},
        ),  # fmt: skip
        "images_labels_file": (
            {
                "d/1.png": _img(".png", rng),
                "d/2.jpg": _img(".jpg", rng),
                "labels.csv": b"file,label\n1.png,a\n2.jpg,b\n",
            },
            "d",
            "labels.csv",
            {"labels_file": "labels.csv"},
        ),  # fmt: skip
        "idx": ({"d/train-images-idx3-ubyte": images, "d/train-labels-idx1-ubyte": labels}, "d", "*", {}),
        "idx_gz": (
            {
                "d/train-images-idx3-ubyte.gz": gzip.compress(images, mtime=0),
                "d/train-labels-idx1-ubyte.gz": gzip.compress(labels, mtime=0),
            },
            "d",
            "*",
            {},
        ),  # fmt: skip
        "npz": (
            {"d.npz": _npz(x=rng.integers(0, 256, (5, 6, 6), dtype=np.uint8), y=np.arange(5) % 2)},
            "d.npz",
            "*",
            {},
        ),
        "csv": ({"d.csv": csv_text}, "d.csv", "*", {}),
        "tsv": ({"d.tsv": b"label\ttext\nham\thello there\nspam\twin now\nham\tok then\n"}, "d.tsv", "*", {}),
        "jsonl": (
            {"d.jsonl": b'{"text": "a b", "label": "x"}\n{"text": "c d", "label": 1}\n{"text": "e", "label": "y"}\n'},
            "d.jsonl",
            "*",
            {},
        ),  # fmt: skip
        "lines": (
            {"d.train": b"DESC:manner How are you ?\nNUM:date When ?\nLOC:city Where ?\n"},
            "d.train",
            "*",
            {"format": "lines"},
        ),  # fmt: skip
        "tabular": ({"t.csv": b"f1,f2,class\n1.5,a,p\n2,b,q\n,c,p\n3e2,a,q\n"}, "t.csv", "*", {"format": "tabular"}),
        "parallel": ({"p/train.en": b"one\ntwo\nthree\n", "p/train.de": b"eins\nzwei\ndrei\n"}, "p", "*", {}),
        "parallel_gz": (
            {
                "p/train.en.gz": gzip.compress(b"one\ntwo\nthree\n" * 50, mtime=0),
                "p/train.de.gz": gzip.compress(b"eins\nzwei\ndrei\n" * 50, mtime=0),
            },
            "p",
            "*",
            {},
        ),  # fmt: skip
        "parquet_text": (
            {
                "q/a.parquet": _parquet(pa.table({"text": ["a b", "c d", "e f"], "label": ["x", "y", "x"]})),
                "q/b.parquet": _parquet(pa.table({"text": ["g"], "label": ["y"]})),
            },
            "q",
            "*",
            {},
        ),  # fmt: skip
        "parquet_tabular": (
            {"q/a.parquet": _parquet(pa.table({"f1": [1.0, 2.0], "f2": ["u", "v"], "label": [0, 1]}))},
            "q",
            "*",
            {},
        ),
        "parquet_images": (
            {"q/a.parquet": _parquet(pa.table({"img": [_img(".png", rng), _img(".jpg", rng)], "label": ["a", "b"]}))},
            "q",
            "*",
            {"image_column": "img"},
        ),  # fmt: skip
    }


def _huge(data: bytes, rng: np.random.Generator) -> bytes:
    cut = data.find(b"\n", int(rng.integers(0, max(len(data), 1)))) + 1
    field = b"w" * 300_000
    return data[:cut] + (b"ham," if b"," in data else b"ham ") + field + b"\n" + data[cut:]


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "truncate": lambda d, r: d[: int(r.integers(0, max(len(d), 1)))],
    "flip": lambda d, r: _flip(d, r),
    "magic": lambda d, r: r.integers(0, 256, min(8, len(d)), dtype=np.uint8).tobytes() + d[8:],
    "huge": _huge,
    "nuls": lambda d, r: _insert(d, r, b"\0" * int(r.integers(1, 5))),
    "deep": lambda d, r: _insert(d, r, b"[" * 50_000 + b"\n"),
    "quote": lambda d, r: _insert(d, r, b'"'),
}


def _flip(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        if b:
            b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
    return bytes(b)


def _insert(data: bytes, rng: np.random.Generator, what: bytes) -> bytes:
    at = int(rng.integers(0, len(data) + 1))
    return data[:at] + what + data[at:]


def _run(root: Path, src: str, opts: dict, on_error: str, store_dir: Path):
    store = Store(store_dir)
    o = dict(opts)
    if "labels_file" in o:
        o["labels_file"] = str(root / o["labels_file"])
    return ingest(root / src, name="f", store=store, options=IngestOptions(**o, on_error=on_error), workers=0)


def _items_expected(fmt: str, files: dict[str, bytes]) -> int | None:
    """Items of the input for formats where each is independent: a non-blank line, or an image file."""
    if fmt in ("jsonl", "lines"):
        (data,) = files.values()
        n = 0
        for raw in data.split(b"\n"):
            try:
                n += bool(raw.decode("utf-8").strip())
            except UnicodeDecodeError:
                n += 1
        if data.startswith(b"\xef\xbb\xbf") and not data[3:].split(b"\n")[0].decode("utf-8", "replace").strip():
            n -= 1
        return n
    if fmt == "images":
        return len(files)
    return None


def _check(fmt: str, files: dict[str, bytes], root: Path, src: str, opts: dict, tmp: Path, what: str) -> None:
    outcomes = {}
    for mode in ("fail", "skip"):
        try:
            outcomes[mode] = _run(root, src, opts, mode, tmp / f"store-{mode}")
        except AugsvcError as e:
            msg = str(e)
            assert msg and "\n" not in msg and "Traceback" not in msg, (what, mode, msg)
            outcomes[mode] = e
        except RecursionError as e:  # pragma: no cover - reported below with the case
            pytest.fail(f"{what} ({mode}): RecursionError {e}")
        except Exception as e:  # noqa: BLE001 - the point of the test: nothing else may escape
            pytest.fail(f"{what} ({mode}): {type(e).__name__}: {e}")
    fail, skip = outcomes["fail"], outcomes["skip"]
    if not isinstance(fail, AugsvcError):
        assert not fail.quarantine, what
        if not isinstance(skip, AugsvcError):
            assert skip.manifest.rows == fail.manifest.rows and not skip.quarantine, what
    if isinstance(skip, AugsvcError):
        return
    m = skip.manifest
    assert m.rows > 0, what  # never a 0-row version
    if isinstance(fail, AugsvcError) and ": " in str(fail) and "; use --on-error skip" in str(fail):
        first = str(fail).split("; use --on-error skip")[0]
        described = [f"{q.source}:{q.line}: {q.reason}" if q.line is not None else f"{q.source}: {q.reason}"
                     for q in skip.quarantine]  # fmt: skip
        assert any(first.endswith(d) for d in described), (what, first, described)
    quarantined = {(q.source, q.line) for q in skip.quarantine}
    store = Store(tmp / "store-skip")
    ds, v = store.resolve("f")
    rows = pa.concat_tables([store.read_shard(ds, v, s.path, columns=["source"]) for s in m.shards])
    assert rows.num_rows == m.rows, what
    sources = rows["source"].to_pylist()
    assert len(set(sources)) == len(sources), what
    for s in sources:
        path, _, line = s.rpartition(":")
        assert (path, int(line) if line.isdigit() else None) not in quarantined, (what, s)
    expected = _items_expected(fmt, files)
    if expected is not None and "labels_file" not in opts:
        assert m.rows + len(skip.quarantine) == expected, (what, m.rows, skip.quarantine)


@pytest.mark.parametrize("fmt", sorted(corpus(np.random.default_rng(0))))
def test_fuzz_reader(fmt: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(sum(map(ord, fmt)))  # per format, the same on every run
    files, src, target, opts = corpus(rng)[fmt]
    names = sorted(MUTATIONS)
    for k in range(MUTANTS_PER_FORMAT + 1):
        mutated = dict(files)
        what = f"{fmt} unmutated"
        if k:  # k == 0: the valid input must ingest cleanly
            mutation = names[int(rng.integers(0, len(names)))]
            victim = target if target != "*" else sorted(files)[int(rng.integers(0, len(files)))]
            mutated[victim] = MUTATIONS[mutation](files[victim], rng)
            what = f"{fmt}: {mutation} of {victim} (mutant {k})"
        root = tmp_path / f"m{k}"
        for rel, data in mutated.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        if not k:
            rep = _run(root, src, opts, "fail", tmp_path / "clean")
            assert rep.manifest.rows > 0 and not rep.quarantine, what
            continue
        _check(fmt, mutated, root, src, opts, tmp_path / f"r{k}", what)


WRONG_TYPES = {
    "jsonl_values": (
        "d.jsonl",
        b"\n".join(
            json.dumps({"text": t, "label": v}).encode()
            for t, v in [
                ("ok", "a"),
                ("dict", {"k": 1}),
                ("list", ["l"]),
                ("bool", True),
                ("null", None),
                ("float", 0.5),
                (["t"], "a"),
                (1, "a"),
                ({"t": 1}, "a"),
                ("big", 10**30),
            ]
        )
        + b'\n{"text": "inf", "label": Infinity}\n',
        {},
    ),
    "npz_object_y": ("d.npz", _npz(x=np.zeros((2, 4, 4), np.uint8), y=np.array([{"a": 1}, [2]], dtype=object)), {}),
    "npz_string_y": ("d.npz", _npz(x=np.zeros((2, 4, 4), np.uint8), y=np.array(["cat", ""])), {}),
    "npz_nan_y": ("d.npz", _npz(x=np.zeros((3, 4, 4), np.uint8), y=np.array([0.0, np.nan, np.inf])), {}),
    "npz_3d_y": ("d.npz", _npz(x=np.zeros((2, 4, 4), np.uint8), y=np.zeros((2, 2, 2))), {}),
    "npz_object_x": ("d.npz", _npz(x=np.array([np.zeros(3), "s"], dtype=object), y=np.array([0, 1])), {}),
    "npz_float_x": ("d.npz", _npz(x=np.full((2, 4, 4), np.nan), y=np.array([0, 1])), {}),
    "npz_complex_x": ("d.npz", _npz(x=np.zeros((2, 4, 4), np.complex64), y=np.array([0, 1])), {}),
    "npz_5d_x": ("d.npz", _npz(x=np.zeros((2, 4, 4, 2, 2), np.uint8), y=np.array([0, 1])), {}),
    "npz_channels_x": ("d.npz", _npz(x=np.zeros((2, 4, 4, 7), np.uint8), y=np.array([0, 1])), {}),
    "parquet_list_label": ("q/a.parquet", _parquet(pa.table({"text": ["a", "b"], "label": [[1], [2]]})), {}),
    "parquet_struct_feature": ("q/a.parquet", _parquet(pa.table({"f": [{"a": 1}, {"a": 2}], "label": ["x", "y"]})), {}),
    "parquet_reserved_feature": ("q/a.parquet", _parquet(pa.table({"source": [1.0, 2.0], "label": ["x", "y"]})), {}),
    "parquet_text_not_string": ("q/a.parquet", _parquet(pa.table({"text": [1, 2], "label": ["x", "y"]})), {}),
    "parquet_image_not_bytes": (
        "q/a.parquet",
        _parquet(pa.table({"img": ["a", "b"], "label": ["x", "y"]})),
        {"image_column": "img"},
    ),  # fmt: skip
    "tabular_duplicate_header": ("t.csv", b"f,f,class\n1,2,a\n3,4,b\n", {"format": "tabular"}),
    "tabular_reserved_header": ("t.csv", b"split,label\n1,a\n2,b\n", {"format": "tabular"}),
    "tabular_empty_header": ("t.csv", b",x,class\n1,2,a\n3,4,b\n", {"format": "tabular"}),
    "csv_one_column": ("d.csv", b"text\nhello\nworld\n", {}),
    "utf16_declared_utf8": ("d.csv", "label,text\na,b\n".encode("utf-16"), {}),
    "utf16_truncated": ("d.csv", "label,text\na,b\n".encode("utf-16")[:-1], {"encoding": "utf-16"}),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_types_are_one_line_or_quarantined(case: str, tmp_path: Path) -> None:
    rel, data, opts = WRONG_TYPES[case]
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(data)
    src = rel.split("/")[0] if "/" in rel else rel
    _check(case, {rel: data}, tmp_path, src, opts, tmp_path / "out", case)
