"""Layers you can read from the package names: schemas <- generators <- pipelines <- augsvc.

Every import statement in the four packages (at module level or inside a function) may only name a package of
its own layer or a lower one; importing the contract (schemas) loads no numba, OpenCV or torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["schemas", "generators", "pipelines", "augsvc"]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_no_import_goes_up_a_layer(package: str) -> None:
    rank = LAYERS.index(package)
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top in _imports(path):
            if top in LAYERS and LAYERS.index(top) > rank:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from pipelines.store import Store\n")
    assert _imports(f) == [(2, "pipelines")]


def test_importing_the_contract_loads_no_heavy_library() -> None:
    code = (
        "import sys, schemas.recipe, schemas.manifest, schemas.arrow, schemas.imagecodec, schemas.hashing, "
        "schemas.validation, schemas.suggest, schemas.catalogue\n"
        "heavy = [m for m in ('numba', 'cv2', 'torch', 'transformers', 'ray') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_augsvc_is_light() -> None:
    code = "import sys, augsvc\nprint(','.join(m for m in ('numba', 'cv2', 'torch', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
