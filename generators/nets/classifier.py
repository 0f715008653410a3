"""A trained run's classifier for inference: load a checkpoint written by ``augsvc train`` and compute logits.

The teacher stage (``pipelines/stages/teacher.py``) writes them as the ``teacher_logits`` column, so distillation
reads them from the version and a big teacher never sits in memory beside the student; generators' quality gates
score synthetic rows with them. The teacher stage's actor (``pipelines.stages.teacher.TeacherHost``) loads the model
once per actor (on CUDA when there is one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from schemas.errors import AugsvcError

_CACHE: dict[tuple, LoadedModel] = {}  # per process; at most _CACHE_MAX models
_CACHE_MAX = 2


class LoadedModel(NamedTuple):
    """A trained model in eval mode, its input preparation, and the checkpoint's metadata."""

    model: Any
    prep: Any
    meta: dict


def load_model(checkpoint: str | Path, device: str = "cpu") -> LoadedModel:
    """The model of a run directory (its ``best.pt``) or a ``.pt`` file; cached per process and file version."""
    import torch

    from generators.nets.prep import Prep, build_model

    p = Path(checkpoint)
    p = p / "best.pt" if p.is_dir() else p
    st = p.stat() if p.is_file() else None
    key = (str(p.resolve()), st and st.st_mtime_ns, st and st.st_size, device)
    if key not in _CACHE:
        ck = read_checkpoint(p)
        prep = Prep(ck["modality"], ck["prep"])
        model = build_model(ck["kind"], len(ck["class_names"]), prep, ck["width"], ck.get("channels", 3))
        model.load_state_dict(ck["model"])
        model.to(torch.device(device)).eval()
        meta = {k: v for k, v in ck.items() if k not in ("model", "prep")}
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = LoadedModel(model, prep, meta)
    return _CACHE[key]


def read_checkpoint(path: str | Path) -> dict:
    """The dict ``augsvc train`` saved (a run directory means its ``best.pt``); AugsvcError when there is none or it
    is not a readable torch file."""
    from generators.runtime import load_checkpoint

    p = Path(path)
    if p.is_dir():  # a run directory, or a pretraining directory (encoder.pt: an encoder without a head)
        p = p / "best.pt" if (p / "best.pt").is_file() or not (p / "encoder.pt").is_file() else p / "encoder.pt"
    if not p.is_file():
        raise AugsvcError(f"{path}: no checkpoint (expected a run directory with best.pt, or a .pt file)")
    return load_checkpoint(p, what="classifier checkpoint", fix="train the run again ('augsvc train') or restore it")


def rows_to_batch(
    rows: list[dict], modality: str, features: list[str] | None = None, resize: tuple[int, int] | None = None
) -> dict:
    """Collate rows (``image`` as a decoded uint8 HWC array or stored bytes with format/shape, ``text``, or feature
    columns) into a model-input batch; images are resized to ``resize`` (h, w) when given (the training size)."""
    batch: dict[str, Any] = {}
    if modality == "image":
        from schemas.imagecodec import decode
        from schemas.imagecodec import resize as resize_image

        imgs = [
            r["image"] if isinstance(r["image"], np.ndarray)
            else decode(r["image"], r["image_format"], r["height"], r["width"], r["channels"])
            for r in rows
        ]  # fmt: skip
        if resize is not None:
            imgs = [resize_image(im, *resize) for im in imgs]
        if len({im.shape for im in imgs}) > 1:
            raise AugsvcError("teacher: images of several sizes in one batch; ingest with --resize")
        batch["image"] = np.stack(imgs) if imgs else np.zeros((0, 1, 1, 1), np.uint8)
    elif modality == "text":
        batch["text"] = np.array([r["text"] for r in rows], dtype=object)
    else:
        for f in features or []:
            batch[f] = np.array([r.get(f) for r in rows], dtype=object)
    return batch


def logits_for_rows(
    model: LoadedModel | str | Path, rows: list[dict] | dict, batch_size: int = 256, *, modality: str | None = None
) -> np.ndarray:
    """Logits (n, K) float32 of a loaded model (or a run directory / checkpoint path) for ``rows``: stored row
    dicts, or an already collated batch (``image`` uint8 NHWC, ``text``, or feature columns)."""
    import torch

    from generators.nets.prep import to_device

    lm = model if isinstance(model, LoadedModel) else load_model(model)
    prep, meta = lm.prep, lm.meta
    if modality is not None and modality != meta["modality"]:
        raise AugsvcError(f"teacher: the model was trained on {meta['modality']} rows, not {modality}")
    features = list(prep.state.get("stats", {})) + list(prep.state.get("levels", {}))
    batch = rows if isinstance(rows, dict) else rows_to_batch(rows, meta["modality"], features, meta.get("resize"))
    key = {"image": "image", "text": "text"}.get(meta["modality"], features[0] if features else None)
    n = len(batch[key]) if key else 0
    device = next(lm.model.parameters()).device
    out = [np.zeros((0, len(meta["class_names"])), np.float32)]
    with torch.no_grad():
        for i in range(0, n, batch_size):
            part = {k: v[i : i + batch_size] for k, v in batch.items()}
            x = to_device(prep.inputs(part, meta.get("max_len", 64)), device)
            out.append(lm.model(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)
