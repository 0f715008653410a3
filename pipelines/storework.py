"""A build's work files: task outputs kept under ``.staging/build-<version>/work`` until the version is published.

Each finished task leaves its files plus a sidecar ``<key>.json`` written last (the resume marker), so a build
run again after a crash reuses every task whose sidecar and files exist. Files are replaced atomically (written
aside, then renamed; in a remote store, one put). The folder is local, or, for a build on a cluster with a remote
store (``--address``), a prefix in that store so that tasks on any node read the files of the step before
(:meth:`pipelines.store.Store.work_files` decides). ``Staging.add_file`` turns the last step's files into shards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipelines import storefs


class WorkFiles:
    """Task outputs under one work root (a local folder or a URI in a remote store)."""

    def __init__(self, root: str) -> None:
        self.root = root
        if storefs.is_local(root):
            Path(root).mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, data: bytes) -> None:
        if not storefs.is_local(self.root):
            storefs.write_bytes(storefs.join(self.root, name), data)  # one put: visible whole or not at all
            return
        tmp = Path(self.root) / f".{name}.tmp"
        tmp.write_bytes(data)
        storefs.rename("work", tmp, Path(self.root) / name)

    def done(self, key: str) -> tuple[list[str], dict | None] | None:
        """(files, report) of the task ``key`` when it finished in this or an earlier run (sidecar and every
        file present), else None."""
        side = storefs.join(self.root, f"{key}.json")
        if not storefs.exists(side):
            return None
        meta = json.loads(storefs.read_bytes(side))
        files = [storefs.join(self.root, f) for f in meta["files"]]
        return (files, meta.get("report")) if all(storefs.exists(f) for f in files) else None

    def save(
        self, key: str, blobs: list[bytes], names: list[str] | None = None, report: dict | None = None
    ) -> list[str]:
        """Write a finished task's files (``names``, default ``<key>-NNN.parquet``), then its sidecar with
        ``report`` (JSON-able). Returns the files' refs, in order."""
        names = names or [f"{key}-{j:03d}.parquet" for j in range(len(blobs))]
        for n, b in zip(names, blobs, strict=True):
            self._write(n, b)
        self._write(f"{key}.json", json.dumps({"files": names, "report": report}).encode())
        return [storefs.join(self.root, n) for n in names]

    def cache_dir(self, name: str) -> str:
        """A folder under the work root for what a stage keeps across resumes (a fine-tuned model)."""
        path = storefs.join(self.root, f"cache-{name}")
        if storefs.is_local(path):
            Path(path).mkdir(parents=True, exist_ok=True)
        return path

    def clear(self) -> None:
        """Remove every work file (after the last step's files became shards)."""
        if storefs.is_local(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            storefs.delete_dir(self.root)


def part_keys(parts: list[list[str]]) -> list[list[tuple[str, int | None, str]]]:
    """(sample_id, label, split) of every row of every part (a part: files in order), read from those columns."""
    out = []
    for files in parts:
        rows: list[tuple[str, int | None, str]] = []
        for f in files:
            t = storefs.read_table(f, columns=["sample_id", "label", "split"])
            rows += zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), t["split"].to_pylist(), strict=True)
        out.append(rows)
    return out
