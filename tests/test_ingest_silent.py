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
    num = tmp_path / "num.csv"
    num.write_text("x,y,cls\n1\x002,3,a\n2,3,b\n4,5,a\n")  # a NUL in a numeric cell
    r = api.ingest(num, "num", store=tmp_path / "s", workers=0, format="tabular", label_column="cls", on_error="skip")
    assert r.rows == 2 and "NUL character" in _reasons(r)[0]
    assert r.manifest.features == {"x": "numeric", "y": "numeric"}  # the quarantined row does not decide the kind
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


def test_npz_pixels_above_255_are_refused_not_clipped(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (6, 4, 4)).astype(np.int64)
    x[2, 0, 0] = 300
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6) % 2)
    with pytest.raises(AugsvcError, match=r"d.npz#2: pixel values .*300 lie outside 0-255 \(int64\)"):
        api.ingest(tmp_path / "d.npz", "d", store=tmp_path / "s", workers=0)
    r = api.ingest(tmp_path / "d.npz", "d", store=tmp_path / "s", workers=0, on_error="skip")
    assert r.rows == 5 and [q.source for q in r.manifest.quarantine] == ["d.npz#2"]
    assert "outside 0-255" in r.manifest.quarantine[0].reason


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


def test_classes_without_rows_are_noted_in_the_manifest_and_summaries(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from augsvc.cli import app

    f = tmp_path / "t.csv"
    f.write_text("text,label\n" + "".join(f"word number {i},{'ab'[i % 2]}\n" for i in range(12)))
    store = tmp_path / "s"
    r = api.ingest(f, "t", store=store, workers=0, format="csv", classes=["a", "b", "zebra"])
    assert r.manifest.rows_per_class["zebra"] == 0
    assert [n for n in r.notes if "'zebra' have no rows" in n and "--classes" in n] == r.manifest.notes
    assert api.show("t", store=store).notes == r.manifest.notes  # in manifest.json, not only in the report
    again = CliRunner().invoke(app, ["ingest", str(f), "--name", "t", "--store", str(store), "--workers", "0",
                                     "--format", "csv", "--classes", "a,b,zebra"])  # fmt: skip
    assert again.exit_code == 0 and "note: class(es) 'zebra' have no rows" in again.output
    assert "note: class(es) 'zebra'" in CliRunner().invoke(app, ["show", "t", "--store", str(store)]).output
    # a split and a build keep the parent's class names: their manifests and summaries say so too
    out = CliRunner().invoke(app, ["split", "t", "--store", str(store), "--val", "0.25", "--test", "0.25"])
    assert out.exit_code == 0 and "note: class(es) 'zebra' have no rows" in out.output and "as in t@" in out.output
    assert any("'zebra'" in n for n in api.show("t", store=store).notes)
    recipe = {"input": "t", "output": "t_aug", "seed": 1, "stages": [{"op": [{"op": "char_swap"}], "copies": 1}]}
    b = api.build(recipe, store=store, workers=0)
    assert any("'zebra' have no rows" in n for n in b.notes) and b.notes == b.manifest.notes
    full = tmp_path / "full.csv"
    full.write_text("text,label\nx y,a\nz w,b\n")
    assert api.ingest(full, "full", store=store, workers=0, format="csv").manifest.notes == []


def test_parquet_non_finite_features_are_quarantined(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table(
        {"a": [1.0, float("inf"), 3.0, float("nan")], "b": [1.0, 2.0, 3.0, 4.0], "label": ["x", "y", "x", "y"]}
    )
    pq.write_table(t, tmp_path / "t.parquet")
    r = api.ingest(tmp_path / "t.parquet", "p", store=tmp_path / "s", workers=0, on_error="skip")
    assert r.rows == 2 and all("not a finite number" in x for x in _reasons(r))
