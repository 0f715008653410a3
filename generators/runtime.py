"""The torch runtime every training loop and model-backed stage shares: devices, seeded sessions, checkpoints.

- :func:`resolve_device`: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda[:i]`` or ``mps`` to a
  ``torch.device``; a GPU that is asked for and absent is one :class:`AugsvcError` line, never a torch traceback.
- :func:`seeded_session`: a context manager that seeds torch's global generators from an explicit seed
  (``torch.random.fork_rng`` underneath), optionally sets the torch CPU threads and deterministic algorithms, and
  restores all of the caller's state on exit, also on an exception. numpy's and Python's global generators are
  left alone: every other draw takes an explicit generator seeded from the run's seed.
- :func:`rng_state` / :func:`set_rng_state`: torch's generators' state as a picklable dict (the ``rng`` entry
  of a checkpoint), so a resumed run draws exactly what an uninterrupted one would.
- :func:`save_checkpoint` / :func:`load_checkpoint`: ``torch.save`` with atomic replace (a temporary file in the
  same folder, fsync, ``os.replace``): a kill during the write leaves the previous file whole; a read of a
  truncated, corrupt or non-torch file is one line naming the file and what to do.

Lives in ``generators`` (the lowest layer with models) so that ``generators``, ``pipelines`` and ``augsvc`` can all
use it; torch is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from schemas.durable import fsync_dir, fsync_file
from schemas.errors import AugsvcError

__all__ = ["default_threads", "load_checkpoint", "resolve_device", "rng_state", "save_checkpoint", "seeded_session",
           "set_rng_state"]  # fmt: skip

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | Any = "auto", *, what: str = "device") -> Any:
    """The ``torch.device`` for ``name``: ``auto`` -> ``cuda`` when torch sees a CUDA GPU, else ``cpu``; ``cpu``,
    ``cuda``, ``cuda:N``, ``mps`` as given (a ``torch.device`` passes through).

    Raises AugsvcError (one line starting with ``what``, e.g. ``teacher: device``) when CUDA or MPS is asked for
    and absent, when ``cuda:N`` names a GPU that does not exist, or for a name torch does not know."""
    import torch

    if isinstance(name, torch.device):
        return name
    asked = str(name).strip()
    if asked == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(asked)
    except (RuntimeError, ValueError):
        raise AugsvcError(f"{what} {asked!r} is not a device; use {DEVICES}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise AugsvcError(f"{what} {asked!r} asked for, but torch sees no CUDA GPU here; use auto or cpu")
        if dev.index is not None and dev.index >= n:
            raise AugsvcError(f"{what} {asked!r}: torch sees {n} CUDA GPU(s) (cuda:0..cuda:{n - 1}); pick one of them")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise AugsvcError(f"{what} {asked!r} asked for, but torch sees no Apple MPS device here; use auto or cpu")
    elif dev.type != "cpu":
        raise AugsvcError(f"{what} {asked!r} is not supported; use {DEVICES}")
    return dev


def default_threads() -> int:
    """Torch CPU threads for a training loop when none are asked for: the cores this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


def _cuda_devices(device: Any) -> list[int]:
    import torch

    if device is None or torch.device(device).type != "cuda":
        return []  # CPU runs never initialise CUDA
    return list(range(torch.cuda.device_count()))


@contextmanager
def seeded_session(
    seed: int | None, device: Any = None, *, threads: int | None = None, deterministic: bool = False
) -> Iterator[None]:
    """Run the block with torch's global generators (CPU and, on a CUDA ``device``, every GPU's) seeded from
    ``seed`` and restore the caller's generators afterwards, also on an exception.

    Only torch's generators: layer initialisation, dropout and ``generate`` sampling draw from them, and no torch
    API takes a generator for those. Every other draw in the training loops comes from an explicit
    ``np.random.Generator`` or ``torch.Generator`` seeded from the run's seed, so numpy's and Python's global
    generators are neither seeded nor touched (``tests/test_runtime.py`` fails on a call of them anywhere in the
    four packages). ``seed`` None forks torch's state without reseeding (the block's draws still leave the
    caller's state alone); torch gets ``seed % 2**63``. ``threads`` sets ``torch.set_num_threads`` for the block
    (None: unchanged); ``deterministic`` turns on ``torch.use_deterministic_algorithms(warn_only=True)`` on CUDA
    (CPU kernels used here are deterministic already). Both are restored on exit. Example::

        with seeded_session(cfg.seed, device, threads=cfg.threads or default_threads()):
            model = build_model(...)  # same seed, same initial weights
    """
    import torch

    before_threads = torch.get_num_threads()
    before_det = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            if seed is not None:
                torch.manual_seed(int(seed) % (2**63))
            if deterministic and device is not None and torch.device(device).type == "cuda":
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
    finally:
        torch.use_deterministic_algorithms(before_det, warn_only=before_warn)
        torch.set_num_threads(before_threads)


def rng_state(device: Any = None) -> dict[str, Any]:
    """torch's global generators' state: ``cpu`` (a ByteTensor) and ``cuda`` (the GPU's, when ``device`` is CUDA);
    picklable, for checkpoints (numpy's and Python's global generators are not used, see :func:`seeded_session`)."""
    import torch

    st: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device is not None and torch.device(device).type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def set_rng_state(state: dict[str, Any] | Any, device: Any = None) -> None:
    """Restore what :func:`rng_state` returned. Older checkpoints stored torch's CPU state alone (a ByteTensor);
    that form is accepted too. A GPU state is restored only onto a CUDA ``device``. The ``numpy`` and ``python``
    parts that checkpoints of earlier versions carry are ignored: nothing draws from those global generators,
    and restoring them would change the caller's."""
    import torch

    if not isinstance(state, dict):  # checkpoints before the cpu/cuda split: torch's CPU state alone
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: str | Path, state: dict[str, Any], *, rng_device: Any = None) -> Path:
    """Write ``state`` with ``torch.save`` to ``path`` atomically: to a temporary file in the same folder, fsync,
    ``os.replace``, fsync of the folder. A crash at any point leaves either the old file or the new one, never a
    truncated one. With ``rng_device`` (a device, e.g. the training device), ``state["rng"]`` is set to
    :func:`rng_state` of that device first (restored by ``load_checkpoint(..., restore_rng=device)``).

    The bytes are those ``torch.save(state, path)`` writes. Returns ``path``; OSError from the filesystem
    propagates (the temporary file is removed)."""
    import torch

    p = Path(path)
    if rng_device is not None:
        state = {**state, "rng": rng_state(rng_device)}
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        fsync_file(tmp)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(p.parent)
    return p


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` in this process (a worker of a model-backed stage); None leaves torch's
    default. Unlike :func:`seeded_session` nothing is restored: a worker process owns its thread setting."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


def load_weights(path: str | Path) -> Any:
    """Tensors only (``torch.load(..., weights_only=True)``) from a weights file someone else wrote (a
    pretrained backbone); ``AugsvcError`` in one line naming the file when it is not a readable torch file."""
    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - as load_checkpoint: one line, never the file's contents
        raise AugsvcError(
            f"{path}: not a readable torch weights file ({type(e).__name__}); give a .pt/.pth state dict or a "
            ".safetensors file"
        ) from None


def load_checkpoint(
    path: str | Path,
    *,
    map_location: Any = "cpu",
    what: str = "checkpoint",
    fix: str = "restore it or write it again",
    restore_rng: Any = None,
) -> Any:
    """``torch.load`` (full pickle: our own files only) of ``path`` onto ``map_location``.

    With ``restore_rng`` (a device), the generators saved under the checkpoint's ``rng`` (or, in text-model
    checkpoints written before this module, ``torch_rng``) are restored by :func:`set_rng_state`.
    Raises AugsvcError in one line naming the file, what it is (``what``) and what to do (``fix``) when the file
    is missing, truncated (a kill during a write by an older version), corrupt or not a torch file."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise AugsvcError(f"{p}: no such {what}; {fix}")
    try:
        ck = torch.load(p, weights_only=False, map_location=map_location)
    except Exception as e:  # noqa: BLE001 - zip-archive, pickle and OS errors of a damaged file are all one line
        detail = type(e).__name__  # not torch's text: it may quote the file (a password file given as a checkpoint)
        raise AugsvcError(
            f"{p}: not a readable torch {what} (truncated, corrupt or not written by torch: {detail}); {fix}"
        ) from None
    if restore_rng is not None and isinstance(ck, dict):
        state = ck.get("rng", ck.get("torch_rng"))
        if state is not None:
            set_rng_state(state, restore_rng)
    return ck
