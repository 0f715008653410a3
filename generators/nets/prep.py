"""Model inputs from collated batches: ``Prep`` holds what training fitted (word vocabulary, feature statistics
and category levels) and is saved in every checkpoint, so a teacher or a resumed run prepares inputs exactly as
training did. (Fitting it on a version's training split is ``augsvc.trainer.data.fit_prep``.)"""

from __future__ import annotations

from typing import Any

import numpy as np

from schemas.errors import AugsvcError


class Prep:
    """Turns collated batches (``image`` uint8 NHWC, ``text``, or feature columns) into model inputs."""

    def __init__(self, modality: str, state: dict | None = None) -> None:
        self.modality = modality
        self.state = state or {}
        self._tok: Any = None

    def inputs(self, batch: dict, max_len: int = 64) -> Any:
        """Model input of one batch: a tensor, or a dict of tensors for Hugging Face text models."""
        import torch

        if self.modality == "image":
            if not isinstance(batch["image"], np.ndarray) or batch["image"].ndim != 4:
                sizes = sorted({tuple(x.shape[:2]) for x in batch["image"]})
                shown = ", ".join(f"{h}x{w}" for h, w in sizes[:3])
                raise AugsvcError(
                    f"a batch holds images of several sizes ({shown}); a model needs one size: set 'resize: [H, W]' "
                    "in the train config, or ingest with --resize HxW"
                )
            img = np.ascontiguousarray(batch["image"])
            return torch.from_numpy(img if img.flags.writeable else img.copy())
        if self.modality == "text":
            texts = [str(t) for t in batch["text"]]
            if "hf_path" in self.state:
                if self._tok is None:
                    import transformers

                    self._tok = transformers.AutoTokenizer.from_pretrained(self.state["hf_path"], local_files_only=True)
                enc = self._tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
                return dict(enc)
            from generators.nets.classifiers import Vocab

            if self._tok is None:
                self._tok = Vocab(self.state["vocab"])
            return self._tok.encode(texts, max_len)
        if self.modality != "tabular":
            raise AugsvcError(f"the trainer has no inputs for {self.modality} versions")
        parts = []
        n = len(batch["label"]) if "label" in batch else len(next(iter(batch.values())))
        if self.state["stats"]:
            cols = []
            for f, (m, s) in self.state["stats"].items():
                v = np.array([np.nan if x is None else x for x in batch[f]], float)
                cols.append((np.nan_to_num(v, nan=m) - m) / s)
            parts.append(np.stack(cols, axis=1))
        for f, levels in self.state["levels"].items():
            parts.append(np.array([[str(v) == lv for lv in levels] for v in batch[f]], dtype=float).reshape(n, -1))
        return torch.from_numpy(np.hstack(parts).astype(np.float32))

    def n_inputs(self) -> int:
        return len(self.state.get("stats", {})) + sum(len(v) for v in self.state.get("levels", {}).values())


def to_device(x: Any, device: Any) -> Any:
    return {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)


def build_model(kind: str, num_classes: int, prep: Prep, width: float = 1.0, channels: int = 3) -> Any:
    """A fresh model of ``kind`` (cnn, text_cnn, mlp, hf) for ``num_classes`` classes."""
    from generators.nets.classifiers import HFClassifier, SmallCNN, TabularMLP, TextCNN

    if kind == "cnn":
        return SmallCNN(channels, num_classes, width)
    if kind == "text_cnn":
        return TextCNN(len(prep.state["vocab"]), num_classes, width=width)
    if kind == "mlp":
        return TabularMLP(prep.n_inputs(), num_classes, width)
    if kind == "hf":
        return HFClassifier(prep.state["hf_path"], num_classes, prep.modality)
    raise AugsvcError(f"unknown model kind {kind!r} (cnn, text_cnn, mlp, hf)")


def default_kind(modality: str) -> str:
    kinds = {"image": "cnn", "text": "text_cnn", "tabular": "mlp"}
    if modality not in kinds:
        raise AugsvcError(f"the trainer has no classifier for {modality} versions")
    return kinds[modality]
