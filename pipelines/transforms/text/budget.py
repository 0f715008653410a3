"""The recipe-level mutation cap for text: a chain of text ops edits at most ``max_fraction`` of the words.

EDA (Wei & Zou, 2019) found gains fall off once more than about 20% of a text is mutated, so the default is 0.2.
The budget is ``text_budget(original, max_fraction)`` edits, counted on the original text; each text op draws
at most the edits still left (``TextOp.sample(..., budget=left)``) and reports what it spent
(``TextOp.edit_count(params)``). Ops that are not text ops (compositions, ``any`` ops) run unchanged.

>>> text_budget("The quick brown fox jumps over the lazy dog.", 0.2)
1
>>> text_budget("", 0.2)
0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.transforms.base import Op, OpRecord
from pipelines.transforms.text.base import TextOp
from pipelines.transforms.text.tokenize import split_words

DEFAULT_MAX_FRACTION = 0.2


def text_budget(text: str, max_fraction: float = DEFAULT_MAX_FRACTION) -> int:
    """Edits allowed on ``text``: ``max_fraction`` of its words, rounded down but at least one (if it has words).

    ``max_fraction=0`` allows none; ``1`` allows one edit per word.
    """
    if not 0.0 <= max_fraction <= 1.0:
        raise ValueError(f"max_fraction must be in [0, 1], got {max_fraction}")
    n_words = len(split_words(text)[0])
    if n_words == 0 or max_fraction == 0.0:
        return 0
    return max(1, int(max_fraction * n_words))


def apply_text_ops(
    ops: Sequence[Op],
    text: str,
    rng: np.random.Generator,
    *,
    max_fraction: float | None = DEFAULT_MAX_FRACTION,
) -> tuple[str, list[OpRecord]]:
    """Run ``ops`` in order on ``text`` under the mutation cap; return the text and the records of applied ops.

    Draw order is that of ``Op.__call__`` (the ``p`` coin, then ``sample``), so with ``max_fraction=None`` the
    result equals calling the ops one after another. Each record's params replay the op with ``apply``.
    """
    left = None if max_fraction is None else text_budget(text, max_fraction)
    records: list[OpRecord] = []
    for op in ops:
        if not isinstance(op, TextOp):
            text, record = op(text, rng)
        elif op.p < 1.0 and rng.random() >= op.p:
            record = None
        else:
            text, params = op.run(text, rng, budget=left)
            record = {"op": op.name, "params": params}
            if left is not None:
                left -= op.edit_count(params)
        if record is not None:
            records.append(record)
    return text, records


def count_changed_words(original: str, augmented: str) -> int:
    """Word-level edit distance (insertions, deletions, substitutions; case ignored; a swap counts two).

    An audit helper for checking the cap on a result; quadratic in the number of words, so meant for short texts.

    >>> count_changed_words("The quick brown fox.", "Quick brown foxes.")
    2
    """
    a = [w.casefold() for w in split_words(original)[0]]
    b = [w.casefold() for w in split_words(augmented)[0]]
    prev = list(range(len(b) + 1))
    for i, wa in enumerate(a, 1):
        cur = [i]
        for j, wb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wa != wb)))
        prev = cur
    return prev[-1]
