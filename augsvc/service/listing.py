"""The dataset listing behind ``GET /api/datasets``: manifests cached by version id.

A published manifest never changes, so the listing parses and validates each one once. The cache key also holds
the manifest file's identity (inode, size, mtime) on a local store, so a version removed and published again by
another process (another ``augsvc serve`` or the CLI on the same store) is read again; a version removed elsewhere
drops out because the listing of version folders is read again whenever it may have changed. Remote stores key by
version id alone (an object's rewrite under the same id is the same content).

The whole listing's JSON is kept too, with a fingerprint of the folders that change when anything in it changes
(the store root, each dataset folder, each ``tags`` folder: a publish, an ``rm`` and a tag write each rename or
delete an entry in one of them, which moves its mtime and link count). A request whose fingerprint matches gets the
kept bytes after a few ``stat`` calls; past ``ttl_s`` seconds since the last full read one background thread reads
the listing again meanwhile (stale-while-revalidate); a fingerprint that moved reads it again, once for all the
requests waiting on it. That holds across processes (another service or the CLI on the same store), since it asks the
filesystem and not this process. Local stores only; remote stores read the listing on every request.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from augsvc import api
from schemas.manifest import Manifest


class Listing:
    """Cached manifests and version summaries of one store (thread-safe; ``size`` entries, least recent out)."""

    def __init__(self, store: Any, size: int = 4096, ttl_s: float = 2.0) -> None:
        self.store = store
        self.size = size
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._reading = threading.RLock()  # one full read of the listing at a time
        self._refreshing = threading.Lock()  # held while a background refresh runs
        self._cache: OrderedDict[tuple[str, str], tuple[Any, Manifest, dict]] = OrderedDict()
        self._doc: tuple[Any, list[str], float, bytes] | None = None  # (fingerprint, datasets, time, JSON)

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
        m = api.show(f"{dataset}@{version}", store=self.store)  # parsed and checked (AugsvcError when damaged)
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

    def dataset(self, dataset: str, versions: list[str] | None = None) -> dict:
        """A dataset's versions (newest first) with rows, classes, lineage and quarantine, and its tags."""
        vs = api.versions(dataset, store=self.store) if versions is None else versions
        infos = [self._entry(dataset, v)[1] for v in vs]
        infos.sort(key=lambda x: str(x["created"]), reverse=True)
        return {"name": dataset, "versions": infos, "tags": api.tags(dataset, store=self.store)}

    def datasets(self) -> list[dict]:
        return [self.dataset(d) for d in api.datasets(self.store)]

    def _fingerprint(self, names: list[str]) -> Any:
        """(mtime, links, inode) of the root, and of each dataset's folder and ``tags`` folder (None: missing)."""

        def st(path: str) -> Any:
            try:
                s = os.stat(path)
            except OSError:
                return None
            return (s.st_mtime_ns, s.st_nlink, s.st_ino)

        root = str(self.store.root)
        return (st(root), *((st(f"{root}/{d}"), st(f"{root}/{d}/tags")) for d in names))

    def cached_json(self) -> bytes | None:
        """The kept listing JSON while the store's fingerprint holds (a few ``stat`` calls: cheap enough for the event
        loop), else None (then :meth:`datasets_json` reads it again). Past ``ttl_s`` the kept bytes are still answered
        while one background thread reads the listing again (stale-while-revalidate: a listing that 32 waiting
        requests all re-read at once every ``ttl_s`` made p99 1.5 s in ``bench/service.py --listing``)."""
        doc = self._doc
        if doc is None or self._fingerprint(doc[1]) != doc[0]:
            return None
        if time.monotonic() - doc[2] >= self.ttl_s and self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._refresh_in_background, name="augsvc-listing", daemon=True).start()
        return doc[3]

    def _refresh_in_background(self) -> None:
        try:
            self._read_json()
        except Exception:  # noqa: BLE001 - a damaged manifest: the next request reads it and gets the error
            self._doc = None
        finally:
            self._refreshing.release()

    def datasets_json(self) -> bytes:
        """:meth:`datasets` as JSON bytes, kept while the store's fingerprint holds (see the module doc). One thread
        reads at a time; the others then take what it kept."""
        if not self.store.local:
            return json.dumps(self.datasets()).encode()
        kept = self.cached_json()
        if kept is not None:
            return kept
        with self._reading:
            kept = self.cached_json()  # read by the thread this one waited for
            return kept if kept is not None else self._read_json()

    def _read_json(self) -> bytes:
        with self._reading:
            now = time.monotonic()
            names = api.datasets(self.store)
            before = self._fingerprint(names)
            body = json.dumps(self.datasets()).encode()
            if self._fingerprint(names) == before:  # nothing moved while it was read: keep it
                self._doc = (before, names, now, body)
            return body
