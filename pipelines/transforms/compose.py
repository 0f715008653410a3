"""Compositions (sequence, one_of, some_of, sometimes) and building ops from recipe specs.

A spec is a dict ``{"op": name, **params}``; compositions hold their children under ``ops``::

    {"op": "one_of", "ops": [{"op": "rotate", "limit": 30}, {"op": "hflip"}], "weights": [3, 1]}

A composition's record nests its children's records (``None`` for a child whose ``p`` coin said skip)::

    {"op": "sequence", "params": {"children": [{"op": "hflip", "params": {}}, None]}}
    {"op": "one_of", "params": {"index": 1, "child": {...} | None}}
    {"op": "some_of", "params": {"indices": [2, 0], "children": [{...} | None, ...]}}
    {"op": "sometimes", "params": {"children": [...]}}

and ``apply(x, params)`` replays the whole tree. Children draw from the composition's generator in order,
after the composition's own ``p`` coin and choices.

``sequence`` and ``some_of`` run their children through a :class:`~pipelines.transforms.base.Chain`, which
fuses runs of consecutive ops that share a fuser (image flips and warps into one ``warpAffine``, value ops into
one lookup table) and replays records the same way, so replaying the composition's record is exact. A child's
record replayed on its own may differ from the fused result by rounding (e.g. +-1 where a flip was folded
into a warp).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import to_jsonable_python

from pipelines.transforms.base import Chain, Op, OpRecord, get_op_class, register
from schemas.errors import AugsvcError
from schemas.suggest import did_you_mean


def _format_validation_error(name: str, cls: type[Op], err: ValidationError) -> str:
    allowed = ", ".join(cls.model_fields)
    lines = []
    for e in err.errors():
        key = ".".join(str(part) for part in e["loc"])
        if e["type"] == "extra_forbidden":
            close = did_you_mean(str(e["loc"][0]), list(cls.model_fields))
            hint = f" ({close})" if close else ""
            lines.append(f"op {name!r}: unknown key {key!r}{hint}; allowed keys: {allowed}")
        elif e["type"] == "missing":
            lines.append(f"op {name!r}: missing required key {key!r}; allowed keys: {allowed}")
        elif not key:  # a check across several keys
            lines.append(f"op {name!r}: {e['msg'].removeprefix('Value error, ')}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"op {name!r}: key {key!r}: {msg} (got {e['input']!r})")
    return "\n".join(lines)


def build_op(spec: Mapping[str, Any] | Op) -> Op:
    """Turn a recipe spec ``{"op": name, **params}`` into an op (nested specs for compositions).

    Unknown ops, unknown keys and bad values raise :class:`AugsvcError` with one line per problem, naming
    the op, the key and what is allowed.

    >>> build_op({"op": "rotate", "limit": 10}).limit
    10.0
    """
    if isinstance(spec, Op):
        return spec
    if not isinstance(spec, Mapping):
        raise AugsvcError(f"an op spec must be a mapping like {{'op': 'rotate', 'limit': 30}}, got {spec!r}")
    params = dict(spec)
    name = params.pop("op", None)
    if not isinstance(name, str):
        raise AugsvcError(f"op spec {dict(spec)!r} has no 'op' key naming the op")
    cls = get_op_class(name)
    try:
        return cls(**params)
    except ValidationError as e:
        raise AugsvcError(_format_validation_error(name, cls, e)) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Op):
        return op_to_spec(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return to_jsonable_python(value)  # nested models, enums, paths... as JSON types


def op_to_spec(op: Op) -> dict[str, Any]:
    """The spec of ``op``, every parameter spelled out, JSON/YAML-safe: ``build_op(op_to_spec(op)) == op``."""
    spec: dict[str, Any] = {"op": op.name}
    for field in type(op).model_fields:
        spec[field] = _plain(getattr(op, field))
    return spec


def _replay(child: Op, x: Any, record: OpRecord | None) -> Any:
    if record is None:
        return x
    if record.get("op") != child.name:
        raise AugsvcError(f"record for op {record.get('op')!r} does not match child op {child.name!r}")
    return child.apply(x, record["params"])


class _Composition(Op):
    """Base of the compositions: children under ``ops``; ``__call__`` runs them and nests their records."""

    modality: ClassVar[str] = "any"
    ops: list[Op] = Field(min_length=1, description="child ops (specs or op instances)")

    @field_validator("ops", mode="before")
    @classmethod
    def _build_children(cls, v: Any) -> Any:
        if isinstance(v, Mapping | Op):
            v = [v]
        if not isinstance(v, list | tuple):
            return v  # pydantic reports the type error
        children = []
        for i, spec in enumerate(v):
            try:
                children.append(build_op(spec))
            except AugsvcError as e:
                prefix = f"{cls.name}.ops[{i}]: "
                raise AugsvcError("\n".join(prefix + line for line in str(e).splitlines())) from None
        return children

    def _run(self, x: Any, rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def _run_children(self, x: Any, rng: np.random.Generator, children: list[Op]) -> tuple[Any, list]:
        chain = Chain(x)
        records = [chain.call(child, rng) for child in children]
        return chain.result(), records

    def _replay_children(self, x: Any, children: list[Op], records: list) -> Any:
        if len(children) != len(records):
            raise AugsvcError(f"{self.name} record has {len(records)} children for {len(children)} ops")
        chain = Chain(x)
        for child, rec in zip(children, records, strict=True):
            chain.replay(child, rec)
        return chain.result()

    def sample(self, rng: np.random.Generator, x: Any) -> dict[str, Any]:
        return self._run(x, rng)[1]

    def __call__(self, x: Any, rng: np.random.Generator) -> tuple[Any, OpRecord | None]:
        if self.p < 1.0 and rng.random() >= self.p:
            return x, None
        out, params = self._run(x, rng)
        return out, {"op": self.name, "params": params}


@register
class Sequence(_Composition):
    """Run every child in order (each with its own ``p``)."""

    name: ClassVar[str] = "sequence"

    def _run(self, x: Any, rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
        out, records = self._run_children(x, rng, self.ops)
        return out, {"children": records}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        return self._replay_children(x, self.ops, params["children"])


@register
class Sometimes(Sequence):
    """With probability ``p`` (default 0.5) run the children in order; ``ops`` may be one op or a list."""

    name: ClassVar[str] = "sometimes"
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability that the children run")


@register
class OneOf(_Composition):
    """Run exactly one child, chosen with probability proportional to ``weights`` (uniform by default)."""

    name: ClassVar[str] = "one_of"
    weights: list[float] | None = Field(None, description="one non-negative weight per child")

    @model_validator(mode="after")
    def _check_weights(self) -> OneOf:
        if self.weights is not None:
            if len(self.weights) != len(self.ops):
                raise ValueError(f"weights has {len(self.weights)} entries for {len(self.ops)} ops")
            if min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ValueError(f"weights must be >= 0 with a positive sum, got {self.weights}")
        return self

    def _run(self, x: Any, rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
        if self.weights is None:
            index = int(rng.integers(0, len(self.ops)))
        else:
            w = np.asarray(self.weights, dtype=np.float64)
            index = int(rng.choice(len(self.ops), p=w / w.sum()))
        out, rec = self.ops[index](x, rng)
        return out, {"index": index, "child": rec}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        return _replay(self.ops[params["index"]], x, params["child"])


@register
class SomeOf(_Composition):
    """Run ``n`` distinct children (``n`` an int or an ``[lo, hi]`` range drawn per call).

    Chosen children run in their listed order unless ``random_order`` is true.
    """

    name: ClassVar[str] = "some_of"
    n: int | tuple[int, int] = Field(1, description="how many children to run: an int or [lo, hi]")
    random_order: bool = False

    @model_validator(mode="after")
    def _check_n(self) -> SomeOf:
        lo, hi = (self.n, self.n) if isinstance(self.n, int) else self.n
        if not 0 <= lo <= hi <= len(self.ops):
            raise ValueError(f"n must satisfy 0 <= lo <= hi <= {len(self.ops)} (the number of ops), got {self.n}")
        return self

    def _run(self, x: Any, rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
        lo, hi = (self.n, self.n) if isinstance(self.n, int) else self.n
        k = int(rng.integers(lo, hi + 1))
        indices = [int(i) for i in rng.choice(len(self.ops), size=k, replace=False)]
        if not self.random_order:
            indices.sort()
        out, records = self._run_children(x, rng, [self.ops[i] for i in indices])
        return out, {"indices": indices, "children": records}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        return self._replay_children(x, [self.ops[i] for i in params["indices"]], params["children"])
