"""Training schedules over epochs: the curriculum (easy-to-hard order with a pacing function) and progressive
resizing (small images early, full size later). Config models here, used by ``TrainConfig``; no torch at import.

``curriculum:`` scores every training row once at the start of a run (the version's ``teacher_logits``, or a first
model's predictions), then each epoch's stream holds the easiest ``f(epoch)`` fraction of the rows (see
``augsvc/curriculum.py``). ``progressive_resize:`` lists ``{from_epoch, size}`` steps; epochs before the first step,
and validation and checkpoints always, use ``resize`` (the full size; null: the stored size).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from augsvc.curriculum import Curriculum, Pacing
from schemas.errors import AugsvcError


class CurriculumConfig(BaseModel):
    """``curriculum:`` in a train config: where the difficulty comes from and the pacing function."""

    model_config = ConfigDict(extra="forbid")
    difficulty: str = Field(
        "teacher", description="teacher: the version's teacher_logits column; or a run dir / .pt of a first model"
    )
    measure: Literal["p_true", "loss"] = Field("p_true", description="1 - p(true label), or the cross-entropy")
    pacing: Literal["linear", "step", "exponential"] = Pacing.kind
    start: float = Field(Pacing.start, gt=0, le=1, description="fraction of the easiest rows in epoch 0")
    inc: float = Field(Pacing.inc, gt=0, description="exponential: factor per step; linear/step: fraction added")
    step_length: int = Field(Pacing.step_length, ge=1, description="epochs per pacing step")

    @model_validator(mode="after")
    def _valid_pacing(self) -> CurriculumConfig:
        try:
            self.to_pacing()
        except AugsvcError as e:
            raise ValueError(str(e)) from None
        return self

    def to_pacing(self) -> Pacing:
        return Pacing(self.pacing, self.start, self.inc, self.step_length)


class ResizeStep(BaseModel):
    """One step of ``progressive_resize``: from epoch ``from_epoch`` (0-based) on, train at ``size`` [h, w]."""

    model_config = ConfigDict(extra="forbid")
    from_epoch: int = Field(ge=0)
    size: tuple[int, int]

    @model_validator(mode="after")
    def _positive(self) -> ResizeStep:
        check_min_size(self.size, "size")
        return self


MIN_IMAGE_SIZE = 8  # SmallCNN's three 2x poolings need at least 8 px per side


def check_min_size(size: tuple[int, int] | None, key: str) -> None:
    """ValueError naming ``key`` when an [h, w] training size is below :data:`MIN_IMAGE_SIZE` on a side."""
    if size is not None and min(size) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"{key} {list(size)}: height and width must be at least {MIN_IMAGE_SIZE} (the CNN's minimum input size)"
        )


def check_resize_steps(steps: list[ResizeStep] | None, epochs: int | None = None) -> None:
    """ValueError unless the steps' epochs strictly increase, the list is non-empty (when given) and every step
    starts before ``epochs`` (a step from epoch >= epochs would never be used)."""
    if steps is None:
        return
    if not steps:
        raise ValueError("progressive_resize: empty list; give [{from_epoch, size}] steps or drop the key")
    starts = [s.from_epoch for s in steps]
    if starts != sorted(set(starts)):
        raise ValueError(f"progressive_resize: from_epoch values must strictly increase, got {starts}")
    if epochs is not None and starts[-1] >= epochs:
        raise ValueError(
            f"progressive_resize: from_epoch {starts[-1]} is never reached with epochs: {epochs} (epochs count from "
            f"0); use from_epoch < {epochs} or drop that step"
        )


def epoch_resize(steps: list[ResizeStep] | None, full: tuple[int, int] | None, epoch: int) -> tuple[int, int] | None:
    """The training image size of ``epoch``: the last step with ``from_epoch <= epoch``, else ``full``."""
    size = full
    for s in steps or []:
        if s.from_epoch <= epoch:
            size = tuple(s.size)
    return size


def make_curriculum(cfg: Any, store: Any, ref: str, out: Path | None = None, echo: bool = False) -> Curriculum | None:
    """The run's :class:`Curriculum` (None when ``cfg.curriculum`` is off): difficulty of every row of
    ``cfg.train_split`` of ``ref`` from the teacher logits or the first model, and the configured pacing.

    With ``out`` (the run folder) it writes ``curriculum.json`` (``augsvc.curriculum.curriculum_report``: the
    difficulty distribution overall and per class, the rows of every epoch); with ``echo`` it prints the same in
    three lines on stderr."""
    c = cfg.curriculum
    if c is None:
        return None
    from augsvc.curriculum import curriculum_report, model_difficulty, report_lines, teacher_difficulty

    if c.difficulty == "teacher":
        scores = teacher_difficulty(ref, store=store, split=cfg.train_split, measure=c.measure)
    else:
        scores = model_difficulty(ref, c.difficulty, store=store, split=cfg.train_split, measure=c.measure)
    cur = Curriculum(scores, c.to_pacing())
    if out is not None or echo:
        m = store.manifest(*store.resolve(ref))
        rep = curriculum_report(cur.scores, cur.pacing, cfg.epochs, _labels(store, ref, cfg.train_split), m.class_names)
        rep["source"] = c.difficulty
        rep["measure"] = c.measure
        if out is not None:
            (Path(out) / "curriculum.json").write_text(json.dumps(rep, indent=1))
        if echo:
            for line in report_lines(rep):
                print(line, file=sys.stderr, flush=True)
    return cur


def _labels(store: Any, ref: str, split: str) -> np.ndarray:
    """Labels of ``split`` in storage order (the order of the difficulty scores), -1 for unlabelled rows."""
    from augsvc.stream import Stream

    parts = [
        b["label"] for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=4096, columns=["label"])
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
