"""Round trip of every reader, in-process (workers=0): rows, labels, payloads and bad-item reporting."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
from schemas import imagecodec
from schemas.errors import AugsvcError
from tests.conftest import write_image


def read_rows(store: Store, name: str) -> tuple:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    tables = [pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]
    return m, pa.concat_tables(tables).to_pylist()


def run(src, tmp_path: Path, **opts):
    store = Store(tmp_path / "store")
    rep = ingest(src, name="ds", store=store, options=IngestOptions(**opts), workers=0)
    return store, rep


def test_image_folder_round_trip(image_folder: Path, tmp_path: Path) -> None:
    store, rep = run(image_folder, tmp_path)
    m, rows = read_rows(store, "ds")
    assert m.modality == "image" and m.class_names == ["cat", "dog", "eel"]
    assert m.rows == 19 and m.rows_per_class == {"cat": 6, "dog": 6, "eel": 7}
    assert m.duplicates == [["cat/cat0.png", "eel/eel_copy.png"]] and m.duplicates_dropped == 0
    by_src = {r["source"]: r for r in rows}
    r = by_src["dog/dog3.jpg"]
    assert r["image"] == (image_folder / "dog" / "dog3.jpg").read_bytes()  # jpeg passes through untouched
    assert r["image_format"] == "jpeg" and (r["height"], r["width"], r["channels"]) == (24, 24, 3)
    img = imagecodec.decode(r["image"], r["image_format"], r["height"], r["width"], r["channels"])
    assert img.shape == (24, 24, 3) and img.dtype == np.uint8
    assert r["label"] == 1 and r["split"] == "train" and r["soft_label"] is None and r["lineage"] is None
    assert len({r["sample_id"] for r in rows}) == 19


def test_dedupe_drops_later_copies(image_folder: Path, tmp_path: Path) -> None:
    store, _ = run(image_folder, tmp_path, dedupe=True)
    m, rows = read_rows(store, "ds")
    assert m.rows == 18 and m.duplicates_dropped == 1
    assert "eel/eel_copy.png" not in {r["source"] for r in rows}


def test_resize_and_raw_storage(image_folder: Path, tmp_path: Path) -> None:
    store, _ = run(image_folder, tmp_path, resize="8x12", image_storage="raw")
    _, rows = read_rows(store, "ds")
    r = rows[0]
    assert (r["height"], r["width"], r["channels"], r["image_format"]) == (8, 12, 3, "raw")
    assert len(r["image"]) == 8 * 12 * 3


def test_split_folders_and_labels_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "s"
    for split in ("train", "val"):
        for c in ("a", "b"):
            write_image(root / split / c / "x.png", rng, grey=True)
    store, _ = run(root, tmp_path)
    m, rows = read_rows(store, "ds")
    assert m.splits == {"train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}}
    assert {r["channels"] for r in rows} == {1}
    assert all(s.split in ("train", "val") for s in m.shards)
    flat = tmp_path / "flat"
    write_image(flat / "one.png", rng)
    write_image(flat / "two.png", rng)
    write_image(flat / "three.png", rng)
    (tmp_path / "labels.csv").write_text("file,label\none.png,x\ntwo.png,y\nghost.png,x\n")
    store2 = Store(tmp_path / "store2")
    rep = ingest(
        flat, name="f", store=store2, options=IngestOptions(labels_file=str(tmp_path / "labels.csv"), on_error="skip"),
        workers=0,
    )  # fmt: skip
    assert rep.manifest.rows == 2
    reasons = {q.source: q.reason for q in rep.manifest.quarantine}
    assert "no label" in reasons["three.png"] and "no such image file" in reasons["ghost.png"]


def _idx(path: Path, arr: np.ndarray, dtype_code: int, compress: bool) -> None:
    head = bytes([0, 0, dtype_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_idx_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    y = np.array([3, 1, 3, 0, 2, 1, 10], dtype=np.uint8)
    d = tmp_path / "mnist"
    d.mkdir()
    _idx(d / "train-images-idx3-ubyte.gz", x, 0x08, True)
    _idx(d / "train-labels-idx1-ubyte.gz", y, 0x08, True)
    _idx(d / "t10k-images-idx3-ubyte", x[:2], 0x08, False)
    _idx(d / "t10k-labels-idx1-ubyte", y[:2], 0x08, False)
    store, _ = run(d, tmp_path)
    m, rows = read_rows(store, "ds")
    assert m.class_names == ["0", "1", "2", "3", "10"]  # numeric order
    assert m.splits["test"] == {"3": 1, "1": 1} and m.rows == 9
    r = next(r for r in rows if r["source"] == "train-images-idx3-ubyte.gz#4")
    assert r["image_format"] == "raw" and m.class_names[r["label"]] == "2"
    got = imagecodec.decode(r["image"], "raw", r["height"], r["width"], r["channels"])
    assert np.array_equal(got[:, :, 0], x[4])


def test_idx_label_count_mismatch_is_clear(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    _idx(d / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8), 0x08, False)
    _idx(d / "train-labels-idx1-ubyte", np.zeros(2, np.uint8), 0x08, False)
    with pytest.raises(AugsvcError, match="3 images but .* 2 labels"):
        run(d, tmp_path)


def test_truncated_idx_keeps_whole_items_and_reports_the_rest(tmp_path: Path) -> None:
    d = tmp_path / "cut"
    d.mkdir()
    x = np.arange(5 * 4, dtype=np.uint8).reshape(5, 2, 2)
    _idx(d / "train-images-idx3-ubyte", x, 0x08, False)
    (d / "train-images-idx3-ubyte").write_bytes((d / "train-images-idx3-ubyte").read_bytes()[:-6])  # 3.5 items
    _idx(d / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1, 0], np.uint8), 0x08, False)
    with pytest.raises(AugsvcError, match=r"train-images-idx3-ubyte: file ends at item 3 of 5 \(truncated\)"):
        run(d, tmp_path)
    store, rep = run(d, tmp_path, on_error="skip")
    assert rep.manifest.rows == 3 and [q.reason for q in rep.manifest.quarantine] == [
        "file ends at item 3 of 5 (truncated)"
    ]


def test_npz_round_trip_and_missing_key(tmp_path: Path) -> None:
    x = np.random.default_rng(3).integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=x, labels=np.array([0, 1, 0, 1]))
    with pytest.raises(AugsvcError, match="no array 'x'.*--x-key"):
        run(tmp_path / "d.npz", tmp_path)
    store, _ = run(tmp_path / "d.npz", tmp_path, x_key="images", y_key="labels")
    _, rows = read_rows(store, "ds")
    got = imagecodec.decode(rows[2]["image"], "raw", 6, 6, 3)
    assert np.array_equal(got, x[2])


def test_tsv_with_header_and_latin1(tmp_path: Path) -> None:
    f = tmp_path / "sms.tsv"
    f.write_bytes(b'Label\tSMS\nham\tsee you at 5\nspam\tWIN a "prize" now\n' + "ham\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(AugsvcError, match=r"sms.tsv:4: cannot decode as utf-8.*--encoding"):
        run(f, tmp_path)
    store, rep = run(f, tmp_path, on_error="skip")
    assert rep.manifest.rows == 2 and rep.manifest.quarantine[0].line == 4
    store, rep = run(f, tmp_path / "b", encoding="latin-1")
    _, rows = read_rows(store, "ds")
    assert [r["text"] for r in rows] == ["see you at 5", 'WIN a "prize" now', "caf\xe9"]
    assert rep.manifest.class_names == ["ham", "spam"]


def test_csv_columns_by_name_and_bad_rows(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text('id,review,stars\n1,"good, really",5\n2,bad\n3,"fine",\n4,meh,2\n')
    store, rep = run(f, tmp_path, text_column="review", label_column="stars", on_error="skip")
    _, rows = read_rows(store, "ds")
    assert [r["text"] for r in rows] == ["good, really", "meh"]
    reasons = {q.line: q.reason for q in rep.manifest.quarantine}
    assert "expected 3 fields" in reasons[3] and reasons[4] == "missing label"
    with pytest.raises(AugsvcError, match="--text-column 'nope': no such column"):
        run(f, tmp_path / "x", text_column="nope", label_column="stars")


def test_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(
        json.dumps({"text": "hi", "label": "a"}) + "\n{broken\n" + json.dumps({"text": "yo", "label": 2}) + "\n"
    )
    store, rep = run(f, tmp_path, on_error="skip")
    assert rep.manifest.rows == 2 and "not valid JSON" in rep.manifest.quarantine[0].reason


def test_lines_coarse_and_fine_with_predefined_splits(tmp_path: Path) -> None:
    d = tmp_path / "trec"
    d.mkdir()
    (d / "TREC.train").write_bytes(b"DESC:manner How did it go ?\nNUM:date When ?\nLOC:city Where is Caf\xe9 ?\n")
    (d / "TREC.test").write_bytes(b"NUM:count How many ?\n")
    store, rep = run(d, tmp_path, format="lines", encoding="latin-1")
    m, rows = read_rows(store, "ds")
    assert m.class_names == ["DESC", "LOC", "NUM"] and m.splits["test"] == {"NUM": 1}
    assert rows[0]["text"] == "How many ?" and rows[0]["source"] == "TREC.test:1"
    assert rows[1]["text"] == "How did it go ?" and rows[1]["split"] == "train"
    store, rep = run(d, tmp_path / "fine", format="lines", encoding="latin-1", label_level="fine")
    assert rep.manifest.class_names == ["DESC:manner", "LOC:city", "NUM:count", "NUM:date"]


def test_tabular_types_and_label_by_name(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("a,colour,b,Class\n1.5,red,2,positive\n,blue,3,negative\n2,red,x1,negative\n4,red,1\n")
    store, rep = run(f, tmp_path, format="tabular", on_error="skip")
    m, rows = read_rows(store, "ds")
    assert m.features == {"a": "numeric", "colour": "categorical", "b": "categorical"}
    assert rows[0]["a"] == 1.5 and rows[1]["a"] is None and rows[0]["colour"] == "red"
    assert m.rows == 3 and "expected 4 fields" in m.quarantine[0].reason
    schema = pq.read_schema(store.version_dir("ds", m.version) / m.shards[0].path)
    assert schema.field("a").type == pa.float64() and schema.field("colour").type == pa.string()


def test_parallel_text_gzip(tmp_path: Path) -> None:
    d = tmp_path / "mt"
    d.mkdir()
    for stem, en, de in (("train", "a dog\na cat\n", "ein Hund\neine Katze\n"), ("val", "hi\n", "hallo\n")):
        (d / f"{stem}.en.gz").write_bytes(gzip.compress(en.encode()))
        (d / f"{stem}.de.gz").write_bytes(gzip.compress(de.encode()))
    store, rep = run(d, tmp_path, src_lang="en", tgt_lang="de")
    m, rows = read_rows(store, "ds")
    assert m.modality == "translation" and m.rows == 3 and rows[0]["label"] is None
    assert (rows[0]["src"], rows[0]["tgt"]) == ("a dog", "ein Hund")
    (d / "val.de.gz").write_bytes(gzip.compress(b"hallo\nzu viel\n"))
    with pytest.raises(AugsvcError, match="different line counts"):
        run(d, tmp_path / "x", src_lang="en", tgt_lang="de")


def test_parquet_folder_with_column_map(tmp_path: Path) -> None:
    d = tmp_path / "pq"
    d.mkdir()
    pq.write_table(pa.table({"sentence": ["x y", "z"], "target": ["p", "q"]}), d / "a.parquet")
    store, rep = run(d, tmp_path, text_column="sentence", label_column="target")
    _, rows = read_rows(store, "ds")
    assert [r["text"] for r in rows] == ["x y", "z"] and rep.manifest.modality == "text"


def test_missing_source_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(AugsvcError, match="no such file or folder"):
        run(tmp_path / "nope", tmp_path)
    (tmp_path / "x.dat").write_text("?")
    with pytest.raises(AugsvcError, match="pass --format"):
        run(tmp_path / "x.dat", tmp_path)


def test_jpeg_validation_matches_a_full_decode() -> None:
    import cv2

    rng = np.random.default_rng(4)
    colour = cv2.imencode(".jpg", rng.integers(0, 256, (33, 47, 3), dtype=np.uint8))[1].tobytes()
    grey = cv2.imencode(".jpg", rng.integers(0, 256, (20, 9), dtype=np.uint8))[1].tobytes()
    prog = cv2.imencode(".jpg", rng.integers(0, 256, (64, 40, 3), dtype=np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    for data in (colour, grey, prog[1].tobytes()):
        assert imagecodec.validate_jpeg(data) == imagecodec.probe_file_bytes(data)[1]
    assert imagecodec.validate_jpeg(grey) == (20, 9, 1)
    for broken in (colour[: len(colour) // 2], colour[:2] + b"\x00" * 40, b"\xff\xd8\xff\xda" + colour[4:]):
        with pytest.raises(imagecodec.ImageDecodeError):
            imagecodec.validate_jpeg(broken)
    dqt = colour.index(b"\xff\xdb")
    stray = colour[:dqt] + b"\x00\x00" + colour[dqt:]  # libjpeg skips them but warns "Corrupt JPEG data"
    assert imagecodec.probe_file_bytes(stray)[1] == (33, 47, 3)
    with pytest.raises(imagecodec.ImageDecodeError, match="extraneous bytes before marker 0xdb"):
        imagecodec.validate_jpeg(stray)
