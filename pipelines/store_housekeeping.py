"""Store housekeeping: the version table, lineage children, removing a version and garbage collection.

A mixin of :class:`pipelines.store.Store` (it uses the store's ``tags``, ``versions``, ``manifest``, ``set_tag``,
``ref``, ``root`` and ``local``); kept apart so the store module holds the publish/read contract only.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from pipelines import storefs, storelock
from schemas.errors import AugsvcError


class StoreHousekeeping:
    """Listing, deletion and gc over a store's folders; mixed into :class:`pipelines.store.Store`."""

    # provided by Store
    root: Path
    local: bool
    tags: Any
    versions: Any
    datasets: Any
    manifest: Any
    set_tag: Any
    ref: Any
    exists: Any
    _subdirs: Any
    _tags_lock: Any
    _write_tag: Any
    _reader_lock_path: Any

    def version_table(self, dataset: str) -> list[dict]:
        """One dict per version of ``dataset``, oldest first: version, rows, created, seed, parents, tags."""
        tags = self.tags(dataset)
        out = []
        for v in self.versions(dataset):
            try:
                m = self.manifest(dataset, v)
            except AugsvcError as e:  # listed, marked, never fatal: verify says more
                out.append({"version": v, "rows": 0, "created": "", "seed": None, "kind": "damaged", "parents": [],
                            "tags": sorted(t for t, tv in tags.items() if tv == v),
                            "damaged": str(e).split(": ", 1)[-1]})  # fmt: skip
                continue
            out.append(
                {
                    "version": v,
                    "rows": m.rows,
                    "created": m.created,
                    "seed": m.seed,
                    "kind": m.definition.get("kind"),
                    "parents": m.parents,
                    "tags": sorted(t for t, tv in tags.items() if tv == v),
                }
            )
        return sorted(out, key=lambda r: (r["created"] or "", r["version"]))

    def children(self, dataset: str, version: str) -> list[str]:
        """``name@version`` of every version in the store whose manifest lists ``dataset@version`` as a parent."""
        ref = f"{dataset}@{version}"
        return [f"{d}@{v}" for d in self.datasets() for v in self.versions(d) if ref in self.manifest(d, v).parents]

    def remove_version(self, dataset: str, version: str, *, force: bool = False) -> list[str]:
        """Delete one version; returns one line per tag moved or removed.

        Refuses (``AugsvcError``) while a tag other than ``latest`` or a child version (a manifest listing it in
        ``parents``) needs it, unless ``force``: then those tags are removed (children keep their own data; only
        their lineage points at a version that is gone). ``latest`` moves to the newest remaining version.
        A running build or split that derives from the version (it holds the version's reader lock until it has
        published) also blocks it without ``force``. Locally the whole removal holds the dataset's tags lock, so a
        concurrent ``tag`` either lands before (and blocks or is removed) or is refused after.
        Tags are changed first; then the version folder is renamed aside in one step (readers see the whole
        version or no version) and deleted; remotely ``manifest.json`` is deleted first, then the shards."""
        self.manifest(dataset, version)  # raises when absent
        if not self.local:
            return self._remove_version(dataset, version, force=force)
        reader = storelock.acquire(self._reader_lock_path(dataset, version), wait=False)
        try:
            if reader is None and not force:
                raise AugsvcError(
                    f"{dataset}@{version} is being read by a running job (a build or split deriving from it); wait "
                    "for it to finish, or pass --force to delete it anyway"
                )
            with self._tags_lock(dataset):
                self.manifest(dataset, version)  # removed while this waited: say so
                return self._remove_version(dataset, version, force=force)
        finally:
            if reader is not None:
                reader.release()

    def _remove_version(self, dataset: str, version: str, *, force: bool) -> list[str]:
        tags = {t: v for t, v in self.tags(dataset).items() if v == version}
        kids = self.children(dataset, version)
        blockers = [f"tag {t!r}" for t in sorted(tags) if t != "latest"] + [f"child version {c}" for c in kids]
        if blockers and not force:
            raise AugsvcError(
                f"{dataset}@{version} is still needed by {', '.join(blockers)}; remove those first, "
                "or pass --force to delete it anyway"
            )
        notes = []
        for t in sorted(tags):
            if t == "latest":
                rest = [r for r in self.version_table(dataset) if r["version"] != version]
                if rest:
                    self._write_tag(dataset, "latest", rest[-1]["version"])
                    notes.append(f"latest -> {rest[-1]['version']} (the newest remaining version)")
                    continue
            self._delete_tag(dataset, t)
            notes.append(f"tag {t!r} removed")
        if self.local:
            aside = self.root / dataset / ".staging" / f"rm-{version}-{uuid.uuid4().hex[:8]}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            storefs.rename("rm", self.root / dataset / version, aside)  # atomic: the version disappears whole
            shutil.rmtree(aside, ignore_errors=True)
        else:
            fs, path = storefs.resolve(self.ref(dataset, version, "manifest.json"))
            fs.delete_file(path)  # the manifest is what makes a remote version visible
            storefs.delete_dir(self.ref(dataset, version))
        return notes

    def _delete_tag(self, dataset: str, tag: str) -> None:
        if self.local:
            (self.root / dataset / "tags" / tag).unlink(missing_ok=True)
        else:
            fs, path = storefs.resolve(self.ref(dataset, "tags", tag))
            fs.delete_file(path)

    def gc(self, *, min_age_s: float = 3600.0, dry_run: bool = False) -> list[str]:
        """Remove what no version or tag references; returns one line per thing removed (or to remove).

        Local stores: staging folders untouched for ``min_age_s`` seconds whose lock no live job holds (crashed or
        abandoned ingests and builds; a resumable build loses its finished work), folders of removed versions,
        temporary tag files, files under a version's ``shards/`` that its manifest does not list, version folders
        without a manifest, and tags pointing at versions that do not exist. Remote stores: shard objects of
        versions without a manifest (an upload that crashed) and dangling tags; the local staging folder as above.

        Never removed: lock files (deleting one that another process is about to lock is a race), a staging
        folder whose lock is held (a live build, ingest or split, however old), a tag whose version was published
        after gc listed the versions. A folder is renamed aside (``.staging/gc-*``) in one step before it is
        deleted, so a delete never continues inside a folder that a publish renamed meanwhile."""
        import time

        out: list[str] = []
        now = time.time()
        lock_suffix = storelock.LOCK_SUFFIX

        def age(p: Path) -> float:
            try:
                newest = max([p.stat().st_mtime] + [q.stat().st_mtime for q in p.rglob("*")])
            except OSError:
                return 0.0
            return now - newest

        def drop(p: Path, why: str) -> None:
            out.append(f"{p}: {why}")
            if dry_run:
                return
            if p.is_dir() and not p.is_symlink():
                aside = p.parent / f"gc-{uuid.uuid4().hex[:12]}" if p.parent.name == ".staging" else None
                if aside is None:
                    aside = self.root / p.relative_to(self.root).parts[0] / ".staging" / f"gc-{uuid.uuid4().hex[:12]}"
                    aside.parent.mkdir(parents=True, exist_ok=True)
                try:
                    storefs.rename("gc", p, aside)
                except OSError:
                    return  # gone or moved meanwhile (a publish, another gc): not ours to delete
                shutil.rmtree(aside, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

        names = self._subdirs()
        for ds in [d for d in names if not d.startswith(".")]:
            stg = self.root / ds / ".staging"
            if stg.is_dir():
                for p in sorted(stg.iterdir()):
                    if p.name.endswith(lock_suffix):
                        continue  # never a lock file
                    if p.name.startswith(("rm-", "gc-")):
                        drop(p, "left over from a removed version" if p.name.startswith("rm-") else "left by gc")
                    elif age(p) >= min_age_s:
                        try:
                            lock = storelock.acquire(stg / f"{p.name}{lock_suffix}", wait=False)
                        except OSError:
                            continue  # cannot even try the lock (read-only store): leave it
                        if lock is None:
                            continue  # a live job holds it, however old its files look
                        try:
                            drop(p, f"staging folder untouched for {age(p) / 3600:.1f} h")
                        finally:
                            lock.release()
            tagdir = self.root / ds / "tags"
            if self.local and tagdir.is_dir():
                for p in sorted(tagdir.iterdir()):
                    if p.name.startswith(".") and age(p) >= min_age_s:
                        drop(p, "temporary tag file")
            versions = set(self.versions(ds))
            for t, v in self.tags(ds).items():
                if v not in versions and not self.exists(ds, v):
                    out.append(f"{ds}/tags/{t}: points at {v}, which does not exist")
                    if not dry_run:
                        with self._tags_lock(ds):  # a tag written since it was read points elsewhere: keep it
                            if self.tags(ds).get(t) == v and not self.exists(ds, v):
                                self._delete_tag(ds, t)
            for v in self._subdirs(ds):
                if v in ("tags", ".staging") or v.startswith("."):
                    continue
                if v not in versions:
                    if self.local:
                        vd = self.root / ds / v
                        if age(vd) >= min_age_s:
                            drop(vd, "version folder without manifest.json")
                    else:
                        out.append(f"{ds}/{v}: shard objects without manifest.json")
                        if not dry_run:
                            storefs.delete_dir(self.ref(ds, v))
                    continue
                if self.local:
                    try:
                        listed = {s.path for s in self.manifest(ds, v).shards}
                    except AugsvcError:
                        continue  # removed meanwhile, or damaged (verify says which): nothing to compare against
                    sd = self.root / ds / v / "shards"
                    for p in sorted(sd.iterdir()) if sd.is_dir() else []:
                        if f"shards/{p.name}" not in listed:
                            drop(p, f"not listed in {ds}@{v}'s manifest")
        return out
