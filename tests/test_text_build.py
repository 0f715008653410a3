"""Text recipes in builds: the mutation cap holds through compositions, results do not depend on workers,
and the text preview renders a table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.preview import render_text_preview
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from pipelines.transforms.text.tokenize import Tokens

TEXTS = [
    ("pos", "The film was a delight from the first scene to the very last one, and the cast shone."),
    ("neg", "A dull script, a tired cast and an ending that nobody in the room could explain."),
    ("pos", "Café scenes, naïve heroes and a soundtrack I still hum: lovely."),
    ("neg", "Too long."),
    ("pos", "Wonderful!"),
] * 3


pytestmark = pytest.mark.usefixtures("ray_module")  # embedded Ray, started once per module


@pytest.fixture
def store(tmp_path: Path) -> Store:
    f = tmp_path / "t.tsv"
    f.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, t in TEXTS), encoding="utf-8")
    s = Store(tmp_path / "store")
    ingest(f, name="t", store=s, options=IngestOptions(format="tsv", shard_rows=4), workers=0)
    return s


def rows(store: Store, name: str) -> list[dict]:
    ds, v = store.resolve(name)
    m = store.manifest(ds, v)
    return pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()


RECIPE = {"input": "t", "output": "aug", "seed": 4, "stages": [{"copies": 3, "op": {"op": "sequence", "ops": [
    {"op": "random_delete", "aug_p": 0.5, "aug_max": None},
    {"op": "one_of", "ops": [
        {"op": "keyboard_typo", "aug_p": 0.5, "aug_max": None},
        {"op": "random_swap", "aug_p": 0.5},
    ]},
]}}]}  # fmt: skip


def test_mutation_cap_holds_through_compositions(store: Store) -> None:
    build(load_recipe(RECIPE), store, workers=0)
    originals = {r["sample_id"]: r["text"] for r in rows(store, "t")}
    for r in rows(store, "aug"):
        if not r["lineage"]:
            continue
        orig = originals[json.loads(r["lineage"])[-1]["parent"]]
        n_words = len(Tokens.from_text(orig).words)
        budget = max(1, int(0.2 * n_words))
        n_left = len(Tokens.from_text(r["text"]).words)
        assert n_words - n_left <= budget  # deletions alone never exceed the cap
    uncapped = load_recipe(RECIPE | {"output": "wild", "max_mutation_fraction": None})
    build(uncapped, store, workers=0)
    deleted = [len(Tokens.from_text(originals[json.loads(r["lineage"])[-1]["parent"]]).words)
               - len(Tokens.from_text(r["text"]).words) for r in rows(store, "wild") if r["lineage"]]  # fmt: skip
    assert max(deleted) > 3  # without the cap, aug_p 0.5 deletes far more


def test_text_build_same_bytes_with_0_and_2_workers(store: Store) -> None:
    out = []
    for w in (0, 2):
        rep = build(load_recipe(RECIPE | {"output": f"w{w}"}), store, workers=w)
        out.append((rep.version, [(store.version_dir(f"w{w}", rep.version) / s.path).read_bytes()
                                  for s in rep.manifest.shards]))  # fmt: skip
    assert out[0] == out[1]
    texts = [r["text"] for r in rows(store, "w0")]
    assert "Wonderful!" in texts and all(t.strip() for t in texts)  # one-word texts survive


def test_text_preview_markdown_and_html(store: Store, tmp_path: Path) -> None:
    md = render_text_preview(load_recipe(RECIPE), store, n=3, copies=2)
    assert md.startswith("| class | original | derived |") and md.count("\n") == 5
    html_path = tmp_path / "p.html"
    render_text_preview(load_recipe(RECIPE), store, n=2, copies=1, out=html_path)
    assert "<table>" in html_path.read_text(encoding="utf-8")
