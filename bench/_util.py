"""Shared helpers for the benchmarks: timing, peak memory of a process tree, shared data lookup, output."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

SHARED = Path(os.environ.get("AUGSVC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        raise SystemExit(f"benchmark data {p} not found; set AUGSVC_SHARED_DATA to the shared data folder")
    return p


class PeakRSS:
    """Samples the summed RSS of this process and all its descendants (Ray workers included)."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self._proc, *self._proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRSS:
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def emit(results: dict, json_path: str | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))
