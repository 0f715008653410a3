"""Generators: algorithms that synthesise new labelled rows (no store, no Ray; see ``generators/base.py``).

A recipe's ``generator: {method: NAME, ...}`` is validated by :func:`build_generator` into the parameter model
registered under ``NAME`` in :data:`GENERATORS` (a :class:`schemas.registry.Registry`). Registration happens when
the module defining a generator is imported; the built-in ones are declared in ``GENERATORS`` with their module
and imported on first use, so importing this package stays light.
"""

from __future__ import annotations

from typing import Any

from schemas.errors import AugsvcError
from schemas.registry import Registry

# method -> the parameter model (a ``Generator`` subclass); built-ins are imported on first use, so torch and
# transformers load only when a model-backed method is asked for
GENERATORS: Registry[type] = Registry(
    "generator method",
    {
        "smote": "generators.smote",
        "borderline": "generators.smote",
        "adasyn": "generators.smote",
        "smotenc": "generators.smote",
        "smoten": "generators.smote",
        "gan": "generators.gan.generator",
        "backtranslate": "generators.textgen.backtranslate",
        "lambada": "generators.textgen.lambada",
    },
)


def register_generator(*methods: str, module: str | None = None):
    """Class decorator: register a :class:`generators.base.Generator` subclass under one or more method names
    (``module``: declare it as the module to import for them, so the names are known before it is imported)."""

    def deco(cls: type) -> type:
        GENERATORS.register(*methods, obj=cls)
        for m in methods if module else ():
            GENERATORS.declare(m, module)  # type: ignore[arg-type]
        return cls

    return deco


def declare_builtin(method: str, module: str) -> None:
    """Make ``method`` known before its module is imported (imported on first use)."""
    GENERATORS.declare(method, module)


def generator_names() -> list[str]:
    """Every known generator method name, sorted."""
    return GENERATORS.names()


def generator_class(method: str) -> type:
    """The parameter model registered for ``method``; AugsvcError with the closest names when unknown."""
    return GENERATORS.get(method)


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


def generator_catalogue() -> dict[str, dict[str, Any]]:
    """Every generator: ``{method: {modalities, model_backed, doc, params}}`` (for ``augsvc ops --json``)."""
    from schemas.catalogue import first_line, params_of

    out = {}
    for method in generator_names():
        cls = generator_class(method)
        out[method] = {"modalities": list(cls.modalities), "model_backed": cls.model_backed,
                       "doc": first_line(cls.__doc__), "params": params_of(cls, skip=("method",))}  # fmt: skip
    return out
