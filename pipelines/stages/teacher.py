"""``teacher`` stages: a trained run's model writes ``teacher_logits`` on every row of the augmented splits, as the
rows are at that stage (copies made by earlier op stages included, and rows without a label: a transfer set), for
distillation (Hinton et al. 2015: the logits are the soft targets, softened by the student's temperature).

Model-backed: the work runs in a pool of Ray actors (:class:`TeacherHost`), each loading the model once, batched,
on a GPU when the cluster has one; in-process runs load it once per build. The checkpoint's sha256 is part of the
version id, so a retrained teacher at the same path gives a new version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipelines.plan import BuildPlan
from pipelines.stages import register_stage_kind
from pipelines.stages.base import Row, StageKind, StepContext, validate_spec
from pipelines.tasks import PartOut, get_payload, read_part, worker_setup, write_rows
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe


class TeacherSpec(BaseModel):
    """A teacher stage: a run directory (or best.pt) of ``augsvc train`` whose logits every row gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str = Field(description="run directory or .pt file of a trained model")
    batch_size: int = Field(256, ge=1, description="rows per forward pass")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$", description="auto: cuda when present")


def checkpoint_file(checkpoint: str) -> Path:
    p = Path(checkpoint)
    return p / "best.pt" if p.is_dir() else p


@dataclass
class TeacherPlan:
    base: BuildPlan
    stage: int
    checkpoint: str
    batch_size: int
    device: str = "auto"


class TeacherHost:
    """Actor body: loads the teacher once (``generators.nets.classifier``), then labels part after part."""

    def __init__(self, plan: TeacherPlan) -> None:
        from generators.nets.classifier import load_model
        from generators.runtime import resolve_device

        worker_setup()
        self.plan = plan
        self.loaded = load_model(plan.checkpoint, str(resolve_device(plan.device, what="teacher: device")))

    def __call__(self, key: str, files: list[str]) -> PartOut:
        return write_rows(self.plan.base, key, self.label_rows(read_part(files).to_pylist()))

    def label_rows(self, rows: list[dict]) -> list[dict]:
        from generators.nets.classifier import logits_for_rows

        plan, base = self.plan, self.plan.base
        batch: dict[str, Any] = {"label": np.array([-1 if r["label"] is None else r["label"] for r in rows], np.int64)}
        if base.modality == "image":
            imgs = [get_payload(r, "image") for r in rows]
            size = self.loaded.meta.get("resize")
            if size is not None:  # the size the teacher was trained at
                from schemas.imagecodec import resize

                imgs = [resize(im, *size) for im in imgs]
            if len({im.shape for im in imgs}) > 1:
                raise AugsvcError(f"stage {plan.stage} (teacher): images of several sizes; ingest with --resize")
            batch["image"] = np.stack(imgs) if imgs else np.zeros((0, 1, 1, 1), np.uint8)
        elif base.modality == "text":
            batch["text"] = np.array([r["text"] for r in rows], dtype=object)
        else:
            for f in base.features:
                batch[f] = np.array([r[f] for r in rows], dtype=object)
        n_cls = len(base.class_names)
        logits = logits_for_rows(self.loaded, batch, plan.batch_size) if rows else np.zeros((0, n_cls), np.float32)
        if logits.shape[1:] != (n_cls,):
            raise AugsvcError(
                f"stage {plan.stage} (teacher): the model predicts {logits.shape[1]} classes but the data has {n_cls}"
            )
        for r, lg in zip(rows, logits, strict=True):
            r["teacher_logits"] = lg.tolist()
        return rows


class TeacherStage(StageKind):
    key = "teacher"
    description = "a trained run's logits on every row (teacher_logits), for distillation"
    stage_keys = frozenset()
    stage_keys_hint = "a teacher stage scores every row once; put copies in an op stage before it"

    def parse(self, spec: Any) -> TeacherSpec:
        return validate_spec(TeacherSpec, spec, "{checkpoint: runs/teacher}")

    def canonical(self, built: TeacherSpec, spec: Any) -> Any:
        return built.model_dump(mode="json", exclude={"device"})  # where it runs does not change the logits' id

    def identity(self, built: TeacherSpec) -> dict[str, Any]:
        f = checkpoint_file(built.checkpoint)
        if not f.is_file():
            return {"checkpoint_sha256": None}
        return {"checkpoint_sha256": hashlib.sha256(f.read_bytes()).hexdigest()}

    def check(self, recipe: Recipe, k: int, manifest: Manifest) -> None:
        from generators.nets.classifier import read_checkpoint

        spec = recipe.stages[k].built
        try:
            meta = read_checkpoint(spec.checkpoint)
        except AugsvcError as e:
            raise AugsvcError(f"stages[{k}].teacher: {e}") from None
        if meta.get("modality") != manifest.modality:
            raise AugsvcError(
                f"stages[{k}].teacher: {spec.checkpoint} was trained on {meta.get('modality')} rows, but "
                f"{recipe.input} is {manifest.modality}"
            )
        if list(meta.get("class_names", [])) != list(manifest.class_names):
            raise AugsvcError(
                f"stages[{k}].teacher: {spec.checkpoint} predicts classes {meta.get('class_names')}, but "
                f"{recipe.input} has {manifest.class_names}"
            )

    def estimate(self, recipe: Recipe, k: int, rows: list[Row], class_names: list[str]) -> list[Row]:
        return rows

    def _plan(self, ctx: StepContext, k: int) -> TeacherPlan:
        spec = ctx.recipe.stages[k].built
        return TeacherPlan(ctx.plan, k, spec.checkpoint, spec.batch_size, spec.device)

    def run(self, ctx: StepContext, ks: list[int], parts: list[list[str]]) -> list[list[str]]:
        keys = [(f"s{ctx.step}-p{i}", (files,)) for i, files in enumerate(parts)]
        res = ctx.run_actors(TeacherHost, self._plan(ctx, ks[0]), keys)
        return [res[key] for key, _ in keys]

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        return TeacherHost(self._plan(ctx, k)).label_rows([dict(r) for r in rows])

    def describe(self) -> dict[str, Any]:
        from schemas.catalogue import params_of

        return {**super().describe(), "params": params_of(TeacherSpec)}


register_stage_kind(TeacherStage)
