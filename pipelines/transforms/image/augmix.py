"""AugMix (Hendrycks et al., 2020, arXiv:1912.02781): a label-preserving mix of ``width`` augmentation chains.

Each chain applies ``depth`` ops (drawn from the RandAugment list, value scaled by ``severity``) to the image; the
chains are combined with Dirichlet(alpha) weights and the result is blended with the original by m ~ Beta(alpha,
alpha): ``out = m * x + (1 - m) * sum_i w_i * chain_i(x)``, rounded half up to uint8. The label is unchanged. The
record holds every chain's ``[name, value]`` list, the weights and ``m``, so ``apply`` replays it exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from pipelines.transforms.base import register
from pipelines.transforms.image._common import Fill, ImageOp
from pipelines.transforms.image.policy import POLICY_OPS

AUGMIX_OPS = [n for n in POLICY_OPS if n not in ("identity", "contrast", "saturation", "brightness")]


@register
class AugMix(ImageOp):
    """Mix ``width`` chains of 1..``depth`` ops with Dirichlet weights, then blend with the original."""

    name: ClassVar[str] = "augmix"
    width: int = Field(3, ge=1, le=8, description="number of chains")
    depth: int = Field(3, ge=1, le=5, description="max ops per chain (each chain draws 1..depth)")
    severity: float = Field(3.0, ge=0.0, le=10.0, description="op strength, 0 to 10 (RandAugment magnitude)")
    alpha: float = Field(1.0, gt=0.0, description="Dirichlet and Beta concentration")
    fill: Fill = 128

    def sample(self, rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
        chains = []
        for _ in range(self.width):
            chain = []
            for _ in range(int(rng.integers(1, self.depth + 1))):
                name = AUGMIX_OPS[int(rng.integers(0, len(AUGMIX_OPS)))]
                top, signed, _ = POLICY_OPS[name]
                value = top * float(rng.uniform(0.1, 1.0)) * self.severity / 10.0
                if signed and rng.random() < 0.5:
                    value = -value
                chain.append([name, value])
            chains.append(chain)
        weights = rng.dirichlet([self.alpha] * self.width).tolist()
        m = float(rng.beta(self.alpha, self.alpha))
        return {"chains": chains, "weights": weights, "m": m}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        mix = np.zeros(x.shape, np.float64)
        for w, chain in zip(params["weights"], params["chains"], strict=True):
            y = x
            for name, value in chain:
                y = POLICY_OPS[name][2](y, value, self.fill)
            mix += w * y
        m = params["m"]
        return np.floor(m * x + (1.0 - m) * mix + 0.5).clip(0, 255).astype(np.uint8)
