"""Character-level noise: keyboard typos (QWERTY neighbours), random character insert/delete/swap, and OCR-style
confusions (0/O, 1/l, rn/m, ...).

``aug_p`` chooses the words (as in the word ops); each chosen word gets ``char_edits`` character edits. Params
record ``[word index, new word]`` pairs, so replay is exact. Words shorter than ``min_word_len`` and protected
words are left alone.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import Field

from pipelines.transforms.base import register
from pipelines.transforms.text.base import WordOp, draw_u32, pick_sorted
from pipelines.transforms.text.tokenize import CHAR_UNIT, HAS_MARK, replace_words, scan_words

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OFFSETS = (0.0, 0.25, 0.75)


def _qwerty_neighbours() -> dict[str, str]:
    """Keys within one key-width on the same or an adjacent row of a staggered QWERTY keyboard."""
    pos = {c: (r, i + _ROW_OFFSETS[r]) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out = {}
    for c, (r, x) in pos.items():
        near = [
            d for d, (r2, x2) in pos.items() if d != c and abs(r2 - r) <= 1 and abs(x2 - x) < (1.01 if r2 == r else 1.0)
        ]
        out[c] = "".join(near)
    return out


QWERTY_NEIGHBOURS = _qwerty_neighbours()
_HAS_KEY = re.compile(f"[{''.join(QWERTY_NEIGHBOURS)}]", re.IGNORECASE)

# Substrings an OCR engine confuses; each pair works both ways.
OCR_CONFUSIONS = (
    ("0", "O"), ("0", "o"), ("1", "l"), ("1", "I"), ("l", "I"), ("5", "S"), ("8", "B"), ("2", "Z"), ("6", "b"),
    ("9", "g"), ("rn", "m"), ("cl", "d"), ("vv", "w"), ("e", "c"), ("h", "b"), ("u", "v"), ("ri", "n"),
)  # fmt: skip
_OCR_TABLE: dict[str, list[str]] = {}
for _a, _b in OCR_CONFUSIONS:
    _OCR_TABLE.setdefault(_a, []).append(_b)
    _OCR_TABLE.setdefault(_b, []).append(_a)


_OCR_MAX = max(len(k) for k in _OCR_TABLE)
_OCR_ANY = re.compile("|".join(re.escape(k) for k in sorted(_OCR_TABLE, key=len, reverse=True)))


def _scale(u: int, k: int) -> int:
    """A uniform 32-bit integer ``u`` scaled to ``[0, k)``."""
    return (u * k) >> 32


# Kernels: pure functions of a word and two uniform 32-bit integers ``a`` and ``b`` (``base.draw_u32``).


def _units(word: str) -> list[str] | None:
    """The character units of a word with combining marks (each character with the marks after it), else None:
    character edits then move, delete or insert whole units, never a dangling vowel sign or accent."""
    if word.isascii() or not HAS_MARK.search(word):
        return None
    return CHAR_UNIT.findall(word)


def keyboard_typo(word: str, a: int, b: int) -> str:
    """Replace one letter by a QWERTY neighbour (case kept); unchanged when no letter is on the map."""
    if word.isascii() and word.isalpha():
        i = _scale(a, len(word))
    else:
        units = _units(word)
        if units is not None:  # a letter carrying a mark is not a key: only bare letters are candidates
            return _typo_units(units, a, b)
        positions = [i for i, c in enumerate(word) if c.lower() in QWERTY_NEIGHBOURS]
        if not positions:
            return word
        i = positions[_scale(a, len(positions))]
    c = word[i]
    near = QWERTY_NEIGHBOURS[c.lower()]
    new = near[_scale(b, len(near))]
    return word[:i] + (new.upper() if c.isupper() else new) + word[i + 1 :]


def _typo_units(units: list[str], a: int, b: int) -> str:
    positions = [i for i, u in enumerate(units) if u.lower() in QWERTY_NEIGHBOURS]
    if not positions:
        return "".join(units)
    i = positions[_scale(a, len(positions))]
    c = units[i]
    near = QWERTY_NEIGHBOURS[c.lower()]
    new = near[_scale(b, len(near))]
    units = list(units)
    units[i] = new.upper() if c.isupper() else new
    return "".join(units)


def char_insert(word: str, a: int, b: int, alphabet: str) -> str:
    units = _units(word)
    c = alphabet[_scale(b, len(alphabet))]
    if units is not None:
        i = _scale(a, len(units) + 1)
        return "".join(units[:i]) + (c.upper() if len(units) > 1 and word.isupper() else c) + "".join(units[i:])
    i = _scale(a, len(word) + 1)
    return word[:i] + (c.upper() if len(word) > 1 and word.isupper() else c) + word[i:]


def char_delete(word: str, a: int, b: int = 0) -> str:
    units = _units(word)
    if units is not None:
        if len(units) < 2:
            return word
        i = _scale(a, len(units))
        return "".join(units[:i] + units[i + 1 :])
    if len(word) < 2:
        return word
    i = _scale(a, len(word))
    return word[:i] + word[i + 1 :]


def char_swap(word: str, a: int, b: int = 0) -> str:
    """Swap two adjacent, different characters; unchanged when there are none."""
    units = _units(word)
    if units is not None:
        positions = [i for i in range(len(units) - 1) if units[i] != units[i + 1]]
        if not positions:
            return word
        i = positions[_scale(a, len(positions))]
        return "".join(units[:i] + [units[i + 1], units[i]] + units[i + 2 :])
    positions = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    if not positions:
        return word
    i = positions[_scale(a, len(positions))]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def ocr_confusion(word: str, a: int, b: int) -> str:
    """Replace one confusable substring by a look-alike; unchanged when the word has none (nor when the substring
    carries a combining mark on its last character)."""
    size = len(word)
    marked = _units(word) is not None
    hits = [
        (i, word[i : i + n])
        for i in range(size)
        for n in range(1, min(_OCR_MAX, size - i) + 1)
        if word[i : i + n] in _OCR_TABLE and not (marked and i + n < size and HAS_MARK.match(word[i + n]))
    ]  # by position, then shorter first (the order of sorted (position, substring) pairs)
    if not hits:
        return word
    i, src = hits[_scale(a, len(hits))]
    dsts = _OCR_TABLE[src]
    return word[:i] + dsts[_scale(b, len(dsts))] + word[i + len(src) :]


class _CharOp(WordOp):
    min_word_len: int = Field(3, ge=1, description="leave shorter words alone")
    char_edits: int = Field(1, ge=1, description="character edits per chosen word")

    def _eligible(self, words: list[str], cands: list[int] | range) -> list[int]:
        """The candidates that this op can edit (long enough; subclasses add what the edit needs)."""
        m = self.min_word_len
        return [i for i in cands if len(words[i]) >= m]

    def _edit(self, word: str, a: int, b: int) -> str:
        raise NotImplementedError

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        words, blanked = scan_words(text)
        cands = self._eligible(words, self.candidates(words, text, blanked))
        k = len(cands)
        n = self.n_edits(len(words), k, budget)
        if n == 0:
            return text, {"edits": []}
        per_word = self.char_edits
        u = draw_u32(rng, n + 2 * n * per_word)  # u[:n] picks the words, then two values per character edit
        edits, at, edit = [], n, self._edit
        for t in pick_sorted(u, k, n) if n < k else range(k):
            i = cands[t]
            word = words[i]
            for _ in range(per_word):
                word = edit(word, u[at], u[at + 1])
                at += 2
            edits.append([i, word])
        return replace_words(text, blanked, words, edits), {"edits": edits}

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        for i, word in params["edits"]:
            words[i] = word

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["edits"])


@register
class KeyboardTypo(_CharOp):
    """Typos from neighbouring QWERTY keys (letters a-z, either case)."""

    name = "keyboard_typo"

    def _eligible(self, words: list[str], cands: list[int] | range) -> list[int]:
        m, has_key = self.min_word_len, _HAS_KEY.search
        return [i for i in cands if len(w := words[i]) >= m and (w.isalpha() and w.isascii() or has_key(w))]

    def _edit(self, word: str, a: int, b: int) -> str:
        return keyboard_typo(word, a, b)


@register
class CharInsert(_CharOp):
    """Insert a random character from ``alphabet``."""

    name = "char_insert"
    alphabet: str = Field("abcdefghijklmnopqrstuvwxyz", min_length=1, description="characters to insert")

    def _edit(self, word: str, a: int, b: int) -> str:
        return char_insert(word, a, b, self.alphabet)


@register
class CharDelete(_CharOp):
    """Delete a random character."""

    name = "char_delete"

    def _edit(self, word: str, a: int, b: int) -> str:
        return char_delete(word, a)


@register
class CharSwap(_CharOp):
    """Swap two adjacent characters."""

    name = "char_swap"

    def _eligible(self, words: list[str], cands: list[int] | range) -> list[int]:
        m = max(2, self.min_word_len)
        return [i for i in cands if len(w := words[i]) >= m and w.count(w[0]) != len(w)]  # not one repeated char

    def _edit(self, word: str, a: int, b: int) -> str:
        return char_swap(word, a)


@register
class OcrNoise(_CharOp):
    """OCR-style confusions of look-alike characters (both directions: 0<->O, 1<->l, rn<->m, ...)."""

    name = "ocr_noise"
    min_word_len: int = Field(1, ge=1, description="leave shorter words alone")

    def _eligible(self, words: list[str], cands: list[int] | range) -> list[int]:
        m, confusable = self.min_word_len, _OCR_ANY.search
        return [i for i in cands if len(w := words[i]) >= m and confusable(w)]

    def _edit(self, word: str, a: int, b: int) -> str:
        return ocr_confusion(word, a, b)
