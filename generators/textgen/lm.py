"""Small transformer text models: local model directories, training from texts, and seeded generation.

A *model directory* is what ``save_pretrained`` writes for a Hugging Face model and its tokenizer (``config.json``,
weights, ``tokenizer.json`` or the tokenizer's own files). Any such directory works (a real GPT-2 or Marian model
a user has on disk); the project also makes its own tiny ones here, so nothing downloads at run time:

- :func:`new_lm`: a GPT-2 config (``n_layer``, ``n_embd``) with a byte-level BPE tokenizer trained by
  ``tokenizers`` (special tokens ``<|endoftext|>`` and the separator ``<|sep|>``);
- :func:`new_translator`: a Marian-style encoder-decoder with one byte-level BPE vocabulary trained on both
  languages (``<pad>``, ``</s>``, ``<unk>``; ``MarianTokenizer`` needs sentencepiece, so the tokenizer is a
  ``PreTrainedTokenizerFast``).

:func:`train` runs the optimisation (AdamW, linear warm-up and decay, gradient clipping) for a number of steps
over seeded per-epoch permutations, writing a checkpoint every ``checkpoint_every`` steps so that ``resume``
continues exactly where it stopped (model, optimiser, schedule, RNG state and loss history). Training and generation
run inside :func:`generators.runtime.seeded_session`: the caller's global random state is never changed.

torch, transformers and tokenizers are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from generators.runtime import (
    load_checkpoint,
    resolve_device,
    save_checkpoint,
    seeded_session,
    set_rng_state,
)
from schemas.errors import AugsvcError

LM_EOS = "<|endoftext|>"
LM_SEP = "<|sep|>"
MT_SPECIAL = ("<pad>", "</s>", "<unk>")
# files a training run writes beside the model that are not part of it (left out of the content hash)
NOT_MODEL = frozenset({"training.json", "loss.png", "loss.csv"})
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "source.spm", "vocab.txt", "sentencepiece.bpe.model")

_HASHES: dict[tuple, str] = {}


# -- model directories (no torch) ----------------------------------------------------------------------------------


def model_kind(path: str | Path, what: str = "model") -> str:
    """``"seq2seq"`` (encoder-decoder), ``"causal"`` (a ``*ForCausalLM`` / ``*LMHeadModel`` or no architecture
    recorded) or ``"encoder"`` (any other architecture: BERT-like) from a model directory's ``config.json``;
    AugsvcError when the directory or its config is missing or unreadable, or it has no tokenizer."""
    p = Path(path)
    if not p.is_dir():
        raise AugsvcError(f"{what}: {path} does not exist (give the folder save_pretrained wrote, e.g. by "
                          "`augsvc models train-lm` or `augsvc models train-translator`)")  # fmt: skip
    cfg = p / "config.json"
    if not cfg.is_file():
        raise AugsvcError(f"{what}: {path} has no config.json; it is not a saved Hugging Face model")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise AugsvcError(f"{what}: {path} has no tokenizer (tokenizer.json or vocabulary files); save the "
                          "tokenizer beside the model (tokenizer.save_pretrained)")  # fmt: skip
    try:
        conf = json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise AugsvcError(f"{what}: {cfg} is not readable JSON ({e})") from None
    if conf.get("is_encoder_decoder"):
        return "seq2seq"
    archs = conf.get("architectures") or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "encoder"
    return "causal"


def check_model_dir(path: str | Path, kind: str, what: str) -> Path:
    """The model directory ``path``, checked to exist, hold a tokenizer and be of ``kind`` (``causal`` or
    ``seq2seq``); AugsvcError naming ``what`` (the parameter) otherwise."""
    have = model_kind(path, what)
    if have != kind:
        want = {"causal": "a causal LM (GPT-2, Llama, SmolLM2 ...)", "encoder": "a text encoder (BERT, MiniLM ...)",
                "seq2seq": "an encoder-decoder translation model (Marian, M2M-100, NLLB ...)"}  # fmt: skip
        raise AugsvcError(f"{what}: {path} is {want[have]}, but this needs {want[kind]}")
    return Path(path)


def model_files(path: str | Path) -> list[Path]:
    """The files that make up a model directory (top level, training reports left out), sorted by name."""
    return sorted(f for f in Path(path).iterdir() if f.is_file() and f.name not in NOT_MODEL)


def model_sha256(path: str | Path) -> str:
    """Content hash of a model directory: sha256 over each model file's name and sha256 (cached per file state)."""
    files = model_files(path)
    key = (str(Path(path).resolve()), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _HASHES:
        h = hashlib.sha256()
        for f in files:
            d = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    d.update(block)
            h.update(f.name.encode() + b"\0" + d.hexdigest().encode() + b"\n")
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def texts_sha256(items: Sequence[Any]) -> str:
    """sha256 of a sequence of texts or text tuples (order matters), for cache keys and resume checks."""
    h = hashlib.sha256()
    for t in items:
        h.update(json.dumps(t, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


# -- torch side ----------------------------------------------------------------------------------------------------


class Loaded(NamedTuple):
    """A model in eval mode on ``device`` with its tokenizer, kind and directory content hash."""

    model: Any
    tokenizer: Any
    device: Any
    kind: str
    sha256: str
    path: str


def load_pretrained(
    path: str | Path, kind: str, device: str = "auto", what: str = "model", sha256: str | None = None
) -> Loaded:
    """Load a model directory (checked by :func:`check_model_dir`) with ``Auto*`` classes; offline only.
    ``sha256`` overrides the folder's content hash (a GGUF file's hash for a converted model)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    check_model_dir(path, kind, what)
    dev = resolve_device(device, what=f"{what}: device")
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    cls = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = cls.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, ImportError) as e:
        raise AugsvcError(f"{what}: cannot load {path}: {str(e).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(dev).eval()
    return Loaded(model, tok, dev, kind, sha256 or model_sha256(path), str(path))


# -- tokenizers and new models -------------------------------------------------------------------------------------


def _bpe(texts: Sequence[str], vocab_size: int, special: Sequence[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(special),
                                  initial_alphabet=alphabet, show_progress=False)  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    return tok


def lm_tokenizer(texts: Sequence[str], vocab_size: int = 2000) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (``<|endoftext|>`` is bos/eos/pad;
    ``<|sep|>`` separates a label from its text)."""
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(texts, vocab_size, [LM_EOS, LM_SEP])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=LM_EOS, eos_token=LM_EOS, pad_token=LM_EOS)


def translation_tokenizer(texts: Sequence[str], vocab_size: int = 4000) -> Any:
    """One byte-level BPE vocabulary for both languages (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2; ``</s>`` appended
    to every encoded sentence, as Marian's tokenizer does)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(texts, vocab_size, MT_SPECIAL)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])  # fmt: skip
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def new_lm(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 128) -> Any:
    """A freshly initialised ``GPT2LMHeadModel`` for ``tokenizer`` (float32, CPU)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = tokenizer.eos_token_id
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                     n_head=n_head, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)  # fmt: skip
    model = GPT2LMHeadModel(cfg)
    model.generation_config.pad_token_id = eos
    return model


def new_translator(
    tokenizer: Any, *, d_model: int = 64, layers: int = 2, heads: int = 4, ffn: int = 256, max_positions: int = 128
) -> Any:
    """A freshly initialised ``MarianMTModel`` (shared embeddings) for ``tokenizer`` (float32, CPU)."""
    from transformers import MarianConfig, MarianMTModel

    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    cfg = MarianConfig(vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=d_model,
                       encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                       decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                       max_position_embeddings=max_positions, pad_token_id=pad, eos_token_id=eos,
                       decoder_start_token_id=pad, forced_eos_token_id=eos, share_encoder_decoder_embeddings=True,
                       dropout=0.1)  # fmt: skip
    model = MarianMTModel(cfg)
    gc = model.generation_config
    gc.pad_token_id, gc.eos_token_id, gc.decoder_start_token_id = pad, eos, pad
    gc.bos_token_id, gc.forced_eos_token_id = None, None
    gc.max_length, gc.num_beams, gc.bad_words_ids = max_positions, 1, None
    return model


# -- training ------------------------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    """Optimisation settings of :func:`train` (steps of ``batch_size`` examples; ``lr`` peak learning rate)."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: float = 0.05  # fraction of steps
    seed: int = 0
    max_length: int = 64  # tokens per example (each side for translation)
    checkpoint_every: int = 200
    log_every: int = 10


def lm_lines(labels: Sequence[str], texts: Sequence[str], sep: str = LM_SEP, eos: str = LM_EOS) -> list[str]:
    """``label SEP text EOS`` training lines for a causal LM (LAMBADA's format)."""
    return [f"{lab} {sep} {t.strip()}{eos}" for lab, t in zip(labels, texts, strict=True)]


def _encode(tokenizer: Any, kind: str, examples: Sequence[Any], max_length: int) -> list[Any]:
    if kind == "causal":
        ids = tokenizer(list(examples), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        return [i for i in ids if len(i) > 1]
    src = tokenizer([s for s, _ in examples], truncation=True, max_length=max_length)["input_ids"]
    tgt = tokenizer([t for _, t in examples], truncation=True, max_length=max_length)["input_ids"]
    return list(zip(src, tgt, strict=True))


def _pad(seqs: list[list[int]], value: int) -> tuple[Any, Any]:
    import torch

    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _batch(kind: str, items: list[Any], pad_id: int, device: Any) -> dict[str, Any]:
    if kind == "causal":
        ids, mask = _pad(items, pad_id)
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
    ids, mask = _pad([s for s, _ in items], pad_id)
    lab, lmask = _pad([t for _, t in items], pad_id)
    labels = lab.masked_fill(lmask == 0, -100)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def _order(n: int, seed: int, step: int, batch: int, cache: dict[int, np.ndarray]) -> list[int]:
    """Example indices of ``step``: consecutive slices of per-epoch permutations seeded from (seed, epoch)."""
    out = []
    for q in range(step * batch, (step + 1) * batch):
        e = q // n
        if e not in cache:
            cache.clear()
            cache[e] = np.random.default_rng(np.random.SeedSequence([seed, e, 0x7E47])).permutation(n)
        out.append(int(cache[e][q % n]))
    return out


def train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    settings: TrainSettings,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    device: Any = None,
    threads: int | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    meta: dict | None = None,
) -> tuple[Any, list[dict]]:
    """Train ``model`` (causal: ``examples`` are text lines; seq2seq: (source, target) pairs) for
    ``settings.steps`` steps. Returns the model (eval mode) and the loss history (``{"step", "loss"}`` per
    ``log_every`` steps).

    With ``out``, a checkpoint (model, tokenizer, ``state.pt``) is written to ``out/checkpoint`` every
    ``checkpoint_every`` steps and at the end, and the final model and tokenizer to ``out`` with
    ``training.json`` (settings, ``meta``, history). ``resume`` continues from ``out/checkpoint`` (AugsvcError when
    the examples or the model kind differ from the checkpoint's). ``threads`` sets torch's CPU threads for the
    training (None: unchanged; restored afterwards). ``on_step(step, total, loss)`` reports progress.
    """
    import torch

    kind = "seq2seq" if model.config.is_encoder_decoder else "causal"
    device = device if device is not None else torch.device("cpu")
    data_hash = texts_sha256(examples)
    encoded = _encode(tokenizer, kind, examples, settings.max_length)
    if not encoded:
        raise AugsvcError("training: no example is long enough to train on (every text is empty)")
    ck = Path(out) / "checkpoint" if out is not None else None
    start, history, state = 0, [], None
    if resume and ck is not None and (ck / "state.pt").is_file():
        state = load_checkpoint(ck / "state.pt", what="training checkpoint",
                                fix=f"delete {ck} to start again without --resume")  # fmt: skip
        if state["data_sha256"] != data_hash:
            raise AugsvcError(f"--resume: {ck} was trained on other texts (data hash differs); start a new --out")
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        cls = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
        model = cls.from_pretrained(str(ck), local_files_only=True)
        start, history = int(state["step"]), list(state["history"])
    model.to(device)
    with seeded_session(settings.seed, device, threads=threads):
        opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
        warm = max(1, int(settings.warmup * settings.steps))

        def lr_at(s: int) -> float:
            return min(1.0, (s + 1) / warm) * max(0.1, 1.0 - s / max(1, settings.steps))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            set_rng_state(state.get("rng", state.get("torch_rng")), device)  # torch_rng: written before the runtime
        model.train()
        perms: dict[int, np.ndarray] = {}
        running: list[float] = []
        for step in range(start, settings.steps):
            idx = _order(len(encoded), settings.seed, step, settings.batch_size, perms)
            batch = _batch(kind, [encoded[i] for i in idx], tokenizer.pad_token_id, device)
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running.append(float(loss.detach()))
            if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
                history.append({"step": step + 1, "loss": round(float(np.mean(running)), 5)})
                running = []
            if on_step is not None:
                on_step(step + 1, settings.steps, float(loss.detach()))
            if ck is not None and ((step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps):
                _checkpoint(ck, model, tokenizer, opt, sched, step + 1, history, data_hash)
    model.eval()
    if out is not None:
        o = Path(out)
        model.save_pretrained(str(o))
        tokenizer.save_pretrained(str(o))
        n_params = sum(p.numel() for p in model.parameters())
        info = {"kind": kind, "settings": asdict(settings), "examples": len(encoded), "data_sha256": data_hash,
                "parameters": n_params, "history": history, **(meta or {})}  # fmt: skip
        (o / "training.json").write_text(json.dumps(info, indent=2))
    return model, history


def _checkpoint(ck: Path, model: Any, tok: Any, opt: Any, sched: Any, step: int, history: list, data: str) -> None:
    tmp = ck.with_name(ck.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    save_checkpoint(tmp / "state.pt", {"step": step, "history": history, "optimizer": opt.state_dict(),
                                       "scheduler": sched.state_dict(), "data_sha256": data},
                    rng_device=next(model.parameters()).device)  # fmt: skip
    old = ck.with_name(ck.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ck.exists():
        ck.rename(old)
    tmp.rename(ck)
    shutil.rmtree(old, ignore_errors=True)


# -- generation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoding:
    """How to decode: sampling (``do_sample``, ``temperature``, ``top_k``, ``top_p``) or beam search
    (``num_beams`` > 1, ``do_sample`` False); ``max_length`` new tokens; ``batch_size`` sequences per call."""

    do_sample: bool = True
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_length: int = 48
    batch_size: int = 32

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"do_sample": self.do_sample, "num_beams": self.num_beams,
                              "max_new_tokens": self.max_length}  # fmt: skip
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k or None, top_p=self.top_p)
        return kw


def sample_lm(
    loaded: Loaded | tuple, prompt: str, n: int, decoding: Decoding, seed: int, stop: Sequence[str] = (LM_SEP,)
) -> list[str]:
    """``n`` continuations of ``prompt`` from a causal LM (text after the prompt, up to the first end of sequence,
    line break or ``stop`` string, stripped). Same seed, same texts on CPU."""
    import torch

    model, tok, device = loaded[0], loaded[1], loaded[2]
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
    out: list[str] = []
    with seeded_session(seed, device), torch.no_grad():
        for i in range(0, n, decoding.batch_size):
            m = min(decoding.batch_size, n - i)
            batch = ids.repeat(m, 1)
            gen = model.generate(input_ids=batch, attention_mask=torch.ones_like(batch), pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, **decoding.kwargs())  # fmt: skip
            for row in gen[:, ids.shape[1] :].tolist():
                if tok.eos_token_id in row:
                    row = row[: row.index(tok.eos_token_id)]
                text = tok.decode(row, skip_special_tokens=True).replace("\ufffd", "")
                text = text.split("\n")[0]
                for st in stop:
                    text = text.split(st)[0]
                out.append(text.strip())
    return out


def translate(
    loaded: Loaded | tuple,
    texts: Sequence[str],
    decoding: Decoding,
    seed: int,
    on_batch: Callable[[int, int], None] | None = None,
    **generate: Any,
) -> list[str]:
    """Translations of ``texts`` by a seq2seq model, in batches of ``decoding.batch_size`` (same seed, same texts
    on CPU). ``on_batch(done, total)`` reports progress after every batch; ``generate`` adds keyword arguments of
    ``model.generate`` (``forced_bos_token_id`` for M2M/NLLB)."""
    import torch

    model, tok, device = loaded[0], loaded[1], loaded[2]
    out: list[str] = []
    with seeded_session(seed, device), torch.no_grad():
        for i in range(0, len(texts), decoding.batch_size):
            enc = tok(list(texts[i : i + decoding.batch_size]), return_tensors="pt", padding=True, truncation=True,
                      max_length=decoding.max_length * 2)  # fmt: skip
            gen = model.generate(**{k: v.to(device) for k, v in enc.items()}, **decoding.kwargs(), **generate)
            out.extend(t.replace("\ufffd", "").strip() for t in tok.batch_decode(gen, skip_special_tokens=True))
            if on_batch is not None:
                on_batch(len(out), len(texts))
    return out
