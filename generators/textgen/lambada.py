"""``lambada``: LAMBADA (Anaby-Tavor et al., 2020), new labelled sentences from a fine-tuned causal LM, filtered.

1. **Fine-tune** a copy of the causal LM named by ``model`` (any Hugging Face causal LM: a model folder, a GGUF
   file converted once into a cached folder, the packaged ``smollm2``, or a hub id with ``allow_download``; see
   :mod:`generators.textgen.sources`) on ``label SEP text EOS`` lines of the split's rows, for ``finetune_steps``
   steps seeded by ``finetune_seed``: every weight (``finetune: full``) or LoRA adapters on every linear layer
   (``finetune: lora``, Hu et al. 2021, through ``peft``; merged into the weights afterwards). With a
   ``FitData.cache_dir`` (a build keeps it across resumes) the fine-tuned model is saved in
   ``cache_dir/lambada-<key>``, key = sha256 of (model hash, training lines hash, fine-tune parameters), so a
   resumed build reuses it instead of retraining (full fine-tuning also checkpoints on the way and continues).
   ``mode: zero_shot`` skips fine-tuning: an instruct model is asked, through its chat template, for one new
   example of each class from ``class_descriptions`` (and ``prompt_examples`` of the class's rows).
2. **Generate** ``n x candidates_factor`` candidates of a class from the prompt ``label SEP`` (sampling with
   ``temperature``, ``top_k``, ``top_p``, ``batch_size`` sequences per call; seeded from the stage's rng).
3. **Filter**: drop empty candidates, duplicates and copies of training sentences (compared case-folded with
   whitespace collapsed); score the rest with a classifier trained on the original split (``classifier: bow``, a
   bag-of-words logistic regression; ``classifier: hf``, the encoder ``classifier_model`` (default the packaged
   ``minilm``) fine-tuned for ``classifier_steps``; or the path of an ``augsvc train`` run on the same classes);
   keep the candidates whose predicted class is the intended one (and whose probability is at least
   ``min_score``), best first, up to the ``n`` asked for. When too few survive, another round of candidates is
   drawn, up to ``max_rounds``; a class may then get fewer rows than asked (``report()`` says how many, and
   ``report()["warnings"]`` holds a line for it).

**One class, no filter**: when the split holds a single class (or the version has one), no classifier can reject a
candidate for being another class; the stage still drops empty, duplicate and training-copy candidates and runs,
and ``report()`` records ``classifier_filter: off`` with a one-line warning that ``augsvc build`` prints.
Fine-tuning reports its steps (``generators.progress.task_progress``: the build's progress display in-process,
plain lines on stderr in a Ray worker).

``report()`` gives per class the counts (candidates, empty, duplicates, training_copies, wrong_label,
below_min_score, not_needed, kept), every candidate with its fate (``fates``: ``[text, fate, score]``), and the
generation throughput (sentences, seconds, sentences per second). Each row's lineage info holds ``score`` (the
classifier's probability of the intended class), ``model`` (the base model's content hash, 16 hex digits),
``finetune`` (the fine-tune key) and ``classifier``. Rows come from the model, so they have no parent rows. Same
seed, same rows on CPU (CUDA sampling kernels may differ).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from generators import register_generator
from generators.base import FitData, Fitted, Generated, Generator
from generators.progress import task_progress
from generators.runtime import set_threads
from generators.textgen.lm import (
    LM_SEP,
    Decoding,
    TrainSettings,
    check_model_dir,
    lm_lines,
    load_pretrained,
    sample_lm,
    texts_sha256,
    train,
)
from generators.textgen.sources import is_gguf, resolve_model, source_sha256
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
    model: str = Field(..., description="causal LM: a model folder, a .gguf file, `smollm2` (packaged) or a hub id "
                       "(with allow_download)")  # fmt: skip
    allow_download: bool = Field(False, description="let a hub id `org/name` download (never by default)")
    mode: Literal["finetune", "zero_shot"] = Field("finetune", description="finetune: LAMBADA; zero_shot: prompt "
                                                   "an instruct model with class_descriptions")  # fmt: skip
    class_descriptions: dict[str, str] | None = Field(None, description="zero_shot: class name -> what its texts are")
    prompt_examples: int = Field(0, ge=0, description="zero_shot: rows of the class shown in the prompt (few-shot)")
    sep: str = Field(LM_SEP, description="separator between label and text in the fine-tuning lines and prompts")
    finetune: Literal["full", "lora"] = Field("full", description="every weight, or LoRA adapters (peft)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = lora_alpha / lora_r)")
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
    classifier: str = Field("bow", description="bow (logistic regression fitted on the split), hf "
                            "(classifier_model fine-tuned on the split) or an `augsvc train` run dir")  # fmt: skip
    classifier_model: str = Field("minilm", description="classifier: hf -> encoder folder or `minilm` (packaged)")
    classifier_steps: int = Field(100, ge=1, description="classifier: hf -> fine-tuning steps of 16 rows")
    min_score: float = Field(0.0, ge=0, le=1, description="least classifier probability of the intended class")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    threads: int | None = Field(None, ge=1, description="torch CPU threads per worker (default: torch's choice)")

    @model_validator(mode="after")
    def _modes(self) -> Lambada:
        if self.mode == "zero_shot" and not self.class_descriptions:
            raise ValueError("mode zero_shot needs class_descriptions (class name -> what its texts are)")
        if self.class_descriptions and self.mode != "zero_shot":
            raise ValueError("class_descriptions is used by mode: zero_shot only")
        return self

    def check_data(self, modality: str, class_names: list[str], features: dict[str, str]) -> None:
        super().check_data(modality, class_names, features)
        if not self.allow_download or not _hub_id(self.model):
            self._folder()
        if self.classifier == "hf":
            check_model_dir(resolve_model(self.classifier_model, what="classifier_model"), "encoder",
                            "classifier_model")  # fmt: skip
        elif self.classifier != "bow":
            _check_run(self.classifier, class_names)
        if self.class_descriptions:
            missing = [c for c in class_names if c not in self.class_descriptions]
            if missing:
                raise AugsvcError(f"class_descriptions has no entry for class(es) {', '.join(missing)}")

    def _folder(self) -> Path:
        p = resolve_model(self.model, what="model", allow_download=self.allow_download)
        return check_model_dir(p, "causal", "model")

    def identity(self) -> dict[str, Any]:
        if not is_gguf(self.model) and not (self.allow_download and _hub_id(self.model)):
            self._folder()  # a folder of the wrong kind is refused here, before hashing
        out = {"model_sha256": source_sha256(self.model, "model", self.allow_download)}
        if self.classifier == "hf":
            out["classifier_model_sha256"] = source_sha256(self.classifier_model, "classifier_model")
        elif self.classifier != "bow":
            p = Path(self.classifier)
            p = p / "best.pt" if p.is_dir() else p
            if not p.is_file():
                raise AugsvcError(f"classifier: {self.classifier} has no best.pt (give an `augsvc train` run dir)")
            out["classifier_sha256"] = file_sha256(p)
        return out

    def load(self) -> Any:
        set_threads(self.threads)
        sha = source_sha256(self.model, "model", self.allow_download)
        return load_pretrained(self._folder(), "causal", self.device, "model", sha256=sha)

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


def _hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return len(parts) == 2 and all(parts) and not Path(ref).exists() and not ref.endswith(".gguf")


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
        self.stats: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self.filter_off: str | None = None  # why the classifier filter cannot reject anything, if it cannot
        self.gen_seconds, self.gen_sentences = 0.0, 0
        t0 = time.perf_counter()
        self.lm, self.key = self._finetune()
        self.finetune_seconds = time.perf_counter() - t0
        self.score = self._classifier()

    # -- fine-tuning -----------------------------------------------------------------------------------------------

    def _finetune(self) -> tuple[Any, str]:
        p, tok = self.p, self.base.tokenizer
        if p.mode == "zero_shot":
            return self.base, texts_sha256([self.base.sha256, "zero_shot"])
        lines = lm_lines([self.data.class_names[int(c)] for c in self.y], self.texts, p.sep, tok.eos_token)
        settings = TrainSettings(steps=p.finetune_steps, batch_size=p.finetune_batch_size, lr=p.finetune_lr,
                                 warmup=0.1, seed=p.finetune_seed, max_length=64, checkpoint_every=100)  # fmt: skip
        how = json.dumps(settings.__dict__, sort_keys=True)
        if p.finetune == "lora":
            how += json.dumps({"lora_r": p.lora_r, "lora_alpha": p.lora_alpha})
        key = texts_sha256([self.base.sha256, texts_sha256(lines), how])
        if p.finetune_steps == 0:
            return self.base, key
        report = task_progress("lambada fine-tune")

        def on_step(step: int, total: int, loss: float) -> None:
            report(step, total, loss=loss)

        out = None if self.data.cache_dir is None else Path(self.data.cache_dir) / f"lambada-{key[:16]}"
        if out is not None and (out / "training.json").is_file():
            return load_pretrained(out, "causal", str(self.base.device), "fine-tuned model", sha256=key), key
        if p.finetune == "lora":
            model = self._lora(lines, settings, on_step)
            if out is None:  # unit tests: keep it in memory
                return self.base._replace(model=model), key
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
            (tmp / "training.json").write_text(json.dumps({"lora": True, "settings": settings.__dict__}))
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
            return self.base._replace(model=model), key
        if out is None:  # unit tests: train a copy in memory
            model, _ = train(copy.deepcopy(self.base.model), tok, lines, settings, device=self.base.device,
                             on_step=on_step)  # fmt: skip
            return self.base._replace(model=model), key
        out.mkdir(parents=True, exist_ok=True)
        train(copy.deepcopy(self.base.model), tok, lines, settings, out=out, resume=True,
              device=self.base.device, meta={"base_model_sha256": self.base.sha256}, on_step=on_step)  # fmt: skip
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
        return load_pretrained(out, "causal", str(self.base.device), "fine-tuned model", sha256=key), key

    def _lora(self, lines: list[str], settings: TrainSettings, on_step: Any = None) -> Any:
        """LoRA adapters on every linear layer of a copy of the base model, trained, then merged into it."""
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise AugsvcError("lambada: finetune: lora needs the peft package (pip install peft)") from None
        p = self.p
        cfg = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                         task_type="CAUSAL_LM")  # fmt: skip
        peft_model = get_peft_model(copy.deepcopy(self.base.model), cfg)
        model, _ = train(peft_model, self.base.tokenizer, lines, settings, device=self.base.device, on_step=on_step)
        return model.merge_and_unload().eval()

    # -- classifier ------------------------------------------------------------------------------------------------

    def _classifier(self) -> Any:
        k = len(self.data.class_names)
        present = sorted({self.data.class_names[int(c)] for c in self.y})
        if k == 1 or (len(present) == 1 and self.p.classifier in ("bow", "hf")):  # fitted on this split's classes
            self.filter_off = (f"the version has one class ({present[0]!r})" if k == 1 else
                               f"the split's texts are all of one class ({present[0]!r})")  # fmt: skip
            self.warnings.append(
                f"classifier filter off: {self.filter_off}, so no classifier can reject a candidate as another "
                "class; only empty, duplicate and training-copy candidates were dropped"
            )
        if self.p.classifier == "hf":
            from generators.nets.hftext import fit_text_classifier

            folder = resolve_model(self.p.classifier_model, what="classifier_model")
            return fit_text_classifier(folder, self.texts, self.y, k, steps=self.p.classifier_steps,
                                       seed=self.p.finetune_seed, device=self.base.device)  # fmt: skip
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

    def _prompt(self, label: int, rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
        """(prompt, stop strings) for class ``label``: ``name SEP`` after fine-tuning; a chat prompt zero-shot."""
        p, name = self.p, self.data.class_names[label]
        if p.mode != "zero_shot":
            return f"{name} {p.sep}", (p.sep,)
        assert p.class_descriptions is not None  # checked by the parameter model
        ask = f"Write one new {p.class_descriptions[name]}."
        mine = [t for t, c in zip(self.texts, self.y, strict=True) if c == label]
        if p.prompt_examples and mine:
            shown = [mine[i] for i in rng.permutation(len(mine))[: p.prompt_examples]]
            ask += " Examples:\n" + "\n".join(f"- {t}" for t in shown) + "\nWrite a different one."
        ask += " Answer with the text only, on one line."
        tok = self.base.tokenizer
        if getattr(tok, "chat_template", None):
            chat = [{"role": "user", "content": ask}]
            return tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True), ()
        return ask + "\n", ()

    def generate(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        p = self.p
        if not 0 <= label < len(self.data.class_names):
            raise AugsvcError(f"lambada: class index {label} is not one of the version's {len(self.data.class_names)}")
        name = self.data.class_names[label]
        if p.mode == "finetune" and not np.any(self.y == label):
            raise AugsvcError(f"lambada: class {name!r} has no training text in this split; the LM cannot learn "
                              "to write it (add rows of that class or leave it out of the stage)")  # fmt: skip
        decoding = Decoding(do_sample=True, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
                            max_length=p.max_length, batch_size=p.batch_size)  # fmt: skip
        st: dict[str, Any] = {"asked": n, "candidates": 0, "empty": 0, "duplicates": 0, "training_copies": 0,
                              "wrong_label": 0, "below_min_score": 0, "not_needed": 0, "kept": 0}  # fmt: skip
        fates: list[list[Any]] = []  # [text, fate, score or None], in the order drawn
        seen: set[str] = set()
        cands: list[str] = []
        accepted: list[tuple[float, int, int]] = []  # (score, candidate index, index in fates)
        report = task_progress(f"lambada {name}")
        for r in range(p.max_rounds if n > 0 else 0):
            report(r, p.max_rounds, kept=len(accepted), asked=n)
            prompt, stop = self._prompt(label, rng)
            t0 = time.perf_counter()
            texts = sample_lm(self.lm, prompt, n * p.candidates_factor, decoding, int(rng.integers(2**63)), stop=stop)
            self.gen_seconds += time.perf_counter() - t0
            self.gen_sentences += len(texts)
            st["candidates"] += len(texts)
            fresh, where = [], []
            for t in texts:
                k = text_key(t)
                fate = "empty" if not k else "training_copies" if k in self.train_keys else ""
                fate = fate or ("duplicates" if k in seen else "")
                if fate:
                    st[fate] += 1
                    fates.append([t, fate, None])
                    continue
                seen.add(k)
                fresh.append(" ".join(t.split()))
                where.append(len(fates))
                fates.append([fresh[-1], "", None])
            if fresh:
                probs = self.score(fresh)
                for j, t in enumerate(fresh):
                    score = round(float(probs[j, label]), 6)
                    fates[where[j]][2] = score
                    if int(np.argmax(probs[j])) != label:
                        st["wrong_label"] += 1
                        fates[where[j]][1] = "wrong_label"
                    elif probs[j, label] < p.min_score:
                        st["below_min_score"] += 1
                        fates[where[j]][1] = "below_min_score"
                    else:
                        accepted.append((float(probs[j, label]), len(cands), where[j]))
                    cands.append(t)
            if len(accepted) >= n:
                break
        ranked = sorted(accepted, key=lambda a: (-a[0], a[1]))
        best, spare = ranked[:n], ranked[n:]
        for _, _, f in best:
            fates[f][1] = "kept"
        for _, _, f in spare:
            fates[f][1] = "not_needed"
        st["kept"], st["not_needed"] = len(best), len(spare)
        st["fates"] = fates
        self.stats[name] = st
        if len(best) < n:
            self.warnings.append(f"class {name!r}: kept {len(best)} of the {n} rows asked for after {p.max_rounds} "
                                 f"round(s) of {n * p.candidates_factor} candidates ({st['wrong_label']} another "
                                 f"class, {st['training_copies']} training copies, {st['duplicates']} duplicates); "
                                 "raise max_rounds or candidates_factor, or fine-tune longer")  # fmt: skip
        X = np.array([cands[i] for _, i, _ in best], dtype=object)
        clf = p.classifier if p.classifier in ("bow", "hf") else "run"
        info = [{"score": round(s, 6), "model": self.base.sha256[:16], "finetune": self.key[:16], "classifier": clf}
                for s, _, _ in best]  # fmt: skip
        return Generated(X, [() for _ in best], info)

    def report(self) -> dict[str, Any]:
        """Per class: candidates and each one's fate, rows kept; the fine-tune key and time; generation throughput;
        ``classifier_filter`` (on, or off with the reason); ``warnings`` (filter off, classes short of the rows)."""
        rate = self.gen_sentences / self.gen_seconds if self.gen_seconds > 0 else None
        out: dict[str, Any] = {
            "lambada": self.stats, "finetune": self.key[:16], "mode": self.p.mode,
            "finetune_seconds": round(self.finetune_seconds, 3),
            "generation": {"sentences": self.gen_sentences, "seconds": round(self.gen_seconds, 3),
                           "sentences_per_s": None if rate is None else round(rate, 3)},
            "classifier_filter": f"off: {self.filter_off}" if self.filter_off else "on",
        }  # fmt: skip
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out
