"""Suggestions for names a user types: one helper for datasets, ops, stage keys, generator methods, config keys."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (difflib ratio >= 0.6), or None."""
    hits = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return hits[0] if hits else None


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """``"<what> 'nmae' is unknown (did you mean 'name'?); known: a, b"`` for an error message."""
    known = sorted(known)
    hint = closest(name, known)
    return f"{what} {name!r} is unknown{f' (did you mean {hint!r}?)' if hint else ''}; known: {', '.join(known)}"
