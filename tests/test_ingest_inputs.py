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

from pipelines import imagecodec
from pipelines.ingest import IngestOptions, ingest
from pipelines.store import Store
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
