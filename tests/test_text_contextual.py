"""Contextual (masked-LM) text ops with a tiny BERT made here (no download): determinism, replay, cap, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from textgen_fixtures import MLM_WORDS
from textgen_fixtures import tiny_mlm as make_tiny_mlm

from pipelines.textcap import apply_capped
from pipelines.transforms.compose import build_op, op_to_spec
from schemas.errors import AugsvcError

WORDS = MLM_WORDS


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory) -> str:
    return str(make_tiny_mlm(tmp_path_factory.mktemp("mlm")))


TEXT = "The quick brown fox jumps over the lazy dog. It was not amused!"


@pytest.mark.parametrize("name", ["contextual_substitute", "contextual_insert"])
def test_deterministic_replayable_and_round_trips(tiny_mlm: str, name: str) -> None:
    op = build_op({"op": name, "model_path": tiny_mlm, "aug_p": 0.3, "top_k": 5})
    assert build_op(json.loads(json.dumps(op_to_spec(op)))) == op
    out1, rec1 = op(TEXT, np.random.default_rng(1))
    out2, rec2 = op(TEXT, np.random.default_rng(1))
    assert out1 == out2 and rec1 == rec2 and out1 != TEXT
    assert op.apply(TEXT, rec1["params"]) == out1
    new_words = [w for _, w in rec1["params"].get("replacements", rec1["params"].get("insertions"))]
    assert all(w.lower() in WORDS for w in new_words)
    assert out1.endswith("!") and "." in out1  # punctuation and spacing kept
    skipped, rec = build_op({"op": name, "model_path": tiny_mlm, "p": 0.0})(TEXT, np.random.default_rng(0))
    assert skipped == TEXT and rec is None


def test_mutation_cap_limits_contextual_edits(tiny_mlm: str) -> None:
    op = build_op({"op": "contextual_substitute", "model_path": tiny_mlm, "aug_p": 0.9, "aug_max": None})
    _, rec = apply_capped(op, TEXT, np.random.default_rng(0), max_fraction=0.2)
    assert len(rec["params"]["replacements"]) <= 2  # 12 words -> at most 2 edits


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    op = build_op({"op": "contextual_substitute", "model_path": str(tmp_path / "nope")})
    with pytest.raises(AugsvcError, match="is not a folder; give the save_pretrained"):
        op(TEXT, np.random.default_rng(0))
    (tmp_path / "empty").mkdir()
    op = build_op({"op": "contextual_substitute", "model_path": str(tmp_path / "empty")})
    with pytest.raises(AugsvcError, match="not a loadable masked language model"):
        op(TEXT, np.random.default_rng(0))
