"""Ingest: raw files -> a source version in the store (see ``driver.ingest``)."""

from pipelines.ingest.driver import IngestReport, ingest
from pipelines.ingest.options import IngestOptions

__all__ = ["IngestOptions", "IngestReport", "ingest"]
