"""Frozen-backbone features, computed once per (version, split, backbone weights, input size) and cached on disk.

With a frozen backbone and no on-the-fly augmentation or mixing, every epoch would push the same images through the
same network; the head trains on the cached backbone output instead (the "feature extraction without augmentation"
recipe of the Keras transfer-learning tutorials). The cache key is the sha256 of the version id, split, image size
and a hash of the backbone's state dict, so a different weights file, version or size never reads stale features.
Cache folder: ``$AUGSVC_FEATURE_CACHE`` (default ``~/.cache/augsvc/features``); files are written atomically.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    return Path(os.environ.get("AUGSVC_FEATURE_CACHE", "~/.cache/augsvc/features")).expanduser()


def state_hash(module: Any) -> str:
    """sha256 over a module's state dict (names, shapes, bytes), 16 hex digits: which weights made the features."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        t = v.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureTable:
    """Backbone features of one split, looked up by ``sample_id``: ``take(ids)`` -> (N, ...) float32 tensor."""

    def __init__(self, ids: list[str], feats: np.ndarray) -> None:
        self.index = {s: i for i, s in enumerate(ids)}
        self.feats = feats

    def take(self, ids: Any) -> Any:
        import torch

        return torch.from_numpy(self.feats[[self.index[s] for s in ids]])


def split_features(
    model: Any,
    store: Any,
    ref: str,
    split: str,
    resize: tuple[int, int],
    device: Any,
    *,
    batch_size: int = 64,
    progress: bool = False,
    recipe: str | dict | None = None,
    augment_epoch: int | None = None,
) -> FeatureTable:
    """The backbone output of every row of ``split`` of ``ref`` (resized to ``resize`` (h, w)), from the cache or
    computed once (``model.features``, eval mode, no grad) and stored. With ``recipe`` and ``augment_epoch`` c:
    the features of fixed augmented copy c (the trainer's ``augment_copies``), the same view every epoch."""
    import json

    import torch

    from augsvc.stream import Stream

    view = ""
    if recipe is not None:
        text = Path(recipe).read_text() if isinstance(recipe, str) else json.dumps(recipe, sort_keys=True)
        view = f"|{hashlib.sha256(text.encode()).hexdigest()}|{augment_epoch}"
    ident = f"{ref}|{split}|{resize[0]}x{resize[1]}|{state_hash(model.trunk)}{view}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    path = cache_dir() / f"{ref.replace('@', '-')}-{split}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return FeatureTable(list(z["ids"]), z["feats"])
    was = model.training
    model.eval()
    ids: list[str] = []
    parts = []
    with torch.no_grad():
        for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=batch_size, resize=resize,
                        columns=["image"], recipe=recipe, augment_epoch=augment_epoch):  # fmt: skip
            parts.append(model.features(torch.from_numpy(np.ascontiguousarray(b["image"])).to(device)).cpu().numpy())
            ids += [str(s) for s in b["sample_id"]]
    model.train(was)
    feats = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0,), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, ids=np.array(ids), feats=feats)
    os.replace(tmp, path)
    if progress:
        import sys

        print(f"features: {len(ids)} rows of {split!r} through the frozen backbone, cached in {path}", file=sys.stderr)
    return FeatureTable(ids, feats)
