"""The dataset listing behind ``GET /api/datasets``: manifests cached by version id.

A published manifest never changes, so the listing parses and validates each one once. The cache key also holds
the manifest file's identity (inode, size, mtime) on a local store, so a version removed and published again by
another process (another ``augsvc serve`` or the CLI on the same store) is read again; a version removed elsewhere
drops out because the listing of version folders is read on every request. Tags are read on every request (they
move). Remote stores key by version id alone (an object's rewrite under the same id is the same content).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from schemas.manifest import Manifest


class Listing:
    """Cached manifests and version summaries of one store (thread-safe; ``size`` entries, least recent out)."""

    def __init__(self, store: Any, size: int = 4096) -> None:
        self.store = store
        self.size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[Any, Manifest, dict]] = OrderedDict()

    def _stamp(self, dataset: str, version: str) -> Any:
        if not self.store.local:
            return None
        try:
            st = os.stat(self.store.root / dataset / version / "manifest.json")
        except OSError:
            return "missing"
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _entry(self, dataset: str, version: str) -> tuple[Manifest, dict]:
        key, stamp = (dataset, version), self._stamp(dataset, version)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return hit[1], hit[2]
        m = self.store.manifest(dataset, version)  # parsed and checked (AugsvcError when damaged)
        info = {
            "version": version, "created": m.created, "modality": m.modality, "rows": m.rows,
            "rows_per_class": m.rows_per_class, "rows_per_split": m.rows_per_split, "parents": m.parents,
            "kind": m.definition.get("kind"), "shards": len(m.shards), "soft_labels": m.soft_labels,
            "quarantined": len(m.quarantine), "quarantine": [q.model_dump() for q in m.quarantine[:20]],
        }  # fmt: skip
        with self._lock:
            self._cache[key] = (stamp, m, info)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return m, info

    def manifest(self, dataset: str, version: str) -> Manifest:
        """The manifest of a published version (shared: callers must not change it)."""
        return self._entry(dataset, version)[0]

    def dataset(self, dataset: str) -> dict:
        """A dataset's versions (newest first) with rows, classes, lineage and quarantine, and its tags."""
        versions = [self._entry(dataset, v)[1] for v in self.store.versions(dataset)]
        versions.sort(key=lambda x: str(x["created"]), reverse=True)
        return {"name": dataset, "versions": versions, "tags": self.store.tags(dataset)}

    def datasets(self) -> list[dict]:
        return [self.dataset(d) for d in self.store.datasets()]
