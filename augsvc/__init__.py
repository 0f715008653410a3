"""augsvc: data augmentation service and dataset builder.

The Python API (``augsvc/api.py``): ``augsvc.ingest``, ``augsvc.split``, ``augsvc.build``, ``augsvc.verify``,
``augsvc.show``, ``augsvc.preview``, ``augsvc.catalogue``, ``augsvc.open_store``, ``augsvc.load_recipe`` and
``augsvc.Stream``; each returns a typed result with a JSON form (``model_dump_json()``). Heavy libraries load on
first use, so ``import augsvc`` stays light.
"""

from typing import Any

from augsvc.api import (
    BuildResult,
    IngestResult,
    SplitResult,
    VerifyResult,
    build,
    catalogue,
    ingest,
    load_recipe,
    open_store,
    preview,
    show,
    split,
    verify,
)
from schemas.errors import AugsvcError
from schemas.version import PACKAGE_VERSION as __version__

__all__ = [
    "AugsvcError", "BuildResult", "IngestResult", "SplitResult", "Stream", "VerifyResult", "__version__", "build",
    "catalogue", "ingest", "load_recipe", "open_store", "preview", "show", "split", "verify",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "Stream":  # numpy/pyarrow only when asked for
        from augsvc.stream import Stream

        return Stream
    raise AttributeError(f"module 'augsvc' has no attribute {name!r}")
