"""Fine-tune a pretrained Hugging Face text encoder as a classifier on a few labelled texts, in memory.

Used by LAMBADA's filter (``classifier: hf``) and the efficacy benches: the same :class:`HFClassifier` the trainer
builds for ``model: hf`` (a sequence-classification head on the folder's encoder, e.g. all-MiniLM-L6-v2), trained
with AdamW and a linear decay for a fixed number of steps over seeded per-epoch permutations. For a full training
run with validation, checkpoints and reports use ``augsvc train`` with ``model: hf``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import AugsvcError


def fit_text_classifier(
    path: str | Path,
    texts: Sequence[str],
    y: np.ndarray,
    num_classes: int,
    *,
    steps: int = 100,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    max_len: int = 64,
    device: Any = "cpu",
) -> Callable[[list[str]], np.ndarray]:
    """Fine-tune the encoder folder ``path`` on ``texts`` with int labels ``y`` (n,) in ``[0, num_classes)``;
    returns ``predict_proba(texts) -> (m, num_classes) float64`` (softmax; eval mode, batches of 64).

    Raises AugsvcError when there is nothing to train on or the folder does not load.
    """
    import torch

    from generators.nets.classifiers import HFClassifier
    from generators.runtime import seeded_session

    texts = [str(t) for t in texts]
    y = np.asarray(y, dtype=np.int64)
    if not texts:
        raise AugsvcError("hf classifier: no labelled text to fine-tune on")
    dev = torch.device(device)
    with seeded_session(seed, dev):
        try:
            net = HFClassifier(path, num_classes, "text")
            tok = net.tokenizer()
        except (OSError, ValueError) as e:
            raise AugsvcError(f"hf classifier: cannot load {path}: {str(e).splitlines()[0]}") from None
        net.to(dev).train()
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / max(1, steps)))
        order: list[int] = []
        epoch = 0
        for _ in range(steps):
            if len(order) < batch_size:
                perm = np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x4F7])).permutation(len(texts))
                order += perm.tolist()
                epoch += 1
            idx, order = order[:batch_size], order[batch_size:]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            logits = net({k: v.to(dev) for k, v in enc.items()})
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[idx]).to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()

    def predict_proba(batch: list[str]) -> np.ndarray:
        out = [np.zeros((0, num_classes))]
        with torch.no_grad():
            for i in range(0, len(batch), 64):
                enc = tok(list(batch[i : i + 64]), padding=True, truncation=True, max_length=max_len,
                          return_tensors="pt")  # fmt: skip
                z = net({k: v.to(dev) for k, v in enc.items()})
                out.append(torch.softmax(z.float(), dim=1).cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    return predict_proba
