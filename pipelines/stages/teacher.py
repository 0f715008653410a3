"""``teacher`` stages: a trained run's model writes ``teacher_logits`` on every row of the augmented splits, as the
rows are at that stage (copies made by earlier op stages included, and rows without a label: a transfer set), for
distillation (Hinton et al. 2015: the logits are the soft targets, softened by the student's temperature).

Model-backed: the work runs in a pool of Ray actors (:class:`TeacherHost`), each loading the model once, batched,
on a GPU when the cluster has one; in-process runs load it once per build. The checkpoint's sha256 is part of the
version id, so a retrained teacher at the same path gives a new version.

The stage reports what it did (``stage_reports`` in the manifest, printed by ``augsvc build``), per split: rows
scored, rows with a label, ``agreement`` (the fraction of labelled rows whose teacher argmax is their label, overall
and per class), ``mean_confidence`` (mean max softmax probability) and ``mean_entropy`` (mean entropy of the
softmax, nats; ``log K`` is a uniform guess). Agreement under ``LOW_AGREEMENT`` gets a warning.
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
from pipelines.stages.base import Row, StageKind, StepContext, stage_name, validate_spec
from pipelines.tasks import PartOut, get_payload, read_part, worker_setup, write_rows
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe

LOW_AGREEMENT = 0.5  # a split whose labelled rows the teacher agrees with less often than this gets a warning


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
        rows = self.label_rows(read_part(files).to_pylist())
        out = write_rows(self.plan.base, key, rows)
        out.report = score_counts(rows, len(self.plan.base.class_names))
        return out

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


def score_counts(rows: list[dict], n_classes: int) -> dict[str, Any]:
    """Per split sums over rows that carry ``teacher_logits``: rows, labelled, agree (argmax == label), conf_sum
    (max softmax), entropy_sum (nats), and per class index [labelled, agree]. Summed over parts by
    :func:`summarise`."""
    out: dict[str, Any] = {}
    for r in rows:
        z = np.asarray(r["teacher_logits"], np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        st = out.setdefault(r["split"], {"rows": 0, "labelled": 0, "agree": 0, "conf_sum": 0.0, "entropy_sum": 0.0,
                                         "classes": [[0, 0] for _ in range(n_classes)]})  # fmt: skip
        st["rows"] += 1
        st["conf_sum"] += float(p.max())
        st["entropy_sum"] += float(-(p * np.log(np.maximum(p, 1e-12))).sum())
        if r["label"] is not None:
            hit = int(int(np.argmax(z)) == r["label"])
            st["labelled"] += 1
            st["agree"] += hit
            st["classes"][r["label"]][0] += 1
            st["classes"][r["label"]][1] += hit
    return out


def summarise(counts: list[dict[str, Any] | None], class_names: list[str]) -> dict[str, Any]:
    """The stage report from the parts' :func:`score_counts`: per split rows, labelled, agreement, mean confidence
    and entropy, agreement per class; ``warnings`` for a split with agreement under ``LOW_AGREEMENT``."""
    total: dict[str, dict[str, Any]] = {}
    for part in counts:
        for split, st in (part or {}).items():
            t = total.setdefault(split, {"rows": 0, "labelled": 0, "agree": 0, "conf_sum": 0.0, "entropy_sum": 0.0,
                                         "classes": [[0, 0] for _ in class_names]})  # fmt: skip
            for k in ("rows", "labelled", "agree", "conf_sum", "entropy_sum"):
                t[k] += st[k]
            for c, (n, a) in enumerate(st["classes"]):
                t["classes"][c][0] += n
                t["classes"][c][1] += a
    out: dict[str, Any] = {}
    warnings = []
    for split, t in sorted(total.items()):
        n = max(t["rows"], 1)
        row: dict[str, Any] = {"rows_scored": t["rows"], "labelled": t["labelled"],
                               "agreement": round(t["agree"] / t["labelled"], 4) if t["labelled"] else None,
                               "mean_confidence": round(t["conf_sum"] / n, 4),
                               "mean_entropy": round(t["entropy_sum"] / n, 4)}  # fmt: skip
        if t["labelled"]:
            per = zip(class_names, t["classes"], strict=True)
            row["agreement_per_class"] = {c: round(a / k, 4) for c, (k, a) in per if k}
            if row["agreement"] < LOW_AGREEMENT:
                warnings.append(f"split {split}: the teacher's argmax agrees with only {row['agreement']:.0%} of the "
                                f"{t['labelled']} labelled rows; check that it was trained on this data")  # fmt: skip
        out[split] = row
    if warnings:
        out["warnings"] = warnings
    return out


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
        counts = [ctx.task_reports.get(key) for key, _ in keys]
        ctx.reports[stage_name(ctx.recipe, ks[0])] = summarise(counts, list(ctx.manifest.class_names))
        return [res[key] for key, _ in keys]

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        return TeacherHost(self._plan(ctx, k)).label_rows([dict(r) for r in rows])

    def describe(self) -> dict[str, Any]:
        from schemas.catalogue import params_of

        return {**super().describe(), "params": params_of(TeacherSpec)}


register_stage_kind(TeacherStage)
