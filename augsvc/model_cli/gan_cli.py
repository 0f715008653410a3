"""``augsvc models train-gan VERSION --out DIR``: train the class-conditional GAN on a version's training split.

Only typer is imported at start-up; torch loads inside the command (``generators.gan.train``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from schemas.errors import AugsvcError


def load_images(store: Any, ref: str, split: str = "train") -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Every row of ``split`` of an image version, read through :class:`augsvc.stream.Stream` in storage order:
    (uint8 (n, H, W, C), int64 labels (n,), class names, ``name@version``). Rows of several sizes are resized to a
    square of the largest side (at most 64), with a warning. AugsvcError for a non-image version, an unknown split,
    or an unlabelled row."""
    from augsvc import api
    from augsvc.stream import Stream

    store = api.open_store(store)
    m = api.show(ref, store=store)
    full = f"{m.dataset}@{m.version}"
    if m.modality != "image":
        raise AugsvcError(f"{full} holds {m.modality} rows; the GAN trains on image versions")
    imgs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for b in Stream(full, store=store, split=split, shuffle=False, batch_size=512, columns=["image", "label"]):
        im = b["image"]
        imgs.extend(im if isinstance(im, list) else list(im))
        labels.append(b["label"])
    if not imgs:
        raise AugsvcError(f"{full} has no rows in split {split!r}")
    y = np.concatenate(labels)
    if (y < 0).any():
        raise AugsvcError(f"{full}: {int((y < 0).sum())} rows of split {split!r} have no label; the GAN needs labels")
    shapes = {i.shape for i in imgs}
    if len(shapes) > 1:
        import cv2

        s = min(64, max(max(h, w) for h, w, _ in shapes))
        c = max(sh[2] for sh in shapes)
        warnings.warn(f"{full}: images of {len(shapes)} sizes; resized to {s}x{s} for the GAN", stacklevel=2)
        fixed = []
        for im in imgs:
            r = cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA).reshape(s, s, im.shape[2])
            fixed.append(np.repeat(r, 3, axis=2) if r.shape[2] < c else r)
        imgs = fixed
    return np.stack(imgs), y.astype(np.int64), list(m.class_names), full


def _kept(out: str, epochs: int) -> str:
    """What an interrupted ``train-gan`` leaves: the last finished epoch in ``OUT/last.pt``."""
    from augsvc.interrupt import checkpoint_epoch

    last = Path(out) / "last.pt"
    epoch = checkpoint_epoch(last) if last.is_file() else None
    if epoch is None:
        return f"no epoch had finished, nothing kept in {out}"
    return f"{last} holds epoch {epoch + 1} of {epochs} (gan.pt: the last sample grid's epoch)"


def register(app: typer.Typer) -> None:
    """Add ``train-gan`` to the ``augsvc models`` sub-app."""

    @app.command("train-gan")
    def train_gan_cmd(
        version: Annotated[str, typer.Argument(help="Image version: NAME, NAME@VERSION or NAME@TAG.")],
        out: Annotated[str, typer.Option("--out", help="Output folder (gan.pt, last.pt, samples/, losses.png).")],
        split: Annotated[str, typer.Option("--split", help="Split to train on.")] = "train",
        epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 100,
        batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        size: Annotated[
            int | None,
            typer.Option("--size", help="Train at this square side (8..64; default: the images' side, at most 64)."),
        ] = None,  # fmt: skip
        g_width: Annotated[int, typer.Option("--g-width", help="Generator channels at full resolution.")] = 16,
        d_width: Annotated[int, typer.Option("--d-width", help="Discriminator channels at full resolution.")] = 16,
        aux_weight: Annotated[
            float,
            typer.Option(
                "--aux-weight", help="Weight of the auxiliary classification loss (0: projection conditioning only)."
            ),
        ] = 0.3,  # fmt: skip
        diversity_weight: Annotated[
            float,
            typer.Option(
                "--diversity-weight", help="Mode-seeking term against samples that ignore the latent (0: off)."
            ),
        ] = 0.0,  # fmt: skip
        sample_every: Annotated[int, typer.Option("--sample-every", help="Epochs between sample grids.")] = 10,
        device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
        threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt.")] = False,
        store: Annotated[str | None, typer.Option("--store", help="Store root.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary, no progress bar.")] = False,
    ):
        """Train a class-conditional GAN on a version's images (for the 'gan' generator stage)."""
        from pydantic import ValidationError

        from generators.gan.train import GanTrainConfig, train_gan

        try:
            cfg = GanTrainConfig(
                epochs=epochs, batch_size=batch_size, seed=seed, size=size, g_width=g_width, d_width=d_width,
                sample_every=sample_every, device=device, threads=threads, aux_weight=aux_weight,
                diversity_weight=diversity_weight,
            )  # fmt: skip
        except ValidationError as e:
            err = e.errors()[0]
            raise AugsvcError(f"train-gan: --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
        from augsvc.interrupt import on_interrupt
        from augsvc.progress import step_progress

        X, y, names, ref = load_images(store, version, split)
        hint = (
            "fewer --epochs, a smaller --split or a GPU (--device cuda) shortens it; Ctrl-C keeps every finished epoch"
        )
        with on_interrupt(lambda: _kept(out, epochs)), step_progress("train-gan", quiet=as_json, hint=hint) as report:
            summary = train_gan(X, y, names, out, cfg, resume=resume, progress=report, data_ref=ref)
        if as_json:
            typer.echo(json.dumps(summary))
        else:
            typer.echo(
                f"GAN trained on {summary['images']} images of {ref} ({split}), {summary['epochs']} epochs, "
                f"{summary['steps']} steps, {summary['train_seconds']:.0f} s on {summary['device']}\n"
                f"checkpoint {summary['checkpoint']} (sha256 {summary['content_sha256'][:16]}); samples in "
                f"{Path(out) / 'samples'}; losses {Path(out) / 'losses.png'}"
            )
