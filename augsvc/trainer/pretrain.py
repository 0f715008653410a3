"""SimCLR pretraining (Chen et al. 2020) of the trainer's image encoder on a version whose labels are ignored.

Each image of a batch of N gives two views (``Stream(..., views=2)``: the recipe's label-invariant op stages, each
view seeded by (recipe seed, epoch, stage, view, sample)); the encoder (``SmallCNN.features``, the model ``augsvc
train`` fine-tunes) and an MLP projection head (Linear-ReLU-Linear) map the 2N views to vectors z; NT-Xent with
temperature T makes each view pick its partner among the other 2N - 1 (cross-entropy over cosine similarities / T).
The learning rate warms up linearly for ``warmup_epochs`` and then follows a cosine to 0; AdamW or SGD (momentum
0.9, nesterov). The last partial batch of each epoch is dropped (every step sees N pairs).

Writes into the pretrain directory (``RUN/pretrain`` under ``augsvc train``): ``encoder.pt`` (the encoder's weights
in the trainer's checkpoint format, without a head: ``finetune_from`` accepts it or the directory), ``last.pt``
(model, optimizer, step, history and torch RNG state after each epoch: resuming continues exactly as an
uninterrupted run), ``loss.csv`` (per epoch), ``loss_steps.csv`` (per step), ``loss.png`` (OpenCV, no matplotlib
needed) and ``summary.json``. Everything runs inside :func:`generators.runtime.seeded_session`: the caller's random
state and torch threads are left as they were; checkpoints are written atomically.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from augsvc import api
from augsvc.api import StoreArg as Store
from augsvc.trainer.config import TrainConfig
from augsvc.trainer.pretrain_config import PretrainConfig
from generators.progress import PlainSteps
from generators.runtime import (
    default_threads,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
    seeded_session,
    set_rng_state,
)
from schemas.errors import AugsvcError

PRETRAIN_DIR = "pretrain"  # under an ``augsvc train`` run directory
ENCODER = "encoder.pt"

__all__ = ["ENCODER", "PRETRAIN_DIR", "PretrainConfig", "default_views_recipe", "encoder_checkpoint", "lr_at",
           "nt_xent", "pretrain", "simclr_net"]  # fmt: skip


def nt_xent(z1: Any, z2: Any, temperature: float) -> tuple[Any, Any]:
    """NT-Xent over a batch of N pairs: ``z1``, ``z2`` float (N, D), row i of each the two views of sample i.

    The 2N vectors are L2-normalised; each one's logits are its cosine similarities / ``temperature`` to the other
    2N - 1, its target the other view of its sample; returns (mean cross-entropy over the 2N, the fraction whose
    partner is the most similar: a contrastive accuracy, float tensor)."""
    import torch
    import torch.nn.functional as F

    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target), (sim.argmax(1) == target).float().mean()


def lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    """Learning rate of step ``step`` (0-based) of ``total``: linear warmup over ``warmup`` steps to ``lr``, then a
    cosine from ``lr`` to 0 at ``total``."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def default_views_recipe(data: str, size: tuple[int, int], seed: int) -> dict:
    """The SimCLR augmentation as a recipe for ``size`` (h, w) images: random resized crop (scale 0.2-1), horizontal
    flip, colour jitter with probability 0.8, greyscale (saturation 0) with probability 0.2 (the CIFAR-scale
    variant of the paper: no blur at these sizes)."""
    ops = [
        {"op": "random_resized_crop", "size": list(size), "scale_range": [0.2, 1.0]},
        {"op": "hflip", "p": 0.5},
        {
            "op": "color_jitter",
            "p": 0.8,
            "brightness_range": [-0.3, 0.3],
            "contrast_range": [0.6, 1.4],
            "saturation_range": [0.6, 1.4],
            "hue_limit": 18.0,
        },  # fmt: skip
        {"op": "saturation", "p": 0.2, "saturation_range": [0.0, 0.0]},
    ]
    return {"input": data, "output": "simclr-views", "seed": seed, "splits": ["train"],
            "stages": [{"name": "simclr", "op": ops}]}  # fmt: skip


def simclr_net(encoder: Any, hidden: int | None, out_dim: int) -> Any:
    """``encoder`` (a ``SmallCNN``: its ``features`` and ``head.in_features`` are used) under a projection head of
    ``hidden`` (default: the feature width) and ``out_dim`` units; the module maps uint8 NHWC images to (N, out_dim)."""
    from torch import nn

    class SimCLRNet(nn.Module):
        """Encoder (``features``) plus a Linear-ReLU-Linear projection head; ``forward`` gives the head's output."""

        def __init__(self) -> None:
            super().__init__()
            feat = encoder.head.in_features
            self.encoder = encoder
            mid = hidden or feat
            self.projector = nn.Sequential(nn.Linear(feat, mid), nn.ReLU(), nn.Linear(mid, out_dim))

        def forward(self, x: Any) -> Any:
            return self.projector(self.encoder.features(x))

    return SimCLRNet()


def _settings(cfg: TrainConfig) -> dict:
    """What the pretraining's result depends on (a resume with other settings is refused)."""
    p = cfg.pretrain
    assert p is not None
    return {"pretrain": p.model_dump(mode="json"), "model": cfg.model, "width": cfg.width, "data": cfg.data}


def pretrain(
    cfg: TrainConfig,
    store: Store,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """SimCLR-pretrain ``cfg``'s encoder on ``cfg.pretrain.data`` (default ``cfg.data``), labels ignored; write the
    files listed in the module docstring into ``out_dir`` and return the summary dict (``encoder``: the checkpoint
    path, ``final_loss``, ``epochs``, ``parameters``, ``data``, ``seconds``).

    ``resume=True`` continues from ``out_dir/last.pt`` (an already finished pretraining is not repeated);
    ``stop_after`` stops after that many epochs of this call, as an interruption would (time-boxed jobs, tests).
    Raises AugsvcError for a non-image version, a model other than ``cnn``, images of several sizes without
    ``resize``, a batch larger than the split, or a resume whose settings differ."""
    if cfg.pretrain is None:
        raise AugsvcError("pretrain: the train config has no 'pretrain:' section")
    device = resolve_device(cfg.device)
    seed = cfg.seed if cfg.pretrain.seed is None else cfg.pretrain.seed
    with seeded_session(seed, device, threads=cfg.threads or default_threads()):
        return _pretrain(cfg, store, Path(out_dir), device, resume=resume, progress=progress, stop_after=stop_after)


def _pretrain(cfg: TrainConfig, store: Store, out: Path, device: Any, *, resume: bool, progress: bool,
              stop_after: int | None) -> dict:  # fmt: skip
    import torch

    from augsvc.stream import Stream
    from generators.nets.classifiers import count_parameters
    from generators.nets.prep import Prep, build_model, default_kind

    p = cfg.pretrain
    assert p is not None
    ds, v = api.resolve(p.data or cfg.data, store=store)
    ref = f"{ds}@{v}"
    m = api.show(ref, store=store)
    kind = cfg.model or default_kind(m.modality)
    if m.modality != "image" or kind != "cnn":
        key = "pretrain.data" if p.data and m.modality != "image" else "pretrain"
        raise AugsvcError(
            f"{key}: SimCLR pretrains image encoders (model: cnn); {ref} is {m.modality}, model {kind}; "
            "give an image version"
        )
    split = None if p.split == "all" else p.split
    if split is not None and m.rows_per_split and split not in m.rows_per_split:
        raise AugsvcError(f"pretrain: {ref} has no split {split!r} (has {', '.join(m.rows_per_split)})")
    n_rows = m.rows if split is None else m.rows_per_split.get(split, m.rows)
    steps_per_epoch = n_rows // p.batch_size
    if steps_per_epoch == 0:
        raise AugsvcError(
            f"pretrain: batch_size {p.batch_size} is larger than the {n_rows} rows of {ref} split {p.split!r}; "
            "lower pretrain.batch_size"
        )
    resize = p.resize or cfg.resize
    seed = cfg.seed if p.seed is None else p.seed
    first = next(iter(Stream(ref, store=store, split=p.split, batch_size=1, shuffle=False, resize=resize)))
    if not isinstance(first["image"], np.ndarray):
        raise AugsvcError(f"pretrain: could not read an image of {ref}")
    h, w, channels = first["image"].shape[1:]
    recipe = p.augment if p.augment is not None else default_views_recipe(ref, (h, w), seed)
    if p.augment is not None:
        from augsvc.streamviews import check_view_recipe

        check_view_recipe(recipe, "pretrain.augment")
    out.mkdir(parents=True, exist_ok=True)

    # layer init draws from torch's generator, seeded with ``seed`` by pretrain()'s seeded_session
    encoder = build_model("cnn", 1, Prep("image"), cfg.width, channels)
    model = simclr_net(encoder, p.hidden_dim, p.projection_dim).to(device)
    params = list(model.parameters())
    if p.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=p.lr, momentum=0.9, nesterov=True, weight_decay=p.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    total, warmup = p.epochs * steps_per_epoch, int(round(p.warmup_epochs * steps_per_epoch))
    settings = _settings(cfg.model_copy(update={"data": ref, "model": kind}))
    start, step, history, steps_log = 0, 0, [], []
    if resume and (out / "last.pt").is_file():
        ck = load_checkpoint(out / "last.pt", map_location=device, what="pretraining checkpoint",
                             fix="delete it to start again without --resume")  # fmt: skip
        from schemas.resume import config_changes, refuse_changed

        refuse_changed(out, config_changes(ck.get("settings") or {}, settings), what="pretraining",
                       advice="use the same config, or start again without --resume")  # fmt: skip
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, step, history, steps_log = ck["epoch"] + 1, ck["step"], ck["history"], ck["steps"]
        set_rng_state(ck["rng"], device)
    meta = {"kind": "cnn", "width": cfg.width, "class_names": [], "modality": "image", "channels": int(channels),
            "max_len": cfg.max_len, "data": ref, "resize": resize, "prep": {},
            "pretrain": {"method": "simclr", **settings["pretrain"]}}  # fmt: skip
    t_all = time.perf_counter()
    done_now = 0
    # within epochs, on a terminal or not: a line every AUGSVC_PROGRESS_EVERY seconds (default 10)
    report = PlainSteps("pretrain", hint="fewer pretrain.epochs shorten it") if progress else None
    for epoch in range(start, p.epochs):
        if stop_after is not None and done_now >= stop_after:
            break
        model.train()
        t0, loss_sum, acc_sum, n = time.perf_counter(), 0.0, 0.0, 0
        s = Stream(ref, store=store, split=p.split, batch_size=p.batch_size, seed=seed, epoch=epoch, shuffle=True,
                   recipe=recipe, views=2, resize=resize, drop_last=True, columns=["image"],
                   shuffle_window=cfg.shuffle_window)  # fmt: skip
        for b in s:
            views = b["views"]
            if not isinstance(views, np.ndarray) or views.ndim != 5:
                raise AugsvcError(
                    f"pretrain: the views of {ref} have several sizes; give the crop one size (the default recipe's "
                    "random_resized_crop does) or set resize: [H, W]"
                )
            x = torch.from_numpy(np.ascontiguousarray(views.reshape(-1, *views.shape[2:]))).to(device)
            lr = lr_at(step, total, warmup, p.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            z = model(x)
            half = len(x) // 2
            loss, acc = nt_xent(z[:half], z[half:], p.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_v = float(loss.item())
            if not math.isfinite(loss_v):
                raise AugsvcError(f"pretrain: the loss became {loss_v} at step {step + 1}; lower pretrain.lr")
            steps_log.append({"step": step + 1, "epoch": epoch + 1, "loss": loss_v, "lr": lr})
            loss_sum, acc_sum, n, step = loss_sum + loss_v, acc_sum + float(acc.item()), n + 1, step + 1
            if report is not None:
                rate = n * p.batch_size / max(time.perf_counter() - t0, 1e-9)
                report(step, total, epoch=f"{epoch + 1}/{p.epochs}", batch=f"{n:,}/{steps_per_epoch:,}",
                       loss=loss_v, **{"images/s": f"{rate:,.0f}"})  # fmt: skip
        last_lr = steps_log[-1]["lr"] if steps_log else p.lr
        row = {"epoch": epoch + 1, "loss": loss_sum / max(n, 1), "pair_acc": acc_sum / max(n, 1), "lr": last_lr,
               "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
        history.append(row)
        done_now += 1
        enc_state = {k: t for k, t in model.encoder.state_dict().items() if not k.startswith("head.")}
        save_checkpoint(out / ENCODER, {"model": enc_state, **meta, "epoch": epoch})
        save_checkpoint(out / "last.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                                          "step": step, "history": history, "steps": steps_log, "settings": settings},
                        rng_device=device)  # fmt: skip
        _write_reports(out, history, steps_log)
        if progress:
            print(f"pretrain epoch {epoch + 1}/{p.epochs}: loss {row['loss']:.4f}, pair acc {row['pair_acc']:.3f}, "
                  f"{row['seconds']:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
    if not history:
        raise AugsvcError("pretrain: no epoch ran")
    summary = {"run": str(out), "encoder": str(out / ENCODER), "epochs": len(history),
               "final_loss": history[-1]["loss"], "first_loss": history[0]["loss"],
               "parameters": count_parameters(model.encoder), "data": ref, "split": p.split, "steps": step,
               "finished": len(history) == p.epochs,
               "seconds": round(time.perf_counter() - t_all, 2), "device": str(device)}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _write_reports(out: Path, history: list[dict], steps: list[dict]) -> None:
    """loss.csv (per epoch), loss_steps.csv (per step) and loss.png (per-epoch loss)."""
    from augsvc.trainer.reports import plot_curves

    for name, rows in (("loss.csv", history), ("loss_steps.csv", steps)):
        with open(out / name, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    plot_curves({"NT-Xent": [h["loss"] for h in history]}, out / "loss.png", title="pretraining loss")


def encoder_checkpoint(run_dir: str | Path) -> Path:
    """The encoder an ``augsvc train`` run with ``pretrain:`` fine-tunes from: ``RUN/pretrain/encoder.pt``."""
    return Path(run_dir) / PRETRAIN_DIR / ENCODER
