"""Label mixing: mixup, cutmix, average mix, tabular mixup, with soft labels.

The same functions serve builds (one anchor row and one partner row at a time, ``mix_pair``) and training loops
(a whole batch, ``mix_batch``, numpy or torch, one lambda per element). Soft labels are always mixed, never hard
labels: a row without a soft label counts as the (optionally smoothed) one-hot of its hard label. The mixed hard
label is the dominant class (ties go to the anchor's class).

Mixup: ``lam ~ Beta(alpha, alpha)``, image ``lam * a + (1 - lam) * b``. CutMix: ``lam ~ Beta(alpha, alpha)``,
a box of area ``(1 - lam)`` of the image (clipped to ``[min_area, max_area]`` and to the image borders) is pasted
from ``b``; the label weight of ``b`` is the *actual* pasted area. Average mix: ``lam = 0.5``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.kernels.mixing import blend, paste_box

Method = Literal["mixup", "cutmix", "average", "tabular_mixup"]


class MixSpec(BaseModel):
    """A mixing stage's parameters (recipe ``mix:``), defaults in one place."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "mixup"
    alpha: float = Field(0.4, gt=0, description="Beta(alpha, alpha) for lambda (mixup, cutmix)")
    min_area: float = Field(0.0, ge=0, le=1, description="cutmix: smallest pasted area fraction")
    max_area: float = Field(1.0, ge=0, le=1, description="cutmix: largest pasted area fraction")
    partner: Literal["any", "different_class"] = "any"
    p: float = Field(1.0, ge=0, le=1, description="probability that a planned pair is mixed (else no row)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="epsilon applied to hard labels before mixing")

    @model_validator(mode="after")
    def _areas(self) -> MixSpec:
        if self.min_area > self.max_area:
            raise ValueError(f"min_area {self.min_area} > max_area {self.max_area}")
        return self


def soft_of(label: int | None, soft: Any, num_classes: int, eps: float = 0.0) -> np.ndarray:
    """A row's label distribution: its soft label, else the smoothed one-hot of its hard label."""
    if soft is not None:
        return np.asarray(soft, dtype=np.float64)
    out = np.full(num_classes, eps / num_classes, dtype=np.float64)
    out[label] += 1.0 - eps
    return out


def sample_lam(spec: MixSpec, rng: np.random.Generator) -> float:
    if spec.method == "average":
        return 0.5
    return float(rng.beta(spec.alpha, spec.alpha))


def cutmix_box(h: int, w: int, lam: float, rng: np.random.Generator, spec: MixSpec) -> tuple[int, int, int, int]:
    """A box of area ``1 - lam`` (clipped to [min_area, max_area]) at a uniform centre, clipped to the image."""
    area = min(max(1.0 - lam, spec.min_area), spec.max_area)
    ratio = math.sqrt(area)
    ch, cw = int(round(h * ratio)), int(round(w * ratio))
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = max(cy - ch // 2, 0), min(cy - ch // 2 + ch, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx - cw // 2 + cw, w)
    return y0, y1, x0, x1


def mix_labels(sa: np.ndarray, sb: np.ndarray, lam: float) -> tuple[np.ndarray, int]:
    """(mixed soft label as float32 summing to 1, dominant class; ties go to the anchor)."""
    mixed = lam * sa + (1.0 - lam) * sb
    mixed = mixed / mixed.sum()
    top = np.flatnonzero(mixed == mixed.max())
    anchor = int(np.argmax(sa))
    dominant = anchor if anchor in top else int(top[0])
    return mixed.astype(np.float32), dominant


def sample_mix(spec: MixSpec, shape: tuple[int, ...] | None, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one pair's mixing parameters (the lineage record): ``lam`` first, then CutMix's box for an image of
    ``shape`` (H, W, C). Kept apart from :func:`apply_mix` (as timm keeps ``_params_per_elem`` apart), so a mixed
    row replays from its record."""
    lam = sample_lam(spec, rng)
    if spec.method == "cutmix":
        h, w = shape[:2]
        y0, y1, x0, x1 = cutmix_box(h, w, lam, rng, spec)
        weight = 1.0 - ((y1 - y0) * (x1 - x0)) / float(h * w)
        return {"method": "cutmix", "lam_drawn": lam, "box": [y0, y1, x0, x1], "lam": weight}
    return {"method": spec.method, "lam": lam}


def apply_mix(spec: MixSpec, a: Any, b: Any, params: dict[str, Any], features: dict[str, str] | None = None) -> Any:
    """Mix anchor ``a`` with partner ``b`` by the drawn ``params`` (``sample_mix``); deterministic. Images: uint8
    HWC, a partner of another size is resized to the anchor; tabular rows: dicts of feature values."""
    lam = params["lam"]
    if spec.method == "tabular_mixup":
        out = {}
        for k, kind in (features or {}).items():
            va, vb = a.get(k), b.get(k)
            if kind == "numeric" and va is not None and vb is not None:
                out[k] = lam * va + (1.0 - lam) * vb
            else:
                out[k] = va if lam >= 0.5 else vb
        return out
    if b.shape != a.shape:
        b = _resize_like(b, a)
    if spec.method == "cutmix":
        return paste_box(a, b, *params["box"])
    return blend(a, b, lam)


def mix_pair(
    spec: MixSpec, a: Any, b: Any, rng: np.random.Generator, features: dict[str, str] | None = None
) -> tuple[Any, float, dict[str, Any]]:
    """Mix one anchor ``a`` with partner ``b``: (mixed payload, weight of ``a``, JSON-able record)."""
    params = sample_mix(spec, None if spec.method == "tabular_mixup" else a.shape, rng)
    return apply_mix(spec, a, b, params, features), params["lam"], params


def _resize_like(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    import cv2

    out = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return out.reshape(a.shape)


def mix_batch(
    images: Any,
    labels: Any,
    *,
    method: Literal["mixup", "cutmix", "average"] = "mixup",
    alpha: float = 0.4,
    rng: np.random.Generator,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
    min_area: float = 0.0,
    max_area: float = 1.0,
) -> tuple[Any, Any, np.ndarray]:
    """Mix a batch with a shuffled copy of itself, one lambda per element (timm-style, per-element mode).

    ``images``: (N, H, W, C) uint8/float numpy array or a torch tensor (any layout with N first; cutmix boxes
    use the last two spatial dims for torch NCHW, the middle two for numpy NHWC). ``labels``: (N,) int class
    indices (then ``num_classes`` is needed) or (N, K) soft labels. Returns (mixed images of the same type and
    dtype, mixed soft labels (N, K) of the same library, lambdas (N,)). Nothing is modified in place.
    """
    spec = MixSpec(method=method, alpha=alpha, label_smoothing=label_smoothing, min_area=min_area, max_area=max_area)
    is_torch = type(images).__module__.startswith("torch")
    x = images.detach().cpu().numpy() if is_torch else np.asarray(images)
    y = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    n = x.shape[0]
    if y.ndim == 1:
        if num_classes is None:
            raise ValueError("hard labels need num_classes")
        eps = label_smoothing
        soft = np.full((n, num_classes), eps / num_classes)
        soft[np.arange(n), y.astype(np.int64)] += 1.0 - eps
    else:
        soft = y.astype(np.float64)
    perm = rng.permutation(n)
    lams = np.array([sample_lam(spec, rng) for _ in range(n)])
    out = x.copy()
    channels_first = is_torch and x.ndim == 4
    if method == "cutmix":
        h, w = (x.shape[2], x.shape[3]) if channels_first else (x.shape[1], x.shape[2])
        for i in range(n):
            y0, y1, x0, x1 = cutmix_box(h, w, lams[i], rng, spec)
            if channels_first:
                out[i, :, y0:y1, x0:x1] = x[perm[i], :, y0:y1, x0:x1]
            else:
                out[i, y0:y1, x0:x1] = x[perm[i], y0:y1, x0:x1]
            lams[i] = 1.0 - ((y1 - y0) * (x1 - x0)) / float(h * w)
    elif x.dtype == np.uint8 and x.ndim == 4 and not channels_first:
        for i in range(n):
            out[i] = blend(x[i], x[perm[i]], float(lams[i]))
    else:
        shape = (n,) + (1,) * (x.ndim - 1)
        lam_b = lams.reshape(shape).astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)
        mixed = lam_b * x + (1 - lam_b) * x[perm]
        out = mixed.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else np.floor(mixed + 0.5).astype(x.dtype)
    mixed_soft = (lams[:, None] * soft + (1 - lams[:, None]) * soft[perm]).astype(np.float32)
    if is_torch:
        import torch

        return torch.from_numpy(out).to(images.device), torch.from_numpy(mixed_soft).to(images.device), lams
    return out, mixed_soft, lams
