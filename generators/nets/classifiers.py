"""Models: a small image CNN with a width multiplier (teacher and student of one family), a text CNN over a word
vocabulary built from the training version, a tabular MLP, and a wrapper for local Hugging Face classifiers.

Every model exposes ``layer_groups()``: parameter lists from the input to the head, the unit of freezing and of
differential learning rates in fine-tuning (:mod:`augsvc.trainer.finetune`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

TOKEN = re.compile(r"\w+", re.UNICODE)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU-pool blocks (32w, 64w, 128w channels), global average pooling, a linear head.

    Takes uint8 NHWC (as streamed) or float NCHW in [0, 1], any fixed HxW >= 8, 1 or 3 channels; inputs are
    normalised inside the model, so a checkpoint needs no separate preprocessing.
    """

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, int(round(c * width))) for c in (32, 64, 128))
        self.blocks = nn.ModuleList([_block(in_channels, c1), _block(c1, c2), _block(c2, c3)])
        self.head = nn.Linear(c3, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (n, 128w) float: the pooled output of the last block, what the head sees."""
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float() / 255.0
        x = (x - 0.5) / 0.25
        for b in self.blocks:
            x = b(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [*(list(b.parameters()) for b in self.blocks), list(self.head.parameters())]


class Vocab:
    """Word-level vocabulary from training texts: index 0 padding, 1 unknown, then by frequency (ties by word)."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, texts: list[str], max_size: int = 20000, min_count: int = 1) -> Vocab:
        counts = Counter(w for t in texts for w in TOKEN.findall(t.lower()))
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls(["<pad>", "<unk>", *words[: max_size - 2]])

    def encode(self, texts: list[str], max_len: int = 64) -> torch.Tensor:
        """(n, max_len) token ids, zero-padded; unknown words map to 1."""
        out = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.index.get(w, 1) for w in TOKEN.findall(t.lower())][:max_len]
            if ids:
                out[i, : len(ids)] = torch.tensor(ids)
        return out


class TextCNN(nn.Module):
    """Kim-style text CNN: embedding, 1-D convolutions of widths 2/3/4, max over time, dropout, linear head."""

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
    """Two hidden layers of 64w units over standardised numeric and one-hot categorical features."""

    def __init__(self, n_in: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        h = max(8, int(round(64 * width)))
        self.body = nn.Sequential(nn.Linear(n_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.head = nn.Linear(h, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.body.parameters()), list(self.head.parameters())]


HEAD_NAMES = ("classifier", "score", "cls", "head", "logits")  # attribute names of HF classification heads
_LAYER = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


class HFClassifier(nn.Module):
    """Any Hugging Face sequence or image classification model from a local folder (never downloads).

    ``forward`` takes what :class:`augsvc.trainer.loop.Prep` makes for ``hf`` models: a dict of tokenised tensors
    (text) or a uint8 NHWC batch (images, scaled and normalised here with the folder's image processor statistics
    when it has them). A different number of classes than the saved head re-initialises the head.
    """

    def __init__(self, path: str | Path, num_classes: int, modality: Literal["text", "image"]) -> None:
        super().__init__()
        import transformers

        path = str(path)
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{path}: not a local Hugging Face model folder (config.json and weights)")
        auto = (
            transformers.AutoModelForSequenceClassification
            if modality == "text"
            else transformers.AutoModelForImageClassification
        )
        self.path, self.modality = path, modality
        self.net = auto.from_pretrained(
            path, num_labels=num_classes, ignore_mismatched_sizes=True, local_files_only=True
        )
        mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
        if modality == "image" and (Path(path) / "preprocessor_config.json").is_file():
            import json

            pp = json.loads((Path(path) / "preprocessor_config.json").read_text())
            mean, std = pp.get("image_mean", mean), pp.get("image_std", std)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def tokenizer(self) -> Any:
        import transformers

        return transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)

    def forward(self, x: Any) -> torch.Tensor:
        if self.modality == "text":
            return self.net(**x).logits
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        return self.net(pixel_values=(x - self.mean) / self.std).logits

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Embeddings (and anything below the first layer), the lower and upper halves of the layer stack, the head."""
        named = list(self.net.named_parameters())
        head = [p for n, p in named if n.split(".")[0] in HEAD_NAMES]
        body = [(n, p) for n, p in named if n.split(".")[0] not in HEAD_NAMES]
        depth = [int(m.group(1)) if (m := _LAYER.search("." + n)) else None for n, _ in body]
        n_layers = max((d for d in depth if d is not None), default=-1) + 1
        low, lower, upper = [], [], []
        seen_layer = False
        for (_, p), d in zip(body, depth, strict=True):
            if d is None:
                (upper if seen_layer else low).append(p)  # final norms/poolers sit above the stack
            else:
                seen_layer = True
                (lower if d < n_layers // 2 else upper).append(p)
        return [g for g in (low, lower, upper, head) if g]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
