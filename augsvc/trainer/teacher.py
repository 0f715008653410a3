"""Teacher inference: a trained run's model computes logits for rows (a build stage writes them as the
``teacher_logits`` column, so distillation never holds the teacher beside the student)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_CACHE: dict[str, Any] = {}


def load_model(checkpoint: str | Path) -> tuple[Any, Any, dict]:
    """(model in eval mode, input prep, checkpoint metadata) of a run directory or a ``best.pt``; cached per process."""
    from augsvc.trainer.loop import Prep, _load_checkpoint, build_model

    key = str(Path(checkpoint).resolve())
    if key not in _CACHE:
        ck = _load_checkpoint(checkpoint)
        prep = Prep(ck["modality"], ck["prep"])

        class _M:  # the bits of a manifest build_model needs
            class_names = ck["class_names"]

        model = build_model(ck["kind"], _M, prep, ck["width"], ck.get("channels", 3))
        model.load_state_dict(ck["model"])
        model.eval()
        _CACHE[key] = (model, prep, ck)
    return _CACHE[key]


def logits_for_rows(checkpoint: str | Path, batch: dict, batch_size: int = 256) -> np.ndarray:
    """Logits (n, K) float32 for a collated batch (``image`` uint8 NHWC, ``text``, or feature columns)."""
    import torch

    model, prep, _ = load_model(checkpoint)
    n = len(batch["label"])
    out = []
    with torch.no_grad():
        for i in range(0, n, batch_size):
            part = {k: v[i : i + batch_size] for k, v in batch.items()}
            out.append(model(prep.inputs(part)).float().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(prep.state) or 0), np.float32)
