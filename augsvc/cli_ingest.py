"""``augsvc ingest``'s reader flags, made from :class:`pipelines.ingest.IngestOptions` (one flag per field).

Each field's ``description`` is its help text and its default the flag's default, so a new reader option is one
field in ``pipelines/ingest/options.py`` and appears here by itself. On the command line ``--x-y`` names field
``x_y``; a ``bool`` field is a switch (``--dedupe``), a ``bool | None`` one a pair (``--header/--no-header``);
values the model parses (``--resize 64x64``, ``--classes a,b``, ``--max-pixels 0``) pass through as text. A field
whose ``json_schema_extra`` names a ``cli_default`` shows that default, and the flag left at it is not passed on.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from augsvc.api import IngestOptions

_UNSET = object()


def _cli_default(field: Any) -> Any:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra.get("cli_default", _UNSET)


def _flag_type(annotation: Any) -> tuple[type, bool]:
    """(the flag's value type: bool, int or str, whether it may be None) for a field's annotation."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    optional = type(None) in args
    inner = next((a for a in args if a is not type(None)), annotation) if args else annotation
    return (inner if inner in (bool, int) else str), optional


def _option(name: str, field: Any) -> inspect.Parameter:
    flag = "--" + name.replace("_", "-")
    kind, optional = _flag_type(field.annotation)
    decls = [f"{flag}/--no-{name.replace('_', '-')}"] if kind is bool and optional else [flag]
    default = field.default if _cli_default(field) is _UNSET else _cli_default(field)
    ann = Annotated[kind | None if optional or default is None else kind, typer.Option(*decls, help=field.description)]
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=ann)


def with_ingest_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``fn(source, name, ..., **options)`` one typer option per ``IngestOptions`` field, placed after its
    first two parameters; ``fn`` receives them in ``options`` (see :func:`options_given`)."""
    params = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
    opts = [_option(name, field) for name, field in IngestOptions.model_fields.items()]
    fn.__signature__ = inspect.Signature([*params[:2], *opts, *params[2:]])  # type: ignore[attr-defined]
    return fn


def options_given(options: dict[str, Any]) -> dict[str, Any]:
    """The flags' values as ``IngestOptions`` keywords: a flag left at a ``cli_default`` that is not the model's
    default (``--max-pixels``: absent means the model's limit) is left out."""
    fields = IngestOptions.model_fields
    return {k: v for k, v in options.items() if _cli_default(fields[k]) is _UNSET or v != _cli_default(fields[k])}
