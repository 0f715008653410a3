"""GAN networks: a class-conditional DCGAN-style generator and a projection discriminator with spectral norm.

Images are float NCHW in [-1, 1] inside the networks; :func:`to_uint8` and :func:`from_uint8` convert to and from
the uint8 NHWC rows of a version. Square images of side 8 to 64 (28x28 and 32x32 use two upsamplings, larger three;
the output is centre-cropped to the side).

- Generator: ``[z, embed(y)]`` (2 x ``z_dim``) -> linear -> ``(4w, s0, s0)``, then
  upsampling blocks (4x4 stride-2 transposed conv, class-conditional batch norm, ReLU) halving the channels, a
  3x3 conv to the image channels and tanh. Class-conditional batch norm: per-class gain and bias embeddings.
- Discriminator: 3x3 conv, then stride-2 4x4 convs doubling the channels (LeakyReLU 0.2), every layer
  spectrally normalised; global sum pooling gives ``h``; the output is ``linear(h) + <embed(y), h>`` (projection,
  Miyato & Koyama 2018), plus auxiliary class logits ``aux(h)`` (AC-GAN, Odena et al. 2017): training adds a
  cross-entropy on them (D on real images, G on its samples, weight ``aux_weight``), which ties samples to their
  class far sooner than the projection alone at ~50 images per class. The auxiliary head has no spectral norm: a
  normalised head stays unsure, and G collapsing every class onto the one sample it is surest of (seen with
  weight 1) follows.
- :func:`diff_augment`: DiffAugment (Zhao et al. 2020) translation by up to 1/8 of the side and a cutout of half
  the side, drawn from an explicit ``torch.Generator``, applied to real and fake images alike before the
  discriminator; it is what makes a GAN trainable on ~50 images per class.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def plan_shape(side: int) -> tuple[int, int]:
    """(upsampling blocks, starting side s0) for a square output of ``side`` pixels (8..64)."""
    n_up = 2 if side <= 32 else 3
    return n_up, math.ceil(side / 2**n_up)


class CondBatchNorm(nn.Module):
    """Batch norm without affine parameters followed by a per-class gain and bias (initialised to 1 and 0)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class GanGenerator(nn.Module):
    """``forward(z (B, z_dim) float, y (B,) int64) -> (B, channels, side, side)`` float in [-1, 1]."""

    def __init__(self, side: int, channels: int, num_classes: int, z_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        self.side, self.z_dim = side, z_dim
        n_up, self.s0 = plan_shape(side)
        c = width * 2**n_up
        self.c0 = c
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Linear(2 * z_dim, c * self.s0 * self.s0)
        self.bn0 = CondBatchNorm(c, num_classes)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for _ in range(n_up):
            self.convs.append(nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1))
            self.bns.append(CondBatchNorm(c // 2, num_classes))
            c //= 2
        self.out = nn.Conv2d(c, channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([z, self.embed(y)], 1)).view(len(z), self.c0, self.s0, self.s0)
        x = F.relu(self.bn0(x, y))
        for conv, bn in zip(self.convs, self.bns, strict=True):
            x = F.relu(bn(conv(x), y))
        x = torch.tanh(self.out(x))
        off = (x.shape[-1] - self.side) // 2
        return x[:, :, off : off + self.side, off : off + self.side]


class GanDiscriminator(nn.Module):
    """``forward(x (B, C, side, side) in [-1, 1], y (B,) int64) -> (B,)`` real-vs-fake scores (projection D)."""

    def __init__(self, side: int, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        n_down, _ = plan_shape(side)
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(channels, width, 3, padding=1)), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(n_down):
            layers += [spectral_norm(nn.Conv2d(c, c * 2, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c *= 2
        self.body = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(c, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, c))
        self.aux = nn.Linear(c, num_classes)  # not normalised: it may grow confident, so G stops chasing it

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.scores(x, y)[0]

    def scores(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real-vs-fake scores (B,), auxiliary class logits (B, K)) from one pass."""
        h = self.body(x).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1), self.aux(h)


def diff_augment(
    x: torch.Tensor, gen: torch.Generator, translation: float = 0.125, cutout: float = 0.5
) -> torch.Tensor:
    """DiffAugment translation (zero padding, shift up to ``translation`` x side) and cutout (a square of
    ``cutout`` x side set to 0) per image; parameters drawn on the CPU from ``gen`` (same draws on any device)."""
    b, _, h, w = x.shape
    dev = x.device
    if translation > 0:
        sh, sw = int(h * translation + 0.5), int(w * translation + 0.5)
        tx = torch.randint(-sh, sh + 1, (b, 1, 1), generator=gen).to(dev)
        ty = torch.randint(-sw, sw + 1, (b, 1, 1), generator=gen).to(dev)
        gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
        gy = torch.clamp(gy[None] + tx + 1, 0, h + 1)
        gx = torch.clamp(gx[None] + ty + 1, 0, w + 1)
        xp = F.pad(x, [1, 1, 1, 1])
        x = xp.permute(0, 2, 3, 1)[torch.arange(b, device=dev)[:, None, None], gy, gx].permute(0, 3, 1, 2)
    if cutout > 0:
        ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
        ox = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=gen).to(dev)
        oy = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=gen).to(dev)
        gy, gx = torch.meshgrid(torch.arange(ch, device=dev), torch.arange(cw, device=dev), indexing="ij")
        gy = torch.clamp(gy[None] + ox - ch // 2, 0, h - 1)
        gx = torch.clamp(gx[None] + oy - cw // 2, 0, w - 1)
        mask = torch.ones(b, h, w, device=dev, dtype=x.dtype)
        mask[torch.arange(b, device=dev)[:, None, None], gy, gx] = 0
        x = x * mask[:, None]
    return x


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, C) -> float32 (n, C, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (n, C, H, W) in [-1, 1] -> uint8 (n, H, W, C) (rounded, clipped)."""
    x = ((x.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()
