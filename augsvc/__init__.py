"""augsvc: data augmentation service and dataset builder.

The Python API (``augsvc/api.py``): ``augsvc.ingest``, ``augsvc.split``, ``augsvc.label_subset``, ``augsvc.build``,
``augsvc.plan``, ``augsvc.verify``, ``augsvc.show``, ``augsvc.preview``, ``augsvc.catalogue``, the reads
``augsvc.datasets``, ``augsvc.versions``, ``augsvc.tags``, ``augsvc.resolve``, ``augsvc.open_shard``,
``augsvc.read_shard``, ``augsvc.tag``, ``augsvc.open_store``, ``augsvc.load_recipe`` and ``augsvc.Stream``; jobs
return a typed result with a JSON form (``model_dump_json()``). Heavy libraries load on first use, so
``import augsvc`` stays light.
"""

from typing import Any

from augsvc.api import (
    BuildResult,
    IngestResult,
    SplitResult,
    VerifyResult,
    build,
    catalogue,
    datasets,
    ingest,
    label_subset,
    load_recipe,
    open_shard,
    open_store,
    plan,
    preview,
    read_shard,
    resolve,
    show,
    split,
    tag,
    tags,
    verify,
    versions,
)
from schemas.errors import AugsvcError
from schemas.version import PACKAGE_VERSION as __version__

__all__ = [
    "AugsvcError", "BuildResult", "IngestResult", "SplitResult", "Stream", "VerifyResult", "__version__", "build",
    "catalogue", "datasets", "ingest", "label_subset", "load_recipe", "open_shard", "open_store", "plan", "preview",
    "read_shard", "resolve", "show", "split", "tag", "tags", "verify", "versions",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "Stream":  # numpy/pyarrow only when asked for
        from augsvc.stream import Stream

        return Stream
    raise AttributeError(f"module 'augsvc' has no attribute {name!r}")
