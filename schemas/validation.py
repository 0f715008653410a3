"""One way to load a YAML mapping and to turn a pydantic ``ValidationError`` into lines a user can act on.

Every message starts with where the mapping came from (a file path or a name), names the key as written
(``stages[0].copies``), lists the allowed keys of the model an unknown key was found in, and suggests the closest
one (``did you mean 'copies'?``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.errors import AugsvcError
from schemas.suggest import did_you_mean

MAX_DEPTH = 64  # recipes and specs are a few levels deep; deeper input is refused before anything recurses into it


def nesting_depth(data: object, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists and mappings in ``data``, counted without recursion (stops past ``limit``)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        x, d = todo.pop()
        if isinstance(x, dict | list | tuple):
            deepest = max(deepest, d)
            if d > limit:
                return d
            todo.extend((v, d + 1) for v in (x.values() if isinstance(x, dict) else x))
    return deepest


def read_mapping(source: str | Path | dict, kind: str, expected: str) -> tuple[dict[str, Any], str]:
    """(mapping, where) from a YAML file path or a dict; ``expected`` says what the mapping holds. AugsvcError for
    bad YAML, text that is not UTF-8, and anything nested deeper than ``MAX_DEPTH`` levels."""
    import yaml

    if isinstance(source, dict):
        if nesting_depth(source) > MAX_DEPTH:
            raise AugsvcError(f"{kind}: nested deeper than {MAX_DEPTH} levels (a {kind} is a few levels deep)")
        return source, kind
    path = Path(source)
    if not path.is_file():
        raise AugsvcError(f"{path}: {kind} file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_unique_key_loader())  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        if mark is not None and problem:
            raise AugsvcError(f"{path}:{mark.line + 1}: not valid YAML: {problem}") from None
        raise AugsvcError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    except UnicodeDecodeError as e:
        raise AugsvcError(f"{path}: not UTF-8 text (byte {e.start}); save the {kind} as UTF-8") from None
    except RecursionError:
        raise AugsvcError(f"{path}: nested too deeply to be a {kind} (a {kind} is a few levels deep)") from None
    if data is None:  # an empty file: report the missing keys, not a type
        data = {}
    if nesting_depth(data) > MAX_DEPTH:
        raise AugsvcError(f"{path}: nested deeper than {MAX_DEPTH} levels (a {kind} is a few levels deep)")
    if not isinstance(data, dict):
        raise AugsvcError(f"{path}: a {kind} is a mapping with {expected}, got {type(data).__name__}")
    return data, str(path)


@functools.cache
def _unique_key_loader() -> type:
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently)."""

        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (lines {seen[key] + 1} and "
                        f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark,
                    )  # fmt: skip
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def key_of(loc: tuple) -> str:
    """``('stages', 0, 'copies')`` -> ``stages[0].copies``."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def validation_message(
    err: ValidationError, where: str, model_at: Callable[[tuple], type[BaseModel]], what: str | None = None
) -> str:
    """One line per problem; an unknown key at ``loc`` is checked against the fields of ``model_at(loc)``."""
    lines = []
    for e in err.errors():
        loc, key = e["loc"], key_of(e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = list(model_at(loc).model_fields)
            close = did_you_mean(str(loc[-1]), allowed)
            hint = f" ({close})" if close else ""
            lines.append(f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}")
        elif e["type"] == "missing":
            lines.append(f"{where}: missing required key {key!r}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            label = key or what  # a model-level check has no key: name the whole thing, or nothing
            head = f"{where}: {label}: " if label else f"{where}: "
            for i, line in enumerate(msg.splitlines()):
                lines.append(head + line if i == 0 else f"    {line}")
    return "\n".join(lines)
