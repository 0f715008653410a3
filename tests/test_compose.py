"""Compositions replay exactly; recipe specs fail with readable errors naming the key."""

from __future__ import annotations

import json
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import yaml

from pipelines.rng import rng_for
from pipelines.transforms.compose import build_op, op_to_spec
from schemas.errors import AugsvcError

NESTED = {
    "op": "sequence",
    "ops": [
        {"op": "hflip"},
        {"op": "one_of", "ops": [{"op": "rotate", "limit": 40}, {"op": "rand_augment", "n": 3}]},
        {
            "op": "some_of",
            "n": [0, 3],
            "random_order": True,
            "ops": [
                {"op": "cutout", "p": 0.7},
                {"op": "sometimes", "ops": [{"op": "gamma"}, {"op": "blur"}]},
                {"op": "color_jitter"},
                {"op": "random_resized_crop", "size": [24, 20]},
            ],
        },
    ],
}


def _img(c: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (31, 29, c), dtype=np.uint8)


def _nodes(record):
    """Every record in a nested record tree (skipped children excluded)."""
    if record is None:
        return []
    params = record["params"]
    children = params.get("children", []) + ([params["child"]] if "child" in params else [])
    return [record] + [n for c in children for n in _nodes(c)]


@pytest.mark.parametrize("channels", [1, 3])
def test_nested_composition_replays_exactly(channels):
    op = build_op(NESTED)
    x = _img(channels)
    seen = set()
    for i in range(40):
        out, rec = op(x, rng_for(11, 0, 0, f"sample-{i}"))
        rec = json.loads(json.dumps(rec))
        np.testing.assert_array_equal(op.apply(x, rec["params"]), out)
        seen |= {n["op"] for n in _nodes(rec)}
    # the seeds above exercise every branch of the tree
    assert seen >= {"sequence", "hflip", "one_of", "rotate", "rand_augment", "some_of", "sometimes"}
    assert seen >= {"cutout", "color_jitter", "random_resized_crop"}


def test_nested_spec_round_trips_through_yaml():
    op = build_op(NESTED)
    spec = op_to_spec(op)
    assert build_op(yaml.safe_load(yaml.safe_dump(spec))) == op
    assert spec["ops"][2]["ops"][3]["size"] == [24, 20]


def test_one_of_follows_weights():
    op = build_op({"op": "one_of", "ops": [{"op": "hflip"}, {"op": "vflip", "p": 1}], "weights": [0, 1]})
    for seed in range(10):
        _, rec = op(_img(3), np.random.default_rng(seed))
        assert rec["params"]["index"] == 1 and rec["params"]["child"]["op"] == "vflip"


def test_some_of_counts_and_order():
    ops = [{"op": "hflip", "p": 1}, {"op": "vflip", "p": 1}, {"op": "gamma"}, {"op": "blur"}]
    fixed = build_op({"op": "some_of", "ops": ops, "n": 2})
    ranged = build_op({"op": "some_of", "ops": ops, "n": [1, 3]})
    counts = set()
    for seed in range(30):
        rec = fixed(_img(3), np.random.default_rng(seed))[1]["params"]
        assert len(rec["indices"]) == 2 and rec["indices"] == sorted(rec["indices"])
        assert [c["op"] for c in rec["children"]] == [ops[i]["op"] for i in rec["indices"]]
        counts.add(len(ranged(_img(3), np.random.default_rng(seed))[1]["params"]["indices"]))
    assert counts == {1, 2, 3}


def test_sometimes_takes_one_op_and_skips_by_p():
    op = build_op({"op": "sometimes", "p": 0.5, "ops": {"op": "hflip", "p": 1}})
    assert len(op.ops) == 1
    skipped = [op(_img(1), np.random.default_rng(s))[1] is None for s in range(40)]
    assert 5 < sum(skipped) < 35


def test_replay_rejects_mismatched_record():
    op = build_op({"op": "sequence", "ops": [{"op": "hflip"}]})
    with pytest.raises(AugsvcError, match="does not match"):
        op.apply(_img(3), {"children": [{"op": "vflip", "params": {}}]})


def _error(spec) -> str:
    with pytest.raises(AugsvcError) as info:
        build_op(spec)
    msg = str(info.value)
    assert "pydantic" not in msg and "validation error" not in msg.lower()
    return msg


def test_typo_key_names_key_and_allowed_keys():
    msg = _error({"op": "rotate", "limt": 30})
    assert "'limt'" in msg and "rotate" in msg
    assert "allowed keys" in msg and "limit" in msg and "fill_mode" in msg
    assert "did you mean 'limit'" in msg


def test_unknown_op_lists_known_ops():
    msg = _error({"op": "rotat", "limit": 30})
    assert "'rotat'" in msg and "known ops" in msg
    for name in ("rotate", "hflip", "one_of", "cutout"):
        assert name in msg


def test_bad_values_name_the_key_and_allowed_values():
    assert "'limit'" in _error({"op": "rotate", "limit": -5})
    msg = _error({"op": "zoom", "scale_range": [1.2, 0.8]})
    assert "'scale_range'" in msg and "lo <= hi" in msg
    msg = _error({"op": "affine", "fill_mode": "wrap"})
    assert "'fill_mode'" in msg and "'reflect'" in msg and "'nearest'" in msg
    assert "'ksize_range'" in _error({"op": "blur", "ksize_range": [4, 6]})


def test_several_errors_give_one_line_each():
    msg = _error({"op": "cutout", "fill": 300, "holes": 3})
    lines = msg.splitlines()
    assert len(lines) == 2
    assert any("'fill'" in line for line in lines) and any("'holes'" in line for line in lines)


def test_nested_errors_say_where():
    msg = _error({"op": "sequence", "ops": [{"op": "hflip"}, {"op": "one_of", "ops": [{"op": "rotate", "x": 1}]}]})
    assert msg.startswith("sequence.ops[1]: one_of.ops[0]: op 'rotate': unknown key 'x'")


def test_composition_level_errors():
    assert "'ops'" in _error({"op": "sequence"})
    assert "weights" in _error({"op": "one_of", "ops": [{"op": "hflip"}], "weights": [1, 2]})
    assert "n must" in _error({"op": "some_of", "ops": [{"op": "hflip"}], "n": 2})
    assert "'op' key" in _error({"limit": 3})
    assert "mapping" in _error(["rotate"])


# Fusion: runs of value ops share one table, runs of flips/warps one warpAffine (see base.Chain).
VALUE_RUN = {
    "op": "sequence",
    "ops": [
        {"op": "brightness", "p": 0.8},
        {"op": "channel_shift", "p": 0.8},
        {"op": "contrast", "p": 0.8},
        {"op": "gamma", "p": 0.8},
        {"op": "cutout", "p": 0.5},
        {"op": "brightness", "p": 0.8},
        {"op": "color_jitter", "p": 0.5},
        {"op": "channel_shift", "p": 0.8},
        {"op": "cutout", "p": 0.5},
    ],
}


def _one_by_one(op, x, children):
    """Apply each child's record on its own, in order (no fusion)."""
    for child, rec in zip(op.ops, children, strict=True):
        if rec is not None:
            x = child.apply(x, rec["params"])
    return x


@pytest.mark.parametrize("channels", [1, 3])
def test_fused_value_ops_equal_applying_them_one_by_one(channels):
    op = build_op(VALUE_RUN)
    x = _img(channels)
    before = x.copy()
    for i in range(40):
        out, rec = op(x, rng_for(3, 0, 0, f"v-{i}"))
        np.testing.assert_array_equal(out, _one_by_one(op, x, rec["params"]["children"]))
        np.testing.assert_array_equal(op.apply(x, json.loads(json.dumps(rec))["params"]), out)
        np.testing.assert_array_equal(x, before)  # in-place steps only touch the chain's own intermediates
        assert out is not x


def test_fused_value_ops_record_the_same_params_as_unfused_calls():
    op = build_op(VALUE_RUN)
    x = _img(3)
    for i in range(10):
        out, rec = op(x, rng_for(3, 0, 0, f"r-{i}"))
        rng = rng_for(3, 0, 0, f"r-{i}")  # the same draws, op by op, on materialized intermediates
        y, children = x, []
        for child in op.ops:
            y, r = child(y, rng)
            children.append(r)
        assert children == rec["params"]["children"]
        np.testing.assert_array_equal(y, out)


GEOMETRY_RUN = {
    "op": "sequence",
    "ops": [
        {"op": "hflip"},
        {"op": "vflip"},
        {"op": "rotate", "limit": 30, "p": 0.7},
        {"op": "affine", "fill_mode": "reflect", "p": 0.7},
        {"op": "hflip"},
    ],
}


@pytest.mark.parametrize("channels", [1, 3])
def test_fused_geometry_replays_exactly_and_stays_close_to_one_by_one(channels):
    op = build_op(GEOMETRY_RUN)
    x = _img(channels)
    for i in range(40):
        out, rec = op(x, rng_for(5, 0, 0, f"g-{i}"))
        np.testing.assert_array_equal(op.apply(x, json.loads(json.dumps(rec))["params"]), out)
        children = rec["params"]["children"]
        warps = [c for c in children if c is not None and c["op"] in ("rotate", "affine")]
        if not warps:  # flips only: exact cv2.flip (or a copy when they cancel out)
            np.testing.assert_array_equal(out, _one_by_one(op, x, children))
            assert out is not x
        elif len(warps) == 1 and children[3] is None:  # flips around one warp: one resampling either way
            diff = np.abs(out.astype(int) - _one_by_one(op, x, children))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.02


def test_flips_that_cancel_out_give_a_copy():
    op = build_op({"op": "sequence", "ops": [{"op": "hflip", "p": 1}, {"op": "hflip", "p": 1}]})
    x = _img(3)
    out, _ = op(x, np.random.default_rng(0))
    assert out is not x
    np.testing.assert_array_equal(out, x)


def test_replay_is_exact_when_a_nested_composition_skips_itself() -> None:
    """A skipped ``sometimes`` between two geometric ops ends the fused run in a build; replay must do the same."""
    op = build_op({"op": "sequence", "ops": [{"op": "rotate"},
                   {"op": "sometimes", "p": 0.5, "ops": [{"op": "hflip", "p": 1.0}]}, {"op": "shift"}]})  # fmt: skip
    x = (np.random.default_rng(0).random((32, 40, 3)) * 255).astype(np.uint8)
    skipped = 0
    for s in range(40):
        y, rec = op(x, rng_for(1, 0, s, f"k{s}"))
        skipped += rec["params"]["children"][1] is None
        assert np.array_equal(y, op.apply(x, rec["params"])), s
    assert 0 < skipped < 40
