"""Word-level ops in the style of EDA (Wei & Zou, 2019, "EDA: Easy Data Augmentation Techniques for Boosting
Performance on Text Classification Tasks"): synonym replacement and insertion, random deletion, swap and crop, and
sentence/paragraph shuffle for long texts.

Ops edit the lossless token list of ``tokenize.Tokens``, so spacing and punctuation of the input are kept;
replacements take the case of the word they replace. Params record the chosen word indices and the words put
in, so ``apply(x, params)`` replays a call exactly.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr, model_validator

from pipelines.transforms.base import register
from pipelines.transforms.text.base import TextOp, WordOp, below, check_text, choose
from pipelines.transforms.text.synonyms import SynonymSource, SynonymSpec, source_from_key
from pipelines.transforms.text.tokenize import (
    Tokens,
    capitalise,
    decapitalise,
    join_units,
    match_case,
    split_units,
)


class _SynonymOp(WordOp):
    source: Literal["inline", "thesaurus", "wordnet", "embedding"] = Field(
        "inline", description="where synonyms come from"
    )
    synonyms: dict[str, list[str]] = Field(default_factory=dict, description="inline {word: [synonyms]}")
    source_path: str | None = Field(None, description="thesaurus file or embedding table")
    vocab_path: str | None = Field(None, description="vocab file (one word a line) for a .npy embedding table")
    top_k: int = Field(5, ge=1, description="embedding neighbours per word")
    min_similarity: float = Field(0.0, ge=-1.0, le=1.0, description="embedding cosine threshold")
    protect_stopwords: bool = Field(True, description="leave English stop words alone")

    @model_validator(mode="after")
    def _path_given(self) -> _SynonymOp:
        if self.source in ("thesaurus", "embedding") and not self.source_path:
            raise ValueError(f"source={self.source!r} needs source_path (the {self.source} file)")
        return self

    _source_key: str | None = PrivateAttr(None)

    @property
    def synonym_spec(self) -> SynonymSpec:
        return SynonymSpec(
            kind=self.source,
            words=self.synonyms,
            path=self.source_path,
            vocab_path=self.vocab_path,
            top_k=self.top_k,
            min_similarity=self.min_similarity,
        )

    def model_post_init(self, context: Any) -> None:
        if self.source_path or self.source not in ("thesaurus", "embedding"):  # else the validator below fails
            self._source_key = self.synonym_spec.model_dump_json()  # the source's cache key, computed once

    def synonym_source(self) -> SynonymSource:
        """The op's synonym source, loaded once per process."""
        return source_from_key(self._source_key)

    def _with_synonyms(self, tokens: Tokens) -> tuple[list[int], list[list[str]]]:
        source = self.synonym_source()
        cands, syns = [], []
        for i in self.candidates(tokens):
            s = source.synonyms(tokens.words[i])
            if s:
                cands.append(i)
                syns.append(s)
        return cands, syns


@register
class SynonymReplace(_SynonymOp):
    """Replace words by a synonym (case kept). With no synonyms for any word, nothing changes."""

    name = "synonym_replace"

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        cands, syns = self._with_synonyms(tokens)
        n = self.n_edits(len(tokens.words), len(cands), budget)
        picks = choose(rng, list(range(len(cands))), n)
        out = []
        for k in picks:
            word = tokens.words[cands[k]]
            out.append([cands[k], match_case(syns[k][below(rng, len(syns[k]))], word)])
        return {"replacements": out}

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        for i, word in params["replacements"]:
            tokens.words[i] = word

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["replacements"])


@register
class SynonymInsert(_SynonymOp):
    """Insert a synonym of a random word after a random word (EDA's random insertion)."""

    name = "synonym_insert"

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        cands, syns = self._with_synonyms(tokens)
        n = self.n_edits(len(tokens.words), len(tokens.words) if cands else 0, budget)
        out = []
        for step in range(n):
            k = below(rng, len(cands))
            syn = syns[k][below(rng, len(syns[k]))]
            source_word = tokens.words[cands[k]]
            if len(source_word) > 1 and source_word.isupper():
                syn = syn.upper()
            out.append([1 + below(rng, len(tokens.words) + step), syn])
        return {"insertions": out}

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        for pos, word in params["insertions"]:
            tokens.insert_after(pos, word)

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["insertions"])


@register
class RandomDelete(WordOp):
    """Delete random words (never all of them); the separators around a deleted word merge readably."""

    name = "random_delete"
    fix_case: bool = Field(True, description="capitalise the word that becomes sentence-initial")

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        cands = self.candidates(tokens)
        n = self.n_edits(len(tokens.words), min(len(cands), len(tokens.words) - 1), budget)
        return {"indices": choose(rng, cands, n)}

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        for i in sorted(params["indices"], reverse=True):
            tokens.delete_span(i, i + 1, fix_case=self.fix_case)

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["indices"])


def swap_words(tokens: Tokens, i: int, j: int, fix_case: bool = True) -> None:
    """Swap words ``i`` and ``j``; with ``fix_case`` a sentence-initial capital stays at the sentence start."""
    a, b = tokens.words[i], tokens.words[j]
    if fix_case:
        si, sj = tokens.is_sentence_start(i), tokens.is_sentence_start(j)
        if si and not sj and a[:1].isupper():
            a, b = decapitalise(a), capitalise(b)
        elif sj and not si and b[:1].isupper():
            a, b = capitalise(a), decapitalise(b)
    tokens.words[i], tokens.words[j] = b, a


@register
class RandomSwap(WordOp):
    """Swap two random words, ``n`` times (one swap is one edit, as in EDA)."""

    name = "random_swap"
    fix_case: bool = Field(True, description="keep the capital at the start of a sentence")

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        cands = self.candidates(tokens)
        n = self.n_edits(len(tokens.words), len(cands) if len(cands) >= 2 else 0, budget)
        swaps = []
        k = len(cands)
        u = rng.random(2 * n).tolist()
        for t in range(n):
            a = min(int(u[2 * t] * k), k - 1)
            b = min(int(u[2 * t + 1] * (k - 1)), k - 2)
            b += b >= a  # a second, different candidate
            swaps.append(sorted([cands[a], cands[b]]))
        return {"swaps": swaps}

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        for i, j in params["swaps"]:
            swap_words(tokens, i, j, self.fix_case)

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["swaps"])


@register
class RandomCrop(WordOp):
    """Drop one contiguous span of ``n`` words (no protected word inside it, never the whole text)."""

    name = "random_crop"
    fix_case: bool = Field(True, description="capitalise the word that becomes sentence-initial")

    def _sample(self, rng: np.random.Generator, tokens: Tokens, budget: int | None) -> dict[str, Any]:
        n_words = len(tokens.words)
        free = [False] * n_words
        for i in self.candidates(tokens):
            free[i] = True
        longest, run, run_end = 0, 0, []  # run_end[i]: free words in the run ending at word i
        for f in free:
            run = run + 1 if f else 0
            run_end.append(run)
            longest = max(longest, run)
        length = min(self.n_edits(n_words, n_words - 1, budget), longest)
        if length <= 0:
            return {"start": 0, "length": 0}
        starts = [i - length + 1 for i in range(n_words) if run_end[i] >= length]
        return {"start": starts[below(rng, len(starts))], "length": length}

    def _apply(self, tokens: Tokens, params: dict[str, Any]) -> None:
        if params["length"]:
            tokens.delete_span(params["start"], params["start"] + params["length"], fix_case=self.fix_case)

    def edit_count(self, params: dict[str, Any]) -> int:
        return params["length"]


@register
class SentenceShuffle(TextOp):
    """Reorder sentences (or paragraphs) of a long text; ``aug_p`` is the fraction of units that move.

    Words are not changed, so a shuffle spends none of a chain's edit budget.
    """

    name = "sentence_shuffle"
    unit: Literal["sentence", "paragraph"] = "sentence"
    aug_p: float = Field(1.0, ge=0.0, le=1.0, description="fraction of sentences that take part")
    aug_min: int = Field(2, ge=0, description="shuffle at least this many sentences")
    aug_max: int | None = Field(None, ge=0, description="shuffle at most this many sentences")

    def sample(self, rng: np.random.Generator, x: Any, budget: int | None = None) -> dict[str, Any]:
        _, units, _, _ = split_units(check_text(self.name, x), self.unit)
        m = self.n_edits(len(units), len(units))
        order = list(range(len(units)))
        if m >= 2:
            slots = choose(rng, order, m)
            perm = rng.permutation(m).tolist()
            for k, slot in enumerate(slots):
                order[slot] = slots[perm[k]]
        return {"order": order}

    def run(self, x: Any, rng: np.random.Generator, budget: int | None = None) -> tuple[str, dict[str, Any]]:
        params = self.sample(rng, x)
        return self.apply(x, params), params

    def apply(self, x: Any, params: dict[str, Any]) -> str:
        prefix, units, seps, suffix = split_units(check_text(self.name, x), self.unit)
        if sorted(params["order"]) != list(range(len(units))):
            raise ValueError(f"order {params['order']} is not a permutation of the text's {len(units)} {self.unit}s")
        return join_units(prefix, [units[k] for k in params["order"]], seps, suffix)

    def edit_count(self, params: dict[str, Any]) -> int:
        return 0
