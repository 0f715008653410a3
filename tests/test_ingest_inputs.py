"""Real-world inputs (issue 16): unusual or malformed files are read as a viewer/parser reads them, or refused in one
line naming the file (quarantined with ``on_error="skip"``). Every test writes its own tiny files."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
from schemas import imagecodec
from schemas.errors import AugsvcError


def run(src, tmp_path: Path, **opts):
    store = Store(tmp_path / "store")
    rep = ingest(src, name="ds", store=store, options=IngestOptions(**opts), workers=0)
    return store, rep


def rows_of(store: Store) -> list[dict]:
    ds, v = store.resolve("ds")
    m = store.manifest(ds, v)
    tables = [pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]
    return pa.concat_tables(tables).to_pylist()


def with_exif_orientation(jpeg: bytes, orientation: int, order: str = "II") -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding one IFD0 entry: Orientation (0x0112, SHORT) = ``orientation``."""
    e = "<" if order == "II" else ">"
    tiff = (b"II*\0" if order == "II" else b"MM\0*") + struct.pack(f"{e}I", 8)
    tiff += struct.pack(f"{e}H", 1) + struct.pack(f"{e}HHIH2x", 0x0112, 3, 1, orientation) + struct.pack(f"{e}I", 0)
    body = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def gradient(h: int, w: int) -> np.ndarray:
    """A smooth, orientation-revealing RGB image (JPEG keeps it close)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 128)], -1).astype(np.uint8)


# -- 1. EXIF orientation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["II", "MM"])
def test_exif_orientation_parsed_and_applied_like_opencv(order: str) -> None:
    base = cv2.imencode(".jpg", gradient(20, 40)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes()
    stored = imagecodec.decode_file_bytes(base)
    assert imagecodec.jpeg_orientation(base) is None
    for o in range(1, 9):
        data = with_exif_orientation(base, o, order)
        assert imagecodec.jpeg_orientation(data) == o
        ours = imagecodec.apply_orientation(stored, o)
        viewer = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]  # applies EXIF
        assert ours.shape == viewer.shape
        assert np.array_equal(ours, viewer), o


def test_exif_rotated_jpeg_is_stored_as_seen(tmp_path: Path) -> None:
    base = cv2.imencode(".jpg", gradient(20, 40)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes()
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "a" / "rot6.jpg").write_bytes(with_exif_orientation(base, 6))
    (tmp_path / "in" / "a" / "up.jpg").write_bytes(with_exif_orientation(base, 1))
    (tmp_path / "in" / "a" / "plain.jpg").write_bytes(base)
    store, _ = run(tmp_path / "in", tmp_path)
    by = {r["source"]: r for r in rows_of(store)}
    r = by["a/rot6.jpg"]
    assert (r["height"], r["width"], r["exif_orientation"]) == (40, 20, 6)  # 40 wide x 20 high, shown 20 x 40
    img = imagecodec.decode(r["image"], r["image_format"], r["height"], r["width"], r["channels"])
    seen = cv2.imdecode(np.frombuffer(with_exif_orientation(base, 6), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert img.shape == (40, 20, 3) and np.abs(img.astype(int) - seen).mean() < 3
    assert imagecodec.jpeg_orientation(r["image"]) is None  # re-encoded upright, no tag left to apply twice
    assert by["a/up.jpg"]["exif_orientation"] == 1 and by["a/up.jpg"]["image"] == with_exif_orientation(base, 1)
    assert by["a/plain.jpg"]["exif_orientation"] is None and by["a/plain.jpg"]["image"] == base


# -- 2. pixel limit -----------------------------------------------------------------------------------------------


def png_claiming(h: int, w: int) -> bytes:
    """A small real PNG whose IHDR is rewritten to claim h x w (the CRC is not fixed: header check comes first)."""
    data = bytearray(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", w, h)
    return bytes(data)


def test_header_shapes_of_every_format() -> None:
    img = gradient(13, 29)
    for ext in (".jpg", ".png", ".bmp", ".webp"):
        data = cv2.imencode(ext, img)[1].tobytes()
        assert imagecodec.header_shape(data) == (13, 29), ext
    lossless = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    assert imagecodec.header_shape(lossless) == (13, 29)
    assert imagecodec.header_shape(png_claiming(16384, 16384)) == (16384, 16384)


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_pixel_limit_is_checked_before_decoding(tmp_path: Path, on_error: str) -> None:
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "a" / "bomb.png").write_bytes(png_claiming(16384, 16384))
    cv2.imwrite(str(tmp_path / "in" / "a" / "ok.png"), gradient(30, 20))
    cv2.imwrite(str(tmp_path / "in" / "a" / "big.png"), gradient(30, 40))
    if on_error == "fail":
        with pytest.raises(AugsvcError, match=r"a/big.png: image is 40x30 = 1,200 pixels, above the limit of 1,000"):
            run(tmp_path / "in", tmp_path, max_pixels=1000)
        with pytest.raises(AugsvcError, match=r"a/bomb.png: image is 16384x16384 = 268,435,456 pixels"):
            run(tmp_path / "in", tmp_path)  # the default limit (100 M) refuses it too
        return
    store, rep = run(tmp_path / "in", tmp_path, max_pixels=1000, on_error="skip")
    assert [r["source"] for r in rows_of(store)] == ["a/ok.png"]
    assert sorted(q.source for q in rep.quarantine) == ["a/big.png", "a/bomb.png"]
    store, rep = run(tmp_path / "in", tmp_path / "2", max_pixels=None, on_error="skip")  # no limit of ours
    assert [q.source for q in rep.quarantine] == ["a/bomb.png"]  # OpenCV cannot decode it: one line, no cv2.error
    assert "\n" not in rep.quarantine[0].reason


def test_pixel_limit_applies_to_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 40, 40), np.uint8), y=np.array([0, 1, 0]))
    with pytest.raises(AugsvcError, match=r"d.npz#0: image is 40x40 = 1,600 pixels, above the limit of 100"):
        run(tmp_path / "d.npz", tmp_path, max_pixels=100)
    with pytest.raises(AugsvcError, match=r"no usable items: all 3 items were bad.*d.npz#0: image is 40x40"):
        run(tmp_path / "d.npz", tmp_path, max_pixels=100, on_error="skip")  # never a 0-row version


# -- 3. corrupt JPEG data ------------------------------------------------------------------------------------------


def test_corrupt_jpeg_data_warning_is_a_bad_item(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    good = cv2.imencode(".jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    sos = good.index(b"\xff\xda")
    flagged = 0
    for k in range(20):  # flipped bytes in the entropy-coded data: libjpeg warns for most and still returns pixels
        b = bytearray(good)
        for _ in range(3):
            b[int(rng.integers(sos + 20, len(b) - 2))] ^= 0x5A
        data = bytes(b)
        buf = np.frombuffer(data, np.uint8)
        _, warning = imagecodec._with_decoder_warnings(lambda buf=buf: cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
        try:
            imagecodec.validate_jpeg(data)
            ok = True
        except imagecodec.ImageDecodeError as e:
            ok = False
            assert "\n" not in str(e)
        assert ok == (not warning and cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) is not None), k
        flagged += not ok
    assert flagged >= 10


# -- 4-6. CSV: quoted newlines, unterminated quotes, huge fields, decoding before splitting -------------------------


def text_rows(store: Store) -> dict[str, tuple]:
    return {r["source"]: (r["label"], r["text"]) for r in rows_of(store)}


def test_quoted_newline_is_one_record_numbered_by_its_first_line(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b'label,text\na,"two\r\nlines"\nb,plain\n')
    store, rep = run(tmp_path / "d.csv", tmp_path)
    m = store.manifest(*store.resolve("ds"))
    got = text_rows(store)
    assert got == {"d.csv:2": (0, "two\r\nlines"), "d.csv:4": (1, "plain")} and m.class_names == ["a", "b"]
    (tmp_path / "t.csv").write_text('f1,f2,class\n1,"a\nb",p\n2,c,q\n')
    store, _ = run(tmp_path / "t.csv", tmp_path / "2", format="tabular")
    rows = {r["source"]: (r["f1"], r["f2"]) for r in rows_of(store)}
    assert rows == {"t.csv:2": (1.0, "a\nb"), "t.csv:4": (2.0, "c")}


@pytest.mark.parametrize("fmt", ["csv", "tabular"])
def test_unterminated_quote_is_a_bad_item_not_a_swallowed_file(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "d.csv").write_text('text,label\nok,z\n"never closed,a\ntwo,b\nthree,c')
    with pytest.raises(AugsvcError, match=r"d.csv:3: a quoted field opened on line 3 is never closed \(lines 3-5"):
        run(tmp_path / "d.csv", tmp_path, format=fmt)
    store, rep = run(tmp_path / "d.csv", tmp_path, format=fmt, on_error="skip")
    assert [r["source"] for r in rows_of(store)] == ["d.csv:2"]
    assert [(q.source, q.line) for q in rep.quarantine] == [("d.csv", 3)]


def test_malformed_quoting_and_undecodable_lines_are_bad_items(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b'label,text\na,"x"y\nb,caf\xe9\nc,fine\n')
    store, rep = run(tmp_path / "d.csv", tmp_path, on_error="skip")
    assert list(text_rows(store)) == ["d.csv:4"]
    reasons = {q.line: q.reason for q in rep.quarantine}
    assert set(reasons) == {2, 3} and "malformed CSV" in reasons[2] and "cannot decode as utf-8" in reasons[3]


def test_huge_fields_are_read(tmp_path: Path) -> None:
    big = "w" * 1_000_000
    (tmp_path / "d.csv").write_text(f'label,text\na,"{big}"\nb,{big}\n')
    store, _ = run(tmp_path / "d.csv", tmp_path)
    assert text_rows(store) == {"d.csv:2": (0, big), "d.csv:3": (1, big)}


def test_field_above_the_limit_is_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    import csv

    from pipelines.ingest.readers import textio

    monkeypatch.setattr(textio, "FIELD_LIMIT", 1000)
    old = csv.field_size_limit(1000)
    try:
        (tmp_path / "d.csv").write_text(f"label,text\na,{'w' * 2000}\nb,short\n")
        store, rep = run(tmp_path / "d.csv", tmp_path, on_error="skip")
    finally:
        csv.field_size_limit(old)
    assert list(text_rows(store)) == ["d.csv:3"]
    assert rep.quarantine[0].line == 2 and "longer than 1,000 characters" in rep.quarantine[0].reason


def test_utf16_is_decoded_before_lines_are_split(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes("label,text\nα,ünï\nβ,\u2028sep\n".encode("utf-16"))
    store, _ = run(tmp_path / "d.csv", tmp_path, encoding="utf-16")
    assert text_rows(store) == {"d.csv:2": (0, "ünï"), "d.csv:3": (1, "\u2028sep")}


# -- 7. Parquet ----------------------------------------------------------------------------------------------------


def test_parquet_files_with_different_columns_name_the_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"x1": [1.0, 2.0], "x2": [3.0, 4.0], "label": ["a", "b"]}), tmp_path / "pq" / "a.parquet")
    pq.write_table(pa.table({"x1": [5.0], "label": ["a"]}), tmp_path / "pq" / "b.parquet")
    with pytest.raises(AugsvcError, match=r"b.parquet: no column 'x2', which a.parquet has"):
        run(tmp_path / "pq", tmp_path)
    pq.write_table(pa.table({"x1": [5.0], "x2": [1.0], "x3": [0.0], "label": ["a"]}), tmp_path / "pq" / "b.parquet")
    with pytest.raises(AugsvcError, match=r"b.parquet: column 'x3' is not in a.parquet"):
        run(tmp_path / "pq", tmp_path)
    pq.write_table(pa.table({"x1": [5.0], "x2": ["s"], "label": ["a"]}), tmp_path / "pq" / "b.parquet")
    with pytest.raises(AugsvcError, match=r"b.parquet: column 'x2' is string but double in a.parquet"):
        run(tmp_path / "pq", tmp_path)


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_corrupt_parquet_is_one_line(tmp_path: Path, cut: float) -> None:
    (tmp_path / "pq").mkdir()
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": ["hello there"] * 50, "label": ["a", "b"] * 25}), sink)
    data = sink.getvalue().to_pybytes()
    (tmp_path / "pq" / "a.parquet").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(AugsvcError, match=r"a.parquet: not a readable Parquet file"):
        run(tmp_path / "pq", tmp_path)
    flipped = bytearray(data)
    flipped[4 : len(data) // 2] = bytes(len(data) // 2 - 4)  # pages zeroed, footer intact
    (tmp_path / "pq" / "a.parquet").write_bytes(bytes(flipped))
    try:
        store, rep = run(tmp_path / "pq", tmp_path, on_error="skip")
    except AugsvcError as e:
        assert "a.parquet" in str(e) and "\n" not in str(e)
    else:
        assert rep.manifest.rows + len(rep.quarantine) >= 1


def test_parquet_labels_of_the_wrong_type_are_bad_items(tmp_path: Path) -> None:
    (tmp_path / "pq").mkdir()
    t = pa.table({"text": ["one", "two", "three", "four"], "label": [1.0, float("nan"), 2.5, 3.0]})
    pq.write_table(t, tmp_path / "pq" / "a.parquet")
    store, rep = run(tmp_path / "pq", tmp_path, on_error="skip")
    m = store.manifest(*store.resolve("ds"))
    assert m.class_names == ["1", "3"] and [q.line for q in rep.quarantine] == [2, 3]


# -- 8. gzip, IDX, NPZ -----------------------------------------------------------------------------------------------


def write_idx(folder: Path, images: bytes, labels: bytes, gz: bool = False) -> None:
    folder.mkdir(exist_ok=True)
    suffix = ".gz" if gz else ""
    import gzip

    for name, data in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        (folder / (name + suffix)).write_bytes(gzip.compress(data, mtime=0) if gz else data)


def idx_images(n: int, h: int = 4, w: int = 4) -> bytes:
    pixels = np.random.default_rng(n).integers(0, 256, n * h * w, dtype=np.uint8).tobytes()
    return b"\0\0\x08\x03" + struct.pack(">III", n, h, w) + pixels


def idx_labels(values, dtype: int = 0x08) -> bytes:
    arr = np.asarray(values, {0x08: np.uint8, 0x0D: ">f4"}[dtype])
    return b"\0\0" + bytes([dtype, 1]) + struct.pack(">I", len(arr)) + arr.tobytes()


def test_truncated_gzip_idx_is_reported_not_aborted(tmp_path: Path) -> None:
    import gzip

    n = 3000
    write_idx(tmp_path / "idx", idx_images(n), idx_labels([i % 2 for i in range(n)]), gz=True)
    img = tmp_path / "idx" / "train-images-idx3-ubyte.gz"
    img.write_bytes(img.read_bytes()[:-100])
    with pytest.raises(AugsvcError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt gzip data at item 2048"):
        run(tmp_path / "idx", tmp_path)
    store, rep = run(tmp_path / "idx", tmp_path, on_error="skip")
    assert rep.manifest.rows == 2048 and len(rep.quarantine) == 1
    assert rep.quarantine[0].reason.startswith("truncated or corrupt gzip data at item 2048 of 3000")
    head = gzip.compress(idx_images(2), mtime=0)[:12]  # the header itself cannot be read: the file is refused
    img.write_bytes(head)
    for on_error in ("fail", "skip"):
        with pytest.raises(AugsvcError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt gzip data"):
            run(tmp_path / "idx", tmp_path, on_error=on_error)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (b"\0\0\x08\x03" + struct.pack(">I", 5) + b"\0\0", r"IDX header is truncated \(10 of 16 bytes\)"),
        (b"\0\0\x08\xff" + bytes(64), r"IDX header says 255 dimensions"),
        (b"\0\0\x08\x03" + struct.pack(">III", 2, 0, 4), r"IDX images have a zero dimension \(0, 4\)"),
        (b"\0\1\x08\x03" + bytes(12), r"not an IDX file \(bad magic number"),
    ],
)
def test_malformed_idx_headers_are_one_line(tmp_path: Path, images: bytes, match: str) -> None:
    write_idx(tmp_path / "idx", images, idx_labels([0, 1]))
    for on_error in ("fail", "skip"):
        with pytest.raises(AugsvcError, match=match):
            run(tmp_path / "idx", tmp_path, on_error=on_error)


def test_idx_nan_labels_are_bad_items(tmp_path: Path) -> None:
    write_idx(tmp_path / "idx", idx_images(3), idx_labels([1.0, float("nan"), 2.0], dtype=0x0D))
    store, rep = run(tmp_path / "idx", tmp_path, on_error="skip")
    m = store.manifest(*store.resolve("ds"))
    assert m.class_names == ["1", "2"] and m.rows == 2
    assert [q.source for q in rep.quarantine] == ["train-images-idx3-ubyte#1"]
    assert "is not a class index" in rep.quarantine[0].reason


def test_truncated_gzip_parallel_text_is_quarantined(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "par").mkdir()
    data = gzip.compress(("hello world\n" * 200).encode(), mtime=0)
    (tmp_path / "par" / "train.en.gz").write_bytes(data[:-10])
    (tmp_path / "par" / "train.de").write_text("hallo welt\n" * 200)
    (tmp_path / "par" / "val.en").write_text("a b\nc d\n")
    (tmp_path / "par" / "val.de").write_text("e f\ng h\n")
    with pytest.raises(AugsvcError, match=r"train.en.gz: truncated or corrupt gzip file"):
        run(tmp_path / "par", tmp_path)
    store, rep = run(tmp_path / "par", tmp_path, on_error="skip")
    assert rep.manifest.rows == 2 and [q.source for q in rep.quarantine] == ["train.en.gz"]


def test_npz_object_arrays_are_one_line(tmp_path: Path) -> None:
    np.savez(tmp_path / "o.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([{"k": 1}, "b"], dtype=object))
    for on_error in ("fail", "skip"):
        with pytest.raises(AugsvcError, match=r"o.npz: array 'y' holds Python objects"):
            run(tmp_path / "o.npz", tmp_path, on_error=on_error)


def test_npz_one_hot_and_soft_labels(tmp_path: Path) -> None:
    x = np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "h.npz", x=x, y=np.eye(3, dtype=np.float32)[[2, 0, 2]])
    store, rep = run(tmp_path / "h.npz", tmp_path)
    m = store.manifest(*store.resolve("ds"))
    assert m.class_names == ["0", "1", "2"] and m.rows_per_class == {"0": 1, "1": 0, "2": 2}
    assert rep.notes[0] == "y: one-hot rows of 3 classes read as class indices (argmax)" and not m.soft_labels
    assert "class(es) '1' have no rows" in rep.notes[1]  # a class with no rows is named, never kept silently
    assert [r["soft_label"] for r in rows_of(store)] == [None] * 3
    soft = np.array([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0], [0.7, 0.7]], np.float32)
    np.savez(tmp_path / "s.npz", x=np.zeros((4, 4, 4), np.uint8), y=soft)
    store, rep = run(tmp_path / "s.npz", tmp_path / "2", on_error="skip")
    m = store.manifest(*store.resolve("ds"))
    assert rep.notes == ["y: rows of 2 probabilities read as soft labels (hard label: argmax)"] and m.soft_labels
    rows = rows_of(store)
    assert [r["label"] for r in rows] == [1, 0, 0]
    assert [r["soft_label"] for r in rows] == [pytest.approx(list(v)) for v in soft[:3]]
    assert [q.source for q in rep.quarantine] == ["s.npz#3"]  # sums to 1.4: not a distribution


# -- 9. JSONL labels and texts of the wrong type; nothing publishes 0 rows ------------------------------------------


def test_jsonl_values_of_the_wrong_type_are_bad_items(tmp_path: Path) -> None:
    lines = [
        '{"text": "fine", "label": "pos"}',
        '{"text": "int label", "label": 3}',
        '{"text": "integral float", "label": 3.0}',
        '{"text": "dict", "label": {"k": 1}}',
        '{"text": "bool", "label": true}',
        '{"text": "inf", "label": Infinity}',
        '{"text": "list", "label": ["l"]}',
        '{"text": "nan", "label": NaN}',
        '{"text": "fraction", "label": 0.5}',
        '{"text": ["a list"], "label": "pos"}',
        '{"text": 12, "label": "pos"}',
        '{"text": {"deep": [[[[1]]]]}, "label": "pos"}',
        "[" * 100000 + "]" * 100000,
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(AugsvcError, match=r"d.jsonl:4: 'label' is an object; a label is a string or an integer"):
        run(tmp_path / "d.jsonl", tmp_path)
    store, rep = run(tmp_path / "d.jsonl", tmp_path, on_error="skip")
    m = store.manifest(*store.resolve("ds"))
    assert m.class_names == ["3", "pos"] and m.rows == 3
    assert [q.line for q in rep.quarantine] == list(range(4, 14))
    reasons = [q.reason for q in rep.quarantine]
    assert "'label' is true" in reasons[1] and "infinite" in reasons[2] and "NaN" in reasons[4]
    assert "'text' is a list, not a string" in reasons[6]


def test_skip_mode_with_every_item_bad_publishes_nothing(tmp_path: Path) -> None:
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (tmp_path / "in" / "a" / "y.png").write_bytes(b"garbage")
    with pytest.raises(AugsvcError, match=r"no usable items: all 2 items were bad, so nothing was published"):
        run(tmp_path / "in", tmp_path, on_error="skip")
    assert not (tmp_path / "store" / "ds").exists() or not any((tmp_path / "store" / "ds").glob("*/manifest.json"))
    (tmp_path / "t.csv").write_text("label,text\n,\n,\n")
    with pytest.raises(AugsvcError, match=r"no usable items: all 2 items were bad"):
        run(tmp_path / "t.csv", tmp_path, on_error="skip")


def test_cli_max_pixels_and_notes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from augsvc.cli import app

    np.savez(tmp_path / "h.npz", x=np.zeros((2, 5, 5), np.uint8), y=np.eye(2)[[1, 0]])
    store = ["--store", str(tmp_path / "store"), "--workers", "0"]
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "h.npz"), "--name", "h", *store])
    assert res.exit_code == 0, res.output
    assert "note: y: one-hot rows of 2 classes read as class indices (argmax)" in res.output
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "h.npz"), "--name", "h2", "--max-pixels", "10", *store])
    assert isinstance(res.exception, AugsvcError)  # augsvc.cli.main prints it as one line
    assert "h.npz#0: image is 5x5 = 25 pixels, above the limit of 10" in str(res.exception)


def test_builds_read_versions_written_before_the_exif_orientation_column(tmp_path: Path) -> None:
    """A version ingested by older code has no ``exif_orientation``; a build mixing its shards with new parts
    (an op step, then cutmix, then a generator-free second op step) reads both."""
    from pipelines.recipes import load_recipe
    from pipelines.runner import build

    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        for i in range(4):
            (tmp_path / "in" / c).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "in" / c / f"{i}.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    store, rep = run(tmp_path / "in", tmp_path, shard_rows=3)
    m = rep.manifest
    st = store.staging("old")
    for s in m.shards:
        st.write_shard(store.read_shard(m.dataset, m.version, s.path).drop_columns(["exif_orientation"]), s.split)
    store.publish(st, dataset="old", definition={"old": 1}, modality="image", class_names=m.class_names,
                  extra={"image_storage": "auto"})  # fmt: skip
    recipe = load_recipe({"input": "old", "output": "new", "seed": 3, "stages": [
        {"mix": {"method": "cutmix", "alpha": 1.0}, "copies": 1},
        {"op": {"op": "hflip"}, "copies": 1},
    ]})  # fmt: skip
    out = build(recipe, store, workers=0)
    assert out.manifest.rows == 8 * 2 * 2


def test_images_beside_class_folders_are_reported_not_dropped(tmp_path: Path) -> None:
    """Loose images next to class folders have no class: an error naming them (quarantined with skip); a split
    folder holding images but no class folders is read without labels, and the ingest says so."""
    from tests.conftest import write_image

    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "mix" / "cat" / f"{i}.png", rng, size=8)
        write_image(tmp_path / "mix" / f"loose{i}.png", rng, size=8)
    with pytest.raises(AugsvcError, match=r"loose0.png: a file beside the class folders has no class"):
        run(tmp_path / "mix", tmp_path)
    rep = ingest(tmp_path / "mix", name="m", store=Store(tmp_path / "s2"), options=IngestOptions(on_error="skip"),
                 workers=0)  # fmt: skip
    assert rep.manifest.rows == 3 and sorted(q.source for q in rep.quarantine) == ["loose0.png", "loose1.png",
                                                                                 "loose2.png"]  # fmt: skip
    for i in range(2):
        write_image(tmp_path / "sp" / "train" / "cat" / f"{i}.png", rng, size=8)
        write_image(tmp_path / "sp" / "test" / f"{i}.png", rng, size=8)
    rep = ingest(tmp_path / "sp", name="sp", store=Store(tmp_path / "s3"), workers=0)
    assert any("split folder(s) test hold images but no class folders" in n for n in rep.notes)
    assert rep.manifest.rows_per_split == {"test": 2, "train": 2} and rep.manifest.splits["train"] == {"cat": 2}


def test_language_options_are_checked(tmp_path: Path) -> None:
    from tests.conftest import write_image

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "train.en").write_text("a cat\n")
    (tmp_path / "p" / "train.de").write_text("eine Katze\n")
    with pytest.raises(AugsvcError, match="--src-lang and --tgt-lang are both 'de'"):
        run(tmp_path / "p", tmp_path, src_lang="de", tgt_lang="de")
    write_image(tmp_path / "imgs" / "cat" / "0.png", np.random.default_rng(0), size=8)
    with pytest.raises(AugsvcError, match=r"--tgt-lang, --monolingual apply to parallel text.*read as image"):
        run(tmp_path / "imgs", tmp_path, tgt_lang="de", monolingual=True)
