"""Curriculum learning for the stream: per-row difficulty scores and pacing functions (no torch at import).

A curriculum (Bengio et al. 2009) shows easy examples first. Following Hacohen and Weinshall (2019), each row gets a
difficulty score (``teacher_difficulty``: from the version's ``teacher_logits``; ``model_difficulty``: from a
first model's predictions), the rows of the split are sorted from easy to hard, and a *pacing function* ``f(e)``
says which fraction of that sorted list epoch ``e`` may draw from:

- ``linear``:      ``f(e) = min(1, start + inc * e / step_length)``  (grows by ``inc`` every ``step_length`` epochs,
  continuously)
- ``step``:        ``f(e) = min(1, start + inc * floor(e / step_length))``
- ``exponential``: ``f(e) = min(1, start * inc ** floor(e / step_length))``  (``inc > 1``; H&W's fixed exponential
  pacing)

Epoch ``e`` holds the ``ceil(f(e) * N)`` easiest rows, in a permutation seeded from ``(seed, epoch)`` (H&W sample
uniformly within the available easiest fraction), so once ``f(e) = 1`` every row is seen exactly once per epoch.
Ties in the difficulty score are broken by a fixed seeded draw per row. The global order is a pure function of
(scores, pacing, seed, epoch): every rank and DataLoader worker computes the same list and takes its own contiguous
part of it (``augsvc.streamplan.consumer_plan``), and resuming skips the rows already yielded, as for the
stream's other orders.

Scores are aligned with the split's rows in storage order (shards in manifest order, rows in shard order), which
is what ``Stream(..., shuffle=False)`` yields; ``Curriculum`` checks the length against the split when streaming.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from schemas.errors import AugsvcError

CURRICULUM = 5  # purpose of the curriculum's seed lists (augsvc.streamplan.stream_rng)
TIE, SUBSET = 0, 1

PacingKind = Literal["linear", "step", "exponential"]


@dataclass(frozen=True)
class Pacing:
    """A pacing function: the fraction of the easy-to-hard list available in epoch ``e`` (see the module doc).

    ``start`` in (0, 1]; ``inc`` > 0 (``exponential``: > 1); ``step_length`` >= 1 epoch."""

    kind: PacingKind = "exponential"
    start: float = 0.2
    inc: float = 2.0
    step_length: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "step", "exponential"):
            raise AugsvcError(f"curriculum pacing {self.kind!r}: use linear, step or exponential")
        if not 0 < self.start <= 1:
            raise AugsvcError(f"curriculum start {self.start}: the starting fraction must be in (0, 1]")
        if self.kind == "exponential" and self.inc <= 1 and self.start < 1:
            raise AugsvcError(
                f"curriculum inc {self.inc}: exponential pacing multiplies the fraction by inc every step, so inc "
                f"must be > 1 or the pace never grows from start {self.start} to the full set"
            )
        if self.inc <= 0:
            raise AugsvcError(
                f"curriculum inc {self.inc}: {self.kind} pacing adds inc to the fraction every step, so inc must be "
                "> 0 or the pace never reaches the full set"
            )
        if self.step_length < 1:
            raise AugsvcError(f"curriculum step_length {self.step_length}: must be at least 1 epoch")

    def fraction(self, epoch: int) -> float:
        """``f(epoch)`` in (0, 1]."""
        if epoch < 0:
            raise AugsvcError(f"epoch must be >= 0, got {epoch}")
        s, i, L = self.start, self.inc, self.step_length
        if self.kind == "linear":
            f = s + i * epoch / L
        elif self.kind == "step":
            f = s + i * (epoch // L)
        else:
            f = s * i ** (epoch // L) if epoch // L < 4096 else 1.0
        return float(min(1.0, f))

    def size(self, epoch: int, n: int) -> int:
        """Rows available in ``epoch`` out of ``n``: ``ceil(f(epoch) * n)`` (at least one when ``n > 0``)."""
        if n == 0:
            return 0
        return max(1, min(n, math.ceil(self.fraction(epoch) * n - 1e-9)))

    def full_from(self) -> int:
        """The first epoch whose pace is the whole set."""
        e = 0
        while self.fraction(e) < 1.0:
            e += 1
        return e


@dataclass(frozen=True, eq=False)
class Curriculum:
    """Difficulty ``scores`` (float, one per row of the split in storage order; lower = easier) and a pacing.

    Pass as ``Stream(..., curriculum=Curriculum(scores, Pacing(...)))``; the stream then orders each epoch with
    :meth:`order`. ``fingerprint`` enters the stream's state, so a resume with other scores or pacing is refused."""

    scores: np.ndarray
    pacing: Pacing = field(default_factory=Pacing)

    def __post_init__(self) -> None:
        s = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if not np.isfinite(s).all():
            bad = int(np.flatnonzero(~np.isfinite(s))[0])
            raise AugsvcError(f"curriculum: difficulty score of row {bad} is not finite ({s[bad]}); rescore the rows")
        object.__setattr__(self, "scores", s)

    @property
    def fingerprint(self) -> str:
        """16 hex digits over the scores' bytes and the pacing (what fixes the order besides seed and epoch)."""
        h = hashlib.sha256(np.ascontiguousarray(self.scores).tobytes())
        h.update(json.dumps(self.pacing.__dict__, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def ranking(self, seed: int) -> np.ndarray:
        """Row indices from easiest to hardest; ties broken by one seeded draw per row."""
        from augsvc.streamplan import stream_rng

        tie = stream_rng(CURRICULUM, seed, TIE).random(len(self.scores))
        return np.lexsort((tie, self.scores))

    def order(self, g_shard: np.ndarray, g_row: np.ndarray, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's global (shard, row) list from the storage-order list of the split: the easiest
        ``pacing.size(epoch, N)`` rows, permuted with a generator seeded by (seed, epoch)."""
        from augsvc.streamplan import stream_rng

        n = len(g_shard)
        if n != len(self.scores):
            raise AugsvcError(
                f"curriculum: {len(self.scores)} difficulty scores for a split of {n} rows; score this version's "
                "split (augsvc.curriculum.teacher_difficulty / model_difficulty) again"
            )
        keep = self.ranking(seed)[: self.pacing.size(epoch, n)]
        keep = keep[stream_rng(CURRICULUM, seed, SUBSET, epoch).permutation(len(keep))]
        return g_shard[keep], g_row[keep]


def difficulty_from_logits(
    logits: np.ndarray, labels: np.ndarray, measure: Literal["p_true", "loss"] = "p_true"
) -> np.ndarray:
    """Difficulty per row from (n, K) logits and int labels (-1: unlabelled): ``1 - p(label)`` (``p_true``) or
    the cross-entropy ``-log p(label)`` (``loss``); an unlabelled row uses the predicted class instead (the
    model's own uncertainty: ``1 - max p``). Float64 (n,), lower = easier."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    lab = np.asarray(labels, np.int64)
    idx = np.where(lab >= 0, lab, p.argmax(axis=1))
    pt = p[np.arange(len(p)), idx]
    if measure == "loss":
        return -np.log(np.maximum(pt, 1e-12))
    return 1.0 - pt


def teacher_difficulty(
    ref: str, *, store: Any = None, split: str = "train", measure: Literal["p_true", "loss"] = "p_true"
) -> np.ndarray:
    """Difficulty of every row of ``split`` (storage order) from the version's ``teacher_logits`` column (written
    by a teacher build stage). AugsvcError naming the version when a row has none."""
    from augsvc.stream import Stream

    s = Stream(ref, store=store, split=split, shuffle=False, batch_size=4096, columns=["label", "teacher_logits"])
    logits, labels = [], []
    for b in s:
        col = b.get("teacher_logits")
        if col is None or any(v is None for v in col):
            raise AugsvcError(
                f"{s.dataset}@{s.version}: rows of split {split!r} without teacher_logits; build it with a teacher "
                "stage (stages: [{teacher: {checkpoint: RUN_DIR}}]) covering that split, or score with a first model "
                "(curriculum: {difficulty: RUN_DIR})"
            )
        logits.append(np.stack(col).astype(np.float32))
        labels.append(b["label"])
    if not logits:
        return np.zeros(0)
    return difficulty_from_logits(np.concatenate(logits), np.concatenate(labels), measure)


def model_difficulty(
    ref: str,
    run: str,
    *,
    store: Any = None,
    split: str = "train",
    measure: Literal["p_true", "loss"] = "p_true",
    batch_size: int = 256,
) -> np.ndarray:
    """Difficulty of every row of ``split`` (storage order) from a first model: the run directory (or ``.pt``) of
    ``augsvc train`` predicts each row (images at the size it was trained at), scored like
    :func:`difficulty_from_logits` (``loss``: its per-sample loss)."""
    from augsvc.stream import Stream
    from generators.nets.classifier import load_model, logits_for_rows, read_checkpoint

    if not read_checkpoint(run).get("class_names"):
        raise AugsvcError(
            f"curriculum difficulty {run}: an encoder checkpoint (pretraining, no classification head) cannot score "
            "difficulty; give the run directory or best.pt of a trained classifier (augsvc train)"
        )
    lm = load_model(run)
    s = Stream(ref, store=store, split=split, shuffle=False, batch_size=batch_size, resize=lm.meta.get("resize"))
    if s.manifest.modality != lm.meta.get("modality") or list(s.manifest.class_names) != list(lm.meta["class_names"]):
        raise AugsvcError(
            f"curriculum: {run} was trained on {lm.meta.get('modality')} rows with classes {lm.meta['class_names']}, "
            f"but {s.dataset}@{s.version} is {s.manifest.modality} with {s.manifest.class_names}"
        )
    logits, labels = [], []
    for b in s:
        logits.append(logits_for_rows(lm, b, batch_size))
        labels.append(b["label"])
    if not logits:
        return np.zeros(0)
    return difficulty_from_logits(np.concatenate(logits), np.concatenate(labels), measure)


def curriculum_report(
    scores: np.ndarray, pacing: Pacing, epochs: int, labels: np.ndarray | None = None, class_names: list[str] = ()
) -> dict[str, Any]:
    """What a curriculum does, for the run's output and ``curriculum.json``: the difficulty distribution (rows,
    mean, min, quantiles 10/25/50/75/90, max; per class: rows and mean difficulty when ``labels`` (int (n,), -1:
    unlabelled) are given) and the pacing per epoch (``[{epoch, fraction, rows}]`` for epochs 1..``epochs``, 1-based
    as the trainer counts them), with ``full_from_epoch`` (1-based: the first epoch that sees every row)."""
    s = np.asarray(scores, np.float64)
    n = len(s)
    q = np.quantile(s, [0.1, 0.25, 0.5, 0.75, 0.9]) if n else np.zeros(5)
    dist = {"rows": n, "mean": round(float(s.mean()), 4) if n else None, "min": round(float(s.min()), 4) if n else None,
            **{f"p{k}": round(float(v), 4) for k, v in zip((10, 25, 50, 75, 90), q, strict=True)},
            "max": round(float(s.max()), 4) if n else None}  # fmt: skip
    per_class: dict[str, dict[str, Any]] = {}
    if labels is not None and len(labels) == n:
        lab = np.asarray(labels, np.int64)
        for i, c in enumerate(class_names):
            m = lab == i
            if m.any():
                per_class[c] = {"rows": int(m.sum()), "mean_difficulty": round(float(s[m].mean()), 4)}
    pace = [
        {"epoch": e + 1, "fraction": round(pacing.fraction(e), 4), "rows": pacing.size(e, n)} for e in range(epochs)
    ]
    return {"difficulty": dist, "difficulty_per_class": per_class, "pacing": {**pacing.__dict__},
            "full_from_epoch": pacing.full_from() + 1, "epochs": pace}  # fmt: skip


def report_lines(report: dict[str, Any]) -> list[str]:
    """:func:`curriculum_report` as a few lines for the run's output."""
    d = report["difficulty"]
    qs = ", ".join(f"{k} {d[k]}" for k in ("min", "p10", "p25", "p50", "p75", "p90", "max"))
    out = [f"curriculum: difficulty of {d['rows']:,} rows: mean {d['mean']}, {qs}"]
    if report["difficulty_per_class"]:
        per = ", ".join(f"{c} {v['mean_difficulty']}" for c, v in report["difficulty_per_class"].items())
        out.append(f"curriculum: mean difficulty per class: {per}")
    p = report["pacing"]
    steps = ", ".join(f"{e['epoch']}: {e['rows']:,} ({e['fraction']:.0%})" for e in report["epochs"])
    out.append(f"curriculum: {p['kind']} pacing (start {p['start']}, inc {p['inc']}, step_length {p['step_length']}); "
               f"rows per epoch {steps}; every row from epoch {report['full_from_epoch']}")  # fmt: skip
    return out
