"""One check suite over every registered generator (as the op suite runs over every op): counts match the plan
and never shrink a class, the same seed gives the same rows, labels/payloads/parents/lineage are valid, and
construction only stores parameters (a YAML round trip gives an equal generator)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from generator_cases import CASES

from generators import build_generator, generator_names
from generators.base import Generated

# every registered method (generators whose suite case needs a model they train themselves take longer; all run
# in CI)
METHODS = generator_names()


def case(method: str, tmp_path: Path):
    if method not in CASES:
        pytest.fail(f"generator {method!r} has no case in tests/generator_cases.py CASES for the shared suite; add one")
    params, data = CASES[method](tmp_path)
    return build_generator(params), data


def run(params, data, label: int, n: int, seed: int) -> Generated:
    model = params.load() if params.model_backed else None
    return params.fit(data, model).generate(label, n, np.random.default_rng(seed))


@pytest.mark.parametrize("method", METHODS)
def test_generator_contract(method: str, tmp_path: Path) -> None:
    params, data = case(method, tmp_path)
    # construction only stores parameters: the spec round-trips
    spec = params.model_dump(mode="json")
    assert build_generator(json.loads(json.dumps(spec))) == params
    params.check_data(data.modality, data.class_names, data.features)
    if data.class_names:
        counts = {c: int((data.y == i).sum()) for i, c in enumerate(data.class_names)}
    else:
        counts = {"": len(data.y)}
    need = params.targets(counts)
    assert need and all(n > 0 for n in need.values()), "the suite case must ask for rows"
    assert set(need) <= set(counts)
    for cname, n in need.items():
        label = data.class_names.index(cname) if data.class_names else -1
        a = run(params, data, label, n, seed=11)
        b = run(params, data, label, n, seed=11)
        # counts: exact, except methods documented to round (adasyn), which stay within 10%
        assert abs(len(a) - n) <= (max(1, n // 10) if method == "adasyn" else 0)
        # same seed, same rows
        assert len(a) == len(b) and a.parents == b.parents and a.info == b.info
        assert all(
            np.array_equal(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
            for x, y in zip(a.X, b.X, strict=True)
        )
        # payloads have the input's form
        assert np.asarray(a.X).shape[1:] == np.asarray(data.X).shape[1:]
        if data.modality == "image":
            assert np.asarray(a.X).dtype == np.uint8
        # parents are rows of the fitted data; info is JSON
        assert all(0 <= j < len(data.y) for p in a.parents for j in p)
        json.dumps(a.info)
        c = run(params, data, label, n, seed=12)
        differs = a.parents != c.parents or a.info != c.info
        differs = differs or any(
            not np.array_equal(np.asarray(x, object), np.asarray(y, object)) for x, y in zip(a.X, c.X, strict=False)
        )
        assert differs, "another seed should give other rows"


def test_every_generator_is_in_the_suite() -> None:
    assert {"smote", "borderline", "adasyn", "smotenc", "smoten", "gan", "backtranslate", "lambada"} <= set(METHODS)
    assert set(METHODS) <= set(CASES), f"methods without a suite case: {sorted(set(METHODS) - set(CASES))}"
