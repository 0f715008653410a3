"""Layers you can read from the package names: schemas <- generators <- pipelines <- augsvc.

Every import statement in the four packages (at module level or inside a function) may only name a package of
its own layer or a lower one; importing the contract (schemas) loads no numba, OpenCV or torch. Inside ``augsvc``
the Python API is the boundary: only it and the stream family import the store, the build runner and ingest (the
service reads through the API too)."""

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


# the store and the jobs that write versions: reached from augsvc/ only through augsvc/api.py
BEHIND_THE_API = (
    "pipelines.store", "pipelines.storefs", "pipelines.storelock", "pipelines.storecheck", "pipelines.storeshards",
    "pipelines.storestaging", "pipelines.storework", "pipelines.store_housekeeping", "pipelines.runner",
    "pipelines.ingest", "pipelines.split", "pipelines.labelsubset",
)  # fmt: skip
MAY_IMPORT_THEM = ("augsvc/api.py", "augsvc/stream*.py")


def _modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``path``; ``from pipelines import storefs`` names pipelines.storefs."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _behind_the_api(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in BEHIND_THE_API)


def test_only_the_api_reaches_the_store_runner_and_ingest() -> None:
    bad = []
    for path in sorted((ROOT / "augsvc").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if any(rel.match(pattern) for pattern in MAY_IMPORT_THEM):
            continue
        bad += [f"{rel}:{line} imports {mod}" for line, mod in _modules(path) if _behind_the_api(mod)]
    assert not bad, "go through augsvc.api instead:\n" + "\n".join(bad)


def test_api_boundary_check_catches_a_direct_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "from pipelines import storefs\ndef f():\n    from pipelines.runner import build\nimport pipelines.plan\n"
    )
    assert [m for _, m in _modules(f) if _behind_the_api(m)] == ["pipelines.storefs", "pipelines.runner.build"]


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
