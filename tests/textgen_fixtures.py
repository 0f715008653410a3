"""Tiny made-up text data and tiny models trained on it in seconds (for the text-generator tests and the generator
suite; test code, not shipped in the package).

The data: short sentences ``the <adjective> <noun> is <verdict>`` labelled ``pos``/``neg`` by the verdict, and a
made-up "language" ``xx`` that replaces every word by a fixed other word, so a 2-layer translator learns it in a
few hundred steps. Nothing here is meant for real use.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

ADJ = ["red", "big", "old", "new", "small", "green"]
NOUN = ["car", "dog", "house", "tree", "book", "lamp"]
GOOD = ["good", "nice", "great"]
BAD = ["bad", "awful", "poor"]
WORDS = ["the", "is", *ADJ, *NOUN, *GOOD, *BAD]
LEXICON = {w: f"zo{w[::-1]}" for w in WORDS}  # en -> xx, word by word


def labelled_sentences(per_class: int | None = None, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, labels int64, class names ``[neg, pos]``): every template sentence, or ``per_class`` of each class
    drawn with ``seed``."""
    texts, y = [], []
    for a, n, v in itertools.product(ADJ, NOUN, GOOD + BAD):
        texts.append(f"the {a} {n} is {v}")
        y.append(1 if v in GOOD else 0)
    y = np.array(y, dtype=np.int64)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in (0, 1)]))
        texts, y = [texts[i] for i in keep], y[keep]
    return texts, y, ["neg", "pos"]


def to_xx(text: str) -> str:
    """The made-up language: each known word replaced by its lexicon entry."""
    return " ".join(LEXICON.get(w, w) for w in text.split())


def parallel_pairs() -> list[tuple[str, str]]:
    """(English, xx) pairs of every template sentence."""
    texts, _, _ = labelled_sentences()
    return [(t, to_xx(t)) for t in texts]


def tiny_lm(out: str | Path, steps: int = 150, seed: int = 0) -> Path:
    """Train a 2-layer GPT-2 (n_embd 32) with a byte-level BPE on ``label SEP text`` lines of the sentences."""
    from generators.textgen.lm import TrainSettings, lm_lines, lm_tokenizer, new_lm, train

    texts, y, names = labelled_sentences()
    lines = lm_lines([names[int(c)] for c in y], texts)
    tok = lm_tokenizer(lines, vocab_size=300)
    model = new_lm(tok, n_layer=2, n_embd=32, n_head=2, n_positions=64)
    train(model, tok, lines, TrainSettings(steps=steps, batch_size=16, lr=3e-3, seed=seed), out=out)
    return Path(out)


def tiny_translator(out: str | Path, direction: str = "en-xx", steps: int = 200, seed: int = 0) -> Path:
    """Train a 2-layer Marian-style model (d_model 32) on the en <-> xx pairs, ``en-xx`` or ``xx-en``."""
    from generators.textgen.lm import TrainSettings, new_translator, train, translation_tokenizer

    pairs = parallel_pairs()
    if direction == "xx-en":
        pairs = [(b, a) for a, b in pairs]
    tok = translation_tokenizer([s for p in pairs for s in p], vocab_size=300)
    model = new_translator(tok, d_model=32, layers=2, heads=2, ffn=64, max_positions=64)
    train(model, tok, pairs, TrainSettings(steps=steps, batch_size=16, lr=3e-3, seed=seed), out=out)
    return Path(out)


MLM_WORDS = "the quick brown fox jumps over lazy dog it was not amused cat runs fast slow red green".split()


def tiny_mlm(out: str | Path) -> Path:
    """Save an untrained 1-layer BERT masked LM (hidden 32, seeded) with a word-level tokenizer over ``MLM_WORDS``
    to ``out`` (for the contextual text ops)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(special + MLM_WORDS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, intermediate_size=64))  # fmt: skip
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return Path(out)
