"""Image arrays: IDX (MNIST format, gzip or not, streamed) and NPZ (``x``/``y`` arrays, names configurable)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.records import Bad, Record, relative, split_from_name
from schemas.errors import AugsvcError

_IDX_BLOCK = 1024  # items read per call
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _idx_header(f, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise AugsvcError(f"{path}: not an IDX file (bad magic number {head!r})")
    ndim = head[3]
    dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
    return np.dtype(_IDX_DTYPES[head[2]]), dims


def _idx_pairs(root: Path) -> list[tuple[Path, Path]]:
    files = files_of(root)
    images = [f for f in files if "idx3" in f.name or ("images" in f.name and "ubyte" in f.name)]
    if not images:
        raise AugsvcError(f"{root}: no IDX image files (*-images-idx3-ubyte[.gz])")
    pairs = []
    for img in images:
        lab_name = img.name.replace("images", "labels").replace("idx3", "idx1")
        lab = img.with_name(lab_name)
        if not lab.is_file():
            raise AugsvcError(f"{img}: its labels file {lab_name} is missing next to it")
        pairs.append((img, lab))
    return pairs


def idx_source(root: Path, opts: IngestOptions) -> Source:
    pairs = _idx_pairs(root)
    base = root if root.is_dir() else root.parent

    def items() -> Iterator[Record | Bad]:
        for img_path, lab_path in pairs:
            split = opts.split or split_from_name(img_path.name, "train")
            rel = relative(img_path, base)
            with _open(img_path) as fi, _open(lab_path) as fl:
                idt, idims = _idx_header(fi, img_path)
                ldt, ldims = _idx_header(fl, lab_path)
                if len(idims) not in (3, 4) or len(ldims) != 1:
                    raise AugsvcError(f"{img_path}: expected images (N, H, W[, C]) and labels (N,)")
                if idims[0] != ldims[0]:
                    raise AugsvcError(f"{img_path} has {idims[0]} images but {lab_path} has {ldims[0]} labels")
                shape = idims[1:]
                size = int(np.prod(shape)) * idt.itemsize
                n = idims[0]
                for start in range(0, n, _IDX_BLOCK):  # read blocks of items: memory stays bounded, reads are few
                    k = min(_IDX_BLOCK, n - start)
                    buf, lab = fi.read(size * k), fl.read(ldt.itemsize * k)
                    whole = min(len(buf) // size, len(lab) // ldt.itemsize)
                    imgs = np.frombuffer(buf, idt, count=whole * size // idt.itemsize).reshape(whole, *shape)
                    labels = np.frombuffer(lab, ldt, count=whole).tolist()
                    for j in range(whole):
                        yield Record(f"{rel}#{start + j}", split, str(int(labels[j])), imgs[j])
                    if whole < k:
                        yield Bad(rel, None, f"file ends at item {start + whole} of {n} (truncated)")
                        return

    return Source("image", items)


def npz_source(path: Path, opts: IngestOptions) -> Source:
    if not path.is_file():
        raise AugsvcError(f"{path}: an NPZ source is one .npz file")

    def items() -> Iterator[Record | Bad]:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AugsvcError(f"{path}: not a readable .npz file ({e})") from e
        for key in (opts.x_key, opts.y_key):
            if key not in data.files:
                raise AugsvcError(f"{path}: no array {key!r} (has {', '.join(data.files)}); pass --x-key/--y-key")
        x, y = data[opts.x_key], data[opts.y_key]
        if len(x) != len(y):
            raise AugsvcError(f"{path}: {opts.x_key} has {len(x)} items but {opts.y_key} has {len(y)}")
        if x.ndim not in (3, 4):
            raise AugsvcError(f"{path}: {opts.x_key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C)")
        split = opts.split or split_from_name(path.stem, "train")
        for i in range(len(x)):
            label = y[i]
            label_s = str(int(label)) if np.issubdtype(np.asarray(label).dtype, np.integer) else str(label)
            yield Record(f"{path.name}#{i}", split, label_s, np.asarray(x[i]))

    return Source("image", items)
