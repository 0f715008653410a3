"""The op interface and registry shared by every transform family.

An op is a pydantic model: its fields are the user-facing parameters (validated at recipe load time, defaults in
one place). ``sample`` draws the concrete parameters from an explicit ``np.random.Generator``; ``apply`` is
deterministic given those parameters and calls pure kernels. ``__call__`` does both and returns the lineage
record ``{"op": name, "params": {...}}`` (or ``None`` when the op's ``p`` coin said skip), so every augmented
sample can be replayed with ``apply`` and audited.

Random draw order is part of the determinism contract: first the ``p`` coin (``rng.random()``), then the
parameters in the order ``sample`` draws them.

Fusion: an op may name a :class:`Fuser` (``fuser``). A :class:`Chain` (what ``sequence`` and ``some_of`` run their
children through) gives consecutive ops with the same fuser to it as one run, which is applied in one pass
(e.g. flips and warps as one ``warpAffine``, value ops as one lookup table). The chain takes the same steps
when it replays records as when it samples them, so a composition's ``apply`` reproduces its output exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import AugsvcError
from schemas.registry import Registry
from schemas.suggest import did_you_mean

OpRecord = dict[str, Any]


class Op(BaseModel):
    """Base class of every op. Subclasses set ``name`` and ``modality`` and implement ``sample``/``apply``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""  # "image" | "text" | "tabular" | "any"
    label_invariant: ClassVar[bool] = True

    fuser: ClassVar[Fuser | None] = None  # see Chain
    samples_pixels: ClassVar[bool] = True  # False when ``sample`` reads only the input's shape

    p: float = Field(1.0, ge=0.0, le=1.0, description="probability that the op is applied")

    def sample(self, rng: np.random.Generator, x: Any) -> dict[str, Any]:
        """Draw this op's concrete parameters for input ``x`` (JSON-able values only)."""
        return {}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        """Apply the op with concrete parameters; must not modify ``x`` in place."""
        raise NotImplementedError

    def apply_owned(self, x: Any, params: dict[str, Any]) -> Any:
        """``apply`` for an input nobody else holds (a chain's intermediate): it may be modified in place."""
        return self.apply(x, params)

    def __call__(self, x: Any, rng: np.random.Generator) -> tuple[Any, OpRecord | None]:
        if self.p < 1.0 and rng.random() >= self.p:
            return x, None
        params = self.sample(rng, x)
        return self.apply(x, params), {"op": self.name, "params": params}


class Fuser:
    """Runs consecutive ops of one family as one pass. ``start`` and ``extend`` fold an op and its params into
    a state (``extend`` returns ``None`` when the op cannot join); ``run`` applies the state to ``x`` (the
    run's input; ``owned`` when nobody else holds it, so it may be overwritten) and returns a new array."""

    def start(self, op: Op, params: dict[str, Any], x: Any) -> Any:
        raise NotImplementedError

    def extend(self, state: Any, op: Op, params: dict[str, Any], x: Any) -> Any | None:
        raise NotImplementedError

    def run(self, state: Any, x: Any, owned: bool) -> Any:
        raise NotImplementedError


class Chain:
    """Applies ops in order to one input, fusing runs of consecutive ops that share a :class:`Fuser`.

    ``call(op, rng)`` draws (coin, then ``sample``) and applies; ``replay(op, record)`` applies a record. Both
    group the ops the same way: a run ends at an op with another (or no) fuser, at an op that cannot join,
    and before an op whose ``sample`` reads pixels (it needs the run applied first). A run of one op is that
    op's own ``apply``. ``result()`` gives the output (the input itself when every op was skipped).
    Intermediates belong to the chain, so ops after the first one that made a new array get ``apply_owned``.
    """

    __slots__ = ("x", "x0", "owned", "_fuser", "_first", "_state")

    def __init__(self, x: Any) -> None:
        self.x = x
        self.x0 = x
        self.owned = False
        # The pending run: its fuser, its first op and params, and the fuser's state (None while the run has
        # one op, which is then applied by its own ``apply``).
        self._fuser: Fuser | None = None
        self._first: tuple[Op, dict[str, Any]] | None = None
        self._state: Any = None

    def result(self) -> Any:
        """Apply the pending run (if any) and return the current value."""
        if self._fuser is not None:
            if self._state is None:
                self._apply(*self._first)
            else:
                self.x = self._fuser.run(self._state, self.x, self.owned)
                self.owned = True
            self._fuser = self._first = self._state = None
        return self.x

    def _take(self, out: Any) -> None:
        """Make ``out`` the current value; it is ours unless it is (or may view) the chain's input."""
        if out is not self.x:
            x0 = self.x0
            self.owned = not (isinstance(out, np.ndarray) and isinstance(x0, np.ndarray)) or not np.may_share_memory(
                out, x0
            )
            self.x = out

    def _apply(self, op: Op, params: dict[str, Any]) -> None:
        self._take(op.apply_owned(self.x, params) if self.owned else op.apply(self.x, params))

    def _push(self, op: Op, params: dict[str, Any]) -> None:
        fuser = op.fuser
        if fuser is not None and self._fuser is fuser and not op.samples_pixels:
            state = self._state
            if state is None:
                state = fuser.start(*self._first, self.x)
            state = fuser.extend(state, op, params, self.x)
            if state is not None:
                self._state = state
                return
        self.result()
        if fuser is None:
            self._apply(op, params)
        else:
            self._fuser, self._first = fuser, (op, params)

    def call(self, op: Op, rng: np.random.Generator) -> OpRecord | None:
        """Run ``op`` (its coin, ``sample`` and apply; compositions run themselves) and return its record."""
        if type(op).__call__ is not Op.__call__:  # compositions and ops with their own call
            out, record = op(self.result(), rng)
            self._take(out)
            return record
        if op.p < 1.0 and rng.random() >= op.p:
            return None
        params = op.sample(rng, self.result() if op.samples_pixels else self.x)
        self._push(op, params)
        return {"op": op.name, "params": params}

    def replay(self, op: Op, record: OpRecord | None) -> None:
        """Apply ``record`` (``None``: skipped) of ``op``, grouping as :meth:`call` did."""
        composite = type(op).__call__ is not Op.__call__
        if record is None:
            if composite:
                self.result()  # call() ended the pending run before the composition skipped itself: so do we
            return
        if record.get("op") != op.name:
            raise AugsvcError(f"record for op {record.get('op')!r} does not match child op {op.name!r}")
        if composite:
            self._take(op.apply(self.result(), record["params"]))
        else:
            self._push(op, record["params"])


def _unknown_op(name: str, known: list[str]) -> str:
    close = did_you_mean(name, known)
    return f"unknown op {name!r}" + (f"; {close}" if close else "") + f" (known ops: {', '.join(known)})"


# every op by name; importing ``pipelines.transforms`` (the family) registers them all
OPS: Registry[type[Op]] = Registry("op", families=("pipelines.transforms",), unknown=_unknown_op)


def register(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to :data:`OPS` under ``cls.name`` (TypeError when it has none or the name is
    taken by another class)."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    return OPS.register(cls.name, obj=cls)


def registry() -> dict[str, type[Op]]:
    """All registered ops by name, sorted (importing the families registers them)."""
    return OPS.load_all()


def get_op_class(name: str) -> type[Op]:
    """The op class registered as ``name``; AugsvcError with the closest names when unknown."""
    return OPS.get(name)


def op_catalogue() -> dict[str, dict[str, Any]]:
    """Every registered op: ``{name: {modality, doc, params: {name: {default, type, required, description}}}}``."""
    from schemas.catalogue import first_line, params_of

    return {
        name: {"modality": cls.modality, "doc": first_line(cls.__doc__), "params": params_of(cls)}
        for name, cls in registry().items()
    }
