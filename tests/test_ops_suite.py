"""One check suite run over every registered op (image, text and compositions).

Per op: spec round trip (build_op/op_to_spec, and through YAML), same seed gives same output, ``p=0`` is the
identity, image dtype/shape preserved (``random_resized_crop``: shape is its ``size``), records are JSON and
replay through ``apply`` to the same output, inputs are never modified. An op the suite cannot exercise (required
parameters without an example in ``EXAMPLES``, a modality without sample inputs) fails it rather than being skipped.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import shutil
import tempfile
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import yaml

from pipelines.transforms.base import registry
from pipelines.transforms.compose import build_op, op_to_spec
from schemas.errors import AugsvcError

TEXT = "The quick brown fox jumps over the lazy dog. It was not amused!"
SEEDS = range(6)

# Ops with required parameters, and the input modality to test them on ("{tiny_mlm}": a tiny masked LM made once).
EXAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    "contextual_substitute": ({"model_path": "{tiny_mlm}", "top_k": 5}, "text"),
    "contextual_insert": ({"model_path": "{tiny_mlm}", "top_k": 5}, "text"),
    "sequence": ({"ops": [{"op": "hflip"}, {"op": "rotate", "limit": 20}]}, "image"),
    "sometimes": ({"ops": {"op": "affine", "fill_mode": "reflect"}}, "image"),
    "one_of": ({"ops": [{"op": "cutout"}, {"op": "color_jitter"}], "weights": [1, 2]}, "image"),
    "some_of": ({"ops": [{"op": "vflip"}, {"op": "blur"}, {"op": "gamma"}], "n": [1, 2]}, "image"),
}


@functools.cache
def _tiny_mlm() -> str:
    from textgen_fixtures import tiny_mlm

    folder = tempfile.mkdtemp(prefix="ops-suite-mlm-")
    atexit.register(shutil.rmtree, folder, True)
    return str(tiny_mlm(folder))


def _case(name: str) -> tuple[dict[str, Any], str]:
    cls = registry()[name]
    spec, modality = EXAMPLES.get(name, ({}, cls.modality))
    spec = {k: _tiny_mlm() if v == "{tiny_mlm}" else v for k, v in spec.items()}
    return {"op": name, **spec}, modality


def _inputs(modality: str) -> list[Any]:
    if modality == "image":
        rng = np.random.default_rng(123)
        return [rng.integers(0, 256, (37, 45, c), dtype=np.uint8) for c in (1, 3)]
    if modality == "text":
        return [TEXT]
    pytest.fail(f"the op suite has no sample input for modality {modality!r}; add one to _inputs")


def _op(name: str, **update: Any):
    spec, modality = _case(name)
    spec = {**spec, "p": 1.0, **update}
    try:
        return build_op(spec), _inputs(modality)
    except AugsvcError as e:
        if "missing required key" in str(e):
            pytest.fail(f"{name} has required params; add an example spec to EXAMPLES ({e})")
        raise


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


OPS = list(registry())


@pytest.mark.parametrize("name", OPS)
def test_spec_round_trip_and_yaml(name):
    op, _ = _op(name)
    spec = op_to_spec(op)
    assert spec["op"] == name
    assert build_op(spec) == op
    text = yaml.safe_dump(spec, sort_keys=False)
    assert build_op(yaml.safe_load(text)) == op
    assert build_op(json.loads(json.dumps(spec))) == op


@pytest.mark.parametrize("name", OPS)
def test_same_seed_same_output(name):
    op, inputs = _op(name)
    for x in inputs:
        for seed in SEEDS:
            out1, rec1 = op(x, np.random.default_rng(seed))
            out2, rec2 = op(x, np.random.default_rng(seed))
            assert _same(out1, out2)
            assert rec1 == rec2


@pytest.mark.parametrize("name", OPS)
def test_p_zero_is_identity(name):
    op, inputs = _op(name, p=0.0)
    for x in inputs:
        before = copy.deepcopy(x)
        out, rec = op(x, np.random.default_rng(0))
        assert rec is None
        assert _same(out, before)


@pytest.mark.parametrize("name", OPS)
def test_output_type_and_input_untouched(name):
    op, inputs = _op(name)
    for x in inputs:
        before = copy.deepcopy(x)
        for seed in SEEDS:
            out, _ = op(x, np.random.default_rng(seed))
            assert _same(x, before), "the op modified its input in place"
            if isinstance(x, np.ndarray):
                assert out.dtype == np.uint8
                expected = (*op.size, x.shape[2]) if name == "random_resized_crop" else x.shape
                assert out.shape == expected
            else:
                assert isinstance(out, type(x))


@pytest.mark.parametrize("name", OPS)
def test_record_is_json_and_replays(name):
    op, inputs = _op(name)
    for x in inputs:
        for seed in SEEDS:
            out, rec = op(x, np.random.default_rng(seed))
            assert rec is not None and rec["op"] == name
            rec = json.loads(json.dumps(rec))  # records must survive JSON exactly
            assert _same(op.apply(x, rec["params"]), out)


@pytest.mark.parametrize("name", [n for n in OPS if registry()[n].modality == "image"])
def test_image_op_changes_rgb_image(name):
    op, inputs = _op(name)
    rgb = inputs[1]
    assert any(not _same(op(rgb, np.random.default_rng(s))[0], rgb) for s in SEEDS)


@pytest.mark.parametrize("name", ["hue", "saturation"])
def test_colour_ops_are_identity_on_grey(name):
    op, inputs = _op(name)
    grey = inputs[0]
    for seed in SEEDS:
        assert _same(op(grey, np.random.default_rng(seed))[0], grey)
