"""The op interface and registry shared by every transform family.

An op is a pydantic model: its fields are the user-facing parameters (validated at recipe load time, defaults in
one place). ``sample`` draws the concrete parameters from an explicit ``np.random.Generator``; ``apply`` is
deterministic given those parameters and calls pure kernels. ``__call__`` does both and returns the lineage
record ``{"op": name, "params": {...}}`` (or ``None`` when the op's ``p`` coin said skip), so every augmented
sample can be replayed with ``apply`` and audited.

Random draw order is part of the determinism contract: first the ``p`` coin (``rng.random()``), then the
parameters in the order ``sample`` draws them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from augsvc.errors import AugsvcError

OpRecord = dict[str, Any]


class Op(BaseModel):
    """Base class of every op. Subclasses set ``name`` and ``modality`` and implement ``sample``/``apply``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""  # "image" | "text" | "tabular" | "any"
    label_invariant: ClassVar[bool] = True

    p: float = Field(1.0, ge=0.0, le=1.0, description="probability that the op is applied")

    def sample(self, rng: np.random.Generator, x: Any) -> dict[str, Any]:
        """Draw this op's concrete parameters for input ``x`` (JSON-able values only)."""
        return {}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        """Apply the op with concrete parameters; must not modify ``x`` in place."""
        raise NotImplementedError

    def __call__(self, x: Any, rng: np.random.Generator) -> tuple[Any, OpRecord | None]:
        if self.p < 1.0 and rng.random() >= self.p:
            return x, None
        params = self.sample(rng, x)
        return self.apply(x, params), {"op": self.name, "params": params}


_REGISTRY: dict[str, type[Op]] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"op name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Op]]:
    """All registered ops by name (importing the families registers them)."""
    from pipelines import transforms  # noqa: F401  (imports every family)

    return dict(sorted(_REGISTRY.items()))


def get_op_class(name: str) -> type[Op]:
    ops = registry()
    if name not in ops:
        raise AugsvcError(f"unknown op {name!r}; known ops: {', '.join(ops)}")
    return ops[name]
