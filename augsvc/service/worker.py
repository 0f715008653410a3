"""The build worker: threads that take queued builds from the database and run them through ``augsvc.api.build``
(on the Ray cluster the service is attached to, or embedded local Ray; ``workers=0`` runs in-process)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from augsvc.service.db import BuildDB
from augsvc.service.models import BuildState

log = logging.getLogger("augsvc.service")


class Cancelled(Exception):
    """Raised from the progress callback when a running build was cancelled."""


class BuildWorker:
    """``threads`` threads polling ``db`` every ``poll_s`` seconds (woken at once by :meth:`wake`)."""

    def __init__(self, db: BuildDB, store: Any, *, workers: int | None, address: str | None, threads: int = 1,
                 poll_s: float = 1.0) -> None:  # fmt: skip
        self.db, self.store, self.workers, self.address = db, store, workers, address
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"augsvc-build-{i}", daemon=True)
                         for i in range(threads)]  # fmt: skip

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.run_one():
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def run_one(self) -> bool:
        """Run the oldest queued build to its end; False when none was queued."""
        job = self.db.claim_next()
        if job is None:
            return False
        bid = job["id"]
        self.db.append_log(bid, f"started (attempt {job['attempts'] + 1}): {job['input']} -> {job['dataset']}")

        def progress(done: int, _total: int | None) -> None:
            self.db.progress(bid, done)
            if self.db.cancel_requested(bid):
                raise Cancelled()

        from augsvc.api import build
        from schemas.errors import AugsvcError

        try:
            rep = build(job["recipe"], store=self.store, workers=self.workers, address=self.address, progress=progress)
        except Cancelled:
            self.db.append_log(bid, "cancelled")  # the log line first: a client that sees the state sees it
            self.db.finish(
                bid, BuildState.cancelled, error="cancelled while running (finished tasks are kept for a rerun)"
            )
            return True
        except AugsvcError as e:
            self._fail(bid, str(e))
            return True
        except Exception as e:  # noqa: BLE001 - any failure of a build is the build's result, the worker goes on
            log.exception("build %s failed", bid)
            self._fail(bid, f"{type(e).__name__}: {' '.join(str(e).split())[:2000]}")
            return True
        if rep.version != job["version"]:  # the input tag moved since submission: record what was built
            self.db.append_log(bid, f"note: built {rep.version}, submitted as {job['version']}")
        how = "already in the store" if rep.up_to_date else f"published {rep.rows_out} rows in {rep.seconds:.1f} s"
        reused = f", reused {rep.reused_tasks} finished task(s)" if rep.reused_tasks else ""
        self.db.append_log(bid, f"succeeded: {job['dataset']}@{rep.version} {how}{reused}")
        self.db.finish(bid, BuildState.succeeded, rows_out=rep.rows_out, reused_tasks=rep.reused_tasks)
        return True

    def _fail(self, bid: str, msg: str) -> None:
        self.db.append_log(bid, f"failed: {msg}")
        self.db.finish(bid, BuildState.failed, error=msg)
