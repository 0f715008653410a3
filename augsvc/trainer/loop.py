"""Training loop: config, data preparation per modality, train/validate/checkpoint/resume, run reports."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from augsvc.errors import AugsvcError
from augsvc.store import Store


class MixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["mixup", "cutmix", "average"] = "mixup"
    alpha: float = Field(0.4, gt=0)


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(4.0, gt=0)
    lambda_hard: float = Field(0.1, ge=0)
    lambda_soft: float = Field(0.9, ge=0)


class TrainConfig(BaseModel):
    """``augsvc train CONFIG.yaml``: every key, with its default."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="training version: NAME, NAME@VERSION or NAME@TAG")
    train_split: str = "train"
    val_data: str | None = Field(None, description="validation version (default: the training version)")
    val_split: str = "val"
    model: Literal["cnn", "text_cnn", "mlp"] | None = Field(None, description="default by modality")
    width: float = Field(1.0, gt=0, description="width multiplier (teacher and student of one family)")
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int = 0
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: str | dict | None = Field(None, description="recipe (path or mapping) applied on the fly while streaming")
    mix: MixConfig | None = None
    distill: DistillConfig | None = Field(None, description="distil from the version's teacher_logits column")
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without a better val accuracy")
    finetune_from: str | None = Field(None, description="run dir or checkpoint to start from (same model family)")
    freeze_epochs: int = Field(0, ge=0, description="fine-tuning: epochs training only the head")
    base_lr_scale: float = Field(0.1, gt=0, le=1, description="fine-tuning: lr factor per layer group below the head")
    device: str = "auto"


def load_config(source: str | Path | dict) -> TrainConfig:
    import yaml

    where = "config"
    if not isinstance(source, dict):
        where = str(source)
        if not Path(source).is_file():
            raise AugsvcError(f"{source}: config file not found")
        source = yaml.safe_load(Path(source).read_text()) or {}
    try:
        return TrainConfig.model_validate(source)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                msgs.append(f"{where}: unknown key {key!r}; allowed keys: {', '.join(TrainConfig.model_fields)}")
            else:
                msgs.append(f"{where}: {key}: {err['msg']}")
        raise AugsvcError("\n".join(msgs)) from None


class Prep:
    """Turns stream batches into model inputs; fitted on the training split (vocab, feature stats)."""

    def __init__(self, modality: str, state: dict | None = None) -> None:
        self.modality = modality
        self.state = state or {}

    def fit(self, store: Store, ref: str, split: str, features: dict[str, str]) -> None:
        from augsvc.stream import Stream

        if self.modality == "text":
            from augsvc.trainer.models import Vocab

            texts = [
                t for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=1024) for t in b["text"]
            ]
            self.state["vocab"] = Vocab.build(texts).words
        elif self.modality == "tabular":
            num = [f for f, k in features.items() if k == "numeric"]
            cat = [f for f, k in features.items() if k == "categorical"]
            cols: dict[str, list] = {f: [] for f in features}
            for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=4096):
                for f in features:
                    cols[f] += list(b[f])
            stats = {f: (float(np.nanmean(np.array(cols[f], float))), float(np.nanstd(np.array(cols[f], float)) or 1.0))
                     for f in num}  # fmt: skip
            self.state.update(numeric=num, stats=stats, levels={f: sorted({str(v) for v in cols[f]}) for f in cat})

    def inputs(self, batch: dict) -> Any:
        import torch

        if self.modality == "image":
            return torch.from_numpy(np.ascontiguousarray(batch["image"]))
        if self.modality == "text":
            from augsvc.trainer.models import Vocab

            return Vocab(self.state["vocab"]).encode(list(batch["text"]))
        parts = []
        if self.state["stats"]:
            cols = [
                (np.nan_to_num(np.array(batch[f], float), nan=m) - m) / s for f, (m, s) in self.state["stats"].items()
            ]
            parts.append(np.stack(cols, axis=1))
        for f, levels in self.state["levels"].items():
            parts.append(np.array([[str(v) == lv for lv in levels] for v in batch[f]], dtype=float))
        return torch.from_numpy(np.hstack(parts).astype(np.float32))

    def n_inputs(self) -> int:
        return len(self.state.get("stats", {})) + sum(len(v) for v in self.state.get("levels", {}).values())


def build_model(kind: str, manifest, prep: Prep, width: float, channels: int = 3):
    from augsvc.trainer.models import SmallCNN, TabularMLP, TextCNN

    k = len(manifest.class_names)
    if kind == "cnn":
        return SmallCNN(channels, k, width)
    if kind == "text_cnn":
        return TextCNN(len(prep.state["vocab"]), k, width=width)
    return TabularMLP(prep.n_inputs(), k, width)


def _default_kind(modality: str) -> str:
    return {"image": "cnn", "text": "text_cnn", "tabular": "mlp"}.get(modality) or _no_model(modality)


def _no_model(modality: str) -> str:
    raise AugsvcError(f"the trainer has no classifier for {modality} versions")


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate(model, prep: Prep, store: Store, ref: str, split: str, device, batch_size: int = 256) -> float:
    import torch

    from augsvc.stream import Stream

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=batch_size):
            pred = model(prep.inputs(b).to(device)).argmax(1).cpu().numpy()
            correct += int((pred == b["label"]).sum())
            total += len(pred)
    if total == 0:
        raise AugsvcError(f"{ref}: no rows in split {split!r} to validate on")
    return correct / total


def _optimizer(cfg: TrainConfig, model, trainable_groups: list[list] | None = None):
    import torch

    groups = model.layer_groups()
    n = len(groups)
    params = []
    for i, g in enumerate(groups):
        scale = cfg.base_lr_scale ** (n - 1 - i) if cfg.finetune_from else 1.0
        params.append({"params": g, "lr": cfg.lr * scale, "name": f"group{i}"})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(cfg: TrainConfig, store: Store, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Train; write metrics.json/.csv, best.pt, last.pt, config.yaml and val_accuracy.png into ``out_dir``."""
    import torch
    import yaml

    from augsvc.stream import Stream
    from augsvc.trainer.losses import classification_loss, distillation_loss

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds, v = store.resolve(cfg.data)
    m = store.manifest(ds, v)
    if cfg.train_split not in m.rows_per_split and m.rows_per_split:
        raise AugsvcError(f"{ds}@{v} has no split {cfg.train_split!r} (has {', '.join(m.rows_per_split)})")
    val_ref = cfg.val_data or f"{ds}@{v}"
    kind = cfg.model or _default_kind(m.modality)
    device = _device(cfg.device)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    with torch.random.fork_rng(devices=[]):  # never leak into the caller's global random state
        torch.manual_seed(cfg.seed)
        prep = Prep(m.modality)
        channels = 3
        if cfg.finetune_from:
            ck = _load_checkpoint(cfg.finetune_from)
            prep = Prep(m.modality, ck["prep"])
        else:
            prep.fit(store, f"{ds}@{v}", cfg.train_split, m.features)
        if m.modality == "image":
            first = next(iter(Stream(f"{ds}@{v}", store=store, split=cfg.train_split, batch_size=1, shuffle=False)))
            channels = first["image"].shape[-1]
        model = build_model(kind, m, prep, cfg.width, channels).to(device)
        if cfg.finetune_from:
            state = {k: t for k, t in ck["model"].items() if not k.startswith("head")}
            model.load_state_dict(state, strict=False)
        opt = _optimizer(cfg, model)
        start, history, best = 0, [], -1.0
        if resume and (out / "last.pt").is_file():
            ck = torch.load(out / "last.pt", weights_only=False)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            start, history, best = ck["epoch"] + 1, ck["history"], ck["best"]
            torch.set_rng_state(ck["rng"])
        stale = 0
        for epoch in range(start, cfg.epochs):
            frozen = cfg.finetune_from is not None and epoch < cfg.freeze_epochs
            for i, g in enumerate(model.layer_groups()):
                for p in g:
                    p.requires_grad_(not frozen or i == len(model.layer_groups()) - 1)
            model.train()
            t0, loss_sum, n_seen, correct = time.perf_counter(), 0.0, 0, 0
            mix = cfg.mix.model_dump() if cfg.mix and m.modality == "image" else None
            s = Stream(f"{ds}@{v}", store=store, split=cfg.train_split, batch_size=cfg.batch_size, seed=cfg.seed,
                       epoch=epoch, shuffle=True, recipe=cfg.augment, mix=mix)  # fmt: skip
            for b in s:
                x = prep.inputs(b).to(device)
                y = torch.from_numpy(b["label"]).to(device)
                soft = torch.from_numpy(b["soft_label"]).to(device) if "soft_label" in b else None
                logits = model(x)
                if cfg.distill:
                    if (
                        "teacher_logits" not in b
                        or b["teacher_logits"].dtype == object
                        and b["teacher_logits"][0] is None
                    ):
                        raise AugsvcError(f"{ds}@{v} has no teacher_logits column; build it with a teacher stage first")
                    tl = torch.from_numpy(np.stack(b["teacher_logits"]).astype(np.float32)).to(device)
                    d = cfg.distill
                    loss = distillation_loss(logits, tl, y, temperature=d.temperature, lambda_hard=d.lambda_hard,
                                             lambda_soft=d.lambda_soft, soft=soft)  # fmt: skip
                else:
                    loss = classification_loss(logits, y, soft, cfg.label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(y)
                n_seen += len(y)
                correct += int((logits.argmax(1) == y).sum())
            val_acc = evaluate(model, prep, store, val_ref, cfg.val_split, device)
            row = {"epoch": epoch, "train_loss": loss_sum / max(n_seen, 1), "train_acc": correct / max(n_seen, 1),
                   "val_acc": val_acc, "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
            history.append(row)
            if progress:
                print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                      f"train acc {row['train_acc']:.3f}  val acc {val_acc:.3f}  ({row['seconds']:.1f} s)")  # fmt: skip
            ck = {"model": model.state_dict(), "prep": prep.state, "kind": kind, "width": cfg.width,
                  "class_names": m.class_names, "modality": m.modality, "channels": channels}  # fmt: skip
            if val_acc > best:
                best, stale = val_acc, 0
                torch.save(ck, out / "best.pt")
            else:
                stale += 1
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                        "history": history, "best": best, "rng": torch.get_rng_state()}, out / "last.pt")  # fmt: skip
            _write_reports(out, history)
            if cfg.patience and stale >= cfg.patience:
                break
    from augsvc.trainer.models import count_parameters

    summary = {"run": str(out), "best_val_acc": best, "epochs": len(history), "parameters": count_parameters(model),
               "data": f"{ds}@{v}"}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _load_checkpoint(path: str | Path) -> dict:
    import torch

    p = Path(path)
    p = p / "best.pt" if p.is_dir() else p
    if not p.is_file():
        raise AugsvcError(f"{path}: no checkpoint (expected a run directory with best.pt, or a .pt file)")
    return torch.load(p, weights_only=False)


def _write_reports(out: Path, history: list[dict]) -> None:
    (out / "metrics.json").write_text(json.dumps(history, indent=2))
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    plot_curves({out.name: [h["val_acc"] for h in history]}, out / "val_accuracy.png")


def plot_curves(curves: dict[str, list[float]], path: str | Path, title: str = "validation accuracy") -> Path:
    """A line plot (OpenCV, no matplotlib needed): one line per run, epochs on x, accuracy on y."""
    import cv2

    W, H, L, B = 640, 400, 60, 50
    img = np.full((H, W, 3), 255, np.uint8)
    colours = [(200, 80, 30), (30, 140, 30), (30, 30, 200), (160, 60, 160), (0, 140, 200), (90, 90, 90)]
    n = max((len(c) for c in curves.values()), default=1)
    vals = [v for c in curves.values() for v in c] or [0.0, 1.0]
    lo, hi = max(0.0, min(vals) - 0.05), min(1.0, max(vals) + 0.05)
    hi = hi if hi > lo else lo + 0.1
    cv2.rectangle(img, (L, 20), (W - 20, H - B), (0, 0, 0), 1)
    for t in np.linspace(lo, hi, 5):
        y = int(H - B - (t - lo) / (hi - lo) * (H - B - 20))
        cv2.putText(img, f"{t:.2f}", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, title + " per epoch", (L, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for i, (name, c) in enumerate(curves.items()):
        col = colours[i % len(colours)]
        pts = [(int(L + (j / max(n - 1, 1)) * (W - 20 - L)), int(H - B - (v - lo) / (hi - lo) * (H - B - 20)))
               for j, v in enumerate(c)]  # fmt: skip
        for a, b in zip(pts, pts[1:], strict=False):
            cv2.line(img, a, b, col, 2)
        for p in pts:
            cv2.circle(img, p, 3, col, -1)
        legend = (L + 10 + 150 * (i % 3), H - 25 + 14 * (i // 3))
        cv2.putText(img, name, legend, cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1)
    path = Path(path)
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def compare(run_dirs: list[str | Path], out_png: str | Path) -> list[dict]:
    """One plot and one table over several runs (baseline vs augmented vs distilled)."""
    rows, curves = [], {}
    for d in run_dirs:
        d = Path(d)
        if not (d / "metrics.json").is_file():
            raise AugsvcError(f"{d}: not a run directory (no metrics.json); pass the --out folder of 'augsvc train'")
        hist = json.loads((d / "metrics.json").read_text())
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else {}
        curves[d.name] = [h["val_acc"] for h in hist]
        rows.append({"run": d.name, "best_val_acc": max(h["val_acc"] for h in hist), "epochs": len(hist),
                     "parameters": summary.get("parameters"), "data": summary.get("data")})  # fmt: skip
    plot_curves(curves, out_png)
    return rows
