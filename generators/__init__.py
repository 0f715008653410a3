"""Generators: recipe stages that synthesise new rows from the whole dataset (SMOTE family today).

``build_generator(spec)`` validates a recipe's ``generator:`` mapping into its parameter model; the build runner
(``pipelines/runner.py``, task ``gen_task`` in ``pipelines/tasks.py``) gathers the rows a generator needs and calls it.
"""

from __future__ import annotations

from typing import Any

from schemas.errors import AugsvcError

SMOTE_METHODS = ("smote", "borderline", "adasyn", "smotenc")


def build_generator(spec: dict[str, Any]) -> Any:
    """Recipe ``generator: {method: ..., ...}`` -> validated parameter model."""
    from pydantic import ValidationError

    method = spec.get("method")
    if method not in SMOTE_METHODS:
        raise AugsvcError(f"generator method {method!r} is unknown; known: {', '.join(SMOTE_METHODS)}")
    from generators.smote import SmoteParams

    try:
        return SmoteParams(**spec)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"][:1])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msgs.append(f"generator: unknown key {key!r}; allowed keys: {', '.join(SmoteParams.model_fields)}")
            else:
                msgs.append(f"generator: {key}: {msg}" if key else f"generator: {msg}")
        raise AugsvcError("; ".join(msgs)) from None
