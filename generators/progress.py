"""Progress of long model work (training loops, a generator's fine-tune or sampling), with no UI library.

Model code reports ``report(done, total, **fields)`` (``fields``: short values such as ``epoch="3/100"`` or
``loss=2.1``). Two places consume it:

- a command's own training loop (``augsvc models train-gan``, ``train-lm``, ``train-translator``) gets a reporter
  from ``augsvc.progress.step_progress``: a rich bar on a terminal, else :class:`PlainSteps` lines;
- work inside a build task calls :func:`task_progress`: it forwards to the hook that the build's progress display
  installs (:func:`hooked`, in-process builds), and without one (a Ray worker, the Python API) prints
  :class:`PlainSteps` lines on stderr, which Ray forwards to the driver's console.

:class:`StepClock` turns (done, total, elapsed) into an ETA and, once, into an up-front warning when the first
steps say the whole run will be long.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

StepFn = Callable[..., None]  # (done: int, total: int | None, **fields) -> None
Hook = Callable[[str, int, "int | None", dict[str, Any]], None]  # (label, done, total, fields)

EVERY_S = 10.0  # seconds between plain lines, unless AUGSVC_PROGRESS_EVERY says otherwise
LONG_RUN_S = 600.0  # a run estimated at more than this many seconds says so up front
PROBE_S = 5.0  # ... once this many seconds of steps have been timed

_hook: Hook | None = None


def plain_every(every: float | None = None) -> float:
    """Seconds between plain progress lines: ``every`` when given, else the ``AUGSVC_PROGRESS_EVERY`` environment
    variable (e.g. ``60`` for a quieter CI log, ``0`` for a line per step), else 10.

    ``AugsvcError`` when the variable is not a number of seconds >= 0."""
    if every is not None:
        return every
    raw = os.environ.get("AUGSVC_PROGRESS_EVERY", "").strip()
    if not raw:
        return EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        from schemas.errors import AugsvcError

        raise AugsvcError(f"AUGSVC_PROGRESS_EVERY={raw!r}: give seconds between progress lines (a number >= 0)")
    return value


def fmt_seconds(s: float) -> str:
    """``42 s``, ``3 min 20 s``, ``9 h 50 min``."""
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        m, sec = divmod(int(round(s)), 60)
        return f"{m} min {sec} s" if sec and m < 10 else f"{m} min"
    h, m = divmod(int(round(s / 60)), 60)
    return f"{h} h {m} min" if m else f"{h} h"


def fmt_fields(fields: dict[str, Any]) -> str:
    """``epoch 3/100, loss_d 1.234`` (floats to 4 significant digits)."""
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())


class StepClock:
    """Rate, ETA and the one-time long-run estimate of a run of steps, timed from the first update seen (so a
    resumed run is timed on its own steps)."""

    def __init__(self, long_s: float = LONG_RUN_S, probe_s: float = PROBE_S) -> None:
        self.long_s, self.probe_s = long_s, probe_s
        self.t0: float | None = None
        self.first = 0
        self.warned = False

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def tick(self, done: int) -> None:
        if self.t0 is None:
            self.t0, self.first = time.monotonic(), done

    def eta(self, done: int, total: int | None) -> float | None:
        """Seconds left at the pace so far (None before two steps or without a total)."""
        if not total or done <= self.first or self.t0 is None:
            return None
        return self.elapsed() / (done - self.first) * max(total - done, 0)

    def long_run(self, label: str, done: int, total: int | None, hint: str = "") -> str | None:
        """Once, after ``probe_s`` seconds of steps: a line saying the run will take about T when T > ``long_s``."""
        if self.warned or not total or self.elapsed() < self.probe_s or done <= self.first:
            return None
        self.warned = True
        per = self.elapsed() / (done - self.first)
        whole = per * (total - self.first)
        if whole <= self.long_s:
            return None
        line = (f"{label}: this run will take about {fmt_seconds(whole)} at the pace of its first "
                f"{done - self.first:,} steps ({per:.3g} s per step, {total - self.first:,} steps)")  # fmt: skip
        return line + (f"; {hint}" if hint else "")


class PlainSteps:
    """``label: step 120/4,000 (3%), epoch 2/100, loss 2.103; 45 s elapsed, about 25 min left`` every ``every``
    seconds (default :func:`plain_every`; the first ``every`` seconds after it is made; a last line at the end when
    any came before), plus :class:`StepClock`'s long-run line, on ``out`` (stderr). Work shorter than ``every``
    prints nothing.

    For logs and pipes, where a redrawn bar shows up as blank lines. Call it as ``report(done, total, **fields)``."""

    def __init__(
        self, label: str, every: float | None = None, out: TextIO | None = None, hint: str = "", unit: str = "step"
    ) -> None:
        self.label, self.every, self.out, self.hint, self.unit = label, plain_every(every), out, hint, unit
        self.clock = StepClock()
        self.last = time.monotonic()
        self.printed = False

    def line(self, done: int, total: int | None, fields: dict[str, Any]) -> str:
        of = f"/{total:,} ({100 * done / total:.0f}%)" if total else ""
        extra = f", {fmt_fields(fields)}" if fields else ""
        eta = self.clock.eta(done, total)
        left = f", about {fmt_seconds(eta)} left" if eta is not None and done < (total or 0) else ""
        return f"{self.label}: {self.unit} {done:,}{of}{extra}; {fmt_seconds(self.clock.elapsed())} elapsed{left}"

    def __call__(self, done: int, total: int | None = None, **fields: Any) -> None:
        self.clock.tick(done)
        out = self.out or sys.stderr
        if (warn := self.clock.long_run(self.label, done, total, self.hint)) is not None:
            print(warn, file=out, flush=True)
        now = time.monotonic()
        if now - self.last >= self.every or (self.printed and total and done >= total):
            self.last, self.printed = now, True
            print(self.line(done, total, fields), file=out, flush=True)


@contextmanager
def hooked(hook: Hook | None) -> Iterator[None]:
    """Route :func:`task_progress` reports of this process to ``hook(label, done, total, fields)`` for the block."""
    global _hook
    before, _hook = _hook, hook
    try:
        yield
    finally:
        _hook = before


def task_progress(label: str, every: float | None = None, unit: str = "step") -> StepFn:
    """A reporter for model work inside a build task (a generator's fine-tune, sampling rounds): to the installed
    hook when there is one (in-process builds: the build's bar or log lines), else :class:`PlainSteps` on stderr."""
    hook = _hook
    if hook is not None:
        return lambda done, total=None, **fields: hook(label, done, total, fields)
    return PlainSteps(label, every=every, unit=unit)
