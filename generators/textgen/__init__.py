"""Model-backed text generators and the small transformer models they use (torch/transformers imported lazily).

- ``models``: local model directories (checks without torch, content hashes, loading, device choice, seeded
  generation) and training of a small GPT-2 (causal LM) or Marian-style encoder-decoder (translator) from texts,
  with tokenizers trained by ``tokenizers``, checkpoints and resume. No store access: callers pass texts in.
- ``backtranslate``: the ``backtranslate`` generator (round-trip paraphrases; synthetic source sentences for
  monolingual target text of a parallel-text version).
- ``lambada``: the ``lambada`` generator (fine-tune a causal LM on ``label SEP text``, sample, filter with a
  classifier trained on the originals).
"""
