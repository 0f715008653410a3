"""Resuming and re-using output folders: the one refusal of a changed config and of an occupied folder.

Every command that writes a run folder and takes ``--resume`` (``augsvc train`` and its ``pretrain:``,
``augsvc models train-gan``, ``augsvc tune``) keeps the settings its result depends on next to its checkpoint and
refuses, in one line naming each changed key with its old and new value, to continue under other settings; and
refuses to start over a folder that already holds a run unless told to continue it or start it again.

>>> config_changes({"lr": 0.1, "mix": {"alpha": 0.4}}, {"lr": 0.2, "mix": {"alpha": 0.4}})
['lr: 0.1 -> 0.2']
>>> config_changes({"a": {"b": 1}}, {"a": None})
['a.b: 1 -> (absent)']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from schemas.errors import AugsvcError

_ABSENT = object()


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists and scalars are leaves."""
    if isinstance(d, Mapping) and (d or not prefix):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _show(v: Any) -> str:
    if v is _ABSENT:
        return "(absent)"
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> list[str]:
    """``"key: old -> new"`` for every dotted key whose value differs between two JSON-like settings mappings
    (sorted by key); keys in ``ignore`` and keys under them (``"pretrain"`` covers ``pretrain.lr``) are skipped.
    A section that is null on one side and a mapping on the other compares its keys against ``(absent)``."""
    skip = tuple(ignore)
    a, b = _flat(old), _flat(new)
    for flat, other in ((a, b), (b, a)):  # a section null on one side: compare its keys against (absent)
        for k in list(flat):
            if flat[k] is None and any(o.startswith(k + ".") for o in other):
                del flat[k]
    changes = []
    for k in sorted(set(a) | set(b)):
        if any(k == s or k.startswith(s + ".") for s in skip):
            continue
        va, vb = a.get(k, _ABSENT), b.get(k, _ABSENT)
        if va != vb:
            changes.append(f"{k}: {_show(va)} -> {_show(vb)}")
    return changes


def refuse_changed(where: str | Path, changes: list[str], *, what: str = "the run", advice: str) -> None:
    """Raise AugsvcError (one line) when ``changes`` (from :func:`config_changes`) is not empty:
    ``"cannot resume {what} in {where}: its config changed (lr: 0.1 -> 0.2; ...); {advice}"``."""
    if changes:
        shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
        raise AugsvcError(f"cannot resume {what} in {where}: its config changed ({shown}); {advice}")


def existing_run(out: str | Path, markers: Iterable[str]) -> list[str]:
    """The ``markers`` (file or folder names relative to ``out``) that exist: a non-empty list means ``out`` already
    holds a run."""
    base = Path(out)
    return [m for m in markers if (base / m).exists()]


def refuse_occupied(out: str | Path, found: list[str], *, resume_flag: str = "--resume", extra: str = "") -> None:
    """Raise AugsvcError (one line) when ``found`` (from :func:`existing_run`) is not empty: starting over a folder
    that holds a run would overwrite it silently. ``extra`` names another way out (e.g. ``"--overwrite to start
    it again"``)."""
    if found:
        ways = [f"pass {resume_flag} to continue it"] + ([extra] if extra else []) + ["or give a new --out"]
        raise AugsvcError(f"{out} already holds a run ({', '.join(found)}): " + ", ".join(ways))
