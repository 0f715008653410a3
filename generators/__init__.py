"""Generators: algorithms that synthesise new labelled rows (no store, no Ray; see ``generators/base.py``).

A recipe's ``generator: {method: NAME, ...}`` is validated by :func:`build_generator` into the parameter model
registered under ``NAME``. Registration happens when the module defining a generator is imported; the built-in
ones are listed in ``_BUILTIN`` and imported on first use, so importing this package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from schemas.errors import AugsvcError

_REGISTRY: dict[str, type] = {}
# method -> module that registers it (imported lazily: torch and transformers load only when asked for)
_BUILTIN: dict[str, str] = {
    "smote": "generators.smote",
    "borderline": "generators.smote",
    "adasyn": "generators.smote",
    "smotenc": "generators.smote",
    "smoten": "generators.smote",
    "gan": "generators.gan.generator",
    "backtranslate": "generators.textgen.backtranslate",
    "lambada": "generators.textgen.lambada",
}


def register_generator(*methods: str, module: str | None = None):
    """Class decorator: register a :class:`generators.base.Generator` subclass under one or more method names."""

    def deco(cls: type) -> type:
        for m in methods:
            _REGISTRY[m] = cls
            if module:
                _BUILTIN.setdefault(m, module)
        return cls

    return deco


def declare_builtin(method: str, module: str) -> None:
    """Make ``method`` known before its module is imported (imported on first use)."""
    _BUILTIN.setdefault(method, module)


def generator_names() -> list[str]:
    """Every known generator method name, sorted."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def generator_class(method: str) -> type:
    """The parameter model registered for ``method``; AugsvcError with the closest names when unknown."""
    if method not in _REGISTRY and method in _BUILTIN:
        importlib.import_module(_BUILTIN[method])
    if method not in _REGISTRY:
        from schemas.suggest import unknown_name

        raise AugsvcError(unknown_name("generator method", method, generator_names()))
    return _REGISTRY[method]


def build_generator(spec: dict[str, Any]) -> Any:
    """Recipe ``generator: {method: ..., ...}`` -> validated, frozen parameter model (a ``Generator``)."""
    from pydantic import ValidationError

    if not isinstance(spec, dict):
        raise AugsvcError(f"expected a mapping like {{method: smote}}, got {spec!r}")
    method = spec.get("method")
    if method is None:
        raise AugsvcError(f"'method' is missing; known methods: {', '.join(generator_names())}")
    cls = generator_class(str(method))
    try:
        return cls(**spec)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"][:1])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                from schemas.suggest import closest

                hint = closest(key, list(cls.model_fields))
                msgs.append(
                    f"unknown key {key!r}{f' (did you mean {hint!r}?)' if hint else ''}; "
                    f"allowed keys: {', '.join(cls.model_fields)}"
                )
            else:
                msgs.append(f"{key}: {msg}" if key else msg)
        raise AugsvcError("; ".join(msgs)) from None


def generator_catalog() -> dict[str, dict[str, Any]]:
    """Every generator: ``{method: {modalities, model_backed, doc, params}}`` (for ``augsvc ops --json``)."""
    from schemas.catalogue import first_line, params_of

    out = {}
    for method in generator_names():
        cls = generator_class(method)
        out[method] = {"modalities": list(cls.modalities), "model_backed": cls.model_backed,
                       "doc": first_line(cls.__doc__), "params": params_of(cls, skip=("method",))}  # fmt: skip
    return out
