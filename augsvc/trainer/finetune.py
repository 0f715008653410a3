"""Fine-tuning: freeze a pretrained base and train a new head, then unfreeze the layer groups below it with
learning rates that shrink by ``base_lr_scale`` per group away from the head (differential learning rates, as in
ULMFiT's discriminative fine-tuning)."""

from __future__ import annotations

from typing import Any, Literal


def group_learning_rates(n_groups: int, lr: float, base_lr_scale: float) -> list[float]:
    """``lr * base_lr_scale ** (distance from the head)`` for groups ordered input -> head.

    >>> group_learning_rates(3, 0.01, 0.1)
    [0.0001, 0.001, 0.01]
    """
    return [float(f"{lr * base_lr_scale ** (n_groups - 1 - i):.12g}") for i in range(n_groups)]


def make_optimizer(
    model: Any,
    *,
    lr: float,
    optimizer: Literal["adam", "adamw", "sgd"] = "adam",
    weight_decay: float = 0.0,
    base_lr_scale: float | None = None,
) -> Any:
    """One param group per ``model.layer_groups()`` entry (named ``group0`` .. head); differential rates when
    ``base_lr_scale`` is given, else ``lr`` everywhere."""
    import torch

    groups = model.layer_groups()
    rates = group_learning_rates(len(groups), lr, base_lr_scale) if base_lr_scale else [lr] * len(groups)
    params = [{"params": g, "lr": r, "name": f"group{i}"} for i, (g, r) in enumerate(zip(groups, rates, strict=True))]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def set_trainable(model: Any, trainable_from: int) -> None:
    """Train layer groups ``trainable_from`` .. head; freeze those below (``-1``: only the head trains)."""
    groups = model.layer_groups()
    first = trainable_from % len(groups)
    for i, g in enumerate(groups):
        for p in g:
            p.requires_grad_(i >= first)


def load_base(
    model: Any, state: dict, head_prefixes: tuple[str, ...] = ("head.",), source: str = "finetune_from"
) -> list[str]:
    """Load a pretrained state into ``model`` except its head (a new head for the new task); returns skipped keys
    (the head's, and any of ``model`` the state lacks).

    Raises AugsvcError naming ``source`` when an encoder (non-head) tensor of ``state`` has another shape than the
    model's (another ``width`` or architecture), or when no encoder tensor at all could be loaded: training would
    otherwise silently start from scratch.
    """
    from schemas.errors import AugsvcError

    own = model.state_dict()
    enc = {k: v for k, v in state.items() if not k.startswith(head_prefixes)}
    keep = {k: v for k, v in enc.items() if k in own and own[k].shape == v.shape}
    bad = [k for k, v in enc.items() if k in own and own[k].shape != v.shape]
    if bad or not keep:
        detail = (
            f"{len(bad)} encoder tensors differ in shape (e.g. {bad[0]}: checkpoint {list(enc[bad[0]].shape)} vs "
            f"model {list(own[bad[0]].shape)})"
            if bad
            else "none of its encoder tensors match this model's layers"
        )
        raise AugsvcError(
            f"{source}: {detail}: it was trained with another width or architecture; set model and width to the "
            "checkpoint's, or drop the key to train from scratch"
        )
    model.load_state_dict(keep, strict=False)
    return sorted(set(own) - set(keep))
