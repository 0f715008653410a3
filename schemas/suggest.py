"""One way to suggest what a user meant when a name they typed does not exist.

Used for every name a user types: datasets, versions and tags, ops, recipe and stage keys, trainer config keys,
split names. ``difflib`` ranks by similarity; a shared prefix of at least three letters also counts, so a
shortened or lengthened word (``copy`` -> ``copies``) beats an unrelated short one (``op``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_names(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``name``, best first (case-insensitive); empty when none is close."""
    key = name.lower()
    scored: list[tuple[float, str]] = []
    for c in dict.fromkeys(choices):  # unique, in order
        lc = c.lower()
        if lc == key:
            score = 2.0
        else:
            score = difflib.SequenceMatcher(None, key, lc).ratio()
            prefix = len(_common_prefix(key, lc))
            if prefix >= 3 and prefix >= 0.6 * min(len(key), len(lc)):
                score = max(score, 0.9 + prefix / 1000)
        if score >= cutoff:
            scored.append((score, c))
    scored.sort(key=lambda sc: (-sc[0], sc[1]))
    return [c for _, c in scored[:n]]


def did_you_mean(name: str, choices: Iterable[str], n: int = 1) -> str:
    """``"did you mean 'flowers'?"`` (or ``'a' or 'b'``), or ``""`` when nothing is close to ``name``."""
    close = close_names(name, choices, n=n)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def _common_prefix(a: str, b: str) -> str:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[:i]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (see :func:`close_names`), or None."""
    hits = close_names(str(name), known, n=1)
    return hits[0] if hits else None


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """``"<what> 'nmae' is unknown (did you mean 'name'?); known: a, b"`` for an error message."""
    known = sorted(known)
    hint = closest(name, known)
    return f"{what} {name!r} is unknown{f' (did you mean {hint!r}?)' if hint else ''}; known: {', '.join(known)}"
