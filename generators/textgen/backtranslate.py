"""``backtranslate``: synthetic text by translation with local seq2seq models (Marian and the like).

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

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from generators import register_generator
from generators.base import FitData, Fitted, Generated, Generator
from generators.progress import task_progress
from generators.textgen.lm import Decoding, check_model_dir, load_pretrained, model_sha256, translate
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
    forward_model: str | None = Field(None, description="text: local seq2seq model dir, source -> pivot language")
    backward_model: str = Field(..., description="local seq2seq model dir, pivot (or target) -> source language")
    do_sample: bool = Field(True, description="sample (True) or greedy/beam search (False)")
    num_beams: int = Field(1, ge=1, description="beam width when do_sample is false")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_k: int = Field(0, ge=0, description="sample among the k most likely tokens (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    batch_size: int = Field(32, ge=1, description="sentences per generate() call")
    max_length: int = Field(64, ge=1, description="most new tokens per translation")
    max_rounds: int = Field(3, ge=1, description="passes over a class's rows before giving up on copies")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    keep_monolingual: bool = Field(
        False, description="parallel text: also pass on the monolingual rows (src null) the pairs were made from"
    )

    @model_validator(mode="after")
    def _decoding(self) -> BackTranslate:
        if self.do_sample and self.num_beams > 1:
            raise ValueError("num_beams > 1 is beam search: set do_sample: false (or num_beams: 1 to sample)")
        return self

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
        check_model_dir(self.backward_model, "seq2seq", "backward_model")
        if modality == "text" and self.keep_monolingual:
            raise AugsvcError("keep_monolingual is for parallel-text versions; a text version has no monolingual rows")
        if modality == "text":
            if self.forward_model is None:
                raise AugsvcError("backtranslate on labelled text needs forward_model (source -> pivot) as well as "
                                  "backward_model (pivot -> source)")  # fmt: skip
            check_model_dir(self.forward_model, "seq2seq", "forward_model")

    def identity(self) -> dict[str, Any]:
        out = {"backward_model_sha256": model_sha256(check_model_dir(self.backward_model, "seq2seq", "backward_model"))}
        if self.forward_model is not None:
            out["forward_model_sha256"] = model_sha256(check_model_dir(self.forward_model, "seq2seq", "forward_model"))
        return out

    def load(self) -> dict[str, Any]:
        models = {"backward": load_pretrained(self.backward_model, "seq2seq", self.device, "backward_model")}
        if self.forward_model is not None:
            models["forward"] = load_pretrained(self.forward_model, "seq2seq", self.device, "forward_model")
        return models

    def fit(self, data: FitData, model: Any = None) -> Fitted:
        if data.modality not in self.modalities:
            raise AugsvcError(f"backtranslate works on text or translation rows, not {data.modality}")
        if model is None:
            raise AugsvcError("backtranslate.fit needs the models from load() (model-backed generator)")
        if data.modality == "text" and "forward" not in model:
            raise AugsvcError("backtranslate on labelled text needs forward_model as well as backward_model")
        return _Fitted(self, data, model)


class _Fitted(Fitted):
    def __init__(self, params: BackTranslate, data: FitData, models: dict[str, Any]) -> None:
        self.p, self.data, self.models = params, data, models
        self.stats: dict[str, dict[str, int]] = {}

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
        out = translate(self.models["backward"], [normalise(X[i, 1]) for i in mono], self.p.decoding,
                        int(rng.integers(2**63)), on_batch=report)  # fmt: skip
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
        for _ in range(self.p.max_rounds):
            order = [rows[i] for i in rng.permutation(len(rows))]
            while order and len(kept) < n:
                take, order = order[: n - len(kept)], order[n - len(kept) :]
                src = [normalise(texts[i]) for i in take]
                pivot = translate(self.models["forward"], src, self.p.decoding, int(rng.integers(2**63)),
                                  on_batch=lambda d, t: report(d, 2 * t))  # fmt: skip
                back = translate(self.models["backward"], pivot, self.p.decoding, int(rng.integers(2**63)),
                                 on_batch=lambda d, t: report(t + d, 2 * t))  # fmt: skip
                tried += len(take)
                back = [normalise(b) for b in back]
                kept += [(i, b, pv) for i, s, pv, b in zip(take, src, pivot, back, strict=True) if b and b != s]
            if len(kept) >= n:
                break
        self.stats[name] = {"asked": n, "made": len(kept), "tried": tried}
        X = np.array([b for _, b, _ in kept], dtype=object)
        return Generated(X, [(int(i),) for i, _, _ in kept], [self._info(pivot=pv) for _, _, pv in kept])

    def report(self) -> dict[str, Any]:
        return {"backtranslate": self.stats}
