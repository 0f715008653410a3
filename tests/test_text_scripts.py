"""Text ops over several scripts (issue 16): a word is word characters plus their combining marks, so no op
splits a word at a vowel sign, harakat, a Thai vowel or a decomposed accent, and no output starts a word with a
dangling mark."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from pipelines.transforms.base import registry
from pipelines.transforms.text.char import char_delete, char_insert, char_swap, keyboard_typo
from pipelines.transforms.text.tokenize import CHAR_UNIT, Tokens, split_words, split_words_regex

HINDI = "मुझे यह फिल्म बहुत पसंद आई"
ARABIC = "لَقَدْ أَحْبَبْتُ هٰذَا الفِيلْمَ كَثِيرًا"
THAI = "ฉัน ชอบ หนัง เรื่อง นี้ มาก"
CREME = unicodedata.normalize("NFD", "crème brûlée, s'il vous plaît")
MIXED = f"{HINDI}. {CREME}! {ARABIC}? {THAI}."
SCRIPTS = [HINDI, ARABIC, THAI, CREME, MIXED]
TEXT_OPS = sorted(n for n, cls in registry().items() if cls.modality == "text" and not n.startswith("contextual_"))


def is_mark(c: str) -> bool:
    return unicodedata.category(c)[0] == "M"


def dangling(text: str) -> list[int]:
    """Offsets of combining marks that do not follow a word character or another mark."""
    return [
        i for i, c in enumerate(text) if is_mark(c) and (i == 0 or not (text[i - 1].isalnum() or is_mark(text[i - 1])))
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (HINDI, ["मुझे", "यह", "फिल्म", "बहुत", "पसंद", "आई"]),
        (ARABIC, ["لَقَدْ", "أَحْبَبْتُ", "هٰذَا", "الفِيلْمَ", "كَثِيرًا"]),
        (THAI, ["ฉัน", "ชอบ", "หนัง", "เรื่อง", "นี้", "มาก"]),
        (CREME, [unicodedata.normalize("NFD", w) for w in ("crème", "brûlée", "s'il", "vous", "plaît")]),
    ],
)
def test_words_keep_their_marks(text: str, words: list[str]) -> None:
    assert split_words(text)[0] == words == split_words_regex(text)[0]
    assert Tokens.from_text(text).text() == text


def test_char_kernels_move_whole_units() -> None:
    word = "फिल्म"
    units = CHAR_UNIT.findall(word)
    assert units == ["फि", "ल्", "म"]
    for a in range(0, 1 << 32, 1 << 28):
        for out in (
            char_delete(word, a),
            char_swap(word, a),
            char_insert(word, a, a, "xyz"),
            keyboard_typo(word, a, a),
        ):
            assert not dangling(out), out
        assert sorted(CHAR_UNIT.findall(char_swap(word, a))) == sorted(units)
        assert CHAR_UNIT.findall(char_delete(word, a)) in [units[:i] + units[i + 1 :] for i in range(3)]
    creme = unicodedata.normalize("NFD", "crème")
    assert all(not dangling(char_swap(creme, a)) for a in range(0, 1 << 32, 1 << 27))


@pytest.mark.parametrize("name", TEXT_OPS)
def test_every_text_op_keeps_words_whole_in_every_script(name: str) -> None:
    kw = {"aug_p": 0.5, "aug_max": None}
    if name.startswith("synonym_"):
        kw["synonyms"] = {"फिल्म": ["चलचित्र"], "ชอบ": ["รัก"], "vous": ["toi"]}
    op = registry()[name](**kw)
    for text in SCRIPTS:
        in_words = set(split_words(text)[0])
        for seed in range(25):
            out, record = op(text, np.random.default_rng(seed))
            assert not dangling(out), (name, text, out)
            assert op.apply(text, record["params"]) == out
            if name in ("random_delete", "random_swap", "random_crop"):
                out_words = split_words(out)[0]
                assert set(out_words) <= in_words | {w.capitalize() for w in in_words}, (name, out)
                if name == "random_swap":
                    assert sorted(out_words) == sorted(split_words(text)[0])


def test_random_delete_on_hindi_deletes_whole_words() -> None:
    op = registry()["random_delete"](aug_p=0.3)
    for seed in range(30):
        out, _ = op(HINDI, np.random.default_rng(seed))
        assert not out.startswith("ु") and len(split_words(out)[0]) < 6
