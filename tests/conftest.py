"""Shared fixtures: small inputs made inside the tests (no ../shared needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def write_image(path: Path, rng: np.random.Generator, size: int = 24, grey: bool = False) -> None:
    import cv2

    shape = (size, size) if grey else (size, size, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """3 classes x 6 images (jpg and png), one byte-identical duplicate, nothing bad."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c in ("cat", "dog", "eel"):
        for i in range(6):
            write_image(root / c / f"{c}{i}.{'jpg' if i % 2 else 'png'}", rng)
    (root / "eel" / "eel_copy.png").write_bytes((root / "cat" / "cat0.png").read_bytes())
    return root


@pytest.fixture(scope="module")
def ray_module():
    """Embedded local Ray with 2 CPUs for one test module (starting it costs 6-8 s, so never per test)."""
    import ray

    from pipelines.executor import ensure_ray

    ensure_ray(2)
    yield
    ray.shutdown()
