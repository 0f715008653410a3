"""Contextual substitution and insertion: a masked language model proposes words in context (as nlpaug's
ContextualWordEmbsAug does), from a local model folder only (``save_pretrained`` output; nothing is downloaded).

For each chosen word the text is re-rendered with that word (or a gap after it) replaced by the model's mask token;
the ``top_k`` most likely whole-word tokens that differ from the original become the candidates, and the op's
generator picks one. The record holds the positions and chosen words, so ``apply`` replays without the model.
Models are loaded once per process and run on the CPU in inference mode (deterministic for the same input).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from pipelines.transforms.base import register
from pipelines.transforms.text.base import ReplacesWords, WordOp, below, choose
from pipelines.transforms.text.tokenize import Tokens, match_case, scan_words, seps_of, split_words
from schemas.errors import AugsvcError

_MODELS: dict[str, tuple[Any, Any]] = {}  # per process, at most _MODELS_MAX models (oldest dropped)
_MODELS_MAX = 2


def load_masked_lm(path: str) -> tuple[Any, Any]:
    """(tokenizer, model) of a local masked LM folder, cached per process; a clear error when it is not one."""
    key = str(Path(path).resolve())
    if key in _MODELS:
        return _MODELS[key]
    if not Path(path).is_dir():
        raise AugsvcError(
            f"model_path {path!r} is not a folder; give the save_pretrained() folder of a masked language model "
            "(for example a BERT checkpoint you have locally; nothing is downloaded)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModelForMaskedLM, AutoTokenizer
    except ImportError as e:
        raise AugsvcError("contextual text ops need transformers: pip install 'augsvc[text-models]'") from e
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForMaskedLM.from_pretrained(path, local_files_only=True).eval()
    except (OSError, ValueError) as e:
        raise AugsvcError(f"model_path {path!r}: not a loadable masked language model ({e})") from None
    if tok.mask_token is None:
        raise AugsvcError(f"model_path {path!r}: the tokenizer has no mask token; use a masked LM (BERT-like)")
    if len(_MODELS) >= _MODELS_MAX:
        _MODELS.pop(next(iter(_MODELS)))
    _MODELS[key] = (tok, model)
    return tok, model


def propose(path: str, text: str, top_k: int, exclude: str) -> list[str]:
    """Whole-word candidates for the mask in ``text``, most likely first, without ``exclude``."""
    import torch

    tok, model = load_masked_lm(path)
    enc = tok(text, return_tensors="pt", truncation=True, max_length=512)
    where = (enc["input_ids"][0] == tok.mask_token_id).nonzero()
    if len(where) == 0:
        return []
    with torch.no_grad():
        logits = model(**enc).logits[0, int(where[0, 0])]
    out = []
    for t in torch.topk(logits, min(len(logits), top_k * 4)).indices.tolist():
        w = tok.convert_ids_to_tokens(int(t))
        if not w or w in tok.all_special_tokens or not w.isalpha() or w.casefold() == exclude.casefold():
            continue
        out.append(w)
        if len(out) == top_k:
            break
    return out


class _Contextual(WordOp):
    model_path: str = Field(description="local folder of a masked language model (save_pretrained output)")
    top_k: int = Field(10, ge=1, le=100, description="candidates the model proposes per position")

    def _masked(self, tokens: Tokens, i: int, insert: bool) -> str:
        t = tokens.copy()
        mask = load_masked_lm(self.model_path)[0].mask_token
        if insert:
            t.insert_after(i + 1, mask)
        else:
            t.words[i] = mask
        return t.text()


@register
class ContextualSubstitute(ReplacesWords, _Contextual):
    """Replace words by what a masked LM expects in their place (case kept)."""

    name = "contextual_substitute"

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        words, blanked = scan_words(text)
        tokens = Tokens(words, seps_of(text, len(words), blanked))
        cands = self.candidates(words, text, blanked)
        n = self.n_edits(len(words), len(cands), budget)
        out = []
        for i in choose(rng, cands, n):
            proposals = propose(self.model_path, self._masked(tokens, i, False), self.top_k, words[i])
            if proposals:
                out.append([i, match_case(proposals[below(rng, len(proposals))], words[i])])
        params = {"replacements": out}
        self._apply(tokens.words, tokens.seps, params)
        return tokens.text(), params


@register
class ContextualInsert(_Contextual):
    """Insert a word a masked LM expects after a random word."""

    name = "contextual_insert"

    def _run(self, rng: np.random.Generator, text: str, budget: int | None) -> tuple[str, dict[str, Any]]:
        work = Tokens(*split_words(text))
        n = self.n_edits(len(work.words), len(work.words), budget)
        out = []
        for _ in range(n):
            i = below(rng, len(work.words))
            proposals = propose(self.model_path, self._masked(work, i, True), self.top_k, "")
            if proposals:
                w = proposals[below(rng, len(proposals))]
                out.append([i + 1, w])
                work.insert_after(i + 1, w)
        return work.text(), {"insertions": out}

    def _apply(self, words: list[str], seps: list[str], params: dict[str, Any]) -> None:
        tokens = Tokens(words, seps)
        for pos, word in params["insertions"]:
            tokens.insert_after(pos, word)

    def edit_count(self, params: dict[str, Any]) -> int:
        return len(params["insertions"])
