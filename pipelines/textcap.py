"""The recipe-level mutation cap for text, applied to any op tree (compositions included).

``apply_capped(op, text, rng, max_fraction)`` sets a per-call budget of ``text_budget(text, max_fraction)`` edits
(see ``pipelines.transforms.text.budget``) in a context variable; every text op called inside, however deeply
nested in ``sequence``/``one_of``/``some_of``/``sometimes``, draws at most the edits left and spends what it used.
Records are unchanged (the cap only limits what ``sample`` draws), so ``apply`` replays them exactly.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import numpy as np

_LEFT: ContextVar[list[int] | None] = ContextVar("augsvc_text_budget", default=None)


def current_budget() -> list[int] | None:
    """The mutable ``[edits left]`` box of the innermost ``apply_capped`` call, or None outside one."""
    return _LEFT.get()


def apply_capped(op: Any, text: str, rng: np.random.Generator, *, max_fraction: float) -> tuple[str, Any]:
    from pipelines.transforms.text.budget import text_budget

    token = _LEFT.set([text_budget(text, max_fraction)])
    try:
        return op(text, rng)
    finally:
        _LEFT.reset(token)
