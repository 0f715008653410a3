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
from generators.nets.prep import Prep, build_model, to_device
from generators.progress import PlainSteps
from generators.runtime import default_threads, load_checkpoint, resolve_device, save_checkpoint, seeded_session
from schemas.errors import AugsvcError

__all__ = ["DistillConfig", "MixConfig", "Prep", "TrainConfig", "build_model", "compare", "evaluate", "load_config",
           "plot_curves", "score_run", "scores", "train"]  # fmt: skip


def scores(
    model,
    prep: Prep,
    store: Store,
    ref: str,
    split: str,
    device,
    batch_size: int = 256,
    max_len: int = 64,
    resize: tuple[int, int] | None = None,
    class_names: list[str] | None = None,
    features: Any = None,
) -> dict[str, Any]:
    """Score ``model`` on one split of a version (images resized to ``resize`` (h, w) when given): ``accuracy``,
    ``macro_f1`` (the unweighted mean over classes) and ``per_class`` (class name -> ``precision``, ``recall``,
    ``f1``, ``support`` in rows), from scikit-learn's ``precision_recall_fscore_support`` over every class of the
    model (a class absent from the split has support 0 and scores 0). Rows without a label are skipped.
    ``features`` (a :class:`augsvc.trainer.features.FeatureTable` of that split) feeds cached frozen-backbone
    output to the model's head instead of images. Raises AugsvcError when the split has no labelled rows."""
    import torch
    from sklearn.metrics import precision_recall_fscore_support

    from augsvc.stream import Stream

    model.eval()
    preds, labels = [], []
    with torch.no_grad():
        cols = ["label"] if features is not None else None
        for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=batch_size, resize=resize,
                        columns=cols):  # fmt: skip
            if features is not None:
                pred = model.classify(features.take(b["sample_id"]).to(device)).argmax(1).cpu().numpy()
            else:
                pred = model(to_device(prep.inputs(b, max_len), device)).argmax(1).cpu().numpy()
            known = b["label"] >= 0
            preds.append(pred[known])
            labels.append(b["label"][known])
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if len(y) == 0:
        raise AugsvcError(f"{ref}: no labelled rows in split {split!r} to score")
    p = np.concatenate(preds)
    names = list(class_names) if class_names else [str(i) for i in range(int(max(y.max(), p.max())) + 1)]
    ks = list(range(len(names)))
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=ks, zero_division=0)
    per_class = {n: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(sup[i])}
                 for i, n in enumerate(names)}  # fmt: skip
    return {"accuracy": float((p == y).mean()), "macro_f1": float(np.mean(f1)), "per_class": per_class, "rows": len(y)}


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
) -> float:
    """Accuracy of ``model`` on one split of a version (see :func:`scores` for macro-F1 and per-class scores)."""
    return scores(model, prep, store, ref, split, device, batch_size, max_len, resize)["accuracy"]


def score_run(run: str | Path, store: Store, ref: str | None = None, split: str = "test", device: str = "auto") -> dict:
    """:func:`scores` of a run's best checkpoint (``best.pt``) on ``split`` of ``ref`` (default: the version it
    trained on), plus ``run``, ``data`` (pinned) and ``split``. AugsvcError when the run has no checkpoint, the
    version no such split, or the split no labelled rows."""
    model, prep, ck = load_model(run)
    ds, v = api.resolve(ref or ck.get("data") or "", store=store)
    m = api.show(f"{ds}@{v}", store=store)
    if m.rows_per_split and split not in m.rows_per_split:
        raise AugsvcError(f"--split {split}: {ds}@{v} has no split {split!r} (has {', '.join(m.rows_per_split)})")
    if ck.get("class_names") and list(m.class_names) != list(ck["class_names"]):
        raise AugsvcError(f"{ds}@{v} has classes {m.class_names}, the run was trained on {ck['class_names']}; "
                          "score it on a version with the same classes")  # fmt: skip
    dev = resolve_device(device)
    out = scores(model.to(dev), prep, store, f"{ds}@{v}", split, dev, max_len=ck.get("max_len", 64),
                 resize=ck.get("resize"), class_names=ck.get("class_names"))  # fmt: skip
    return {"run": str(run), "data": f"{ds}@{v}", "split": split, **out}


def evaluate_run(run: str | Path, store: Store, ref: str, split: str, device: str = "auto") -> float:
    """Accuracy of a run's best checkpoint on ``ref``'s ``split`` (e.g. a held-out test split)."""
    model, prep, ck = load_model(run)
    dev = resolve_device(device)
    return evaluate(model.to(dev), prep, store, ref, split, dev, max_len=ck.get("max_len", 64), resize=ck.get("resize"))


def _optimizer(cfg: TrainConfig, model):
    """Param groups per layer group; differential learning rates when fine-tuning a pretrained base."""
    from augsvc.trainer.finetune import make_optimizer

    scale = cfg.base_lr_scale if cfg.fine_tuning else None
    return make_optimizer(model, lr=cfg.lr, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay, base_lr_scale=scale)


def _trainable_from(cfg: TrainConfig, epoch: int, n_groups: int) -> int:
    if cfg.freeze_backbone:
        return n_groups - 1
    if not cfg.fine_tuning:
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
    """Progress of the trainer's steps (silent when disabled): on a terminal a rich bar per epoch with running loss
    and accuracy; off a terminal (logs, CI, ``| tee``) ``generators.progress.PlainSteps`` lines at most every
    ``AUGSVC_PROGRESS_EVERY`` seconds (default 10) within epochs: step of the run, epoch, batch of the epoch, running
    loss and accuracy, rows/s, elapsed and time left. Either way, one line per finished epoch off a terminal, and
    after the first epoch on one."""

    def __init__(self, enabled: bool, epochs: int, steps: int | None) -> None:
        self.enabled, self.epochs, self.steps = enabled, epochs, steps
        self.bar: Any = None
        self.plain: PlainSteps | None = None
        self.tty = sys.stderr.isatty()
        self.first = True  # after the first epoch, say how long the rest will take
        self.at = (0, 0, 0, 0.0)  # epoch, batch of the epoch, rows of the epoch, the epoch's start (perf_counter)

    def __enter__(self) -> _Progress:
        if self.enabled and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}"),
                                TimeElapsedColumn(), transient=False)  # fmt: skip
            self.bar.__enter__()
        elif self.enabled:
            self.plain = PlainSteps("train", hint="fewer epochs shorten it")
        return self

    def epoch(self, epoch: int) -> Any:
        self.at = (epoch, 0, 0, time.perf_counter())
        if self.bar is None:
            return None
        return self.bar.add_task(f"epoch {epoch + 1}/{self.epochs}", total=self.steps, loss=0.0, acc=0.0)

    def step(self, task: Any, loss: float, acc: float, rows: int = 0) -> None:
        epoch, batch, seen, t0 = self.at
        self.at = (epoch, batch + 1, seen + rows, t0)
        if self.bar is not None:
            self.bar.update(task, advance=1, loss=loss, acc=acc)
        elif self.plain is not None:
            per = self.steps or 0
            of = f"/{per:,}" if per else ""
            rate = (seen + rows) / max(time.perf_counter() - t0, 1e-9)
            fields = {"epoch": f"{epoch + 1}/{self.epochs}", "batch": f"{batch + 1:,}{of}", "loss": loss, "acc": acc,
                      "rows/s": f"{rate:,.0f}"}  # fmt: skip
            self.plain(epoch * per + batch + 1, per * self.epochs if per else None, **fields)

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
    overwrite: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train; write metrics.json/.csv, best.pt, last.pt, config.yaml, summary.json and val_accuracy.png into
    ``out_dir``. ``resume=True`` continues from ``out_dir/last.pt`` exactly as an uninterrupted run would.
    ``on_epoch(row)`` is called after each epoch's files are written (row: epoch, train_loss, train_acc, val_acc,
    val_macro_f1, seconds, samples, steps), e.g. to report to Ray Tune.

    Before any heavy work (``checks.plan_run``, ``rundir.prepare_run_dir``) raises AugsvcError (one line) for a
    version or model that cannot train (no labels, a missing split, a model kind that does not read the modality,
    an unusable ``hf_path``, ...), for ``out_dir`` holding a run without ``resume`` or ``overwrite`` (which starts
    it again), and for ``resume`` under a config other than the run's (naming each changed key)."""
    from augsvc.trainer.checks import plan_run
    from augsvc.trainer.rundir import prepare_run_dir, run_settings

    device = resolve_device(cfg.device)
    plan = plan_run(cfg, store)
    prepare_run_dir(out_dir, run_settings(plan.filled), resume=resume, overwrite=overwrite)
    if cfg.pretrain is not None:  # SimCLR first (augsvc/trainer/pretrain.py), then fine-tune from its encoder
        from augsvc.trainer.pretrain import PRETRAIN_DIR, pretrain

        pre = pretrain(cfg, store, Path(out_dir) / PRETRAIN_DIR, resume=resume, progress=progress)
        if cfg.epochs == 0:
            return {"pretrain": pre, "run": str(out_dir), "epochs": 0}
    with seeded_session(cfg.seed, device, threads=cfg.threads or default_threads()):
        return _train(cfg, store, plan, Path(out_dir), device, resume=resume, progress=progress, on_epoch=on_epoch)


def train_streams(
    cfg: TrainConfig, ref: str, store: Store, epoch: int, mix: dict | None, curriculum: Any = None, cached: Any = None
) -> list[Any]:
    """The training streams of one epoch: one stream with a fresh augmented view per epoch, or with
    ``augment_copies`` k, k + 1 passes (the originals, then copy c seeded by c alone, the same every epoch), or
    with ``augment_cycle`` the one pass ``epoch mod (k + 1)`` of them.
    Each pass follows ``curriculum`` (an :class:`augsvc.curriculum.Curriculum`, or None) and the epoch's size
    under ``cfg.progressive_resize``."""
    from augsvc.stream import Stream
    from augsvc.trainer.schedule import epoch_resize

    kw = dict(store=store, split=cfg.train_split, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=True, mix=mix,
              shuffle_window=cfg.shuffle_window,
              resize=epoch_resize(cfg.progressive_resize, cfg.resize, epoch), curriculum=curriculum)  # fmt: skip
    if cached is not None:  # cached backbone features: the stream only gives the order and the labels
        kw["columns"] = ["label", *(["teacher_logits"] if cfg.distill else [])]
    if cfg.augment_copies is None:
        return [Stream(ref, epoch=epoch, recipe=cfg.augment, **kw)]
    views = [(None, None)] + [(cfg.augment, c) for c in range(cfg.augment_copies)]
    n = len(views)
    if cfg.augment_cycle:  # one view per epoch, in turn: as many steps per epoch as without copies
        r, c = views[epoch % n]
        return [Stream(ref, epoch=epoch, recipe=r, augment_epoch=c, **kw)]
    return [Stream(ref, epoch=epoch * n + v, recipe=r, augment_epoch=c, **kw) for v, (r, c) in enumerate(views)]


def _train(cfg: TrainConfig, store: Store, plan: Any, out: Path, device, *, resume: bool, progress: bool,
           on_epoch=None) -> dict:  # fmt: skip
    import torch

    from augsvc.stream import Stream
    from augsvc.trainer.finetune import load_base, set_trainable
    from augsvc.trainer.losses import classification_loss, distillation_loss
    from augsvc.trainer.schedule import make_curriculum
    from generators.nets.backbones import describe_backbone, is_backbone_kind, open_backbone
    from generators.nets.classifiers import count_parameters

    ref, m, val_ref, kind = plan.ref, plan.manifest, plan.val_ref, plan.kind
    trunk, backbone = None, None
    if is_backbone_kind(kind):  # plan_run checked the modality and that the weights file exists
        trunk, backbone = open_backbone(kind, cfg.pretrained, allow_download=cfg.allow_download)
        if cfg.resize is None:  # the backbone's pretrained input size (timm's resolve_data_config)
            cfg = cfg.model_copy(update={"resize": tuple(backbone.input_size[1:])})
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
    if backbone is not None:
        prep.state["backbone"] = {"info": backbone.to_state(), "head": cfg.head, "dropout": cfg.head_dropout,
                                  "image_size": list(cfg.resize)}  # fmt: skip
        if progress:
            print(describe_backbone(backbone, cfg), file=sys.stderr)
    channels = 3
    if m.modality == "image":
        first = next(
            iter(Stream(ref, store=store, split=cfg.train_split, batch_size=1, shuffle=False, resize=cfg.resize))
        )
        channels = first["image"].shape[-1]
    model = build_model(kind, len(m.class_names), prep, cfg.width, channels, trunk=trunk)
    if base is not None:
        src = "pretrain encoder" if cfg.pretrain is not None else f"finetune_from {cfg.finetune_from}"
        src += f" (model {base.get('kind')}, width {base.get('width')}; this run: model {kind}, width {cfg.width})"
        skipped = load_base(model, base["model"], source=src)
        if progress:
            n_loaded = len(model.state_dict()) - len(skipped)
            print(f"{src.split(' (')[0]}: loaded {n_loaded} tensors ({len(skipped)} new: the head)", file=sys.stderr)
    model = model.to(device)
    opt = _optimizer(cfg, model)
    start, history, best, stale, best_val = 0, [], -1.0, 0, None
    if resume and (out / "last.pt").is_file():
        ck = load_checkpoint(out / "last.pt", map_location=device, what="resume checkpoint", restore_rng=device,
                             fix="delete it to start again without --resume")  # fmt: skip
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, history, best, stale = ck["epoch"] + 1, ck["history"], ck["best"], ck.get("stale", 0)
        best_val = ck.get("best_val")
    mix = cfg.mix.model_dump() if cfg.mix else None
    n_train = m.rows_per_split.get(cfg.train_split, m.rows) if m.rows_per_split else m.rows
    passes = 1 if cfg.augment_cycle else 1 + (cfg.augment_copies or 0)  # stream passes per epoch
    steps = -(-n_train // cfg.batch_size) * passes
    curriculum = make_curriculum(cfg, store, ref, out, progress)  # None unless cfg.curriculum (trainer/schedule.py)
    cached, val_features = None, None  # frozen backbone: features computed once, the head trains on them
    if cfg.freeze_backbone and not cfg.progressive_resize:
        from augsvc.trainer.features import split_features

        val_features = split_features(model, store, val_ref, cfg.val_split, cfg.resize, device, progress=progress)
        # training rows too, unless they change every epoch (on-the-fly views, mixing); fixed copies are cached
        if not mix and (cfg.augment is None or cfg.augment_copies is not None):
            views = [(None, None)] + [(cfg.augment, c) for c in range(cfg.augment_copies or 0)]
            cached = [split_features(model, store, ref, cfg.train_split, cfg.resize, device, progress=progress,
                                     recipe=r, augment_epoch=c) for r, c in views]  # fmt: skip
    meta = {"kind": kind, "width": cfg.width, "class_names": m.class_names, "modality": m.modality,
            "channels": channels, "max_len": cfg.max_len, "data": ref, "resize": cfg.resize}  # fmt: skip
    with _Progress(progress, cfg.epochs, steps) as bar:
        for epoch in range(start, cfg.epochs):
            if stale and cfg.patience and stale >= cfg.patience:
                break
            set_trainable(model, _trainable_from(cfg, epoch, len(model.layer_groups())))
            model.train()
            t0, loss_sum, n_seen, correct, n_known, n_steps = time.perf_counter(), 0.0, 0, 0, 0, 0
            task = bar.epoch(epoch)
            streams = train_streams(cfg, ref, store, epoch, mix, curriculum, cached)
            # which cached view each stream is: the originals (0) or fixed copy v - 1; augment_cycle: one per epoch
            vids = [epoch % len(cached)] if cached and cfg.augment_cycle else list(range(len(streams)))
            for v, b in ((v, b) for v, s in zip(vids, streams, strict=True) for b in s):
                y = torch.from_numpy(b["label"]).to(device)
                soft = torch.from_numpy(b["soft_label"]).to(device) if "soft_label" in b else None
                if cached is not None:
                    logits = model.classify(cached[v].take(b["sample_id"]).to(device))
                else:
                    logits = model(to_device(prep.inputs(b, cfg.max_len), device))
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
                n_steps += 1
                target = soft.argmax(1) if soft is not None else y
                known = y >= 0  # unlabelled rows (a transfer set) count in the loss, not in the accuracy
                loss_sum += loss.item() * len(y)
                n_seen += len(y)
                n_known += int(known.sum())
                correct += int((logits.argmax(1) == target)[known].sum())
                bar.step(task, loss_sum / n_seen, correct / max(n_known, 1), rows=len(y))
            val = scores(model, prep, store, val_ref, cfg.val_split, device, max_len=cfg.max_len, resize=cfg.resize,
                         class_names=m.class_names, features=val_features)  # fmt: skip
            val_acc = val["accuracy"]
            row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "train_acc": correct / max(n_known, 1),
                   "val_acc": val_acc, "val_macro_f1": val["macro_f1"], "seconds": round(time.perf_counter() - t0, 2),
                   "samples": n_seen, "steps": n_steps}  # fmt: skip
            history.append(row)
            bar.done(task, row)
            if val_acc > best:
                best, stale, best_val = val_acc, 0, val
                save_checkpoint(
                    out / "best.pt", {"model": model.state_dict(), "prep": prep.state, **meta, "epoch": epoch}
                )
            else:
                stale += 1
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "stale": stale,
                     "history": history, "best": best, "best_val": best_val}  # fmt: skip
            save_checkpoint(out / "last.pt", state, rng_device=device)
            write_reports(out, history)
            if on_epoch is not None:
                on_epoch(row)
    best_epoch = max(history, key=lambda h: h["val_acc"])["epoch"] if history else None
    summary = {"run": str(out), "best_val_acc": best, "best_epoch": best_epoch, "epochs": len(history),
               "parameters": count_parameters(model), "data": ref, "model": kind, "width": cfg.width,
               "distilled": cfg.distill is not None, "device": str(device),
               **({"backbone": {"arch": backbone.arch, "weights": backbone.weights, "sha256": backbone.sha256,
                                "frozen": cfg.freeze_backbone, "head": cfg.head}} if backbone else {}),
               "best_val_macro_f1": best_val["macro_f1"] if best_val else None,
               "best_val_per_class": best_val["per_class"] if best_val else None}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
