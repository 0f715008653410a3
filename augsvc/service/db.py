"""Build state in an embedded SQLite database: one row per (output dataset, version id), plus its log lines.

States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``. The database is the only state the
service keeps, so a restart loses nothing (:meth:`BuildDB.recover`). One connection shared by threads under a lock
(stdlib ``sqlite3``, WAL journal).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

ACTIVE = ("queued", "running", "succeeded")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")

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
    """Builds and their logs in SQLite at ``path`` (created with its folder if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- reading ---------------------------------------------------------------------------------------------
    def get(self, bid: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT * FROM builds WHERE id = ?", (bid,))
        return _public(rows[0]) if rows else None

    def list(self, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        if state:
            rows = self._exec("SELECT * FROM builds WHERE state = ? ORDER BY submitted DESC LIMIT ?", (state, limit))
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
        Returns (build, duplicate): an identical queued, running or succeeded build is returned as it is; a failed
        or cancelled one is queued again."""
        bid = build_id(dataset, version)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT state FROM builds WHERE id = ?", (bid,)).fetchone()
                if row is not None and row["state"] in ACTIVE:
                    self._db.execute("COMMIT")
                    duplicate = True
                else:
                    state = "succeeded" if done else "queued"
                    self._db.execute(
                        "INSERT OR REPLACE INTO builds (id, dataset, version, input, recipe, state, submitted, "
                        "started, finished, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (bid, dataset, version, input_ref, json.dumps(recipe), state, now, now if done else None,
                         now if done else None, 0),
                    )  # fmt: skip
                    line = "version already in the store: nothing to build" if done else "queued"
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

    def finish(self, bid: str, state: str, *, error: str | None = None, rows_out: int | None = None,
               reused_tasks: int | None = None) -> None:  # fmt: skip
        assert state in STATES
        self._exec(
            "UPDATE builds SET state = ?, error = ?, finished = ?, rows_out = COALESCE(?, rows_out), "
            "reused_tasks = COALESCE(?, reused_tasks) WHERE id = ?",
            (state, error, time.time(), rows_out, reused_tasks, bid),
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
                self.finish(bid, "failed", error="the service restarted during the build (run with resume to retry)")
        return ids


def _public(row: sqlite3.Row) -> dict[str, Any]:
    d = {k: row[k] for k in row.keys() if k not in ("recipe", "cancel_requested")}
    d["cancel_requested"] = bool(row["cancel_requested"])
    return d
