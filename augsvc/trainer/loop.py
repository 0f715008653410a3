"""Training loop: stream a version, train with hard/soft/distillation losses, validate every epoch, keep the best
checkpoint, stop early, resume identically from ``last.pt``; reports go to the run directory.

Determinism: the stream's order, augmentation and mixing are functions of ``(seed, epoch)``; model init, dropout
and anything else drawn from torch's generator run under :func:`generators.runtime.seeded_session` seeded with
``seed``, whose state is saved per epoch in ``last.pt`` (written atomically: a kill mid-write leaves the previous
epoch's file). The caller's global random state and torch threads are left as they were.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from augsvc import api
from augsvc.api import StoreArg as Store
from augsvc.trainer.config import DistillConfig, MixConfig, TrainConfig, load_config
from augsvc.trainer.data import fit_prep
from augsvc.trainer.reports import compare, plot_curves, write_reports
from generators.nets.classifier import load_model, read_checkpoint
from generators.nets.prep import CLASSIFIERS, Prep, build_model, default_kind, to_device
from generators.runtime import default_threads, load_checkpoint, resolve_device, save_checkpoint, seeded_session
from schemas.errors import AugsvcError

__all__ = ["DistillConfig", "MixConfig", "Prep", "TrainConfig", "build_model", "compare", "evaluate", "load_config",
           "plot_curves", "train"]  # fmt: skip


def evaluate(
    model,
    prep: Prep,
    store: Store,
    ref: str,
    split: str,
    device,
    batch_size: int = 256,
    max_len: int = 64,
    resize: tuple[int, int] | None = None,
):
    """Accuracy of ``model`` on one split of a version (images resized to ``resize`` (h, w) when given)."""
    import torch

    from augsvc.stream import Stream

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=batch_size, resize=resize):
            pred = model(to_device(prep.inputs(b, max_len), device)).argmax(1).cpu().numpy()
            correct += int((pred == b["label"]).sum())
            total += len(pred)
    if total == 0:
        raise AugsvcError(f"{ref}: no rows in split {split!r} to validate on")
    return correct / total


def evaluate_run(run: str | Path, store: Store, ref: str, split: str, device: str = "auto") -> float:
    """Accuracy of a run's best checkpoint on ``ref``'s ``split`` (e.g. a held-out test split)."""
    model, prep, ck = load_model(run)
    dev = resolve_device(device)
    return evaluate(model.to(dev), prep, store, ref, split, dev, max_len=ck.get("max_len", 64), resize=ck.get("resize"))


def _optimizer(cfg: TrainConfig, model):
    """Param groups per layer group; differential learning rates when fine-tuning a pretrained base."""
    from augsvc.trainer.finetune import make_optimizer

    scale = cfg.base_lr_scale if cfg.pretrained else None
    return make_optimizer(model, lr=cfg.lr, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay, base_lr_scale=scale)


def _trainable_from(cfg: TrainConfig, epoch: int, n_groups: int) -> int:
    if not cfg.pretrained:
        return 0
    if epoch < cfg.freeze_epochs:
        return n_groups - 1
    return 0 if cfg.unfreeze_groups is None else max(0, n_groups - 1 - cfg.unfreeze_groups)


def _teacher_logits(b: dict, ref: str, split: str):
    import torch

    col = b.get("teacher_logits")
    if col is None or any(v is None for v in col):
        raise AugsvcError(
            f"{ref} has no teacher_logits for (all) rows of split {split!r}; build it with a teacher stage first "
            "(stages: [{teacher: {checkpoint: RUN_DIR}}]), with that split in the recipe's splits"
        )
    return torch.from_numpy(np.stack(col).astype(np.float32))


class _Progress:
    """A rich progress bar per epoch with running loss and accuracy (silent when disabled)."""

    def __init__(self, enabled: bool, epochs: int, steps: int | None) -> None:
        self.enabled, self.epochs, self.steps = enabled, epochs, steps
        self.bar: Any = None
        self.tty = sys.stderr.isatty()
        self.first = True  # after the first epoch, say how long the rest will take

    def __enter__(self) -> _Progress:
        if self.enabled and self.tty:  # without a terminal: one plain line per epoch instead
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}"),
                                TimeElapsedColumn(), transient=False)  # fmt: skip
            self.bar.__enter__()
        return self

    def epoch(self, epoch: int) -> Any:
        if self.bar is None:
            return None
        return self.bar.add_task(f"epoch {epoch + 1}/{self.epochs}", total=self.steps, loss=0.0, acc=0.0)

    def step(self, task: Any, loss: float, acc: float) -> None:
        if self.bar is not None:
            self.bar.update(task, advance=1, loss=loss, acc=acc)

    def done(self, task: Any, row: dict) -> None:
        if self.bar is not None:
            self.bar.update(task, description=f"epoch {row['epoch']}/{self.epochs} val acc {row['val_acc']:.3f}")
        left = self.epochs - row["epoch"]
        if self.enabled and ((left and self.first) or not self.tty):
            eta = f"; about {row['seconds'] * left:.0f} s for the {left} epoch(s) left" if left else ""
            line = f"epoch {row['epoch']}/{self.epochs}: val acc {row['val_acc']:.4f}, {row['seconds']:.1f} s{eta}"
            if self.bar is not None:
                self.bar.console.print(line)
            else:
                print(line, file=sys.stderr, flush=True)
        self.first = False

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def train(
    cfg: TrainConfig,
    store: Store,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train; write metrics.json/.csv, best.pt, last.pt, config.yaml, summary.json and val_accuracy.png into
    ``out_dir``. ``resume=True`` continues from ``out_dir/last.pt`` exactly as an uninterrupted run would.
    ``on_epoch(row)`` is called after each epoch's files are written (row: epoch, train_loss, train_acc, val_acc,
    seconds), e.g. to report to Ray Tune."""
    device = resolve_device(cfg.device)
    if cfg.pretrain is not None:  # SimCLR first (augsvc/trainer/pretrain.py), then fine-tune from its encoder
        from augsvc.trainer.pretrain import PRETRAIN_DIR, pretrain
        from pipelines.unlabelled import require_labels

        if cfg.epochs:  # refuse unlabelled fine-tuning data before minutes of pretraining, not after
            require_labels(api.show(cfg.data, store=store), "augsvc train (fine-tuning on 'data')")
        pre = pretrain(cfg, store, Path(out_dir) / PRETRAIN_DIR, resume=resume, progress=progress)
        if cfg.epochs == 0:
            return {"pretrain": pre, "run": str(out_dir), "epochs": 0}
    with seeded_session(cfg.seed, device, threads=cfg.threads or default_threads()):
        return _train(cfg, store, Path(out_dir), device, resume=resume, progress=progress, on_epoch=on_epoch)


def train_streams(
    cfg: TrainConfig, ref: str, store: Store, epoch: int, mix: dict | None, curriculum: Any = None
) -> list[Any]:
    """The training streams of one epoch: one stream with a fresh augmented view per epoch, or with
    ``augment_copies`` k, k + 1 passes (the originals, then copy c seeded by c alone, the same every epoch).
    Each pass follows ``curriculum`` (an :class:`augsvc.curriculum.Curriculum`, or None) and the epoch's size
    under ``cfg.progressive_resize``."""
    from augsvc.stream import Stream
    from augsvc.trainer.schedule import epoch_resize

    kw = dict(store=store, split=cfg.train_split, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=True, mix=mix,
              shuffle_window=cfg.shuffle_window,
              resize=epoch_resize(cfg.progressive_resize, cfg.resize, epoch), curriculum=curriculum)  # fmt: skip
    if cfg.augment_copies is None:
        return [Stream(ref, epoch=epoch, recipe=cfg.augment, **kw)]
    views = [(None, None)] + [(cfg.augment, c) for c in range(cfg.augment_copies)]
    n = len(views)
    return [Stream(ref, epoch=epoch * n + v, recipe=r, augment_epoch=c, **kw) for v, (r, c) in enumerate(views)]


def _train(cfg: TrainConfig, store: Store, out: Path, device, *, resume: bool, progress: bool, on_epoch=None) -> dict:
    import torch
    import yaml

    from augsvc.stream import Stream
    from augsvc.trainer.finetune import load_base, set_trainable
    from augsvc.trainer.losses import classification_loss, distillation_loss
    from augsvc.trainer.schedule import make_curriculum
    from generators.nets.classifiers import count_parameters

    out.mkdir(parents=True, exist_ok=True)
    ds, v = api.resolve(cfg.data, store=store)
    ref = f"{ds}@{v}"
    m = api.show(ref, store=store)
    from pipelines.unlabelled import require_labels, require_split_labels

    require_labels(m, "augsvc train (a classifier learns from the labels of 'data')")
    if m.rows_per_split and cfg.train_split not in m.rows_per_split:
        raise AugsvcError(f"{ref} has no split {cfg.train_split!r} (has {', '.join(m.rows_per_split)})")
    val_ref = cfg.val_data or ref
    kind = cfg.model or default_kind(m.modality)
    reads = CLASSIFIERS.get(kind).modalities
    if m.modality not in reads:
        raise AugsvcError(f"model: {kind} works on {' and '.join(reads)} versions; {ref} is {m.modality}")
    val_ref = "@".join(api.resolve(val_ref, store=store))
    require_split_labels(api.show(val_ref, store=store), cfg.val_split,
                         f"augsvc train validation (val_data, val_split {cfg.val_split!r})")  # fmt: skip
    filled = cfg.model_copy(update={"data": ref, "val_data": val_ref, "model": kind})
    (out / "config.yaml").write_text(
        "# every key of this run, versions pinned and defaults filled in; null means the feature is off\n"
        + yaml.safe_dump(filled.model_dump(mode="json"), sort_keys=False)
    )
    # Layer init and dropout only draw from torch's default generator, seeded with cfg.seed by train()'s
    # seeded_session, which restores the caller's state afterwards (tested).
    if cfg.pretrain is not None:
        from augsvc.trainer.pretrain import encoder_checkpoint

        base = read_checkpoint(encoder_checkpoint(out))
    else:
        base = read_checkpoint(cfg.finetune_from) if cfg.finetune_from else None
    prep = Prep(m.modality, base["prep"]) if base else Prep(m.modality)
    if base is None:
        hf_path = None
        if cfg.hf_path:  # a folder, or a packaged model name (minilm): the resolved folder is what the run records
            from generators.textgen.sources import resolve_model

            hf_path = str(resolve_model(cfg.hf_path, what="hf_path"))
        fit_prep(prep, store, ref, cfg.train_split, m.features, hf_path=hf_path)
    channels = 3
    if m.modality == "image":
        first = next(
            iter(Stream(ref, store=store, split=cfg.train_split, batch_size=1, shuffle=False, resize=cfg.resize))
        )
        channels = first["image"].shape[-1]
    model = build_model(kind, len(m.class_names), prep, cfg.width, channels)
    if base is not None:
        src = "pretrain encoder" if cfg.pretrain is not None else f"finetune_from {cfg.finetune_from}"
        src += f" (model {base.get('kind')}, width {base.get('width')}; this run: model {kind}, width {cfg.width})"
        skipped = load_base(model, base["model"], source=src)
        if progress:
            n_loaded = len(model.state_dict()) - len(skipped)
            print(f"{src.split(' (')[0]}: loaded {n_loaded} tensors ({len(skipped)} new: the head)", file=sys.stderr)
    model = model.to(device)
    opt = _optimizer(cfg, model)
    start, history, best, stale = 0, [], -1.0, 0
    if resume and (out / "last.pt").is_file():
        ck = load_checkpoint(out / "last.pt", map_location=device, what="resume checkpoint", restore_rng=device,
                             fix="delete it to start again without --resume")  # fmt: skip
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, history, best, stale = ck["epoch"] + 1, ck["history"], ck["best"], ck.get("stale", 0)
    mix = cfg.mix.model_dump() if cfg.mix else None
    if mix and m.modality != "image":
        raise AugsvcError(f"mix works on image batches; {ref} is {m.modality} (build a mixed version instead)")
    n_train = m.rows_per_split.get(cfg.train_split, m.rows) if m.rows_per_split else m.rows
    steps = -(-n_train // cfg.batch_size) * (1 + (cfg.augment_copies or 0))
    if cfg.progressive_resize and m.modality != "image":
        raise AugsvcError(f"progressive_resize works on images; {ref} is {m.modality}")
    curriculum = make_curriculum(cfg, store, ref)  # None unless cfg.curriculum (augsvc/trainer/schedule.py)
    meta = {"kind": kind, "width": cfg.width, "class_names": m.class_names, "modality": m.modality,
            "channels": channels, "max_len": cfg.max_len, "data": ref, "resize": cfg.resize}  # fmt: skip
    with _Progress(progress, cfg.epochs, steps) as bar:
        for epoch in range(start, cfg.epochs):
            if stale and cfg.patience and stale >= cfg.patience:
                break
            set_trainable(model, _trainable_from(cfg, epoch, len(model.layer_groups())))
            model.train()
            t0, loss_sum, n_seen, correct, n_known = time.perf_counter(), 0.0, 0, 0, 0
            task = bar.epoch(epoch)
            for b in (b for s in train_streams(cfg, ref, store, epoch, mix, curriculum) for b in s):
                x = to_device(prep.inputs(b, cfg.max_len), device)
                y = torch.from_numpy(b["label"]).to(device)
                soft = torch.from_numpy(b["soft_label"]).to(device) if "soft_label" in b else None
                logits = model(x)
                if cfg.distill:
                    d = cfg.distill
                    tl = _teacher_logits(b, ref, cfg.train_split).to(device)
                    loss = distillation_loss(logits, tl, y, temperature=d.temperature, lambda_hard=d.lambda_hard,
                                             lambda_soft=d.lambda_soft, soft=soft)  # fmt: skip
                else:
                    loss = classification_loss(logits, y, soft, cfg.label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
                target = soft.argmax(1) if soft is not None else y
                known = y >= 0  # unlabelled rows (a transfer set) count in the loss, not in the accuracy
                loss_sum += loss.item() * len(y)
                n_seen += len(y)
                n_known += int(known.sum())
                correct += int((logits.argmax(1) == target)[known].sum())
                bar.step(task, loss_sum / n_seen, correct / max(n_known, 1))
            val_acc = evaluate(
                model, prep, store, val_ref, cfg.val_split, device, max_len=cfg.max_len, resize=cfg.resize
            )
            row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "train_acc": correct / max(n_known, 1),
                   "val_acc": val_acc, "seconds": round(time.perf_counter() - t0, 2), "samples": n_seen}  # fmt: skip
            history.append(row)
            bar.done(task, row)
            if val_acc > best:
                best, stale = val_acc, 0
                save_checkpoint(
                    out / "best.pt", {"model": model.state_dict(), "prep": prep.state, **meta, "epoch": epoch}
                )
            else:
                stale += 1
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "stale": stale,
                     "history": history, "best": best}  # fmt: skip
            save_checkpoint(out / "last.pt", state, rng_device=device)
            write_reports(out, history)
            if on_epoch is not None:
                on_epoch(row)
    best_epoch = max(history, key=lambda h: h["val_acc"])["epoch"] if history else None
    summary = {"run": str(out), "best_val_acc": best, "best_epoch": best_epoch, "epochs": len(history),
               "parameters": count_parameters(model), "data": ref, "model": kind, "width": cfg.width,
               "distilled": cfg.distill is not None,
               "device": str(device)}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
