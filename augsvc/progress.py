"""Progress reporting for long commands: a rich bar on a terminal, periodic plain-text lines otherwise.

:func:`progress` counts a job's tasks (ingest, build); while it is open, model work inside an in-process task
(a generator's fine-tune, sampling rounds: ``generators.progress.task_progress``) shows in the same display: the
bar's description, or its own plain lines. :func:`step_progress` is the display of a training command's steps
(``augsvc models train-gan``, ``train-lm``, ``train-translator``): loss and other fields, elapsed time, ETA, and
one line up front when the first steps say the run will be long.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TextIO

from generators.progress import PlainSteps, StepClock, StepFn, fmt_fields, fmt_seconds, hooked, plain_every

ProgressFn = Callable[[int, int | None], None]


class PlainProgress(AbstractContextManager):
    """Writes ``label: done/total (elapsed)`` at most every ``every`` seconds (default:
    :func:`generators.progress.plain_every`), and once at the end.

    Used when stderr is not a terminal (CI logs, ``| tee``), where a redrawn bar shows up as blank lines."""

    def __init__(self, label: str, every: float | None = None, out: TextIO | None = None, unit: str = "") -> None:
        self.label, self.every, self.out, self.unit = label, plain_every(every), out, unit
        self.t0 = self.last = 0.0
        self.state: tuple[int, int | None] | None = None

    def __enter__(self) -> ProgressFn:
        self.t0 = self.last = time.monotonic()
        self.inner: dict[str, PlainSteps] = {}
        self._hook = hooked(self.detail)
        self._hook.__enter__()
        return self.update

    def detail(self, label: str, done: int, total: int | None, fields: dict[str, Any]) -> None:
        """Model work inside a task: its own lines, at most every ``every`` seconds per label."""
        rep = self.inner.setdefault(label, PlainSteps(f"{self.label}: {label}", self.every, self.out))
        rep(done, total, **fields)

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
        self._hook.__exit__(*exc)
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
        self._hook = hooked(self.detail)
        self._hook.__enter__()
        return self.update

    def update(self, done: int, total: int | None) -> None:
        self.p.update(self.task, completed=done, total=total)

    def detail(self, label: str, done: int, total: int | None, fields: dict[str, Any]) -> None:
        """Model work inside a task: shown after the label, e.g. ``lambada fine-tune 120/300, loss 2.1``."""
        of = f"/{total:,}" if total else ""
        extra = f", {fmt_fields(fields)}" if fields else ""
        self.p.update(self.task, description=f"{self.label} · {label} {done:,}{of}{extra}")

    def __exit__(self, *exc):
        self._hook.__exit__(*exc)
        return self.p.__exit__(*exc)


class _Quiet(AbstractContextManager):
    """No progress, and no executor status lines (``--json``) until the block ends."""

    def __enter__(self) -> ProgressFn:
        from pipelines.executor import set_status

        set_status(None)
        self._hook = hooked(lambda *a: None)
        self._hook.__enter__()
        return lambda done, total: None

    def __exit__(self, *exc) -> None:
        from pipelines.executor import print_status, set_status

        self._hook.__exit__(*exc)
        set_status(print_status)


def progress(label: str, quiet: bool = False, every: float | None = None) -> AbstractContextManager[ProgressFn]:
    """A context manager yielding ``update(done, total)``: a no-op when ``quiet``, a rich bar when stderr is a
    terminal, else :class:`PlainProgress` lines every ``every`` seconds."""
    if quiet:
        return _Quiet()
    if sys.stderr.isatty():
        return _Bar(label)
    return PlainProgress(label, every=every)


class _StepBar(AbstractContextManager):
    """A rich bar over a training command's steps: fields (epoch, losses), elapsed, ETA; the long-run line above."""

    def __init__(self, label: str, hint: str) -> None:
        self.label, self.hint, self.clock = label, hint, StepClock()

    def __enter__(self) -> StepFn:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,  # fmt: skip
        )

        self.p = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))  # fmt: skip
        self.p.__enter__()
        self.task = self.p.add_task(self.label, total=None, info="")
        return self.update

    def update(self, done: int, total: int | None = None, **fields: Any) -> None:
        self.clock.tick(done)
        if (warn := self.clock.long_run(self.label, done, total, self.hint)) is not None:
            self.p.console.print(warn)
        self.p.update(self.task, completed=done, total=total, info=fmt_fields(fields))

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)


class _PlainStepLines(AbstractContextManager):
    def __init__(self, label: str, every: float | None, hint: str) -> None:
        self.rep = PlainSteps(label, every=every, hint=hint)

    def __enter__(self) -> StepFn:
        return self.rep

    def __exit__(self, *exc) -> None:
        return None


class _NoSteps(AbstractContextManager):
    def __enter__(self) -> StepFn:
        return lambda done, total=None, **fields: None

    def __exit__(self, *exc) -> None:
        return None


def step_progress(
    label: str, quiet: bool = False, every: float | None = None, hint: str = ""
) -> AbstractContextManager[StepFn]:
    """A context manager yielding ``report(done, total, **fields)`` for a training command's steps: nothing when
    ``quiet``, a rich bar (with ETA) when stderr is a terminal, else plain lines every ``every`` seconds (default:
    ``generators.progress.plain_every``; ``generators.progress.PlainSteps``: step, fields, elapsed, time left).
    Either way, once the first steps have been timed, a run estimated at over 10 minutes says so in one line (with
    ``hint``: how to shorten it)."""
    if quiet:
        return _NoSteps()
    if sys.stderr.isatty():
        return _StepBar(label, hint)
    return _PlainStepLines(label, every, hint)


__all__ = ["ProgressFn", "PlainProgress", "progress", "step_progress", "fmt_seconds"]
