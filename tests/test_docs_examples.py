"""Issue 26 (7): the README, docs and examples can be followed together in one store.

Every command that makes a named version (``augsvc ingest ... --name N``, ``augsvc split N``, ``augsvc
label-subset ... --output N``) is written the same way wherever it appears, so following several examples never
moves ``N@latest`` to a version the others did not mean; every example file loads; every documented long run states
its CPU cost next to a quick variant.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*.yaml"))]


def _commands() -> list[tuple[str, str]]:
    """(file, command) for every ``augsvc ingest|split|label-subset`` line, comments and padding stripped."""
    out = []
    for f in DOCS:
        for line in f.read_text().splitlines():
            m = re.search(r"augsvc (ingest|split|label-subset) [^#`(]*", line)
            if m:
                out.append((f.name, " ".join(m.group(0).split())))
    return out


def _made(cmd: str) -> str | None:
    """The version name a command makes: ``--name N`` / ``--output N`` / the split's dataset."""
    words = cmd.split()
    for flag in ("--name", "--output"):
        if flag in words and words.index(flag) + 1 < len(words):
            return words[words.index(flag) + 1]
    return words[2] if words[1] == "split" and len(words) > 2 else None


def test_every_command_that_makes_a_named_version_is_written_one_way() -> None:
    seen: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for where, cmd in _commands():
        name = _made(cmd)
        if name is None or "NAME" in cmd or name.isupper():
            continue  # placeholders in prose (augsvc label-subset NAME ...)
        seen[(cmd.split()[1], name)][cmd].append(where)
    clashes = {key: dict(forms) for key, forms in seen.items() if len(forms) > 1}
    assert not clashes, f"the same version name made in different ways: {clashes}"
    assert ("split", "flowers") in seen and ("ingest", "flowers") in seen and ("split", "mnist") in seen


def test_every_example_file_loads() -> None:
    from augsvc.trainer.config import load_config
    from augsvc.tune.space import load_space
    from pipelines.recipes import load_recipe

    kinds = defaultdict(list)
    for f in sorted((ROOT / "examples").glob("*.yaml")):
        if f.name.startswith("tune_"):
            load_space(f)
            kinds["space"].append(f.name)
        elif f.name.startswith("train_"):
            load_config(f)
            kinds["train"].append(f.name)
        else:
            load_recipe(f)
            kinds["recipe"].append(f.name)
    assert len(kinds["recipe"]) >= 5 and len(kinds["train"]) >= 10 and len(kinds["space"]) == 2


@pytest.mark.parametrize(
    ("doc", "long_run", "quick"),
    [
        ("docs/trainer.md", "train_flowers_baseline.yaml", "train_flowers_quick.yaml"),
        ("docs/trainer.md", "train_flowers_simclr.yaml", "train_flowers_simclr_quick.yaml"),
        ("docs/gan.md", "train-gan mnist --out runs/gan", "train-gan mnist_lab --out runs/gan_quick"),
    ],
)
def test_long_runs_state_their_cpu_cost_beside_a_quick_variant(doc: str, long_run: str, quick: str) -> None:
    text = (ROOT / doc).read_text()
    assert long_run in text and quick in text, f"{doc}: {long_run} needs a quick variant ({quick})"
    costs = re.findall(r"CPU cost[^\n]*", text)
    assert costs, f"{doc}: no 'CPU cost' line"
    if quick.endswith(".yaml"):
        assert (ROOT / "examples" / quick).is_file()
