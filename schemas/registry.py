"""One registry type for every set of named, pluggable things: ops, stage kinds, generators, ingest formats,
classifier kinds.

A :class:`Registry` maps names to objects (classes, instances, functions). Built-ins are *declared* with the module
that registers them and imported on first use, so importing a package that owns a registry stays light (no torch,
OpenCV or transformers until a name that needs them is asked for). ``get`` of an unknown name raises one
:class:`AugsvcError` line with the closest names (``schemas/suggest.py``).

Example::

    >>> reg = Registry("colour")
    >>> @reg.register("red")
    ... def red() -> str:
    ...     return "#f00"
    >>> reg.get("red")()
    '#f00'
    >>> reg.get("rde")
    Traceback (most recent call last):
    ...
    schemas.errors.AugsvcError: colour 'rde' is unknown (did you mean 'red'?); known: red
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from schemas.errors import AugsvcError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects, with lazily imported built-ins and did-you-mean errors.

    ``what`` names the kind of thing in messages (``"generator method"``); ``unknown(name, known)`` formats the
    message for an unknown name (default: :func:`schemas.suggest.unknown_name`); ``builtins`` maps built-in names
    to the module whose import registers them; ``families`` are modules that register many names each (an op
    family), imported before any lookup that needs every name (an unknown name, ``names``, ``load_all``)."""

    def __init__(
        self,
        what: str,
        builtins: dict[str, str] | None = None,
        *,
        families: tuple[str, ...] = (),
        unknown: Callable[[str, list[str]], str] | None = None,
    ) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        self._builtins: dict[str, str] = dict(builtins or {})
        self._families = families
        self._families_loaded = not families
        self._unknown = unknown

    def _load_families(self) -> None:
        if not self._families_loaded:
            self._families_loaded = True  # first: a family module may look names up while it is imported
            try:
                for module in self._families:
                    importlib.import_module(module)
            except BaseException:
                self._families_loaded = False
                raise

    def register(self, *names: str, obj: T | None = None, replace: bool = False) -> Any:
        """Register ``obj`` under ``names``; without ``obj``, a decorator that registers what it decorates and
        returns it unchanged. TypeError when a name is taken by another object (``replace=True`` allows it)."""

        def add(o: T) -> T:
            if not names:
                raise TypeError(f"{self.what}: register needs at least one name")
            for n in names:
                have = self._items.get(n)
                if have is not None and have is not o and not replace:
                    raise TypeError(f"{self.what} {n!r} registered twice ({have!r} and {o!r})")
                self._items[n] = o
            return o

        return add if obj is None else add(obj)

    def declare(self, name: str, module: str) -> None:
        """Make ``name`` known before ``module`` (which registers it) is imported; it is imported on first use."""
        self._builtins.setdefault(name, module)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a temporary entry); a declared built-in stays declared."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        """Every known name (registered or declared), sorted."""
        self._load_families()
        return sorted(set(self._builtins) | set(self._items))

    def __contains__(self, name: object) -> bool:
        if name not in self._items and name not in self._builtins:
            self._load_families()
        return name in self._items or name in self._builtins

    def get(self, name: str) -> T:
        """The object registered under ``name``, importing its built-in module first when needed.

        Raises AugsvcError (one line, with the closest known names) when ``name`` is unknown."""
        if name not in self._items and name in self._builtins:
            importlib.import_module(self._builtins[name])
        if name not in self._items:
            self._load_families()
        if name not in self._items:
            raise AugsvcError(self.unknown_message(str(name)))
        return self._items[name]

    def unknown_message(self, name: str) -> str:
        """The one-line message for an unknown ``name``."""
        if self._unknown is not None:
            return self._unknown(name, self.names())
        from schemas.suggest import unknown_name

        return unknown_name(self.what, name, self.names())

    def load_all(self) -> dict[str, T]:
        """Import every declared built-in and family and return all entries by name, sorted."""
        self._load_families()
        for module in dict.fromkeys(self._builtins.values()):
            importlib.import_module(module)
        return {n: self._items[n] for n in sorted(self._items)}

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {len(self.names())} names)"
