"""The ``gan`` generator: class-conditional samples from a ``train-gan`` checkpoint, with a quality gate.

Recipe stage::

    generator: {method: gan, checkpoint: runs/gan, gate_checkpoint: runs/cnn, min_confidence: 0.9, n_per_class: 200}

- Row ``j`` of a ``generate(label, n, rng)`` call is made from the latent ``z_j = latent_scale * N(0, 1)^z_dim``
  drawn from ``numpy.random.default_rng([latent_seed, j])``, where ``latent_seed = rng.integers(2**63)``; its
  lineage records ``latent_seed``, ``latent_index`` (j), ``checkpoint_sha256`` and, with a gate, ``gate_confidence``
  (so a row can be regenerated from its lineage alone). Rows do not depend on ``batch_size``.
- **Quality gate** (``gate_checkpoint``: a run directory of ``augsvc train`` on the real data): the classifier
  scores every candidate; ``min_confidence`` keeps only those whose probability of the intended class is at least
  that, drawing more candidates (up to ``max_candidates_factor`` x the rows asked for) to still deliver ``n``.
  ``report()`` gives per class: candidates scored, rows kept, the fraction of kept rows the classifier assigns to
  the intended class (argmax), their mean confidence, and the Frechet distance between the classifier's
  penultimate features of the real rows and of the kept rows (FID's formula in a small CNN's feature space; with
  tens of rows per class it is noisy and biased upwards: compare runs on the same data, not across datasets).
- **Off-class refusal**: with a gate, a class whose kept rows the gate assigns to the intended class (argmax) less
  often than ``min_intended_fraction`` (default 0.5) fails the build, naming the class, its intended fraction and
  the class the gate sees instead, so a build never publishes rows its own gate calls another class. Set
  ``min_confidence`` (the gate then keeps only rows it confirms), train the GAN longer, or lower
  ``min_intended_fraction`` (0: publish anyway). Any class below ``WARN_INTENDED_BELOW`` (0.8) that is published
  gets a line in ``report()["warnings"]``, which ``augsvc build`` prints as ``WARNING``; without a gate the report
  says that nothing was checked.
- ``identity()`` holds the checkpoint's content sha256 (and the gate file's sha256), so another model gives another
  version id.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from generators import register_generator
from generators.base import FitData, Fitted, Generated, Generator
from generators.progress import task_progress
from schemas.errors import AugsvcError
from schemas.hashing import file_sha256

WARN_INTENDED_BELOW = 0.8  # a published class below this intended fraction gets a warning in the report


def latent(latent_seed: int, index: int, z_dim: int, scale: float = 1.0) -> np.ndarray:
    """The latent vector (z_dim,) float32 of row ``index`` of a draw seeded ``latent_seed``."""
    return (np.random.default_rng([latent_seed, index]).standard_normal(z_dim) * scale).astype(np.float32)


class LoadedGan:
    """What :meth:`GanParams.load` returns: the generator network on its device, the checkpoint metadata, and the
    gate classifier (``generators.nets.classifier.LoadedModel``) or None."""

    def __init__(self, net: Any, meta: dict, device: Any, gate: Any = None) -> None:
        self.net, self.meta, self.device, self.gate = net, meta, device, gate


@register_generator("gan", module="generators.gan.generator")
class GanParams(Generator):
    """Class-conditional GAN samples from an 'augsvc models train-gan' checkpoint, with a classifier quality gate.

    Recipe ``generator:`` parameters."""

    modalities: ClassVar[tuple[str, ...]] = ("image",)
    model_backed: ClassVar[bool] = True

    method: Literal["gan"] = "gan"
    checkpoint: str = Field(description="train-gan output folder (its gan.pt) or a gan.pt file")
    latent_scale: float = Field(1.0, gt=0, le=2, description="latents are N(0,1) x this (below 1: truncation-like, "
                                "more typical, less varied samples)")  # fmt: skip
    batch_size: int = Field(256, ge=1, description="images generated (and scored) per forward pass")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    gate_checkpoint: str | None = Field(None, description="'augsvc train' run directory (or .pt) of a classifier "
                                        "trained on the real data: scores every sample")  # fmt: skip
    min_confidence: float | None = Field(None, ge=0, le=1, description="keep only samples the gate gives at least "
                                         "this probability of the intended class")  # fmt: skip
    max_candidates_factor: float = Field(8.0, ge=1, description="with min_confidence: draw at most this many "
                                         "candidates per row asked for, then fail")  # fmt: skip
    min_intended_fraction: float = Field(0.5, ge=0, le=1, description="with a gate: fail the build when less than "
                                         "this fraction of a class's rows are that class by the gate's argmax (0: "
                                         "publish anyway, with a warning)")  # fmt: skip

    @model_validator(mode="after")
    def _gate(self) -> GanParams:
        if self.min_confidence is not None and not self.gate_checkpoint:
            raise ValueError("min_confidence needs gate_checkpoint (the classifier that scores the samples)")
        return self

    # -- driver side -----------------------------------------------------------------------------------------------

    def _meta(self) -> dict:
        from generators.gan.train import read_gan_checkpoint

        ck = read_gan_checkpoint(self.checkpoint)
        return {k: v for k, v in ck.items() if k != "generator"}

    def _gate_file(self) -> Path:
        p = Path(self.gate_checkpoint or "")
        p = p / "best.pt" if p.is_dir() else p
        if not p.is_file():
            raise AugsvcError(f"gate_checkpoint {self.gate_checkpoint}: no classifier checkpoint (expected an 'augsvc "
                              "train' run directory with best.pt, or a .pt file)")  # fmt: skip
        return p

    def check_data(self, modality: str, class_names: list[str], features: dict[str, str]) -> None:
        """Refuse a version that is not images, or whose classes differ from the checkpoint's (or the gate's);
        channels and size are checked against the rows in :meth:`fit`."""
        super().check_data(modality, class_names, features)
        meta = self._meta()
        if list(class_names) != list(meta["class_names"]):
            raise AugsvcError(f"generator gan: checkpoint {self.checkpoint} was trained on classes "
                              f"{meta['class_names']}, the version has {list(class_names)}; train a GAN on this "
                              "version (augsvc models train-gan)")  # fmt: skip
        if self.gate_checkpoint:
            from generators.nets.classifier import read_checkpoint

            g = read_checkpoint(self._gate_file())
            if g.get("modality") != "image" or list(g.get("class_names", [])) != list(class_names):
                raise AugsvcError(f"generator gan: gate_checkpoint {self.gate_checkpoint} is a {g.get('modality')} "
                                  f"classifier of classes {g.get('class_names')}, not an image classifier of "
                                  f"{list(class_names)}")  # fmt: skip

    def identity(self) -> dict[str, Any]:
        """The checkpoint's content sha256 and the gate file's sha256 (enter the version id)."""
        out = {"checkpoint_sha256": self._meta()["content_sha256"]}
        if self.gate_checkpoint:
            out["gate_sha256"] = file_sha256(self._gate_file())
        return out

    # -- task side -------------------------------------------------------------------------------------------------

    def load(self) -> LoadedGan:
        """Load the generator (and the gate classifier) once; on CUDA when asked or (auto) present."""
        from generators.gan.train import build_generator_net, read_gan_checkpoint
        from generators.runtime import resolve_device

        device = resolve_device(self.device, what="generator gan: device")
        ck = read_gan_checkpoint(self.checkpoint)
        net = build_generator_net(ck).to(device)
        gate = None
        if self.gate_checkpoint:
            from generators.nets.classifier import load_model

            gate = load_model(self._gate_file(), str(device))
            if gate.meta.get("modality") != "image" or gate.meta.get("channels", 3) != ck["channels"]:
                raise AugsvcError(f"gate_checkpoint {self.gate_checkpoint}: a {gate.meta.get('modality')} model for "
                                  f"{gate.meta.get('channels')}-channel input; the GAN makes {ck['channels']}-channel "
                                  "images")  # fmt: skip
        return LoadedGan(net, {k: v for k, v in ck.items() if k != "generator"}, device, gate)

    def fit(self, data: FitData, model: Any = None) -> Fitted:
        """Check the rows against the checkpoint (channels, size) and prepare the gate's real-feature statistics."""
        loaded = model if model is not None else self.load()
        meta = loaded.meta
        if data.modality != "image":
            raise AugsvcError(f"generator gan works on image rows, not {data.modality}")
        if list(data.class_names) != list(meta["class_names"]):
            raise AugsvcError(f"generator gan: checkpoint {self.checkpoint} was trained on classes "
                              f"{meta['class_names']}, the rows have {list(data.class_names)}")  # fmt: skip
        shape = list(data.X.shape[1:]) if len(data.X) else list(meta["source_shape"])
        if shape[-1] != meta["channels"]:
            raise AugsvcError(f"generator gan: checkpoint {self.checkpoint} makes {meta['channels']}-channel images, "
                              f"the rows have {shape[-1]} channels; train a GAN on this version")  # fmt: skip
        if shape != list(meta["source_shape"]) and shape != list(meta["image_shape"]):
            raise AugsvcError(f"generator gan: checkpoint {self.checkpoint} was trained on {meta['source_shape'][0]}x"
                              f"{meta['source_shape'][1]} images, the rows are {shape[0]}x{shape[1]}; train a GAN "
                              "on this version or ingest with --resize")  # fmt: skip
        return _GanFitted(self, loaded, data, tuple(shape))


class _GanFitted(Fitted):
    def __init__(self, params: GanParams, loaded: LoadedGan, data: FitData, shape: tuple[int, ...]) -> None:
        self.p, self.m, self.shape = params, loaded, shape
        self.data = data
        self.stats: dict[int, dict[str, Any]] = {}
        self.real_feats: dict[int, np.ndarray] = {}

    def _sample(self, label: int, seed: int, start: int, n: int) -> np.ndarray:
        import cv2
        import torch

        from generators.gan.nets import to_uint8

        z = np.stack([latent(seed, start + j, self.m.meta["z_dim"], self.p.latent_scale) for j in range(n)])
        with torch.no_grad():
            out = to_uint8(self.m.net(torch.from_numpy(z).to(self.m.device),
                                      torch.full((n,), label, dtype=torch.long, device=self.m.device)))  # fmt: skip
        h, w, c = self.shape
        if out.shape[1:3] != (h, w):  # the GAN trained on a resized copy: back to the version's size
            out = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, c) for im in out])
        return out

    def _score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Gate probabilities (n, K) and penultimate features (n, d) or None when the model has no ``features``."""
        import torch

        from generators.nets.classifier import logits_for_rows

        lm = self.m.gate
        logits = logits_for_rows(lm, {"image": images}, self.p.batch_size)
        probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
        feats = None
        if hasattr(lm.model, "features"):
            dev = next(lm.model.parameters()).device
            parts = []
            with torch.no_grad():
                for i in range(0, len(images), self.p.batch_size):
                    x = torch.from_numpy(np.ascontiguousarray(images[i : i + self.p.batch_size])).to(dev)
                    parts.append(lm.model.features(x).float().cpu().numpy())
            feats = np.concatenate(parts) if parts else None
        return probs, feats

    def generate(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        seed = int(rng.integers(2**63))
        h = self.m.meta["content_sha256"]
        if n <= 0:
            return Generated(np.zeros((0, *self.shape), np.uint8), [], [])
        kept: list[np.ndarray] = []
        info: list[dict] = []
        feats: list[np.ndarray] = []
        argmax_ok = 0
        seen_as = np.zeros(len(self.data.class_names), np.int64)  # kept rows per gate argmax
        drawn = 0
        limit = int(np.ceil(n * (self.p.max_candidates_factor if self.p.min_confidence is not None else 1)))
        report = task_progress(f"gan {self.data.class_names[label]}", unit="rows")
        while len(info) < n:
            if drawn >= limit:
                rate = len(info) / max(drawn, 1)
                raise AugsvcError(
                    f"generator gan: class {self.data.class_names[label]!r}: only {len(info)} of {drawn} samples "
                    f"({rate:.1%}) reach min_confidence {self.p.min_confidence}; {n} were asked for. Lower "
                    "min_confidence, raise max_candidates_factor, or train the GAN longer"
                )
            want = n - len(info)
            m = min(self.p.batch_size, limit - drawn, max(want, int(np.ceil(want * 1.25)) if self.p.min_confidence
                                                           else want))  # fmt: skip
            imgs = self._sample(label, seed, drawn, m)
            if self.m.gate is None:
                keep = np.arange(m)
                conf = None
            else:
                probs, f = self._score(imgs)
                conf = probs[:, label]
                keep = np.arange(m)
                if self.p.min_confidence is not None:
                    keep = np.flatnonzero(conf >= self.p.min_confidence)[: n - len(info)]
                argmax_ok += int((probs[keep].argmax(1) == label).sum())
                seen_as += np.bincount(probs[keep].argmax(1), minlength=len(seen_as))
                if f is not None:
                    feats.append(f[keep])
            for j in keep:
                row = {"latent_seed": seed, "latent_index": drawn + int(j), "checkpoint_sha256": h}
                if conf is not None:
                    row["gate_confidence"] = round(float(conf[j]), 6)
                info.append(row)
            kept.append(imgs[keep])
            drawn += m
            report(len(info), n, candidates=drawn)  # rows kept of n
        X = np.concatenate(kept)
        if self.m.gate is not None:
            self._check_intended(label, argmax_ok, len(X), seen_as)
        st = self.stats.setdefault(label, {"candidates": 0, "kept": 0, "argmax_ok": 0, "conf_sum": 0.0, "feats": [],
                                           "seen_as": np.zeros(len(seen_as), np.int64)})  # fmt: skip
        st["candidates"] += drawn
        st["kept"] += len(X)
        if self.m.gate is not None:
            st["argmax_ok"] += argmax_ok
            st["conf_sum"] += float(sum(r["gate_confidence"] for r in info))
            st["feats"] += feats
            st["seen_as"] += seen_as
        return Generated(X, [() for _ in range(len(X))], info)

    def _check_intended(self, label: int, ok: int, kept: int, seen_as: np.ndarray) -> None:
        """Refuse a class whose kept rows the gate mostly calls another class (below ``min_intended_fraction``)."""
        frac = ok / max(kept, 1)
        floor = self.p.min_intended_fraction
        if kept and floor > 0 and frac < floor:
            names = self.data.class_names
            other = int(np.argmax(np.where(np.arange(len(seen_as)) == label, -1, seen_as)))
            raise AugsvcError(
                f"generator gan: class {names[label]!r}: the quality gate assigns {frac:.0%} of its {kept} rows to "
                f"{names[label]!r} ({int(seen_as[other])} look like {names[other]!r}), below min_intended_fraction "
                f"{floor}; nothing was published. Set min_confidence (e.g. 0.9) so the gate keeps only rows it "
                "confirms, train the GAN longer, or set min_intended_fraction: 0 to publish them anyway (with a "
                "warning)"
            )

    def _warnings(self) -> list[str]:
        if self.m.gate is None:
            return []
        out = []
        names = self.data.class_names
        for label, st in sorted(self.stats.items()):
            if not st["kept"]:
                continue
            frac = st["argmax_ok"] / st["kept"]
            if frac < WARN_INTENDED_BELOW:
                seen = {names[i]: int(c) for i, c in enumerate(st["seen_as"]) if c and i != label}
                top = ", ".join(f"{c} {k}" for c, k in sorted(seen.items(), key=lambda kv: -kv[1])[:3])
                out.append(f"class {names[label]!r}: the gate assigns only {frac:.0%} of its {st['kept']} generated "
                           f"rows to {names[label]!r} (others: {top or '-'}); published because "
                           f"min_intended_fraction is {self.p.min_intended_fraction}")  # fmt: skip
        return out

    def report(self) -> dict[str, Any]:
        """Per class: candidates, kept, and with a gate: ``intended_fraction`` (kept rows whose argmax is the
        intended class), ``mean_confidence`` (mean probability of the intended class over kept rows),
        ``frechet_distance`` (real vs kept rows, gate's penultimate features; null without ``features`` or with
        fewer than 2 rows on a side); ``warnings`` (published classes whose intended fraction is below
        ``WARN_INTENDED_BELOW``), or ``note`` without a gate."""
        out: dict[str, Any] = {"checkpoint_sha256": self.m.meta["content_sha256"], "min_confidence":
                               self.p.min_confidence, "gate": self.p.gate_checkpoint, "classes": {}}  # fmt: skip
        for label, st in sorted(self.stats.items()):
            row: dict[str, Any] = {"candidates": st["candidates"], "kept": st["kept"]}
            if self.m.gate is not None and st["kept"]:
                row["intended_fraction"] = round(st["argmax_ok"] / st["kept"], 4)
                row["mean_confidence"] = round(st["conf_sum"] / st["kept"], 4)
                row["frechet_distance"] = self._frechet(label, st["feats"])
            out["classes"][self.data.class_names[label]] = row
        if self.m.gate is None:
            out["note"] = "no gate_checkpoint: the generated rows were not checked by a classifier"
        if warnings := self._warnings():
            out["warnings"] = warnings
        return out

    def _frechet(self, label: int, feats: list[np.ndarray]) -> float | None:
        if not feats:
            return None
        fake = np.concatenate(feats)
        if label not in self.real_feats:
            real = self.data.X[np.asarray(self.data.y) == label]
            self.real_feats[label] = self._score(real)[1] if len(real) else None
        real = self.real_feats[label]
        if real is None or len(real) < 2 or len(fake) < 2:
            return None
        return round(frechet_distance(real, fake), 4)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature rows ``a`` (n, d) and ``b`` (m, d):
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (the FID formula)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # few rows: singular covariances are expected, the formula still holds
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sa @ sb)
        if not np.isfinite(covmean).all():
            eps = np.eye(len(sa)) * 1e-6
            covmean = linalg.sqrtm((sa + eps) @ (sb + eps))
    return float(max(0.0, mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(np.real(covmean))))
