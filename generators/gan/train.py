"""Training the class-conditional GAN, its checkpoints, sample grids and loss plot.

:func:`train_gan` trains on uint8 images (n, H, W, C) with integer labels: hinge loss plus an auxiliary
classification loss (``aux_weight``), Adam (betas 0, 0.9), an
exponential moving average of the generator weights (the one sampled and saved), DiffAugment on every image the
discriminator sees. Images larger than 64 pixels (or not square) are resized to a square of at most 64 with a
warning.

Files in the output folder:

- ``gan.pt``: the checkpoint the ``gan`` generator loads: EMA generator weights, ``class_names``, ``image_shape``
  (trained H, W, C), ``source_shape`` (the data's), ``channels``, network sizes, the training config and
  ``content_sha256`` (sha256 over the metadata's canonical JSON and every weight's name, dtype, shape and bytes;
  checked on every load, and the id a recipe's version id depends on);
- ``last.pt``: everything ``--resume`` needs (both networks, the EMA copy, optimisers, the torch generator state),
  written after every epoch (atomically, like ``gan.pt``: a kill mid-write leaves the previous file); a resumed
  run gives the same weights as an uninterrupted one (CPU);
- ``samples/epoch_NNNN.png`` (a row of samples per class from fixed latents, every ``sample_every`` epochs and at
  the end), ``losses.png``, ``metrics.json``, ``summary.json``.

Determinism: initial weights come from torch's generator seeded with ``seed`` inside
:func:`generators.runtime.seeded_session` (the caller's global state and threads are untouched); latents and
DiffAugment draws from an explicit ``torch.Generator``; the batch order of epoch ``e`` from
``numpy.random.default_rng([seed, e])``; on CUDA ``torch.use_deterministic_algorithms`` is on while training
(restored afterwards; CUDA results still depend on the GPU model). Same data, config and seed
give the same checkpoint on CPU.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from generators.progress import PlainSteps, StepFn
from generators.runtime import default_threads, load_checkpoint, resolve_device, save_checkpoint, seeded_session
from schemas.errors import AugsvcError
from schemas.hashing import canonical_json

FORMAT = "augsvc-gan"
FORMAT_VERSION = 1
MAX_SIDE = 64
MIN_SIDE = 8
GRID_TAG = 0x6A1D  # seeds the fixed latents of the sample grids


class GanTrainConfig(BaseModel):
    """Every option of ``augsvc models train-gan`` with its default (sized for ~50 images per class on a CPU)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(100, ge=1, description="passes over the training images")
    batch_size: int = Field(32, ge=2)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    z_dim: int = Field(64, ge=1, description="latent size")
    g_width: int = Field(16, ge=4, description="generator channels at full resolution (x2 per upsampling)")
    d_width: int = Field(16, ge=4, description="discriminator channels at full resolution (x2 per downsampling)")
    ema: float = Field(0.999, ge=0, lt=1, description="decay of the moving average of generator weights")
    aux_weight: float = Field(0.3, ge=0, description="weight of the auxiliary classification loss (AC-GAN); 0: "
                              "projection conditioning only")  # fmt: skip
    diversity_weight: float = Field(0.0, ge=0, description="mode-seeking term (MSGAN): penalise samples of one "
                                    "class that do not change with the latent")  # fmt: skip
    diff_augment: bool = Field(True, description="DiffAugment translation + cutout before the discriminator")
    size: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE, description="train at this square side (default: the "
                             "data's side, at most 64)")  # fmt: skip
    seed: int = Field(0, ge=0)
    sample_every: int = Field(10, ge=1, description="epochs between sample grids and gan.pt updates")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads (default: the cores, at most 8)")


def fit_images(images: np.ndarray, side: int | None = None) -> tuple[np.ndarray, int]:
    """Images as the GAN trains on them: square, side <= 64 (resized with a warning otherwise). Returns
    (uint8 (n, s, s, C), s)."""
    import cv2

    n, h, w, c = images.shape
    s = side or min(max(h, w), MAX_SIDE)
    if s < MIN_SIDE:
        raise AugsvcError(f"images of {h}x{w} are too small for the GAN (at least {MIN_SIDE}x{MIN_SIDE})")
    if (h, w) == (s, s):
        return images, s
    warnings.warn(f"GAN: resizing {h}x{w} images to {s}x{s} (the GAN works on squares of 8 to 64 pixels)",
                  stacklevel=2)  # fmt: skip
    out = np.empty((n, s, s, c), np.uint8)
    for i in range(n):
        interp = cv2.INTER_AREA if s < max(h, w) else cv2.INTER_LINEAR
        out[i] = cv2.resize(images[i], (s, s), interpolation=interp).reshape(s, s, c)
    return out, s


# -- checkpoints ---------------------------------------------------------------------------------------------------


def content_sha256(meta: dict, state: dict) -> str:
    """sha256 over the canonical JSON of ``meta`` and each tensor's name, dtype, shape and bytes (sorted by name)."""
    import torch

    h = hashlib.sha256(canonical_json(meta))
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _meta_of(ck: dict) -> dict:
    return {k: v for k, v in ck.items() if k not in ("generator", "content_sha256")}


def read_gan_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict of a ``train-gan`` folder (its ``gan.pt``) or a ``.pt`` file, content hash verified.

    Raises AugsvcError when there is no such file, it is not a GAN checkpoint, or its content changed."""

    p = Path(path)
    p = p / "gan.pt" if p.is_dir() else p
    if not p.is_file():
        raise AugsvcError(f"{path}: no GAN checkpoint (train one with 'augsvc models train-gan VERSION --out DIR' "
                          "and give DIR or DIR/gan.pt)")  # fmt: skip
    ck = load_checkpoint(p, what="GAN checkpoint", fix="retrain it with 'augsvc models train-gan' or restore it")
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise AugsvcError(f"{p}: not a GAN checkpoint of 'augsvc models train-gan' (an 'augsvc train' run is a "
                          "classifier: give it as gate_checkpoint)")  # fmt: skip
    if ck.get("format_version", 0) > FORMAT_VERSION:
        raise AugsvcError(f"{p}: GAN checkpoint format {ck['format_version']} is newer than this augsvc reads "
                          f"({FORMAT_VERSION}); upgrade augsvc")  # fmt: skip
    got = content_sha256(_meta_of(ck), ck["generator"])
    if got != ck.get("content_sha256"):
        rec = str(ck.get("content_sha256"))[:16]
        raise AugsvcError(f"{p}: content sha256 {got[:16]} differs from the recorded {rec}; the file was changed or "
                          "damaged, retrain or restore it")  # fmt: skip
    return ck


def build_generator_net(ck: dict) -> Any:
    """The (EMA) generator network of a checkpoint dict, weights loaded, in eval mode on the CPU."""
    from generators.gan.nets import GanGenerator

    side, _, channels = ck["image_shape"]
    g = GanGenerator(side, channels, len(ck["class_names"]), ck["z_dim"], ck["g_width"])
    g.load_state_dict(ck["generator"])
    return g.eval()


# -- training ------------------------------------------------------------------------------------------------------


def train_gan(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    out_dir: str | Path,
    config: GanTrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool | StepFn = True,
    data_ref: str | None = None,
) -> dict:
    """Train the GAN on ``images`` uint8 (n, H, W, C) (C 1 or 3) with ``labels`` int (n,) in ``[0, len(class_names))``;
    write ``gan.pt``, ``last.pt``, sample grids, ``losses.png``, ``metrics.json``, ``summary.json`` into ``out_dir``.

    ``resume=True`` continues from ``out_dir/last.pt`` (same data and config required). ``progress``: a reporter
    ``report(step, total_steps, epoch=..., loss_d=..., loss_g=...)`` called after every step, True for plain lines
    on stderr every 10 s (``generators.progress.PlainSteps``), False for none. Returns the summary dict (checkpoint
    path, content sha256, epochs, steps, seconds, device). Raises AugsvcError on bad input."""
    cfg = config or GanTrainConfig()
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise AugsvcError(f"GAN training needs uint8 images (n, H, W, 1 or 3), got {images.dtype} {images.shape}")
    if len(images) != len(labels) or len(images) < 2:
        raise AugsvcError(f"GAN training needs at least 2 images with one label each ({len(images)} images, "
                          f"{len(labels)} labels)")  # fmt: skip
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise AugsvcError(
            f"labels must be class indices in [0, {len(class_names)}); got {labels.min()}..{labels.max()}"
        )
    device = resolve_device(cfg.device)
    source_shape = list(images.shape[1:])
    x, side = fit_images(images, cfg.size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    with seeded_session(cfg.seed, device, threads=cfg.threads or default_threads(), deterministic=True):
        return _train(x, labels, class_names, out, cfg, device, side, source_shape, resume, progress, data_ref)


def _train(x, labels, class_names, out, cfg, device, side, source_shape, resume, progress, data_ref) -> dict:
    import torch
    import torch.nn.functional as F

    from generators.gan.nets import GanDiscriminator, GanGenerator, diff_augment, from_uint8

    k, c = len(class_names), x.shape[-1]
    G = GanGenerator(side, c, k, cfg.z_dim, cfg.g_width).to(device)
    D = GanDiscriminator(side, c, k, cfg.d_width).to(device)
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(0.0, 0.9))
    gen = torch.Generator().manual_seed(cfg.seed)
    start, step, history, seconds = 0, 0, [], 0.0
    data_sha = hashlib.sha256(x.tobytes() + labels.tobytes()).hexdigest()
    if resume and (out / "last.pt").is_file():
        st = load_checkpoint(out / "last.pt", map_location=device, what="resume checkpoint", restore_rng=device,
                             fix="delete it to start again without --resume")  # fmt: skip
        from schemas.resume import config_changes, refuse_changed

        old = {"data_sha256": st["data_sha256"], **st["config"]}
        new = {"data_sha256": data_sha, **cfg.model_dump(exclude={"epochs", "device", "threads"})}
        refuse_changed(out, config_changes(old, new, ignore=("epochs", "device", "threads")), what="GAN training",
                       advice="use the same data and config, another --out, or drop --resume")  # fmt: skip
        G.load_state_dict(st["G"])
        D.load_state_dict(st["D"])
        G_ema.load_state_dict(st["G_ema"])
        opt_g.load_state_dict(st["opt_g"])
        opt_d.load_state_dict(st["opt_d"])
        gen.set_state(st["gen"])
        start, step, history, seconds = st["epoch"] + 1, st["step"], st["history"], st["seconds"]
    xt = from_uint8(x).to(device)
    yt = torch.from_numpy(labels).to(device)
    n, bs = len(x), min(cfg.batch_size, len(x))
    steps_per_epoch = n // bs
    # fixed latents for the grids: 8 per class, from the seed alone
    grid_z = torch.from_numpy(np.random.default_rng([cfg.seed, GRID_TAG]).standard_normal((8 * k, cfg.z_dim)))
    grid_y = torch.arange(k).repeat_interleave(8)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "class_names": list(class_names),
            "image_shape": [side, side, c], "source_shape": source_shape, "channels": c, "z_dim": cfg.z_dim,
            "g_width": cfg.g_width, "data": data_ref, "data_sha256": data_sha,
            "config": cfg.model_dump(exclude={"device", "threads"})}  # fmt: skip
    aug = (lambda t: diff_augment(t, gen)) if cfg.diff_augment else (lambda t: t)

    def ema_update() -> None:
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                be.copy_(b)

    bar = _Steps(progress, step + (cfg.epochs - start) * steps_per_epoch)
    with bar:
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            sums = np.zeros(4)
            G.train()
            for b in range(steps_per_epoch):
                idx = torch.from_numpy(order[b * bs : (b + 1) * bs]).to(device)
                real, y = xt[idx], yt[idx]
                z = torch.randn(len(idx), cfg.z_dim, generator=gen).to(device)
                with torch.no_grad():
                    fake = G(z, y)
                (d_real, c_real), d_fake = D.scores(aug(real), y), D(aug(fake), y)
                loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
                if cfg.aux_weight:
                    loss_d = loss_d + cfg.aux_weight * F.cross_entropy(c_real, y)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                z = torch.randn(len(idx), cfg.z_dim, generator=gen).to(device)
                half = len(idx) // 2
                if cfg.diversity_weight:  # pairs (i, i + half) share a label and differ in z
                    y = torch.cat([y[:half], y[:half], y[2 * half :]])
                fake = G(z, y)
                s_fake, c_fake = D.scores(aug(fake), y)
                loss_g = -s_fake.mean()
                if cfg.aux_weight:
                    loss_g = loss_g + cfg.aux_weight * F.cross_entropy(c_fake, y)
                if cfg.diversity_weight:  # mode seeking (Mao et al. 2019): image distance per latent distance
                    ratio = (fake[:half] - fake[half : 2 * half]).abs().mean() / (
                        z[:half] - z[half : 2 * half]
                    ).abs().mean()
                    loss_g = loss_g + cfg.diversity_weight / (ratio + 1e-5)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                step += 1
                ema_update()
                vals = (loss_d.item(), loss_g.item(), d_real.mean().item(), d_fake.mean().item())
                sums += vals
                bar.advance(step, epoch, cfg.epochs, vals[0], vals[1])
            seconds += time.perf_counter() - t0
            row = dict(zip(("loss_d", "loss_g", "d_real", "d_fake"), (sums / steps_per_epoch).round(5).tolist(),
                           strict=True))  # fmt: skip
            history.append({"epoch": epoch, "step": step, **row, "seconds": round(time.perf_counter() - t0, 3)})
            last = epoch == cfg.epochs - 1
            if (epoch + 1) % cfg.sample_every == 0 or last:
                weights = {k_: v.detach().cpu().clone() for k_, v in G_ema.state_dict().items()}
                ck = {**meta, "epoch": epoch, "steps": step, "generator": weights}
                ck["content_sha256"] = content_sha256(_meta_of(ck), ck["generator"])
                save_checkpoint(out / "gan.pt", ck)
                with torch.no_grad():
                    grid = G_ema(grid_z.float().to(device), grid_y.to(device))
                write_grid(grid, class_names, out / "samples" / f"epoch_{epoch + 1:04d}.png")
                plot_losses(history, out / "losses.png")
                (out / "metrics.json").write_text(json.dumps(history, indent=1))
            save_checkpoint(out / "last.pt", {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                                              "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                              "gen": gen.get_state(), "epoch": epoch, "step": step, "history": history,
                                              "seconds": seconds, "data_sha256": data_sha,
                                              "config": cfg.model_dump(exclude={"epochs", "device", "threads"})},
                            rng_device=device)  # fmt: skip
    if start >= cfg.epochs and not (out / "gan.pt").is_file():
        raise AugsvcError(f"{out}: nothing to resume into (last.pt is at epoch {start}, epochs is {cfg.epochs})")
    ck = read_gan_checkpoint(out / "gan.pt")
    summary = {"out": str(out), "checkpoint": str(out / "gan.pt"), "content_sha256": ck["content_sha256"],
               "epochs": len(history), "steps": step, "train_seconds": round(seconds, 1), "device": str(device),
               "image_shape": ck["image_shape"], "source_shape": source_shape, "classes": list(class_names),
               "images": n, "data": data_ref}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


class _Steps:
    """Step reports to ``progress``: a callable ``report(step, total, **fields)`` (``augsvc models train-gan`` passes
    ``augsvc.progress.step_progress``'s: a bar on a terminal, plain lines with ETA otherwise), True for
    ``generators.progress.PlainSteps`` lines on stderr, False for none."""

    def __init__(self, progress: bool | StepFn, total: int) -> None:
        self.total = total
        if callable(progress):
            self.report: StepFn | None = progress
        elif progress:
            self.report = PlainSteps(
                "train-gan", hint="fewer --epochs, fewer images or a GPU (--device cuda) shortens it"
            )
        else:
            self.report = None

    def __enter__(self) -> _Steps:
        return self

    def advance(self, step: int, epoch: int, epochs: int, d: float, g: float) -> None:
        if self.report is not None:
            self.report(step, self.total, epoch=f"{epoch + 1}/{epochs}", loss_d=d, loss_g=g)

    def __exit__(self, *exc) -> None:
        return None


# -- pictures (OpenCV, no plotting library needed) ----------------------------------------------------------------


def write_grid(images: Any, class_names: list[str], path: str | Path, per_row: int = 8) -> Path:
    """A PNG with one row of ``per_row`` images per class (``images`` float NCHW in [-1, 1] ordered by class, or
    uint8 NHWC), class names on the left, small images enlarged to at least 56 pixels."""
    import cv2

    from generators.gan.nets import to_uint8

    imgs = images if isinstance(images, np.ndarray) else to_uint8(images)
    n, h, w, c = imgs.shape
    scale = max(1, -(-56 // h))
    H, W = h * scale, w * scale
    rows = -(-n // per_row)
    label_w = 90
    canvas = np.full((rows * (H + 4) + 4, label_w + per_row * (W + 4) + 4, 3), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, per_row)
        im = cv2.resize(imgs[i], (W, H), interpolation=cv2.INTER_NEAREST).reshape(H, W, c)
        im = np.repeat(im, 3, axis=2) if c == 1 else im
        y0, x0 = 4 + r * (H + 4), label_w + 4 + col * (W + 4)
        canvas[y0 : y0 + H, x0 : x0 + W] = im
    for r in range(rows):
        name = class_names[r] if r < len(class_names) and n == len(class_names) * per_row else ""
        cv2.putText(canvas, name[:12], (4, 4 + r * (H + 4) + H // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas[:, :, ::-1])
    return path


def plot_losses(history: list[dict], path: str | Path) -> Path:
    """Discriminator and generator losses per epoch (hinge plus the weighted auxiliary terms) as a PNG line plot."""
    import cv2

    W, H, L, B = 640, 360, 60, 40
    img = np.full((H, W, 3), 255, np.uint8)
    curves = {"loss_d": (200, 60, 30), "loss_g": (30, 60, 200)}
    vals = [h[k] for h in history for k in curves] or [0.0, 1.0]
    lo, hi = min(vals), max(vals)
    hi = hi if hi > lo else lo + 1.0
    n = len(history)
    cv2.rectangle(img, (L, 20), (W - 20, H - B), (0, 0, 0), 1)
    for t in np.linspace(lo, hi, 5):
        y = int(H - B - (t - lo) / (hi - lo) * (H - B - 20))
        cv2.putText(img, f"{t:.2f}", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    title = f"GAN losses per epoch (1..{n}): hinge + weighted auxiliary terms"
    cv2.putText(img, title, (L, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for i, (key, col) in enumerate(curves.items()):
        pts = [(int(L + (j / max(n - 1, 1)) * (W - 20 - L)), int(H - B - (h[key] - lo) / (hi - lo) * (H - B - 20)))
               for j, h in enumerate(history)]  # fmt: skip
        for a, b in zip(pts, pts[1:], strict=False):
            cv2.line(img, a, b, col, 1)
        cv2.putText(img, key, (L + 10 + 120 * i, H - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1)
    path = Path(path)
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path
