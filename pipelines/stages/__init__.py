"""Stage kinds: the registry that the runner, dry run, preview, replay, stream and ``augsvc ops`` consult.

Built-in kinds (``op``, ``mix``, ``generator``, ``teacher``) live in this package, one module each, and are imported
on first use (declared in :data:`STAGE_KINDS`, a :class:`schemas.registry.Registry`). A new kind is a
:class:`pipelines.stages.base.StageKind` subclass plus :func:`register_stage_kind` (see docs/architecture.md, "How
to add a stage kind").
"""

from __future__ import annotations

from typing import Any

from schemas.errors import AugsvcError
from schemas.recipe import Recipe
from schemas.registry import Registry


def _unknown_kind(key: str, known: list[str]) -> str:
    from schemas.recipe import Stage
    from schemas.suggest import closest

    hint = closest(key, [*known, *Stage.model_fields])
    return (
        f"unknown key {key!r}{f' (did you mean {hint!r}?)' if hint else ''}; a stage has one kind key "
        f"({', '.join(known)}) and any of {', '.join(Stage.model_fields)}"
    )


# stage key -> StageKind instance; the built-in kinds are imported on first use
STAGE_KINDS: Registry[Any] = Registry(
    "stage kind",
    {
        "op": "pipelines.stages.op",
        "mix": "pipelines.stages.mix",
        "generator": "pipelines.stages.generator",
        "teacher": "pipelines.stages.teacher",
    },
    unknown=_unknown_kind,
)


def register_stage_kind(kind: Any) -> Any:
    """Register a StageKind instance (or class, instantiated) under its ``key``; returns it (usable as decorator)."""
    obj = kind() if isinstance(kind, type) else kind
    if not obj.key:
        raise AugsvcError(f"{type(obj).__name__}: a stage kind needs a key")
    STAGE_KINDS.register(obj.key, obj=obj, replace=True)
    return kind


def unregister_stage_kind(key: str) -> None:
    """Remove a registered kind (tests that register a temporary one)."""
    STAGE_KINDS.unregister(key)


def kind_names() -> list[str]:
    """Every stage kind key (built-in or registered), sorted."""
    return STAGE_KINDS.names()


def stage_kind(key: str) -> Any:
    """The registered kind for a stage key; AugsvcError with the closest key when unknown."""
    return STAGE_KINDS.get(key)


def kind_of(recipe: Recipe, k: int) -> Any:
    return stage_kind(recipe.stages[k].kind)


def bind(recipe: Recipe, where: str = "recipe") -> Recipe:
    """Validate every stage's spec with its kind and attach the result (``stage.built``); returns ``recipe``.

    Errors name the file and key: ``recipe.yaml: stages[1].op: ...``."""
    for k, st in enumerate(recipe.stages):
        try:
            kind = stage_kind(st.kind)
            built = kind.parse(st.spec)
            st.bind(built, kind.canonical(built, st.spec))
        except (AugsvcError, ValueError) as e:
            from pydantic import ValidationError

            if isinstance(e, ValidationError):  # a kind's own model: one line per problem, naming the key
                from schemas.validation import validation_message

                model = _model_of(e)
                msg = validation_message(e, "spec", lambda loc, m=model: m).removeprefix("spec: ")
            else:
                msg = str(e).removeprefix("Value error, ")
            loc = f"stages[{k}]" if msg.startswith("unknown key") else f"stages[{k}].{st.kind}"
            raise AugsvcError(f"{where}: {loc}: {msg}") from None
        _refuse_unused_keys(kind, st, f"{where}: stages[{k}]")
    return recipe


_STAGE_KEY_DEFAULTS = {"copies": 1, "keep_originals": True, "classes": None, "target_per_class": None}


def _refuse_unused_keys(kind: Any, st: Any, where: str) -> None:
    """AugsvcError for a shared stage key set to a non-default value that ``kind`` ignores (its ``stage_keys``),
    e.g. ``target_per_class`` on a generator stage, which would otherwise do nothing without a word."""
    for key, default in _STAGE_KEY_DEFAULTS.items():
        if key not in kind.stage_keys and getattr(st, key) != default:
            hint = f"; {kind.stage_keys_hint}" if kind.stage_keys_hint else ""
            uses = ", ".join(sorted(kind.stage_keys)) or "none of copies, keep_originals, classes, target_per_class"
            raise AugsvcError(f"{where}.{key}: a {kind.key} stage does not use {key} (it uses {uses}){hint}")


def _model_of(err: Any) -> Any:
    """The pydantic model a ValidationError came from (for unknown-key suggestions)."""
    from pydantic import BaseModel

    title = getattr(err, "title", "")
    for cls in BaseModel.__subclasses__():
        if cls.__name__ == title:
            return cls
    return BaseModel


def identity(recipe: Recipe) -> dict[str, Any]:
    """Per-stage identities beyond the specs (model hashes), keyed by stage index; empty for most recipes."""
    out = {}
    for k, st in enumerate(recipe.stages):
        ident = stage_kind(st.kind).identity(st.built)
        if ident:
            out[str(k)] = ident
    return out


def steps(recipe: Recipe) -> list[tuple[Any, list[int]]]:
    """Stages grouped into steps: consecutive stages of a fusing kind (op) run as one step."""
    out: list[tuple[Any, list[int]]] = []
    for k, st in enumerate(recipe.stages):
        kind = stage_kind(st.kind)
        if kind.fuses and out and out[-1][0] is kind:
            out[-1][1].append(k)
        else:
            out.append((kind, [k]))
    return out


def catalogue() -> list[dict[str, Any]]:
    """Every stage kind's catalogue entry (``augsvc ops --json``)."""
    return [stage_kind(k).describe() for k in kind_names()]
