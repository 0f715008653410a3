"""Silent changes at ingest and tracebacks (issue 30, items 13 and 14): each is refused or quarantined with one
line, never published as something else."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from augsvc import api
from schemas.errors import AugsvcError


def _reasons(r: api.IngestResult) -> list[str]:
    return [q.reason for q in r.manifest.quarantine]


def test_non_finite_and_overflowing_numbers_are_quarantined(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("x,y,label\n1,2,a\n1e400,3,b\nnan,1,a\n3,-inf,b\n" + "9" * 400 + ",6,a\n5,6,b\n")
    r = api.ingest(f, "t", store=tmp_path / "s", workers=0, format="tabular", label_column="label", on_error="skip")
    assert r.rows == 2 and r.quarantined == 4
    reasons = _reasons(r)
    assert sum("beyond the float64 range" in x for x in reasons) == 2
    assert sum("not a finite number" in x for x in reasons) == 2
    assert all(len(x) < 200 for x in reasons)  # a million digits are not echoed


def test_nul_cells_and_a_second_label_column_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "nul.csv"
    f.write_text("x,label\n1,a\x00b\n2,b\n3,a\n")
    r = api.ingest(f, "n", store=tmp_path / "s", workers=0, format="tabular", on_error="skip")
    assert r.rows == 2 and "NUL character" in _reasons(r)[0]
    d = tmp_path / "d.csv"
    d.write_text("x,label,label\n1,a,b\n2,b,a\n")
    with pytest.raises(AugsvcError, match="'label' appears twice"):
        api.ingest(d, "d", store=tmp_path / "s", workers=0, format="tabular")


@pytest.mark.parametrize("fmt", ["tabular", "csv"])
def test_utf16_without_encoding_is_refused_not_nul_interleaved(tmp_path: Path, fmt: str) -> None:
    f = tmp_path / "u.csv"
    f.write_bytes("text,label\nhello there,a\ngood bye,b\n".encode("utf-16"))
    with pytest.raises(AugsvcError, match="looks like UTF-16.*--encoding utf-16"):
        api.ingest(f, "u", store=tmp_path / "s", workers=0, format=fmt, on_error="skip")
    r = api.ingest(f, "u", store=tmp_path / "s", workers=0, format=fmt, encoding="utf-16")
    assert r.rows == 2 and all("\x00" not in c for c in r.manifest.class_names)


def test_bad_names_links_and_surrogates_are_quarantined_not_tracebacks(tmp_path: Path) -> None:
    from tests.conftest import write_image

    rng = np.random.default_rng(0)
    for c in "ab":
        for i in range(2):
            write_image(tmp_path / "imgs" / c / f"{i}.png", rng, size=8)
    os.rename(tmp_path / "imgs" / "a" / "0.png", os.fsencode(tmp_path / "imgs" / "a") + b"/\xff\xfe.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "imgs" / "b" / "broken.png")
    r = api.ingest(tmp_path / "imgs", "im", store=tmp_path / "s", workers=0, on_error="skip")
    assert r.rows == 3 and sorted(_reasons(r)) == ["a symlink to a missing file",
                                                   "the file name is not valid UTF-8; rename the file"]  # fmt: skip
    r.manifest.model_dump_json()  # the quarantine record itself is valid UTF-8
    j = tmp_path / "s.jsonl"
    j.write_text(
        '{"text": "hello \\ud800 x", "label": "a"}\n{"text": "ok", "label": "b"}\n{"text": "k", "label": "a"}\n'
    )
    r = api.ingest(j, "tx", store=tmp_path / "s", workers=0, on_error="skip")
    assert r.rows == 2 and "lone surrogate" in _reasons(r)[0]


def test_deep_recipes_are_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("input: src\noutput: o\nstages: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(AugsvcError, match="nested too deeply|nested deeper"):
        api.load_recipe(str(deep))
    d: dict = {"input": "src", "output": "o", "stages": [{"op": [{"op": "hflip"}]}]}
    x = d["stages"][0]["op"][0]
    for _ in range(3000):
        x["p"] = {}
        x = x["p"]
    with pytest.raises(AugsvcError, match="nested deeper than 64"):
        api.load_recipe(d)


def test_out_of_range_and_transparent_pixels_are_refused(tmp_path: Path) -> None:
    import cv2

    from schemas.imagecodec import ImageDecodeError, check_opaque, normalise

    with pytest.raises(ImageDecodeError, match="outside 0-255"):
        normalise(np.full((4, 4), 300, np.int64))
    with pytest.raises(ImageDecodeError, match="outside 0-255"):
        normalise(np.full((4, 4), -1.0, np.float32))
    assert normalise(np.full((4, 4), 200, np.int64)).max() == 200  # in range: kept as it is
    rgba = np.full((6, 6, 4), 255, np.uint8)
    assert normalise(rgba.copy()).shape == (6, 6, 3)  # opaque: the alpha channel carries nothing
    rgba[0, 0, 3] = 0
    with pytest.raises(ImageDecodeError, match="transparent"):
        check_opaque(rgba)
    for c in "ab":
        for i in range(2):
            img = np.full((6, 6, 4), 40 * i, np.uint8)
            img[..., 3] = 255
            cv2.imwrite(
                str((tmp_path / "imgs" / c).mkdir(parents=True, exist_ok=True) or tmp_path / "imgs" / c / f"{i}.png"),
                img,
            )
    cv2.imwrite(str(tmp_path / "imgs" / "a" / "clear.png"), rgba)
    r = api.ingest(tmp_path / "imgs", "im", store=tmp_path / "s", workers=0, on_error="skip")
    assert r.rows == 4 and any("transparent" in x for x in _reasons(r))


def test_classes_without_rows_are_reported(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("x,label\n1,a\n2,b\n3,a\n")
    r = api.ingest(f, "t", store=tmp_path / "s", workers=0, format="tabular", classes=["a", "b", "zebra"])
    assert r.manifest.rows_per_class.get("zebra", 0) == 0 and any("'zebra' have no rows" in n for n in r.notes)


def test_parquet_non_finite_features_are_quarantined(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table(
        {"a": [1.0, float("inf"), 3.0, float("nan")], "b": [1.0, 2.0, 3.0, 4.0], "label": ["x", "y", "x", "y"]}
    )
    pq.write_table(t, tmp_path / "t.parquet")
    r = api.ingest(tmp_path / "t.parquet", "p", store=tmp_path / "s", workers=0, on_error="skip")
    assert r.rows == 2 and all("not a finite number" in x for x in _reasons(r))
