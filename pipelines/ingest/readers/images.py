"""Image folders: ``<root>/<class>/*``, ``<root>/<split>/<class>/*``, a flat folder plus a labels file, or a flat
folder (``<root>/*`` or ``<root>/<split>/*``) of unlabelled images.

Unlabelled: a folder whose images sit directly in it (no class folders) is ingested without labels: every row's
``label`` is null and the version has no ``class_names``. Streams and ``pretrain:`` read it; whatever needs labels
(training a classifier, mix and generator stages, op stages with ``classes``/``target_per_class``) refuses it
naming itself (:func:`pipelines.unlabelled.require_labels`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import IMAGE_EXTS, Source, files_of
from pipelines.ingest.records import Bad, FileRef, Record, relative, split_from_name
from schemas.errors import AugsvcError

SPLIT_DIRS = {"train", "val", "valid", "validation", "dev", "test"}


def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_labels(path: Path) -> dict[str, str]:
    """A CSV (header with a file and a label column, or two columns) or JSONL mapping file name -> label."""
    if not path.is_file():
        raise AugsvcError(f"labels file {path}: not found")
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise AugsvcError(f"labels file {path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if path.suffix.lower() == ".jsonl":
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                key = next(obj[k] for k in ("file", "filename", "path", "image") if k in obj)
                label = obj["label"]
                if not isinstance(label, str | int) or isinstance(label, bool) or not isinstance(key, str):
                    raise TypeError(f"file {key!r} / label {label!r}: expected a string and a string or integer")
                out[key] = str(label)
            except (json.JSONDecodeError, StopIteration, KeyError, TypeError, AttributeError, RecursionError) as e:
                raise AugsvcError(
                    f"labels file {path}:{i}: expected a JSON object with 'file' and 'label' ({e})"
                ) from e
        return out
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r]
    except csv.Error as e:
        raise AugsvcError(f"labels file {path}: malformed CSV ({e})") from None
    if not rows:
        raise AugsvcError(f"labels file {path}: empty")
    head = [h.strip().lower() for h in rows[0]]
    fcol = next((head.index(k) for k in ("file", "filename", "path", "image") if k in head), None)
    lcol = next((head.index(k) for k in ("label", "class", "category") if k in head), None)
    start = 1
    if fcol is None or lcol is None:
        fcol, lcol, start = 0, 1, 0
    for i, row in enumerate(rows[start:], start + 1):
        if len(row) <= max(fcol, lcol):
            raise AugsvcError(f"labels file {path}:{i}: expected a file name and a label, got {row!r}")
        out[row[fcol].strip()] = row[lcol].strip()
    return out


def source(root: Path, opts: IngestOptions) -> Source:
    if root.is_file():
        raise AugsvcError(f"{root}: an image source is a folder (<root>/<class>/*.jpg); got a file")
    labels = _load_labels(Path(opts.labels_file)) if opts.labels_file else None

    def items() -> Iterator[Record | Bad]:
        if labels is not None:
            yield from _flat(root, labels, opts.split or "train")
            return
        dirs = _subdirs(root)
        split_dirs = [d for d in dirs if d.name.lower() in SPLIT_DIRS]
        if split_dirs:
            for d in split_dirs:
                yield from _class_folders(root, d, split_from_name(d.name))
        else:
            yield from _class_folders(root, root, opts.split or "train")

    notes = []
    if labels is None and unlabelled_folder(root):
        notes.append(
            "no class folders: the images are ingested without labels (label null, no classes); pretraining "
            "('pretrain:' in a train config) and streams read them, anything that needs labels refuses this version"
        )
    elif labels is None:
        flat = [d.name for d in _subdirs(root) if d.name.lower() in SPLIT_DIRS and not _subdirs(d) and _has_images(d)]
        if flat:
            notes.append(
                f"split folder(s) {', '.join(flat)} hold images but no class folders: their images are ingested "
                "without labels (label null); put them in class folders to label them"
            )
    class_names = None
    if labels is None:
        dirs = _subdirs(root)
        split_dirs = [d for d in dirs if d.name.lower() in SPLIT_DIRS]
        bases = split_dirs or [root]
        class_names = sorted({c.name for b in bases for c in _subdirs(b)})
        if class_names and all(c.isdigit() for c in class_names):
            class_names.sort(key=int)
    return Source("image", items, class_names=class_names or None, notes=notes)


def _has_images(d: Path) -> bool:
    with os.scandir(d) as it:
        return any(e.is_file() and not e.name.startswith(".") and _ext(e.name) in IMAGE_EXTS for e in it)


def _ext(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def unlabelled_folder(root: Path) -> bool:
    """True when ``root`` (or each of its split folders) holds images directly and no class folders."""
    dirs = _subdirs(root)
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_DIRS]
    bases = split_dirs or [root]
    return all(not _subdirs(b) and _has_images(b) for b in bases) and (bool(split_dirs) or not dirs)


def _class_folders(root: Path, base: Path, split: str) -> Iterator[Record | Bad]:
    classes = _subdirs(base)
    prefix = "" if base == root else f"{relative(base, root)}/"
    if not classes:
        if not _has_images(base):
            raise AugsvcError(
                f"{base}: no class folders and no images; expected <root>/<class>/*.jpg, images directly in "
                "the folder (ingested without labels), or --labels-file for a flat folder"
            )
        yield from _unlabelled(base, prefix, split)
        return
    for name in _listing(str(base), recurse=False):  # a file beside class folders has no class
        yield Bad(
            f"{prefix}{name}",
            None,
            "a file beside the class folders has no class: move it into its class folder (or ingest a folder "
            "without class folders to read images without labels)",
        )
    for cdir in classes:
        cdir_s = str(cdir)
        for name in _listing(cdir_s):
            rel = f"{prefix}{cdir.name}/{name}"
            ext = os.path.splitext(name)[1].lower()
            if ext not in IMAGE_EXTS:
                yield Bad(rel, None, f"not an image file (extension {ext or 'none'}; expected {_exts()})")
                continue
            why = _not_a_file(os.path.join(cdir_s, name))
            if why is not None:
                yield Bad(rel, None, why)
                continue
            yield Record(rel, split, cdir.name, FileRef(os.path.join(cdir_s, name)))


def _unlabelled(base: Path, prefix: str, split: str) -> Iterator[Record | Bad]:
    """The files directly in ``base`` as rows without a label (a flat folder of unlabelled images)."""
    for name in _listing(str(base), recurse=False):
        ext = _ext(name)
        if ext not in IMAGE_EXTS:
            yield Bad(f"{prefix}{name}", None, f"not an image file (extension {ext or 'none'}; expected {_exts()})")
            continue
        why = _not_a_file(os.path.join(str(base), name))
        if why is not None:
            yield Bad(f"{prefix}{name}", None, why)
            continue
        yield Record(f"{prefix}{name}", split, None, FileRef(os.path.join(str(base), name)))


def _listing(d: str, prefix: str = "", recurse: bool = True) -> list[str]:
    """Relative names of the files under ``d`` (recursively unless ``recurse`` is False, hidden entries skipped),
    sorted."""
    out = []
    with os.scandir(d) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                if recurse:
                    out += _listing(e.path, f"{prefix}{e.name}/")
            else:  # files, and what is not one (a broken symlink, a FIFO): the readers report those, never skip them
                out.append(prefix + e.name)
    return sorted(out)


def _not_a_file(path: str) -> str | None:
    """Why ``path`` (listed in a folder) cannot be read as an image file, or None when it is a regular file."""
    if os.path.isfile(path):
        return None
    if os.path.islink(path) and not os.path.exists(path):
        return "a symlink to a missing file"
    return "not a regular file (a FIFO, socket or device)"


def _flat(root: Path, labels: dict[str, str], split: str) -> Iterator[Record | Bad]:
    seen = set()
    for f in files_of(root, IMAGE_EXTS):
        rel = relative(f, root)
        label = labels.get(rel, labels.get(f.name))
        seen.update({rel, f.name})
        if label is None or label == "":
            yield Bad(rel, None, "no label for this file in the labels file")
            continue
        yield Record(rel, split, label, FileRef(str(f)))
    for name in sorted(set(labels) - seen):
        yield Bad(name, None, "listed in the labels file but no such image file")


def _exts() -> str:
    return ", ".join(sorted(IMAGE_EXTS))
