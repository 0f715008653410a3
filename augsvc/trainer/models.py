"""Models: a small image CNN with a width multiplier (teacher and student of one family), a text CNN over a
word vocabulary built from the training version, a tabular MLP, and a wrapper for local Hugging Face models."""

from __future__ import annotations

import re
from collections import Counter

import torch
from torch import nn

TOKEN = re.compile(r"\w+", re.UNICODE)


class SmallCNN(nn.Module):
    """conv(32w)-conv(64w)-pool-conv(128w)-pool-global-avg-linear; input uint8 NHWC or float NCHW."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, int(round(c * width))) for c in (32, 64, 128))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.BatchNorm2d(c3), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float() / 255.0
        x = (x - 0.5) / 0.25
        return self.head(self.features(x).mean(dim=(2, 3)))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameter groups from the input to the head (for differential learning rates)."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
        blocks = [list(convs[0].parameters()) + list(convs[1].parameters()),
                  list(convs[2].parameters()) + list(convs[3].parameters()),
                  list(convs[4].parameters()) + list(convs[5].parameters())]  # fmt: skip
        return [*blocks, list(self.head.parameters())]


class Vocab:
    """Word-level vocabulary from training texts: index 0 padding, 1 unknown, then by frequency."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, texts: list[str], max_size: int = 20000, min_count: int = 1) -> Vocab:
        counts = Counter(w for t in texts for w in TOKEN.findall(t.lower()))
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls(["<pad>", "<unk>", *words[: max_size - 2]])

    def encode(self, texts: list[str], max_len: int = 64) -> torch.Tensor:
        out = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.index.get(w, 1) for w in TOKEN.findall(t.lower())][:max_len]
            if ids:
                out[i, : len(ids)] = torch.tensor(ids)
        return out


class TextCNN(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, dim: int = 64, width: float = 1.0) -> None:
        super().__init__()
        ch = max(8, int(round(64 * width)))
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.convs = nn.ModuleList([nn.Conv1d(dim, ch, k, padding=k // 2) for k in (2, 3, 4)])
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(3 * ch, num_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)
        return self.head(torch.cat([torch.relu(c(x)).amax(dim=2) for c in self.convs], dim=1))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.embed.parameters()), list(self.convs.parameters()), list(self.head.parameters())]


class TabularMLP(nn.Module):
    def __init__(self, n_in: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        h = max(8, int(round(64 * width)))
        self.body = nn.Sequential(nn.Linear(n_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.head = nn.Linear(h, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.body.parameters()), list(self.head.parameters())]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
