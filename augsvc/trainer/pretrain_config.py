"""``PretrainConfig``: every key of the ``pretrain:`` section of a train config, with its default, in one place.

The section turns ``augsvc train`` into SimCLR pretraining (``augsvc/trainer/pretrain.py``) followed by fine-tuning
from the pretrained encoder; the encoder (``model``, ``width``), ``device`` and ``threads`` are the train config's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PretrainConfig(BaseModel):
    """SimCLR (Chen et al. 2020): encoder + MLP projection head trained with NT-Xent on two views per image."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="version to pretrain on, labels ignored (default: the train data)")
    split: str = Field("train", description="its split ('all' for every row); keep test rows out of pretraining")
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=2, description="images per batch (2x as many views); the last partial is dropped")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (after warmup; cosine decay to 0)")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="sgd: momentum 0.9, nesterov")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0, description="linear warmup from 0, in epochs (fractions allowed)")
    temperature: float = Field(0.5, gt=0, description="NT-Xent temperature")
    projection_dim: int = Field(64, ge=1, description="output of the projection head (the loss compares these)")
    hidden_dim: int | None = Field(None, ge=1, description="projection head hidden units (default: encoder width)")
    augment: str | dict | None = Field(
        None,
        description="recipe (path or mapping) whose label-invariant op stages make the views; default: random "
        "resized crop (scale 0.2-1), horizontal flip, colour jitter (p 0.8), greyscale (p 0.2)",
    )
    resize: tuple[int, int] | None = Field(None, description="[height, width] (default: the train config's resize)")
    seed: int | None = Field(None, ge=0, description="default: the train config's seed")

    @field_validator("resize")
    @classmethod
    def _min_size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        from augsvc.trainer.schedule import check_min_size

        check_min_size(v, "size")
        return v
