"""Shared helpers for the benchmarks: timing, peak memory of a process tree, shared data lookup, output."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

SHARED = Path(os.environ.get("AUGSVC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def tiny() -> bool:
    """True under the CI smoke test (``AUGSVC_BENCH_TINY=1``, with ``--quick``): every bench shrinks to a few items
    and repeats, starts no Ray and no long load, so it only shows that it runs; its numbers mean nothing."""
    return os.environ.get("AUGSVC_BENCH_TINY") == "1"


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


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error over seeds (sample standard deviation / sqrt(n)); nan for a single value."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def reduced_options(args: object, full: dict) -> list[str]:
    """``key=value (full: value)`` for every option of ``args`` that differs from the full-size run ``full``."""
    return [f"{k}={getattr(args, k)} (full: {v})" for k, v in full.items() if getattr(args, k) != v]


def scale_line(reduced: list[str]) -> str:
    """``scale: full size`` or ``scale: REDUCED: ...``, so every efficacy run says what it cut."""
    return "scale: " + ("full size" if not reduced else "REDUCED: " + ", ".join(reduced))
