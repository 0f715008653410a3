"""Progress reporting for long commands: a rich bar on a terminal, periodic plain-text lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TextIO

ProgressFn = Callable[[int, int | None], None]


class PlainProgress(AbstractContextManager):
    """Writes ``label: done/total (elapsed)`` at most every ``every`` seconds, and once at the end.

    Used when stderr is not a terminal (CI logs, ``| tee``), where a redrawn bar shows up as blank lines."""

    def __init__(self, label: str, every: float = 10.0, out: TextIO | None = None, unit: str = "") -> None:
        self.label, self.every, self.out, self.unit = label, every, out, unit
        self.t0 = self.last = 0.0
        self.state: tuple[int, int | None] | None = None

    def __enter__(self) -> ProgressFn:
        self.t0 = self.last = time.monotonic()
        return self.update

    def _line(self) -> str:
        done, total = self.state or (0, None)
        of = f"/{total:,}" if total else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label}: {done:,}{of}{unit} ({time.monotonic() - self.t0:.0f} s)"

    def update(self, done: int, total: int | None) -> None:
        """Record progress; print a line when ``every`` seconds passed since the last one."""
        self.state = (done, total)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self._line(), file=self.out or sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.state is not None and exc[0] is None:
            print(self._line() + " done", file=self.out or sys.stderr, flush=True)


class _Bar(AbstractContextManager):
    """A transient rich bar on stderr; the executor's status lines ("starting Ray...") print above it."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> ProgressFn:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self.p.__enter__()
        self.task = self.p.add_task(self.label, total=None)
        return self.update

    def update(self, done: int, total: int | None) -> None:
        self.p.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)


class _Quiet(AbstractContextManager):
    """No progress, and no executor status lines (``--json``) until the block ends."""

    def __enter__(self) -> ProgressFn:
        from pipelines.executor import set_status

        set_status(None)
        return lambda done, total: None

    def __exit__(self, *exc) -> None:
        from pipelines.executor import print_status, set_status

        set_status(print_status)


def progress(label: str, quiet: bool = False, every: float = 10.0) -> AbstractContextManager[ProgressFn]:
    """A context manager yielding ``update(done, total)``: a no-op when ``quiet``, a rich bar when stderr is a
    terminal, else :class:`PlainProgress` lines every ``every`` seconds."""
    if quiet:
        return _Quiet()
    if sys.stderr.isatty():
        return _Bar(label)
    return PlainProgress(label, every=every)
