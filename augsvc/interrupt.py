"""Ctrl-C in a long command: exit 130 with one line saying what was kept and the exact command that resumes.

A command wraps its long work in :func:`on_interrupt`; ``kept()`` is called when the interrupt arrives (so it can
read how far the checkpoints got) and :func:`command_line` rebuilds the command as typed, from click's parsed
parameters, with ``--resume`` added where the command has one::

    with on_interrupt(lambda: f"{out}/last.pt holds epoch 3 of 10", resume="--resume"):
        train(...)
    # -> interrupted: runs/gan/last.pt holds epoch 3 of 10; resume with: augsvc models train-gan mnist
    #    --out runs/gan --resume   (one line)
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C


def _current_context() -> Any:
    """The running command's click context (typer 0.29 runs commands on its own copy of click), or None."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # a typer that uses click itself
        from click import get_current_context
    return get_current_context(silent=True)


def command_line(add: str | None = None, program: str = "augsvc") -> str:
    """The running click command as a shell line: ``augsvc <command path> ARGS --option value ...``, every
    parameter that differs from its default, plus the flag ``add`` (e.g. ``--resume``) when it is not on already.

    Outside a click command, the process's own arguments (``sys.argv``)."""
    ctx = _current_context()
    if ctx is None:
        args = [program, *sys.argv[1:]]
        return shlex.join(args + ([add] if add and add not in args else []))
    names, c = [], ctx
    while c.parent is not None:  # the sub-command names; the root's is the program, however it was started
        names.append(c.info_name)
        c = c.parent
    words = [program, *reversed(names)]
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if p.param_type_name == "argument":
            values = value if isinstance(value, list | tuple) else [value]
            words += [str(v) for v in values if v is not None]
            continue
        if p.param_type_name != "option" or value == p.default or value is None or p.name == "help":
            continue
        if add and add in p.opts:
            continue  # added below, once
        if p.is_flag:
            if value and p.opts:
                words.append(p.opts[0])
            elif not value and p.secondary_opts:
                words.append(p.secondary_opts[0])
            continue
        for v in value if p.multiple and isinstance(value, list | tuple) else [value]:
            words += [p.opts[0], str(v)]
    if add:
        words.append(add)
    return shlex.join(words)


@contextmanager
def on_interrupt(kept: Callable[[], str], resume: str | None = "--resume", rerun: bool = False) -> Iterator[None]:
    """Turn a KeyboardInterrupt in the block into exit 130 (``SystemExit``) and one line on stderr:
    ``interrupted: <kept()>; resume with: <command>``. ``resume``: the flag the command resumes with (added to the
    command line); ``rerun=True``: the same command resumes by itself (a build reuses its finished tasks)."""
    try:
        yield
    except KeyboardInterrupt:
        try:
            what = kept()
        except Exception as e:  # noqa: BLE001 - the line must come out whatever the state on disk
            what = f"could not tell what was kept ({type(e).__name__}: {e})"
        how = command_line(None if rerun else resume)
        print(f"interrupted: {what}; resume with: {how}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def checkpoint_epoch(path: Path, key: str = "epoch") -> Any:
    """``key`` of a torch checkpoint file (e.g. the last finished epoch of ``last.pt``), or None when unreadable."""
    from generators.runtime import load_checkpoint
    from schemas.errors import AugsvcError

    try:
        ck = load_checkpoint(path)
    except AugsvcError:  # a half-written or missing file: nothing to report
        return None
    return ck.get(key) if isinstance(ck, dict) else None
