"""Ingest: raw files -> a source version in the store (see ``driver.ingest``).

``IngestOptions`` (and the format list) import light; the driver (pyarrow, the executor) loads on first use of
``ingest`` or ``IngestReport``."""

from typing import Any

from pipelines.ingest.options import FORMATS, IngestOptions

__all__ = ["FORMATS", "IngestOptions", "IngestReport", "ingest"]


def __getattr__(name: str) -> Any:
    if name in ("ingest", "IngestReport"):
        from pipelines.ingest import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'pipelines.ingest' has no attribute {name!r}")
