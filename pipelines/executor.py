"""Run a function over many task arguments, in parallel on Ray or in-process, with bounded work in flight.

Results come back in submission order, so whatever runs them, the driver sees the same sequence. Ray core tasks
are used (not Ray Data): ingest and builds are a plain map of shard-sized chunks, and here the first Ray Data
pipeline costs 11-24 s on top of Ray's own start-up (see docs/architecture.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from schemas.errors import AugsvcError

_REMOTE_CACHE: dict[Callable, Any] = {}


#: Below these sizes a job runs in this process by default: on a 2-core machine embedded Ray takes 3-25 s to start
#: (docs/benchmarks.md) and can at best halve the work, so it pays only for work that takes tens of seconds alone.
#: In-process rates measured here: ~15,000 JPEGs/s ingested, ~3,000 augmented image rows/s built.
SMALL_BYTES = 256 * 2**20
SMALL_ROWS = 50_000

_STATUS: list[Callable[[str], None]] = []
_STARTED_LOCAL = False


def print_status(msg: str) -> None:
    """The default status sink: one line on stderr (above a rich progress bar, which redirects stderr)."""
    import sys

    print(msg, file=sys.stderr, flush=True)


def set_status(fn: Callable[[str], None] | None) -> None:
    """Send the executor's one-line status messages (how a job runs, "starting Ray...") to ``fn``.

    :func:`print_status` (stderr) is the default; ``None`` silences them (``--json``)."""
    _STATUS[:] = [fn if fn is not None else (lambda msg: None)]


def status(msg: str) -> None:
    """Report one line about how work is executed (stderr unless :func:`set_status` chose otherwise)."""
    (_STATUS[0] if _STATUS else print_status)(msg)


def choose_workers(
    planned_tasks: int | None,
    planned_bytes: int | None,
    workers: int | None,
    address: str | None,
    planned_rows: int | None = None,
) -> tuple[int, str]:
    """Decide how a job runs: (worker count, one-line reason); 0 workers means in-process, without Ray.

    ``workers`` (``--workers``) always wins; a cluster ``address`` (or ``RAY_ADDRESS``) means Ray. Otherwise a job
    of at most one task, or of at most ``SMALL_BYTES`` input bytes and ``SMALL_ROWS`` rows (``None``: unknown,
    not counted), runs in-process, because starting Ray costs more than it can save; larger jobs use every core.
    """
    cores = os.cpu_count() or 1
    if workers is not None:
        if workers <= 0 and not address:
            return 0, "running in-process (--workers 0)"
        return workers, f"running on Ray with {workers} worker(s) (--workers {workers})"
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        return cores, f"running on the Ray cluster at {address}"
    size = []
    if planned_tasks is not None:
        size.append(f"{planned_tasks} task(s)")
    if planned_rows is not None:
        size.append(f"{planned_rows:,} rows")
    if planned_bytes is not None:
        size.append(f"{planned_bytes / 1e6:.1f} MB")
    what = ", ".join(size) or "size unknown"
    small = (planned_tasks is not None and planned_tasks <= 1) or (
        planned_bytes is not None
        and planned_bytes <= SMALL_BYTES
        and (planned_rows is None or planned_rows <= SMALL_ROWS)
    )
    if cores <= 1 or small:
        return 0, f"small job ({what}): running in-process; pass --workers N to use Ray"
    return cores, f"running on Ray with {cores} workers ({what}); pass --workers 0 to stay in-process"


def start_workers(workers: int | None, address: str | None, reason: str | None = None) -> tuple[int, float]:
    """(worker count, seconds spent starting Ray): all cores when ``workers`` is None; 0 runs in-process.

    ``reason`` (from :func:`choose_workers`) is reported as one line; "starting Ray..." is reported before Ray
    starts, so a user is never left looking at an empty progress bar. Attached to a cluster (``address`` or
    ``RAY_ADDRESS``) with ``workers`` None, the count is the cluster's CPUs, not the driver's cores."""
    address = address or os.environ.get("RAY_ADDRESS")
    n = (os.cpu_count() or 1) if workers is None else workers
    if reason:
        status(reason)
    if n == 0 and not address:
        return 0, 0.0
    t = time.perf_counter()
    ensure_ray(n, address)
    if address and workers is None:
        import ray

        n = max(1, int(ray.cluster_resources().get("CPU", n)))
    return n, time.perf_counter() - t


def ensure_ray(workers: int | None = None, address: str | None = None) -> None:
    """Start embedded local Ray (or connect to ``address``/``RAY_ADDRESS``) unless already initialised."""
    import ray

    global _STARTED_LOCAL
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1"}}
    status(f"connecting to Ray at {address}..." if address else "starting Ray...")
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(
                address="local",  # a new embedded cluster, never another process's cluster found on this machine
                num_cpus=workers or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=env,
                configure_logging=False,
            )
            if not _STARTED_LOCAL:
                import atexit

                atexit.register(shutdown_ray)  # runs before Ray's own (slower) atexit shutdown
            _STARTED_LOCAL = True
    except Exception as e:  # noqa: BLE001  (Ray raises many types; the user needs one clear line)
        where = f"the Ray cluster at {address}" if address else "embedded local Ray"
        raise AugsvcError(f"could not start {where}: {e}") from e


def shutdown_ray() -> None:
    """Stop embedded local Ray quickly; a no-op when Ray is not running.

    ``ray.shutdown()`` sends SIGTERM to each of its processes in turn and waits up to 1 s for each to exit, then
    up to 1 s more after a SIGKILL: on a busy 2-core machine that was a ~10 s hang at the end of every command.
    Only the raylet needs a graceful stop (it stops its workers and agents); the others are killed at once,
    which takes well under a second. Falls back to the plain ``ray.shutdown()`` if Ray's internals differ."""
    import ray

    if not ray.is_initialized():
        return
    try:
        from ray._private import ray_constants
        from ray._private import worker as ray_worker

        node = ray_worker._global_node
        if node is not None and node.is_head():
            kill = node._kill_process_type

            def fast_kill(process_type, **kw):
                kw["allow_graceful"] = kw.get("allow_graceful", False) and (
                    process_type == ray_constants.PROCESS_TYPE_RAYLET
                )
                return kill(process_type, **kw)

            node._kill_process_type = fast_kill
    except (ImportError, AttributeError):
        pass
    ray.shutdown()


def run_map(
    fn: Callable[..., Any],
    args: Iterable[tuple],
    *,
    workers: int = 0,
    address: str | None = None,
    max_in_flight: int | None = None,
    shared: Any = None,
) -> Iterator[Any]:
    """Yield ``fn(*a)`` for each ``a`` in ``args``, in submission order.

    ``workers=0`` runs in this process (no Ray). Otherwise at most ``workers`` tasks run at once and at most
    ``max_in_flight`` (default ``2 * workers``) are running or finished-but-unread, so memory stays bounded by
    a few chunks whatever the input size. ``shared``, when given, is passed as the first argument of every call
    (put into Ray's object store once, not shipped with every task).
    """
    if workers <= 0 and not address:
        for a in args:
            yield fn(shared, *a) if shared is not None else fn(*a)
        return
    import ray

    ensure_ray(workers, address)
    shared_ref = ray.put(shared) if shared is not None else None
    remote = _REMOTE_CACHE.get(fn)
    if remote is None:
        remote = _REMOTE_CACHE[fn] = ray.remote(num_cpus=1, max_retries=2)(fn)
    running_cap = max(1, workers)
    total_cap = max_in_flight or 2 * running_cap
    running: dict[Any, int] = {}  # ref -> index
    done: dict[int, Any] = {}  # finished, waiting for their turn (results stay in the object store)
    it = enumerate(args)
    exhausted = False
    next_out = 0
    try:
        while True:
            while not exhausted and len(running) < running_cap and len(running) + len(done) < total_cap:
                try:
                    i, a = next(it)
                except StopIteration:
                    exhausted = True
                    break
                running[remote.remote(shared_ref, *a) if shared_ref is not None else remote.remote(*a)] = i
            if next_out in done:
                yield _get(ray, done.pop(next_out))
                next_out += 1
                continue
            if not running:
                return
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                done[running.pop(ref)] = ref
    finally:
        for ref in running:
            ray.cancel(ref, force=False)


def _get(ray, ref: Any) -> Any:
    """ray.get, turning a task's AugsvcError back into a plain one-line AugsvcError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, AugsvcError):
            raise AugsvcError(str(cause)) from None
        raise


class _ActorHost:
    """A Ray actor holding one instance of a model-backed callable (loaded once, in ``__init__``)."""

    def __init__(self, cls: type, init: Any) -> None:
        self.obj = cls(init)

    def process(self, *args: Any) -> Any:
        return self.obj(*args)


def cluster_gpus() -> float:
    """GPUs of the Ray cluster this process is attached to (0 without Ray)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0


def run_actor_map(
    cls: type,
    init: Any,
    args: Iterable[tuple],
    *,
    workers: int = 0,
    address: str | None = None,
    num_gpus: float | None = None,
) -> Iterator[Any]:
    """Yield ``cls(init)(*a)`` for each ``a``, in order, with ``cls(init)`` built once per worker: a pool of Ray
    actors (the shape of every model-backed stage: load the model once, then call it many times).

    ``workers=0`` builds one instance in this process. Otherwise the pool has ``min(workers, len(args))`` actors,
    each asking Ray for ``num_gpus`` GPUs (default: 1 when the cluster has GPUs, else 0, so it runs on CPUs).
    A failed call raises its AugsvcError as one line; Ray restarts a lost actor and retries its call twice.
    """
    items = list(args)
    if not items:
        return
    if workers <= 0 and not address:
        obj = cls(init)
        for a in items:
            yield obj(*a)
        return
    import ray
    from ray.util import ActorPool

    ensure_ray(workers, address)
    gpus = num_gpus if num_gpus is not None else (1.0 if cluster_gpus() >= 1 else 0.0)
    n = max(1, min(workers or 1, len(items)))
    if gpus:
        n = max(1, min(n, int(cluster_gpus() // gpus)))
    host = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=2, max_task_retries=2)(_ActorHost)
    actors = [host.remote(cls, init) for _ in range(n)]
    pool = ActorPool(actors)
    try:
        yield from pool.map(lambda actor, a: actor.process.remote(*a), items)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, AugsvcError):
            raise AugsvcError(str(cause)) from None
        raise
    finally:
        for a in actors:
            ray.kill(a)
