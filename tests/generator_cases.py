"""Test cases for the shared generator suite (``tests/test_generator_suite.py``): one small case per generator method.

A case is ``(recipe generator: mapping, FitData)``; model-backed methods train a tiny model under ``tmp_path`` first
(reused when it is there already). A registered method without a case here FAILS the suite: add one with the
generator (docs/architecture.md, "How to add a generator").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from generators.base import FitData

Case = tuple[dict[str, Any], FitData]


def smote_case(method: str) -> Callable[[Path], Case]:
    """A small imbalanced tabular case (3 classes of 30/12/8 rows) for one method of the SMOTE family."""

    def case(tmp_path: Path) -> Case:
        rng = np.random.default_rng(0)
        y = np.array([0] * 30 + [1] * 12 + [2] * 8)
        if method in ("smotenc", "smoten"):
            colours = np.array(["red", "green", "blue"], dtype=object)[(rng.integers(0, 3, len(y)) + y) % 3]
            sizes = np.array(["s", "m", "l"], dtype=object)[rng.integers(0, 3, len(y))]
            if method == "smoten":
                X = np.stack([colours, sizes], axis=1)
                features = {"colour": "categorical", "size": "categorical"}
            else:
                X = np.stack([rng.normal(y, 1.0), colours], axis=1).astype(object)
                features = {"x": "numeric", "colour": "categorical"}
            data = FitData(X, y, ["a", "b", "c"], "tabular", features)
        else:
            X = np.stack([rng.normal(y * 2.0, 1.0), rng.normal(-y, 1.0)], axis=1).astype(object)
            data = FitData(X, y, ["a", "b", "c"], "tabular", {"x1": "numeric", "x2": "numeric"})
        k = {"n_neighbors": 3} if method == "adasyn" else {"k_neighbors": 3}
        return {"method": method, **k}, data

    return case


def gan_case(tmp_path: Path) -> Case:
    """A tiny trained GAN (one epoch on 3 imbalanced classes of 12x12 grey images)."""
    from generators.gan.train import GanTrainConfig, train_gan

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), [6, 4, 2])
    X = rng.integers(0, 60, (len(y), 12, 12, 1)).astype(np.uint8)
    for i, c in enumerate(y):
        X[i, 4 * c : 4 * c + 4] = 230  # a bright band whose height marks the class
    names = ["a", "b", "c"]
    cfg = GanTrainConfig(epochs=1, batch_size=4, z_dim=8, g_width=4, d_width=4, threads=1)
    train_gan(X, y, names, Path(tmp_path) / "gan-suite", cfg, progress=False)
    params = {"method": "gan", "checkpoint": str(Path(tmp_path) / "gan-suite"), "device": "cpu"}
    return params, FitData(X=X, y=y.astype(np.int64), class_names=names, modality="image")


def lambada_case(tmp_path: Path) -> Case:
    """A tiny LM trained in seconds (``tmp_path/tiny-lm``, reused when present) and 8 sentences per class."""
    from textgen_fixtures import labelled_sentences, tiny_lm

    lm = Path(tmp_path) / "tiny-lm"
    if not (lm / "config.json").is_file():
        tiny_lm(lm)
    texts, y, names = labelled_sentences(per_class=8)
    params = {"method": "lambada", "model": str(lm), "finetune_steps": 20, "n_per_class": 3, "device": "cpu",
              "candidates_factor": 4}  # fmt: skip
    return params, FitData(np.array(texts, dtype=object), y, names, "text")


def backtranslate_case(tmp_path: Path) -> Case:
    """Tiny en <-> xx translators (``tmp_path/tiny-mt-{en-xx,xx-en}``, reused when present), 8 sentences per class."""
    from textgen_fixtures import labelled_sentences, tiny_translator

    models = {}
    for d in ("en-xx", "xx-en"):
        models[d] = Path(tmp_path) / f"tiny-mt-{d}"
        if not (models[d] / "config.json").is_file():
            tiny_translator(models[d], d)
    texts, y, names = labelled_sentences(per_class=8)
    params = {"method": "backtranslate", "forward_model": str(models["en-xx"]),
              "backward_model": str(models["xx-en"]), "n_per_class": 3, "device": "cpu"}  # fmt: skip
    return params, FitData(np.array(texts, dtype=object), y, names, "text")


# method -> case; every registered generator method must have one
CASES: dict[str, Callable[[Path], Case]] = {
    **{m: smote_case(m) for m in ("smote", "borderline", "adasyn", "smotenc", "smoten")},
    "gan": gan_case,
    "lambada": lambada_case,
    "backtranslate": backtranslate_case,
}
