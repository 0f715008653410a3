"""Word-level ops in the style of EDA (Wei & Zou, 2019, "EDA: Easy Data Augmentation Techniques for Boosting
Performance on Text Classification Tasks"): synonym replacement and insertion, random deletion, swap and crop, and
sentence/paragraph shuffle for long texts.

Ops edit the lossless word and separator lists of ``tokenize.split_words``, so spacing and punctuation of the
input are kept; replacements take the case of the word they replace. Params record the chosen word indices and
the words put in, so ``apply(x, params)`` replays a call exactly. A call with a few edits on a latin-1 text does
not build those lists: it finds the words it touches in the blanked text and splices the result (the helpers in
``tokenize``, which give the same text as the list operations; the tests check ``op(x) == apply(x, params)``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from pipelines.transforms.base import register
from pipelines.transforms.text.base import ReplacesWords, TextOp, WordOp, below, check_text, draw_u32, pick_sorted
from pipelines.transforms.text.synonyms import (
    ENGLISH_STOPWORDS,
    DictSynonyms,
    SynonymSource,
    SynonymSpec,
    source_from_key,
)
from pipelines.transforms.text.tokenize import (
    SPLICE_MAX,
    Words,
    blank,
    capitalise,
    cut_words,
    decapitalise,
    delete_in_text,
    delete_span,
    delete_words_in_text,
    join_units,
    join_words,
    match_case,
    opens_sentence,
    replace_words,
    scan_words,
    seps_of,
    split_units,
    split_words,
    starts_sentence,
    word_span,
)


class _SynonymOp(WordOp):
    _cached: ClassVar[tuple[str, ...]] = ("_edits_table", "_protection", "_source_key")

    source: Literal["inline", "thesaurus", "wordnet", "embedding"] = Field(
        "inline", description="where synonyms come from"
    )
    synonyms: dict[str, list[str]] = Field(default_factory=dict, description="inline {word: [synonyms]}")
    source_path: str | None = Field(None, description="thesaurus file, embedding table or WordNet dict folder")
    vocab_path: str | None = Field(None, description="vocab file (one word a line) for a .npy embedding table")
    top_k: int = Field(5, ge=1, description="embedding neighbours per word")
    min_similarity: float = Field(0.0, ge=-1.0, le=1.0, description="embedding cosine threshold")
    protect_stopwords: bool = Field(True, description="leave English stop words alone")

    @model_validator(mode="after")
    def _path_given(self) -> _SynonymOp:
        if self.source in ("thesaurus", "embedding") and not self.source_path:
            raise ValueError(f"source={self.source!r} needs source_path (the {self.source} file)")
        return self

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

    @cached_property
    def _source_key(self) -> str:
        """The source's cache key (its spec as JSON), computed once per op."""
        return self.synonym_spec.model_dump_json()

    def synonym_source(self) -> SynonymSource:
        """The op's synonym source, loaded once per process."""
        return source_from_key(self._source_key)

    def _with_synonyms(self, words: list[str], text: str, blanked: bytes | None) -> tuple[list[int], list[list[str]]]:
        """Indices of the editable words that have synonyms, and their synonyms (one pass over the words)."""
        source = self.synonym_source()
        cands, syns = [], []
        protection = self._protection
        if isinstance(source, DictSynonyms) and (protection is None or not protection.pattern):
            # the common case, fused: lower-case each word once for both the protection and the lookup
            stop = ENGLISH_STOPWORDS if protection is not None and protection.stopwords else ()
            user = protection.words if protection is not None else ()
            lookup = source.synonyms_lower
            for i, w in enumerate(words):
                lw = w.lower()
                if lw in stop or lw in user:
                    continue
                s = lookup(lw)
                if s:
                    cands.append(i)
                    syns.append(s)
            return cands, syns
        for i in self.candidates(words, text, blanked):
            s = source.synonyms(words[i])
            if s:
                cands.append(i)
                syns.append(s)
        return cands, syns


@register
class SynonymReplace(ReplacesWords, _SynonymOp):
    """Replace words by a synonym (case kept). With no synonyms for any word, nothing changes."""

    name = "synonym_replace"

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        words, blanked = scan_words(text)
        cands, syns = self._with_synonyms(words, text, blanked)
        k = len(cands)
        n = self.n_edits(len(words), k, budget)
        if n == 0:
            return text, {"replacements": []}
        u = draw_u32(rng, 2 * n)  # u[:n] picks the words, u[n:] their synonyms
        out = []
        for t, c in enumerate(pick_sorted(u, k, n) if n < k else range(k)):
            s, i = syns[c], cands[c]
            out.append([i, match_case(s[(u[n + t] * len(s)) >> 32], words[i])])
        return replace_words(text, blanked, words, out), {"replacements": out}


@register
class SynonymInsert(_SynonymOp):
    """Insert a synonym of a random word after a random word (EDA's random insertion)."""

    name = "synonym_insert"

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        words, blanked = scan_words(text)
        cands, syns = self._with_synonyms(words, text, blanked)
        n_words = len(words)
        n = self.n_edits(n_words, n_words if cands else 0, budget)
        if n == 0:
            return text, {"insertions": []}
        u = draw_u32(rng, 3 * n)
        out = []
        for step in range(n):
            c = (u[3 * step] * len(cands)) >> 32
            s = syns[c]
            syn = s[(u[3 * step + 1] * len(s)) >> 32]
            source_word = words[cands[c]]
            if len(source_word) > 1 and source_word.isupper():
                syn = syn.upper()
            out.append([1 + ((u[3 * step + 2] * (n_words + step)) >> 32), syn])
        if n == 1 and blanked is not None:  # one word goes in after word pos - 1, joined by a space
            pos, syn = out[0]
            end = word_span(blanked, words, pos - 1)[1]
            return f"{text[:end]} {syn}{text[end:]}", {"insertions": out}
        seps = seps_of(text, n_words, blanked)
        self._apply(words, seps, {"insertions": out})
        return join_words(words, seps), {"insertions": out}

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        for pos, word in params["insertions"]:
            if not 1 <= pos <= len(words):
                raise IndexError(f"insert position {pos} out of range 1..{len(words)}")
            words.insert(pos, word)
            seps.insert(pos, " ")

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["insertions"])


def _lists(text: str, words: list[str] | list[bytes], blanked: bytes | None) -> tuple[list[str], list[str]]:
    """``split_words(text)``, reusing ``words`` from ``scan_words`` (``survey`` may give byte pieces instead)."""
    if words and isinstance(words[0], bytes):
        return split_words(text)
    return list(words), seps_of(text, len(words), blanked)


def delete_words(words: list[str], seps: list[str], indices: list[int], fix_case: bool = True) -> None:
    """Delete the words at ``indices`` (any order), last first, merging separators (``tokenize.delete_span``)."""
    for i in sorted(indices, reverse=True) if len(indices) > 1 else indices:
        delete_span(words, seps, i, i + 1, fix_case=fix_case)


@register
class RandomDelete(WordOp):
    """Delete random words (never all of them); the separators around a deleted word merge readably."""

    name = "random_delete"
    fix_case: bool = Field(True, description="capitalise the word that becomes sentence-initial")

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        if self._protection is None and (blanked := blank(text)) is not None:  # survey, inlined (hot path)
            words, cands = blanked.split(), None
        else:
            words, blanked, cands = self.survey(text)
        n_words = len(words)
        k = n_words if cands is None else len(cands)
        n = self._edits_table[n_words] if n_words < 256 else self._edits_for(n_words)  # n_edits, inlined
        if budget is not None and n > budget:
            n = budget
        if n >= n_words:
            n = n_words - 1 if n_words else 0  # never every word
        if n > k:
            n = k
        if n == 0:
            return text, {"indices": []}
        if n == 1:
            i = ((rng.bit_generator.random_raw() >> 32) * k) >> 32
            if cands is not None:
                i = cands[i]
            if blanked is not None:
                cut, merged, capital, resume = cut_words(text, blanked, words, i, i + 1, self.fix_case)
                return f"{text[:cut]}{merged}{capital}{text[resume:]}", {"indices": [i]}
            indices = [i]
        else:
            indices = pick_sorted(draw_u32(rng, n), k, n) if n < k else list(range(k))
            if cands is not None:
                indices = [cands[t] for t in indices]
            if blanked is not None and n <= SPLICE_MAX:
                return delete_words_in_text(text, blanked, words, indices, self.fix_case), {"indices": indices}
        words, seps = _lists(text, words, blanked)
        delete_words(words, seps, indices, self.fix_case)
        return join_words(words, seps), {"indices": indices}

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        delete_words(words, seps, params["indices"], self.fix_case)

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["indices"])


def _swapped(a: str, b: str, a_starts: bool, b_starts: bool) -> tuple[str, str]:
    """The pair ``(a, b)`` recased so that a sentence-initial capital stays at the sentence start."""
    if a_starts and not b_starts and a[:1].isupper():
        return decapitalise(a), capitalise(b)
    if b_starts and not a_starts and b[:1].isupper():
        return capitalise(a), decapitalise(b)
    return a, b


def swap_words(words: list[str], seps: list[str], i: int, j: int, fix_case: bool = True) -> None:
    """Swap words ``i`` and ``j``; with ``fix_case`` a sentence-initial capital stays at the sentence start."""
    a, b = words[i], words[j]
    if fix_case and (a[:1].isupper() or b[:1].isupper()):  # else neither word can be recased
        a, b = _swapped(a, b, i == 0 or starts_sentence(seps[i]), j == 0 or starts_sentence(seps[j]))
    words[i], words[j] = b, a


def _swap_at(text: str, blanked: bytes, words: Words, i: int, j: int, fix_case: bool) -> tuple[int, str, int, str]:
    """Where ``swap_words(i, j)`` (``i < j``) puts what: ``(start of word i, new word i, start of word j, new word
    j)`` in ``text`` (``word_span`` inlined: this is the hot path of random_swap)."""
    n, size, wi, wj = len(words), len(blanked), len(words[i]), len(words[j])
    si = size - len(blanked.split(None, i)[-1]) if 2 * i < n else len(blanked.rsplit(None, n - 1 - i)[0]) - wi
    sj = size - len(blanked.split(None, j)[-1]) if 2 * j < n else len(blanked.rsplit(None, n - 1 - j)[0]) - wj
    a, b = text[si : si + wi], text[sj : sj + wj]
    if fix_case:  # _swapped, with each sentence-start test made only when it can matter
        if a[0].isupper() and (i == 0 or opens_sentence(text, blanked, si)):
            if not opens_sentence(text, blanked, sj):
                a, b = decapitalise(a), capitalise(b)
        elif b[0].isupper() and opens_sentence(text, blanked, sj) and not (i == 0 or opens_sentence(text, blanked, si)):
            a, b = capitalise(a), decapitalise(b)
    return si, b, sj, a


def swaps_in_text(text: str, blanked: bytes, words: Words, swaps: list[list[int]], fix_case: bool = True) -> str:
    """``text`` after ``swap_words`` for each ``[i, j]`` pair (``i < j``) in turn on its split: each swap spliced in
    at its offsets, the blanked text and the word lengths kept in step for the next one."""
    words = list(words)
    for k, (i, j) in enumerate(swaps):
        si, new_i, sj, new_j = _swap_at(text, blanked, words, i, j, fix_case)
        ei, ej = si + len(words[i]), sj + len(words[j])
        text = f"{text[:si]}{new_i}{text[ei:sj]}{new_j}{text[ej:]}"
        if k + 1 < len(swaps):
            blanked = b"%b%b%b%b%b" % (blanked[:si], b"a" * len(new_i), blanked[ei:sj], b"a" * len(new_j), blanked[ej:])
            words[i], words[j] = new_i, new_j
    return text


@register
class RandomSwap(WordOp):
    """Swap two random words once per edit (edits: ``aug_p``/``aug_min``/``aug_max``; one swap is one edit, as EDA)."""

    name = "random_swap"
    fix_case: bool = Field(True, description="keep the capital at the start of a sentence")

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        if self._protection is None and (blanked := blank(text)) is not None:  # survey, inlined (hot path)
            words, cands = blanked.split(), None
        else:
            words, blanked, cands = self.survey(text)
        n_words = len(words)
        k = n_words if cands is None else len(cands)
        n = self._edits_table[n_words] if n_words < 256 else self._edits_for(n_words)  # n_edits, inlined
        if budget is not None and n > budget:
            n = budget
        if n > k:
            n = k
        if k < 2:
            n = 0
        if n == 0:
            return text, {"swaps": []}
        if n == 1 and blanked is not None:  # the common case (under 20 words at aug_p 0.1), drawn as in the loop
            r = rng.bit_generator.random_raw()
            i = ((r & 0xFFFFFFFF) * k) >> 32
            j = ((r >> 32) * (k - 1)) >> 32
            if j >= i:
                j += 1
            if cands is not None:
                i, j = cands[i], cands[j]
            if i > j:
                i, j = j, i
            si, new_i, sj, new_j = _swap_at(text, blanked, words, i, j, self.fix_case)
            out = f"{text[:si]}{new_i}{text[si + len(words[i]) : sj]}{new_j}{text[sj + len(words[j]) :]}"
            return out, {"swaps": [[i, j]]}
        bits, swaps = rng.bit_generator, []
        for _ in range(n):  # one 64-bit draw per swap: its low half picks a word, its high half another
            r = bits.random_raw()
            i = ((r & 0xFFFFFFFF) * k) >> 32
            j = ((r >> 32) * (k - 1)) >> 32
            if j >= i:
                j += 1
            if cands is not None:
                i, j = cands[i], cands[j]
            swaps.append([i, j] if i < j else [j, i])
        if blanked is not None and 2 * n <= SPLICE_MAX:
            return swaps_in_text(text, blanked, words, swaps, self.fix_case), {"swaps": swaps}
        words, seps = _lists(text, words, blanked)
        self._apply(words, seps, {"swaps": swaps})
        return join_words(words, seps), {"swaps": swaps}

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        for i, j in params["swaps"]:
            swap_words(words, seps, i, j, self.fix_case)

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["swaps"])


@register
class RandomCrop(WordOp):
    """Drop one contiguous span of as many words as edits (``aug_p``/``aug_min``/``aug_max``), never the whole text."""

    name = "random_crop"
    fix_case: bool = Field(True, description="capitalise the word that becomes sentence-initial")

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        words, blanked, cands = self.survey(text)
        n_words = len(words)
        length = self.n_edits(n_words, n_words - 1, budget)
        if length <= 0:
            return text, {"start": 0, "length": 0}
        if cands is None:  # every word is free: any start that fits
            start = below(rng, n_words - length + 1)
        else:
            free = [False] * n_words
            for i in cands:
                free[i] = True
            longest, run, run_end = 0, 0, []  # run_end[i]: free words in the run ending at word i
            for f in free:
                run = run + 1 if f else 0
                run_end.append(run)
                longest = max(longest, run)
            length = min(length, longest)
            if length <= 0:
                return text, {"start": 0, "length": 0}
            starts = [i - length + 1 for i in range(n_words) if run_end[i] >= length]
            start = starts[below(rng, len(starts))]
        params = {"start": start, "length": length}
        if blanked is not None:
            spans = [(start, start + length)]
            return delete_in_text(text, blanked, words, spans, fix_case=self.fix_case), params
        words, seps = _lists(text, words, blanked)
        self._apply(words, seps, params)
        return join_words(words, seps), params

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        if params["length"]:
            delete_span(words, seps, params["start"], params["start"] + params["length"], fix_case=self.fix_case)

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

    def _order(self, rng: np.random.Generator, n_units: int) -> list[int]:
        """``m`` units chosen uniformly (Floyd) and permuted (Fisher-Yates), the numbers drawn up front."""
        order = list(range(n_units))
        m = self.n_edits(n_units, n_units)
        if m < 2:
            return order
        u = draw_u32(rng, 2 * m)  # u[:m] picks the slots, u[m:] permutes them
        slots = pick_sorted(u, n_units, m) if m < n_units else order[:]
        perm = list(range(m))
        for i in range(m - 1, 0, -1):
            j = (u[m + i] * (i + 1)) >> 32
            perm[i], perm[j] = perm[j], perm[i]
        for k, slot in enumerate(slots):
            order[slot] = slots[perm[k]]
        return order

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        prefix, units, seps, suffix = split_units(text, self.unit)
        order = self._order(rng, len(units))
        return join_units(prefix, [units[k] for k in order], seps, suffix), {"order": order}

    def apply(self, x: Any, params: dict[str, Any]) -> str:
        prefix, units, seps, suffix = split_units(check_text(self.name, x), self.unit)
        if sorted(params["order"]) != list(range(len(units))):
            raise ValueError(f"order {params['order']} is not a permutation of the text's {len(units)} {self.unit}s")
        return join_units(prefix, [units[k] for k in params["order"]], seps, suffix)

    def edit_count(self, params: dict[str, Any]) -> int:
        return 0
