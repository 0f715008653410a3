"""Teacher inference: a trained run's model computes logits for rows. A build stage writes them as the
``teacher_logits`` column (on the rows as they are at that stage, augmented copies included), so distillation
reads them from the version and a big teacher never sits in memory beside the student.

``TeacherStage`` is the model-backed stage: a callable class that loads the model once (on CUDA when there is
one) and is meant to run as a pool of long-lived workers (a Ray actor pool, or ``map_batches`` with a class).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from schemas.errors import AugsvcError

_CACHE: dict[tuple, LoadedModel] = {}


class LoadedModel(NamedTuple):
    """A trained model in eval mode, its input preparation, and the checkpoint's metadata."""

    model: Any
    prep: Any
    meta: dict


def load_model(checkpoint: str | Path, device: str = "cpu") -> LoadedModel:
    """The model of a run directory (its ``best.pt``) or a ``.pt`` file; cached per process and file version."""
    import torch

    from augsvc.trainer.data import Prep, build_model
    from augsvc.trainer.loop import _load_checkpoint

    p = Path(checkpoint)
    p = p / "best.pt" if p.is_dir() else p
    st = p.stat() if p.is_file() else None
    key = (str(p.resolve()), st and st.st_mtime_ns, st and st.st_size, device)
    if key not in _CACHE:
        ck = _load_checkpoint(p)
        prep = Prep(ck["modality"], ck["prep"])
        model = build_model(ck["kind"], len(ck["class_names"]), prep, ck["width"], ck.get("channels", 3))
        model.load_state_dict(ck["model"])
        model.to(torch.device(device)).eval()
        meta = {k: v for k, v in ck.items() if k not in ("model", "prep")}
        _CACHE[key] = LoadedModel(model, prep, meta)
    return _CACHE[key]


def rows_to_batch(
    rows: list[dict], modality: str, features: list[str] | None = None, resize: tuple[int, int] | None = None
) -> dict:
    """Collate stored rows (image bytes + format/shape, ``text``, or feature columns) into a model-input batch;
    images are resized to ``resize`` (h, w) when given (the size the model was trained at)."""
    from pipelines.imagecodec import decode
    from pipelines.imagecodec import resize as resize_image

    batch: dict[str, Any] = {}
    if modality == "image":
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

    from augsvc.trainer.data import to_device

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


class TeacherStage:
    """Adds ``teacher_logits`` (list of K floats) to rows; load once, call many times (one per actor).

    ``__call__`` takes a list of row dicts and returns them with the new key, or a dict of columns (Ray Data's
    ``map_batches`` numpy format, payload columns as stored) and returns it with a ``teacher_logits`` column.
    """

    def __init__(self, checkpoint: str | Path, *, batch_size: int = 256, device: str = "auto") -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.checkpoint, self.batch_size = str(checkpoint), batch_size
        self.loaded = load_model(checkpoint, device)

    @property
    def num_classes(self) -> int:
        return len(self.loaded.meta["class_names"])

    def __call__(self, rows: list[dict] | dict) -> list[dict] | dict:
        if isinstance(rows, dict):
            n = len(next(iter(rows.values()))) if rows else 0
            as_rows = [{k: v[i] for k, v in rows.items()} for i in range(n)]
            logits = logits_for_rows(self.loaded, as_rows, self.batch_size)
            return {**rows, "teacher_logits": logits}
        logits = logits_for_rows(self.loaded, rows, self.batch_size)
        return [{**r, "teacher_logits": lg.tolist()} for r, lg in zip(rows, logits, strict=True)]
