"""Shared fields, sampling rules and random helpers of the text ops.

Every text op takes and returns ``str``. ``aug_p`` is the fraction of a text's words an op edits (at least
``aug_min``, at most ``aug_max``), counted in edits as in EDA (Wei & Zou, 2019): one replaced, inserted, deleted
or typo'd word, or one swap of two words, is one edit. ``sample`` also takes an optional ``budget``, the edits a
chain may still spend (see ``pipelines.transforms.text.budget``); ``edit_count(params)`` says what a call spent.

Ops are built for a per-call cost of a few microseconds (docs/text_ops.md): one C-level scan of the text
(``tokenize.blank``/``scan_words``), a call's random numbers taken up front as raw 64-bit draws from the
generator (``draw_u32``: two 32-bit values per draw, no per-number ``Generator`` call), the few edited words
spliced into the text at their offsets (no separator list, no join; ``tokenize.word_span``), per-op constants
computed once (``_edits_table``, ``_protection``), and the text returned as it is when nothing is drawn.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from pipelines.textcap import current_budget
from pipelines.transforms.base import Op, OpRecord
from pipelines.transforms.text.synonyms import Protection
from pipelines.transforms.text.tokenize import blank, join_words, scan_words, seps_of, split_words
from schemas.errors import AugsvcError

_LOW32 = 0xFFFFFFFF


def draw_u32(rng: np.random.Generator, m: int) -> list[int]:
    """At least ``m`` independent uniform integers in ``[0, 2**32)`` from ``rng``'s bit generator.

    Each 64-bit draw gives two values (low half first); up to six values come from scalar draws, more from one
    array draw (same values either way). Scale one to ``[0, k)`` with ``(u * k) >> 32`` (bias at most
    ``k / 2**32``). A scalar draw costs ~0.2 us, an array draw ~0.5 us: ops draw what a call needs up front.
    """
    if m <= 0:
        return []
    bits = rng.bit_generator
    if m <= 2:
        r = bits.random_raw()
        return [r & _LOW32, r >> 32]
    if m <= 6:  # a few scalar draws beat an array draw and its conversion
        out = []
        for _ in range((m + 1) >> 1):
            r = bits.random_raw()
            out += (r & _LOW32, r >> 32)
        return out
    return [h for r in bits.random_raw((m + 1) >> 1).tolist() for h in (r & _LOW32, r >> 32)]


def pick_sorted(u: list[int], k: int, n: int) -> list[int]:
    """``n`` distinct integers of ``range(k)`` (``0 < n <= k``), uniform over subsets, sorted; uses ``u[:n]``.

    Floyd's algorithm: O(n) work and exactly ``n`` draws whatever ``k``.
    """
    if n == 1:
        return [(u[0] * k) >> 32]
    if n == 2:  # a uniform pair, directly
        a = (u[0] * k) >> 32
        b = (u[1] * (k - 1)) >> 32
        if b >= a:
            return [a, b + 1]
        return [b, a]
    chosen: set[int] = set()
    for t, j in enumerate(range(k - n, k)):
        r = (u[t] * (j + 1)) >> 32  # uniform in [0, j]
        chosen.add(j if r in chosen else r)
    return sorted(chosen)


def choose(rng: np.random.Generator, items: list[int] | range, n: int) -> list[int]:
    """``n`` distinct items drawn uniformly, returned in their original order (all of them when ``n >= len``)."""
    if n <= 0:
        return []
    k = len(items)
    if n >= k:
        return list(items)
    return [items[t] for t in pick_sorted(draw_u32(rng, n), k, n)]


def below(rng: np.random.Generator, k: int) -> int:
    """A uniform integer in ``[0, k)`` from one 64-bit draw (``Generator.integers`` is ~5x slower per call)."""
    return ((rng.bit_generator.random_raw() >> 32) * k) >> 32


def check_text(name: str, x: Any) -> str:
    if not isinstance(x, str):
        raise AugsvcError(f"op {name!r} works on text (str), got {type(x).__name__}; use it in a text recipe")
    return x


class TextOp(Op):
    """Base of the text ops: ``_run`` samples a call's edits and makes them, ``_apply`` replays recorded ones.

    ``run``, ``sample`` and ``__call__`` go through ``_run``; ``apply`` splits the text (``split_words``), replays
    with ``_apply`` and joins, so a call's output always equals ``apply(x, params)`` (the tests check both).
    """

    modality = "text"
    _cached: ClassVar[tuple[str, ...]] = ("_edits_table",)  # cached_property names (dropped on model_copy)

    aug_p: float = Field(0.1, ge=0.0, le=1.0, description="fraction of words edited")
    aug_min: int = Field(1, ge=0, description="edit at least this many words (when there are candidates)")
    aug_max: int | None = Field(10, ge=0, description="edit at most this many words (None: no limit)")

    def _edits_for(self, n_units: int) -> int:
        n = max(self.aug_min, int(self.aug_p * n_units))
        return n if self.aug_max is None else min(n, self.aug_max)

    @cached_property
    def _edits_table(self) -> tuple[int, ...]:
        """``_edits_for(n)`` for texts of up to 255 words, computed once per op."""
        return tuple(self._edits_for(n) for n in range(256))

    def n_edits(self, n_units: int, n_candidates: int, budget: int | None = None) -> int:
        """How many edits to make in a text of ``n_units`` words with ``n_candidates`` editable ones."""
        n = self._edits_table[n_units] if n_units < 256 else self._edits_for(n_units)
        if budget is not None and n > budget:
            n = budget
        if n > n_candidates:
            n = n_candidates
        return n if n > 0 else 0

    def sample(self, rng: np.random.Generator, x: Any, budget: int | None = None) -> dict[str, Any]:
        return self.run(x, rng, budget)[1]

    def apply(self, x: Any, params: dict[str, Any]) -> str:
        words, seps = split_words(check_text(self.name, x))
        self._apply(words, seps, params)
        return join_words(words, seps)

    def run(self, x: Any, rng: np.random.Generator, budget: int | None = None) -> tuple[str, dict[str, Any]]:
        """Sample and apply in one pass (no ``p`` coin): ``(output, params)``."""
        if type(x) is not str:
            check_text(self.name, x)
        return self._run(rng, x, budget)

    def __call__(self, x: Any, rng: np.random.Generator) -> tuple[Any, OpRecord | None]:
        if self.p < 1.0 and rng.random() >= self.p:
            return x, None
        if type(x) is not str:
            check_text(self.name, x)
        box = current_budget()  # set by pipelines.textcap.apply_capped (the recipe's mutation cap)
        if box is None:
            out, params = self._run(rng, x, None)
        else:
            out, params = self._run(rng, x, box[0])
            box[0] = max(0, box[0] - self.edit_count(params))
        return out, {"op": self.name, "params": params}

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> TextOp:
        copied = super().model_copy(update=update, deep=deep)
        for name in self._cached:
            copied.__dict__.pop(name, None)
        return copied

    def edit_count(self, params: dict[str, Any]) -> int:
        """Edits (mutated words) that a call with these params made; counts against a chain's budget."""
        raise NotImplementedError

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        """Draw this call's edits of ``text`` (at most ``budget``) and make them: ``(output, params)``."""
        raise NotImplementedError

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        """Replay ``params`` on the split text (``tokenize.split_words``), in place."""
        raise NotImplementedError


class ReplacesWords:
    """For ops whose params are ``{"replacements": [[word index, new word], ...]}`` (list it before the op base)."""

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        for i, word in params["replacements"]:
            words[i] = word

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["replacements"])


class WordOp(TextOp):
    """A text op that edits words and leaves the words named by the ``protect_*`` fields alone."""

    _cached: ClassVar[tuple[str, ...]] = ("_edits_table", "_protection")

    protect_stopwords: bool = Field(False, description="leave English stop words alone")
    protect_words: list[str] = Field(default_factory=list, description="words left alone (case-insensitive)")
    protect_pattern: str | None = Field(None, description="regex; words overlapping a match are left alone")

    @field_validator("protect_pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        return Protection.check_pattern(v)

    @cached_property
    def _protection(self) -> Protection | None:
        """The op's protection rules, or None when nothing is protected (computed once per op)."""
        if not (self.protect_stopwords or self.protect_words or self.protect_pattern):
            return None
        return Protection.of(self.protect_stopwords, tuple(self.protect_words), self.protect_pattern)

    @property
    def protection(self) -> Protection:
        return self._protection or Protection()

    def survey(self, text: str) -> tuple[list[str] | list[bytes], bytes | None, list[int] | None]:
        """``(words, blanked, cands)`` of ``text`` for an op that reads only the words it picks. With nothing
        protected and a latin-1 text, ``words`` are the blanked text's byte pieces (their number and lengths are
        those of the words) and ``cands`` is None (every word); else ``scan_words`` and ``candidates``."""
        if self._protection is None:
            blanked = blank(text)
            if blanked is not None:
                return blanked.split(), blanked, None
        words, blanked = scan_words(text)
        return words, blanked, None if self._protection is None else self.candidates(words, text, blanked)

    def candidates(self, words: list[str], text: str, blanked: bytes | None) -> list[int] | range:
        """Indices of the words this op may edit (all of them when nothing is protected); ``words`` and
        ``blanked`` are ``tokenize.scan_words(text)``."""
        protection = self._protection
        if protection is None:
            return range(len(words))
        seps = seps_of(text, len(words), blanked) if protection.pattern else None
        return [i for i, m in enumerate(protection.mask_words(words, seps, text)) if not m]
