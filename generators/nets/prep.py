"""Model inputs from collated batches: ``Prep`` holds what training fitted (word vocabulary, feature statistics
and category levels) and is saved in every checkpoint, so a teacher or a resumed run prepares inputs exactly as
training did. (Fitting it on a version's training split is ``augsvc.trainer.data.fit_prep``.) :data:`CLASSIFIERS`
holds the classifier kinds the trainer, teacher stage and quality gates build (``build_model``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.errors import AugsvcError
from schemas.registry import Registry


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


@dataclass(frozen=True)
class ClassifierKind:
    """A classifier family the trainer can build: ``name`` (the train config's ``model``), the ``modalities`` it
    reads, and ``build(num_classes, prep, width, channels) -> torch.nn.Module`` (a fitted :class:`Prep` gives
    vocabulary, feature statistics or the Hugging Face path). The module must map ``prep.inputs(batch)`` to logits
    (N, num_classes) and offer ``layer_groups()`` (bottom to top, the head last) for fine-tuning."""

    name: str
    modalities: tuple[str, ...]
    build: Callable[[int, Prep, float, int], Any]
    doc: str = ""


# model kind -> ClassifierKind; a new backbone family is one register call (docs/architecture.md, "How to add a
# classifier or backbone"); torch loads inside ``build`` only
CLASSIFIERS: Registry[ClassifierKind] = Registry("model kind")
LITE0 = "efficientnet_lite0"  # the offline EfficientNet-Lite0 package's architecture, as `model:` names it
# the kind the trainer picks for a modality when the config names none
DEFAULT_KINDS = {"image": "cnn", "text": "text_cnn", "tabular": "mlp"}


def register_classifier(name: str, modalities: tuple[str, ...], doc: str = "") -> Callable:
    """Decorator: register ``build(num_classes, prep, width, channels)`` as the classifier kind ``name``."""

    def deco(build: Callable[[int, Prep, float, int], Any]) -> Callable:
        CLASSIFIERS.register(name, obj=ClassifierKind(name, tuple(modalities), build, doc))
        return build

    return deco


@register_classifier("cnn", ("image",), "SmallCNN: 4 conv blocks, width multiplier")
def _cnn(num_classes: int, prep: Prep, width: float, channels: int) -> Any:
    from generators.nets.classifiers import SmallCNN

    return SmallCNN(channels, num_classes, width)


@register_classifier("text_cnn", ("text",), "TextCNN (Kim 2014) over a word vocabulary fitted on the training split")
def _text_cnn(num_classes: int, prep: Prep, width: float, channels: int) -> Any:
    from generators.nets.classifiers import TextCNN

    return TextCNN(len(prep.state["vocab"]), num_classes, width=width)


@register_classifier("mlp", ("tabular",), "TabularMLP over standardised numeric and one-hot categorical features")
def _mlp(num_classes: int, prep: Prep, width: float, channels: int) -> Any:
    from generators.nets.classifiers import TabularMLP

    return TabularMLP(prep.n_inputs(), num_classes, width)


@register_classifier("hf", ("text", "image"), "a local Hugging Face model folder (hf_path) under a new head")
def _hf(num_classes: int, prep: Prep, width: float, channels: int) -> Any:
    from generators.nets.classifiers import HFClassifier

    return HFClassifier(prep.state["hf_path"], num_classes, prep.modality)


@register_classifier(
    LITE0,
    ("image",),
    "EfficientNet-Lite0, offline ImageNet weights (extra "
    "'pretrained'), under a linear or Flatten head; any timm architecture works the same way",
)
def _lite0(num_classes: int, prep: Prep, width: float, channels: int) -> Any:
    from generators.nets.backbones import LITE0_CONFIG, PretrainedClassifier, open_backbone

    trunk, info = open_backbone(LITE0, None)
    return PretrainedClassifier(trunk, info, num_classes, image_size=LITE0_CONFIG["input_size"][1:])


def timm_architecture(name: str) -> bool:
    """Whether ``name`` (``resnet18``, ``convnext_tiny.fb_in1k``) is a timm architecture; False where timm is not
    installed or does not import (timm needs a torchvision built for the installed torch)."""
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm
    except Exception:
        return False
    return name.split(".")[0] in timm.list_models()


def is_backbone_kind(kind: str) -> bool:
    """Whether a train config's ``model`` names a pretrained image backbone (``generators/nets/backbones.py``):
    ``efficientnet_lite0``, or a name the classifier registry does not hold (a timm architecture)."""
    return kind == LITE0 or kind not in CLASSIFIERS


def build_model(
    kind: str, num_classes: int, prep: Prep, width: float = 1.0, channels: int = 3, trunk: Any = None
) -> Any:
    """A fresh model of the registered ``kind`` (cnn, text_cnn, mlp, hf, ...) for ``num_classes`` classes;
    AugsvcError with the closest kinds when unknown. A pretrained backbone (``efficientnet_lite0`` or any timm
    architecture) is built from ``prep.state["backbone"]`` (what the trainer recorded: architecture, data config,
    head): ``trunk`` is its loaded feature extractor (:func:`generators.nets.backbones.open_backbone`), or None to
    rebuild it randomly initialised for a checkpoint's state dict to fill."""
    if prep is not None and "backbone" in prep.state:
        from generators.nets.backbones import BackboneInfo, PretrainedClassifier, rebuild_backbone

        b = prep.state["backbone"]
        info = BackboneInfo.from_state(b["info"])
        net = trunk if trunk is not None else rebuild_backbone(info)
        return PretrainedClassifier(net, info, num_classes, head=b["head"], dropout=b["dropout"],
                                    image_size=tuple(b["image_size"]))  # fmt: skip
    return CLASSIFIERS.get(kind).build(num_classes, prep, width, channels)


def default_kind(modality: str) -> str:
    """The classifier kind the trainer uses for ``modality`` when the config names none; AugsvcError when the
    trainer has none for it."""
    if modality not in DEFAULT_KINDS:
        raise AugsvcError(f"the trainer has no classifier for {modality} versions")
    return DEFAULT_KINDS[modality]
