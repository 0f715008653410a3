"""Build state in an embedded SQLite database: one row per (output dataset, version id), plus its log lines.

States (:class:`augsvc.service.models.BuildState`): ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` |
``cancelled``. The database is the only state the service keeps, so a restart loses nothing (:meth:`BuildDB.recover`).
One connection shared by threads under a lock (stdlib ``sqlite3``, WAL journal). One live service per database: the
database's lock file (``<db>.lock``, ``flock``) is held while it is open, so a second ``augsvc serve`` on it is refused
before it could queue again the builds the first one runs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from augsvc.service.models import BuildState

LIVE = (BuildState.queued, BuildState.running)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
  id TEXT PRIMARY KEY,           -- 16 hex digits of sha256("dataset@version")
  dataset TEXT NOT NULL,
  version TEXT NOT NULL,
  input TEXT NOT NULL,
  recipe TEXT NOT NULL,          -- the recipe as JSON (what api.build is called with)
  state TEXT NOT NULL,
  tasks_done INTEGER NOT NULL DEFAULT 0,
  reused_tasks INTEGER NOT NULL DEFAULT 0,
  rows_out INTEGER,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  submitted REAL NOT NULL,
  started REAL,
  finished REAL
);
CREATE TABLE IF NOT EXISTS log (
  build_id TEXT NOT NULL,
  t REAL NOT NULL,
  line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_build ON log(build_id);
"""


def build_id(dataset: str, version: str) -> str:
    """The build id of ``dataset@version``: 16 hex digits (identical submissions get the same id)."""
    return hashlib.sha256(f"{dataset}@{version}".encode()).hexdigest()[:16]


class BuildDB:
    """Builds and their logs in SQLite at ``path`` (created with its folder if missing), held by this object until
    :meth:`close`; ``AugsvcError`` when another live service holds it."""

    def __init__(self, path: str | Path) -> None:
        import fcntl
        import os

        from schemas.errors import AugsvcError

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # flock: the kernel drops it when this process ends, however it ends
        self._held: int | None = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._held)
            self._held = None
            raise AugsvcError(
                f"build database {self.path} is in use by another 'augsvc serve' (one database, one live service): "
                "stop that one, or give this one another --db"
            ) from None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._held is not None:
            import os

            os.close(self._held)  # closing the descriptor drops the flock
            self._held = None

    def _exec(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- reading ---------------------------------------------------------------------------------------------
    def get(self, bid: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT * FROM builds WHERE id = ?", (bid,))
        return _public(rows[0]) if rows else None

    def list(self, state: BuildState | str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        if state:
            rows = self._exec(
                "SELECT * FROM builds WHERE state = ? ORDER BY submitted DESC LIMIT ?", (BuildState(state).value, limit)
            )
        else:
            rows = self._exec("SELECT * FROM builds ORDER BY submitted DESC LIMIT ?", (limit,))
        return [_public(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """state -> number of builds."""
        return {r["state"]: r["n"] for r in self._exec("SELECT state, COUNT(*) AS n FROM builds GROUP BY state")}

    def recipe(self, bid: str) -> dict[str, Any] | None:
        """The recipe of build ``bid`` as submitted (None for an unknown id)."""
        rows = self._exec("SELECT recipe FROM builds WHERE id = ?", (bid,))
        return json.loads(rows[0]["recipe"]) if rows else None

    def log(self, bid: str) -> list[str]:
        return [
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(r['t']))} {r['line']}"
            for r in self._exec("SELECT t, line FROM log WHERE build_id = ? ORDER BY rowid", (bid,))
        ]

    def cancel_requested(self, bid: str) -> bool:
        rows = self._exec("SELECT cancel_requested FROM builds WHERE id = ?", (bid,))
        return bool(rows and rows[0]["cancel_requested"])

    # -- writing ---------------------------------------------------------------------------------------------
    def append_log(self, bid: str, line: str) -> None:
        self._exec("INSERT INTO log (build_id, t, line) VALUES (?, ?, ?)", (bid, time.time(), line))

    def submit(self, dataset: str, version: str, input_ref: str, recipe: dict, *, done: bool = False
               ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """Queue a build of ``dataset@version`` (``done``: the version already exists, record it as succeeded).
        Returns (build, duplicate): an identical queued or running build is returned as it is, and so is a
        succeeded one while its version exists (``done``); a succeeded build whose version was removed since, and a
        failed or cancelled one, are queued again."""
        bid = build_id(dataset, version)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT state FROM builds WHERE id = ?", (bid,)).fetchone()
                if row is not None and (row["state"] in LIVE or (row["state"] == BuildState.succeeded and done)):
                    self._db.execute("COMMIT")
                    duplicate = True
                else:
                    state = BuildState.succeeded if done else BuildState.queued
                    self._db.execute(
                        "INSERT OR REPLACE INTO builds (id, dataset, version, input, recipe, state, submitted, "
                        "started, finished, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (bid, dataset, version, input_ref, json.dumps(recipe), state.value, now, now if done else None,
                         now if done else None, 0),
                    )  # fmt: skip
                    line = "version already in the store: nothing to build" if done else "queued"
                    if row is not None and row["state"] == BuildState.succeeded and not done:
                        line = "queued again: the version it built is no longer in the store"
                    self._db.execute("INSERT INTO log (build_id, t, line) VALUES (?, ?, ?)", (bid, now, line))
                    self._db.execute("COMMIT")
                    duplicate = False
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(bid), duplicate  # type: ignore[return-value]

    def claim_next(self) -> dict[str, Any] | None:
        """The oldest queued build, marked running (None when none is queued); includes its recipe."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT * FROM builds WHERE state = 'queued' ORDER BY submitted LIMIT 1").fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE builds SET state = 'running', started = ?, attempts = attempts + 1, error = NULL "
                    "WHERE id = ?", (time.time(), row["id"]),
                )  # fmt: skip
            self._db.execute("COMMIT")
        if row is None:
            return None
        out = _public(row)
        out["recipe"] = json.loads(row["recipe"])
        return out

    def progress(self, bid: str, tasks_done: int) -> None:
        self._exec("UPDATE builds SET tasks_done = ? WHERE id = ?", (tasks_done, bid))

    def finish(self, bid: str, state: BuildState, *, error: str | None = None, rows_out: int | None = None,
               reused_tasks: int | None = None) -> None:  # fmt: skip
        state = BuildState(state)  # ValueError for anything else
        self._exec(
            "UPDATE builds SET state = ?, error = ?, finished = ?, rows_out = COALESCE(?, rows_out), "
            "reused_tasks = COALESCE(?, reused_tasks) WHERE id = ?",
            (state.value, error, time.time(), rows_out, reused_tasks, bid),
        )

    def request_cancel(self, bid: str) -> dict[str, Any] | None:
        """Cancel a queued build now; flag a running one (its worker stops after the current task)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT state FROM builds WHERE id = ?", (bid,)).fetchone()
            if row is not None and row["state"] == "queued":
                self._db.execute(
                    "UPDATE builds SET state = 'cancelled', finished = ?, error = 'cancelled before it started' "
                    "WHERE id = ?", (time.time(), bid),
                )  # fmt: skip
            elif row is not None and row["state"] == "running":
                self._db.execute("UPDATE builds SET cancel_requested = 1 WHERE id = ?", (bid,))
            self._db.execute("COMMIT")
        if row is not None and row["state"] in ("queued", "running"):
            self.append_log(bid, "cancel requested")
        return self.get(bid)

    def recover(self, resume: bool = True) -> list[str]:
        """After a restart: builds left ``running`` are queued again (``resume``: the build reuses its finished
        tasks) or marked failed with the reason. Returns their ids."""
        ids = [r["id"] for r in self._exec("SELECT id FROM builds WHERE state = 'running'")]
        for bid in ids:
            if resume:
                self._exec("UPDATE builds SET state = 'queued', cancel_requested = 0 WHERE id = ?", (bid,))
                self.append_log(bid, "service restarted during the build: queued again, finished tasks are reused")
            else:
                self.append_log(bid, "service restarted during the build: marked failed")
                self.finish(
                    bid, BuildState.failed, error="the service restarted during the build (run with resume to retry)"
                )
        return ids


def _public(row: sqlite3.Row) -> dict[str, Any]:
    d = {k: row[k] for k in row.keys() if k not in ("recipe", "cancel_requested")}
    d["cancel_requested"] = bool(row["cancel_requested"])
    return d
