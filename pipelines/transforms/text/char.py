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
from pipelines.transforms.text.base import WordOp, below, choose
from pipelines.transforms.text.tokenize import Tokens

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


def _keep_case(new: str, old: str) -> str:
    return new.upper() if old.isupper() else new


def keyboard_typo(rng: np.random.Generator, word: str) -> str:
    """Replace one letter by a QWERTY neighbour (case kept); unchanged when no letter is on the map."""
    positions = [i for i, c in enumerate(word) if c.lower() in QWERTY_NEIGHBOURS]
    if not positions:
        return word
    i = positions[below(rng, len(positions))]
    near = QWERTY_NEIGHBOURS[word[i].lower()]
    return word[:i] + _keep_case(near[below(rng, len(near))], word[i]) + word[i + 1 :]


def char_insert(rng: np.random.Generator, word: str, alphabet: str) -> str:
    i = below(rng, len(word) + 1)
    c = alphabet[below(rng, len(alphabet))]
    return word[:i] + (c.upper() if len(word) > 1 and word.isupper() else c) + word[i:]


def char_delete(rng: np.random.Generator, word: str) -> str:
    if len(word) < 2:
        return word
    i = below(rng, len(word))
    return word[:i] + word[i + 1 :]


def char_swap(rng: np.random.Generator, word: str) -> str:
    """Swap two adjacent, different characters; unchanged when there are none."""
    positions = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    if not positions:
        return word
    i = positions[below(rng, len(positions))]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def ocr_confusion(rng: np.random.Generator, word: str) -> str:
    """Replace one confusable substring by a look-alike; unchanged when the word has none."""
    hits = [(i, src) for src in _OCR_TABLE for i in range(len(word)) if word.startswith(src, i)]
    if not hits:
        return word
    hits.sort()
    i, src = hits[below(rng, len(hits))]
    dsts = _OCR_TABLE[src]
    return word[:i] + dsts[below(rng, len(dsts))] + word[i + len(src) :]


class _CharOp(WordOp):
    min_word_len: int = Field(3, ge=1, description="leave shorter words alone")
    char_edits: int = Field(1, ge=1, description="character edits per chosen word")

    def _eligible(self, word: str) -> bool:
        return len(word) >= self.min_word_len

    def _edit(self, rng: np.random.Generator, word: str) -> str:
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        cands = [i for i in self.candidates(tokens) if self._eligible(tokens.words[i])]
        edits = []
        for i in choose(rng, cands, self.n_edits(len(tokens.words), len(cands), budget)):
            word = tokens.words[i]
            for _ in range(self.char_edits):
                word = self._edit(rng, word)
            edits.append([i, word])
        return {"edits": edits}

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        for i, word in params["edits"]:
            tokens.words[i] = word

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["edits"])


@register
class KeyboardTypo(_CharOp):
    """Typos from neighbouring QWERTY keys (letters a-z, either case)."""

    name = "keyboard_typo"

    def _eligible(self, word: str) -> bool:
        return len(word) >= self.min_word_len and _HAS_KEY.search(word) is not None

    def _edit(self, rng: np.random.Generator, word: str) -> str:
        return keyboard_typo(rng, word)


@register
class CharInsert(_CharOp):
    """Insert a random character from ``alphabet``."""

    name = "char_insert"
    alphabet: str = Field("abcdefghijklmnopqrstuvwxyz", min_length=1, description="characters to insert")

    def _edit(self, rng: np.random.Generator, word: str) -> str:
        return char_insert(rng, word, self.alphabet)


@register
class CharDelete(_CharOp):
    """Delete a random character."""

    name = "char_delete"

    def _edit(self, rng: np.random.Generator, word: str) -> str:
        return char_delete(rng, word)


@register
class CharSwap(_CharOp):
    """Swap two adjacent characters."""

    name = "char_swap"

    def _eligible(self, word: str) -> bool:
        return len(word) >= max(2, self.min_word_len) and len(set(word)) > 1

    def _edit(self, rng: np.random.Generator, word: str) -> str:
        return char_swap(rng, word)


@register
class OcrNoise(_CharOp):
    """OCR-style confusions of look-alike characters (both directions: 0<->O, 1<->l, rn<->m, ...)."""

    name = "ocr_noise"
    min_word_len: int = Field(1, ge=1, description="leave shorter words alone")

    def _eligible(self, word: str) -> bool:
        return len(word) >= self.min_word_len and any(src in word for src in _OCR_TABLE)

    def _edit(self, rng: np.random.Generator, word: str) -> str:
        return ocr_confusion(rng, word)
