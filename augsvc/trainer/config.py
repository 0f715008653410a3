"""``TrainConfig``: every key of ``augsvc train CONFIG.yaml``, with its default, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from augsvc.trainer.pretrain_config import PretrainConfig
from augsvc.trainer.schedule import CurriculumConfig, ResizeStep, check_resize_steps
from schemas.errors import AugsvcError
from schemas.validation import read_mapping, validation_message


class MixConfig(BaseModel):
    """Batch mixing while streaming (``pipelines.mixing.mix_batch``); images only."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["mixup", "cutmix", "average"] = "mixup"
    alpha: float = Field(0.4, gt=0)


class DistillConfig(BaseModel):
    """Hinton distillation from the version's ``teacher_logits`` column (written by a teacher build stage)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    lambda_hard: float = Field(0.1, ge=0)
    lambda_soft: float = Field(0.9, ge=0)


class TrainConfig(BaseModel):
    """``augsvc train CONFIG.yaml``: every key, with its default."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="training version: NAME, NAME@VERSION or NAME@TAG")
    train_split: str = "train"
    val_data: str | None = Field(None, description="validation version (default: the training version)")
    val_split: str = "val"
    model: str | None = Field(
        None,
        min_length=1,
        description="cnn, text_cnn, mlp, hf, or a pretrained image backbone: efficientnet_lite0 (offline weights, "
        "extra 'pretrained') or any timm architecture; default by modality",
    )
    pretrained: str | None = Field(
        None,
        description="backbone weights: a local file or a folder holding one, 'hub' (download; needs "
        "allow_download), or 'none' (random init); efficientnet_lite0 defaults to the package's ImageNet weights",
    )
    allow_download: bool = Field(False, description="let pretrained: hub download weights (never by default)")
    head: Literal["linear", "flatten"] = Field(
        "linear",
        description="backbone head: linear (global average pool + dropout + linear) or flatten "
        "(Flatten + Dropout + Dense over the feature map, the Keras tutorials' head)",
    )
    head_dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the backbone head's linear layer")
    freeze_backbone: bool = Field(
        False,
        description="train only the head on a frozen backbone (linear probing / feature extraction); "
        "without augment or mix the features are computed once and cached",
    )
    hf_path: str | None = Field(None, description="model: hf -> local Hugging Face model folder, or `minilm` "
                                   "(the packaged all-MiniLM-L6-v2); never downloaded")  # fmt: skip
    width: float = Field(1.0, gt=0, description="width multiplier (teacher and student of one family)")
    max_len: int = Field(64, ge=1, description="text: tokens per example")
    epochs: int = Field(10, ge=0, description="0: only pretrain (needs pretrain)")
    batch_size: int = Field(64, ge=1)
    shuffle_window: int | None = Field(
        None,
        ge=1,
        description="training stream's shuffle: null (default) permutes the whole split when its shards total at "
        "most 1 GiB (near-iid batches whatever the storage order), else windows; N: window shuffle of blocks of whole "
        "shards of at least N rows (docs/streaming.md)",
    )
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    seed: int = 0
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: str | dict | None = Field(None, description="recipe (path or mapping) applied on the fly while streaming")
    augment_copies: int | None = Field(
        None,
        ge=1,
        le=100,
        description="with augment: train as on a build with this many fixed augmented copies "
        "per row plus the original (every epoch passes over all of them; nothing is written) instead of a fresh "
        "augmented view per epoch",
    )
    augment_cycle: bool = Field(
        False,
        description="with augment_copies: each epoch passes over one of the k + 1 fixed views in turn (the "
        "originals, then copy 0, 1, ...; all of them every k + 1 epochs) instead of all of them, so an epoch has as "
        "many optimizer steps as one without copies (how augsvc tune compares offline and on-the-fly candidates)",
    )
    mix: MixConfig | None = None
    resize: tuple[int, int] | None = Field(
        None, description="images: [height, width] every image is resized to while streaming (several sizes)"
    )
    distill: DistillConfig | None = Field(None, description="distil from the version's teacher_logits column")
    curriculum: CurriculumConfig | None = Field(None, description="easy-to-hard epochs with a pacing function")
    progressive_resize: list[ResizeStep] | None = Field(
        None, description="images: [{from_epoch, size: [H, W]}] smaller training sizes early; validation at resize"
    )
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without a better val accuracy")
    finetune_from: str | None = Field(None, description="run dir or checkpoint to start from (same model family)")
    freeze_epochs: int = Field(0, ge=0, description="fine-tuning: epochs training only the (new) head")
    unfreeze_groups: int | None = Field(None, ge=0, description="fine-tuning: layer groups below the head to unfreeze "
                                        "after freeze_epochs (default: all)")  # fmt: skip
    base_lr_scale: float = Field(0.1, gt=0, le=1, description="fine-tuning: lr factor per layer group below the head")
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:1, ...")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores, at most 8)")
    pretrain: PretrainConfig | None = Field(None, description="SimCLR pretraining first, then fine-tune from it")

    @field_validator("model")
    @classmethod
    def _known_kind(cls, v: str | None) -> str | None:
        from generators.nets.prep import CLASSIFIERS, timm_architecture

        if v is not None and v not in CLASSIFIERS and not timm_architecture(v):
            raise ValueError(CLASSIFIERS.unknown_message(v) + " (nor a timm architecture where timm imports)")
        return v

    @model_validator(mode="after")
    def _hf_needs_path(self) -> TrainConfig:
        from generators.nets.prep import is_backbone_kind

        backbone = self.model is not None and is_backbone_kind(self.model)
        if not backbone:
            used = [k for k in ("pretrained", "freeze_backbone", "head_dropout") if getattr(self, k)]
            if self.head != "linear":
                used.append("head")
            if used:
                raise ValueError(f"{', '.join(used)} only apply to a pretrained backbone (model: efficientnet_lite0 "
                                 "or a timm architecture)")  # fmt: skip
        elif self.finetune_from or self.pretrain is not None:
            raise ValueError(f"model {self.model!r} loads its own pretrained weights: drop finetune_from / pretrain")
        if self.model == "hf" and not self.hf_path:
            raise ValueError("model: hf needs hf_path (a local Hugging Face model folder)")
        if self.hf_path and self.model != "hf":
            raise ValueError("hf_path is only used with model: hf")
        if self.augment_copies is not None and self.augment is None:
            raise ValueError("augment_copies needs augment (the recipe whose fixed copies to train on)")
        if self.augment_cycle and self.augment_copies is None:
            raise ValueError("augment_cycle needs augment_copies (the fixed views to cycle through)")
        if self.distill and (self.mix or self.augment):
            raise ValueError(
                "distill cannot be combined with mix or augment: the teacher_logits belong to the stored rows; "
                "put the augmentation in the build before the teacher stage instead"
            )
        check_resize_steps(self.progressive_resize, self.epochs)
        if self.pretrain is not None and (self.finetune_from or self.model == "hf"):
            raise ValueError("pretrain fine-tunes from its own encoder: drop finetune_from / model: hf")
        if self.epochs == 0 and self.pretrain is None:
            raise ValueError("epochs: 0 only makes sense with pretrain (pretraining alone)")
        return self

    @property
    def fine_tuning(self) -> bool:
        """Fine-tuning: a pretrained base (a previous run, a Hugging Face model, a backbone, or ``pretrain``) under
        a new head."""
        return (
            self.finetune_from is not None
            or self.model not in (None, "cnn", "text_cnn", "mlp")
            or self.pretrain is not None
        )


def load_config(source: str | Path | dict) -> TrainConfig:
    """Validate a YAML file or a mapping; errors name the key (and list the allowed keys for unknown ones)."""
    data, where = read_mapping(source, "config", "keys data, epochs, ...")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        models = {"mix": MixConfig, "distill": DistillConfig, "curriculum": CurriculumConfig,
                  "progressive_resize": ResizeStep, "pretrain": PretrainConfig}  # fmt: skip
        raise AugsvcError(
            validation_message(
                e, where, lambda loc: models.get(str(loc[0]), TrainConfig) if len(loc) > 1 else TrainConfig
            )
        ) from None
