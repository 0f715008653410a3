"""Shared fields and sampling rules of the text ops.

Every text op takes and returns ``str``. ``aug_p`` is the fraction of a text's words an op edits (at least
``aug_min``, at most ``aug_max``), counted in edits as in EDA (Wei & Zou, 2019): one replaced, inserted, deleted
or typo'd word, or one swap of two words, is one edit. ``sample`` also takes an optional ``budget``, the edits a
chain may still spend (see ``pipelines.transforms.text.budget``); ``edit_count(params)`` says what a call spent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from augsvc.errors import AugsvcError
from pipelines.textcap import current_budget
from pipelines.transforms.base import Op, OpRecord
from pipelines.transforms.text.synonyms import Protection
from pipelines.transforms.text.tokenize import Tokens


class TextOp(Op):
    """Base of the text ops: ``sample`` draws edits on the tokenised text, ``apply`` replays them."""

    modality = "text"

    aug_p: float = Field(0.1, ge=0.0, le=1.0, description="fraction of words edited")
    aug_min: int = Field(1, ge=0, description="edit at least this many words (when there are candidates)")
    aug_max: int | None = Field(10, ge=0, description="edit at most this many words (None: no limit)")

    def n_edits(self, n_units: int, n_candidates: int, budget: int | None = None) -> int:
        """How many edits to make in a text of ``n_units`` words with ``n_candidates`` editable ones."""
        n = max(self.aug_min, int(self.aug_p * n_units))
        if self.aug_max is not None:
            n = min(n, self.aug_max)
        if budget is not None:
            n = min(n, budget)
        return max(0, min(n, n_candidates))

    def sample(self, rng: np.random.Generator, x: Any, budget: int | None = None) -> dict[str, Any]:
        return self._sample(rng, Tokens.from_text(check_text(self.name, x)), budget)

    def apply(self, x: Any, params: dict[str, Any]) -> str:
        tokens = Tokens.from_text(check_text(self.name, x))
        self._apply(tokens, params)
        return tokens.text()

    def run(self, x: Any, rng: np.random.Generator, budget: int | None = None) -> tuple[str, dict[str, Any]]:
        """``sample`` then ``apply`` with one tokenisation (no ``p`` coin): ``(output, params)``."""
        tokens = Tokens.from_text(check_text(self.name, x))
        params = self._sample(rng, tokens, budget)
        self._apply(tokens, params)
        return tokens.text(), params

    def __call__(self, x: Any, rng: np.random.Generator) -> tuple[Any, OpRecord | None]:
        if self.p < 1.0 and rng.random() >= self.p:
            return x, None
        box = current_budget()  # set by pipelines.textcap.apply_capped (the recipe's mutation cap)
        out, params = self.run(x, rng, budget=None if box is None else box[0])
        if box is not None:
            box[0] = max(0, box[0] - self.edit_count(params))
        return out, {"op": self.name, "params": params}

    def edit_count(self, params: dict[str, Any]) -> int:
        """Edits (mutated words) that a call with these params made; counts against a chain's budget."""
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        raise NotImplementedError


class WordOp(TextOp):
    """A text op that edits words and leaves the words named by the ``protect_*`` fields alone."""

    protect_stopwords: bool = Field(False, description="leave English stop words alone")
    protect_words: list[str] = Field(default_factory=list, description="words left alone (case-insensitive)")
    protect_pattern: str | None = Field(None, description="regex; words overlapping a match are left alone")

    @field_validator("protect_pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        return Protection.check_pattern(v)

    @property
    def protection(self) -> Protection:
        return Protection.of(self.protect_stopwords, tuple(self.protect_words), self.protect_pattern)

    def candidates(self, tokens: Tokens) -> list[int]:
        if not (self.protect_stopwords or self.protect_words or self.protect_pattern):
            return list(range(len(tokens.words)))
        mask = self.protection.mask(tokens)
        return [i for i, m in enumerate(mask) if not m]


def choose(rng: np.random.Generator, items: list[int], n: int) -> list[int]:
    """``n`` distinct items drawn uniformly, returned in their original order."""
    if n <= 0:
        return []
    k = len(items)
    idx = list(range(k))
    for i, u in enumerate(rng.random(n).tolist()):  # partial Fisher-Yates, one draw from the generator
        j = i + int(u * (k - i))
        idx[i], idx[j] = idx[j], idx[i]
    return [items[t] for t in sorted(idx[:n])]


def below(rng: np.random.Generator, k: int) -> int:
    """A uniform integer in ``[0, k)`` (``Generator.integers`` is ~10x slower per scalar call)."""
    return min(int(rng.random() * k), k - 1)


def check_text(name: str, x: Any) -> str:
    if not isinstance(x, str):
        raise AugsvcError(f"op {name!r} works on text (str), got {type(x).__name__}; use it in a text recipe")
    return x
