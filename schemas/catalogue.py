"""Parameters of a pydantic model as a catalogue entry (``augsvc ops``): name -> default, type, description."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def jsonable(v: Any) -> Any:
    """``v`` as JSON-able data (``repr`` when it cannot be)."""
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(v)
    except Exception:  # noqa: BLE001  (any object: fall back to its repr)
        return repr(v)


def params_of(cls: type[BaseModel], skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every field of ``cls`` but ``skip``: ``{name: {default, type, required, description}}``."""
    out = {}
    for name, f in cls.model_fields.items():
        if name in skip:
            continue
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        out[name] = {
            "default": jsonable(default),
            "type": str(f.annotation).replace("typing.", "").replace("<class '", "").replace("'>", ""),
            "required": f.is_required(),
            "description": f.description or "",
        }
    return out


def first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""
