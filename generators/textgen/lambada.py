"""``lambada``: LAMBADA (Anaby-Tavor et al., 2020), new labelled sentences from a fine-tuned causal LM, filtered.

1. **Fine-tune** a copy of the causal LM at ``model`` (any GPT-2-family model directory; ``augsvc models train-lm``
   makes a small one) on ``label SEP text EOS`` lines of the split's rows, for ``finetune_steps`` steps seeded by
   ``finetune_seed``. With a ``FitData.cache_dir`` (a build keeps it across resumes) the fine-tuned model is saved
   in ``cache_dir/lambada-<key>``, key = sha256 of (model hash, training lines hash, fine-tune parameters), with
   checkpoints, so a resumed build reuses it (or continues it) instead of retraining.
2. **Generate** ``n x candidates_factor`` candidates of a class from the prompt ``label SEP`` (sampling with
   ``temperature``, ``top_k``, ``top_p``; seeded from the stage's rng).
3. **Filter**: drop empty candidates, duplicates and copies of training sentences (compared case-folded with
   whitespace collapsed); score the rest with a classifier trained on the original split (``classifier: bow``, a
   bag-of-words logistic regression fitted in ``fit``, or the path of an ``augsvc train`` run on the same classes);
   keep the candidates whose predicted class is the intended one (and whose probability is at least
   ``min_score``), best first, up to the ``n`` asked for. When too few survive, another round of candidates is
   drawn, up to ``max_rounds``; a class may then get fewer rows than asked (``report()`` says how many, and
   ``report()["warnings"]`` holds a line for it).

**One class, no filter**: when the split holds a single class (or the version has one), no classifier can reject a
candidate for being another class; the stage still drops empty, duplicate and training-copy candidates and runs,
and ``report()`` records ``classifier_filter: off`` with a one-line warning that ``augsvc build`` prints.
Fine-tuning reports its steps (``generators.progress.task_progress``: the build's progress display in-process,
plain lines on stderr in a Ray worker).

Each row's lineage info holds ``score`` (the classifier's probability of the intended class), ``model`` (the base
model's content hash, 16 hex digits), ``finetune`` (the fine-tune key) and ``classifier``. Rows come from the model,
so they have no parent rows. Same seed, same rows on CPU (CUDA sampling kernels may differ).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from generators import register_generator
from generators.base import FitData, Fitted, Generated, Generator
from generators.progress import task_progress
from generators.textgen.lm import (
    LM_SEP,
    Decoding,
    TrainSettings,
    check_model_dir,
    lm_lines,
    load_pretrained,
    model_sha256,
    sample_lm,
    texts_sha256,
    train,
)
from schemas.errors import AugsvcError
from schemas.hashing import file_sha256


def text_key(text: str) -> str:
    """Case-folded, whitespace-collapsed text: what duplicates and training copies are compared on."""
    return " ".join(text.casefold().split())


@register_generator("lambada", module="generators.textgen.lambada")
class Lambada(Generator):
    """LAMBADA: fine-tune a causal LM on ``label SEP text``, sample per class, keep what a classifier confirms."""

    modalities: ClassVar[tuple[str, ...]] = ("text",)
    model_backed: ClassVar[bool] = True

    method: Literal["lambada"] = "lambada"
    model: str = Field(..., description="local causal LM dir (GPT-2 family), e.g. from `augsvc models train-lm`")
    sep: str = Field(LM_SEP, description="separator between label and text in the fine-tuning lines and prompts")
    finetune_steps: int = Field(300, ge=0, description="fine-tuning steps on the split's `label SEP text` lines")
    finetune_lr: float = Field(5e-4, gt=0, description="fine-tuning peak learning rate")
    finetune_batch_size: int = Field(16, ge=1, description="fine-tuning lines per step")
    finetune_seed: int = Field(0, ge=0, description="seed of the fine-tuning order and dropout")
    candidates_factor: int = Field(5, ge=1, description="candidates drawn per row asked for, per round")
    max_rounds: int = Field(3, ge=1, description="rounds of candidates before a class gives up short")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_k: int = Field(0, ge=0, description="sample among the k most likely tokens (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    max_length: int = Field(48, ge=1, description="most new tokens per candidate")
    batch_size: int = Field(64, ge=1, description="candidates per generate() call")
    classifier: str = Field("bow", description="bow (logistic regression fitted on the split) or an `augsvc train` "
                            "run dir trained on the same classes")  # fmt: skip
    min_score: float = Field(0.0, ge=0, le=1, description="least classifier probability of the intended class")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")

    def check_data(self, modality: str, class_names: list[str], features: dict[str, str]) -> None:
        super().check_data(modality, class_names, features)
        check_model_dir(self.model, "causal", "model")
        if self.classifier != "bow":
            _check_run(self.classifier, class_names)

    def identity(self) -> dict[str, Any]:
        out = {"model_sha256": model_sha256(check_model_dir(self.model, "causal", "model"))}
        if self.classifier != "bow":
            p = Path(self.classifier)
            p = p / "best.pt" if p.is_dir() else p
            if not p.is_file():
                raise AugsvcError(f"classifier: {self.classifier} has no best.pt (give an `augsvc train` run dir)")
            out["classifier_sha256"] = file_sha256(p)
        return out

    def load(self) -> Any:
        return load_pretrained(self.model, "causal", self.device, "model")

    def fit(self, data: FitData, model: Any = None) -> Fitted:
        if data.modality != "text":
            raise AugsvcError(f"lambada works on labelled text rows, not {data.modality}")
        if model is None:
            raise AugsvcError("lambada.fit needs the model from load() (model-backed generator)")
        return _Fitted(self, data, model)


def _check_run(run: str, class_names: list[str]) -> None:
    from generators.nets.classifier import read_checkpoint

    ck = read_checkpoint(run)
    if ck.get("modality") != "text":
        raise AugsvcError(f"classifier: {run} was trained on {ck.get('modality')} rows, not text")
    if list(ck.get("class_names", [])) != list(class_names):
        raise AugsvcError(f"classifier: {run} has classes {ck.get('class_names')}, the version has {class_names}")


class _Fitted(Fitted):
    def __init__(self, p: Lambada, data: FitData, base: Any) -> None:
        self.p, self.data, self.base = p, data, base
        texts = [str(t) if t is not None else "" for t in np.asarray(data.X, dtype=object)]
        y = np.asarray(data.y, dtype=np.int64)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        self.texts, self.y = [texts[i] for i in keep], y[keep]
        if not self.texts:
            raise AugsvcError("lambada: the split has no non-empty text to fine-tune on")
        self.train_keys = {text_key(t) for t in texts}
        self.stats: dict[str, dict[str, int]] = {}
        self.warnings: list[str] = []
        self.filter_off: str | None = None  # why the classifier filter cannot reject anything, if it cannot
        self.lm, self.key = self._finetune()
        self.score = self._classifier()

    # -- fine-tuning -----------------------------------------------------------------------------------------------

    def _finetune(self) -> tuple[Any, str]:
        p, tok = self.p, self.base.tokenizer
        lines = lm_lines([self.data.class_names[int(c)] for c in self.y], self.texts, p.sep, tok.eos_token)
        settings = TrainSettings(steps=p.finetune_steps, batch_size=p.finetune_batch_size, lr=p.finetune_lr,
                                 warmup=0.1, seed=p.finetune_seed, max_length=64, checkpoint_every=100)  # fmt: skip
        key = texts_sha256([self.base.sha256, texts_sha256(lines), json.dumps(settings.__dict__, sort_keys=True)])
        if p.finetune_steps == 0:
            return self.base, key
        report = task_progress("lambada fine-tune")

        def on_step(step: int, total: int, loss: float) -> None:
            report(step, total, loss=loss)

        if self.data.cache_dir is None:  # unit tests: train a copy in memory
            model, _ = train(copy.deepcopy(self.base.model), tok, lines, settings, device=self.base.device,
                             on_step=on_step)  # fmt: skip
            return self.base._replace(model=model), key
        out = Path(self.data.cache_dir) / f"lambada-{key[:16]}"
        if not (out / "training.json").is_file():
            out.mkdir(parents=True, exist_ok=True)
            train(copy.deepcopy(self.base.model), tok, lines, settings, out=out, resume=True,
                  device=self.base.device, meta={"base_model_sha256": self.base.sha256}, on_step=on_step)  # fmt: skip
            shutil.rmtree(out / "checkpoint", ignore_errors=True)
        return load_pretrained(out, "causal", str(self.base.device), "fine-tuned model"), key

    # -- classifier ------------------------------------------------------------------------------------------------

    def _classifier(self) -> Any:
        k = len(self.data.class_names)
        present = sorted({self.data.class_names[int(c)] for c in self.y})
        if k == 1 or (len(present) == 1 and self.p.classifier == "bow"):  # bow: fitted on this split's classes
            self.filter_off = (f"the version has one class ({present[0]!r})" if k == 1 else
                               f"the split's texts are all of one class ({present[0]!r})")  # fmt: skip
            self.warnings.append(
                f"classifier filter off: {self.filter_off}, so no classifier can reject a candidate as another "
                "class; only empty, duplicate and training-copy candidates were dropped"
            )
        if self.p.classifier == "bow":
            from sklearn.feature_extraction.text import CountVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline

            if len(set(self.y.tolist())) < 2:
                return lambda texts: np.tile(np.eye(k)[int(self.y[0])], (len(texts), 1))
            clf = make_pipeline(CountVectorizer(ngram_range=(1, 2), lowercase=True), LogisticRegression(max_iter=2000))
            clf.fit(self.texts, self.y)
            cols = [int(c) for c in clf.classes_]

            def bow(texts: list[str]) -> np.ndarray:
                out = np.zeros((len(texts), k))
                if texts:
                    out[:, cols] = clf.predict_proba(texts)
                return out

            return bow
        from generators.nets.classifier import load_model, logits_for_rows

        _check_run(self.p.classifier, self.data.class_names)
        loaded = load_model(self.p.classifier, "cpu")

        def run(texts: list[str]) -> np.ndarray:
            if not texts:
                return np.zeros((0, k))
            z = logits_for_rows(loaded, {"text": np.array(texts, dtype=object)}).astype(np.float64)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)

        return run

    # -- generation ------------------------------------------------------------------------------------------------

    def generate(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        p = self.p
        if not 0 <= label < len(self.data.class_names):
            raise AugsvcError(f"lambada: class index {label} is not one of the version's {len(self.data.class_names)}")
        name = self.data.class_names[label]
        if not np.any(self.y == label):
            raise AugsvcError(f"lambada: class {name!r} has no training text in this split; the LM cannot learn "
                              "to write it (add rows of that class or leave it out of the stage)")  # fmt: skip
        decoding = Decoding(do_sample=True, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
                            max_length=p.max_length, batch_size=p.batch_size)  # fmt: skip
        st = {"asked": n, "candidates": 0, "empty": 0, "duplicates": 0, "training_copies": 0, "wrong_label": 0,
              "below_min_score": 0, "kept": 0}  # fmt: skip
        seen: set[str] = set()
        cands: list[str] = []
        accepted: list[tuple[float, int]] = []  # (score, candidate index)
        report = task_progress(f"lambada {name}")
        for r in range(p.max_rounds if n > 0 else 0):
            report(r, p.max_rounds, kept=len(accepted), asked=n)
            texts = sample_lm(self.lm, f"{name} {p.sep}", n * p.candidates_factor, decoding,
                              int(rng.integers(2**63)), stop=(p.sep,))  # fmt: skip
            st["candidates"] += len(texts)
            fresh = []
            for t in texts:
                k = text_key(t)
                if not k:
                    st["empty"] += 1
                elif k in self.train_keys:
                    st["training_copies"] += 1
                elif k in seen:
                    st["duplicates"] += 1
                else:
                    seen.add(k)
                    fresh.append(" ".join(t.split()))
            if fresh:
                probs = self.score(fresh)
                for j, t in enumerate(fresh):
                    if int(np.argmax(probs[j])) != label:
                        st["wrong_label"] += 1
                    elif probs[j, label] < p.min_score:
                        st["below_min_score"] += 1
                    else:
                        accepted.append((float(probs[j, label]), len(cands)))
                    cands.append(t)
            if len(accepted) >= n:
                break
        best = sorted(accepted, key=lambda a: (-a[0], a[1]))[:n]
        st["kept"] = len(best)
        self.stats[name] = st
        if len(best) < n:
            self.warnings.append(f"class {name!r}: kept {len(best)} of the {n} rows asked for after {p.max_rounds} "
                                 f"round(s) of {n * p.candidates_factor} candidates ({st['wrong_label']} another "
                                 f"class, {st['training_copies']} training copies, {st['duplicates']} duplicates); "
                                 "raise max_rounds or candidates_factor, or fine-tune longer")  # fmt: skip
        X = np.array([cands[i] for _, i in best], dtype=object)
        info = [{"score": round(s, 6), "model": self.base.sha256[:16], "finetune": self.key[:16],
                 "classifier": p.classifier if p.classifier == "bow" else "run"} for s, _ in best]  # fmt: skip
        return Generated(X, [() for _ in best], info)

    def report(self) -> dict[str, Any]:
        """Per class: candidates and why they were dropped, rows kept; the fine-tune key; ``classifier_filter``
        (on, or off with the reason); ``warnings`` (filter off, classes short of the rows asked for)."""
        out: dict[str, Any] = {"lambada": self.stats, "finetune": self.key[:16],
                               "classifier_filter": f"off: {self.filter_off}" if self.filter_off else "on"}  # fmt: skip
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out
