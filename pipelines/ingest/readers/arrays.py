"""Image arrays: IDX (MNIST format, gzip or not, streamed) and NPZ (``x``/``y`` arrays, names configurable)."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.ingest.columnar import ArrayBlock, block_items
from pipelines.ingest.options import IngestOptions
from pipelines.ingest.ranged import InputChanged, RangedFile
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.records import Bad, relative, split_from_name
from schemas.errors import AugsvcError

try:  # ISA-L's inflate (the `fast-gzip` extra): the same bytes, ~2x faster than zlib's for workers reading IDX rows
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - depends on the install
    _inflate = zlib

_IDX_BLOCK = 1024  # items read per call
_IDX_BLOCK_BYTES = 64 << 20  # ... and at most this many bytes (a header may claim huge images)
_NPZ_BLOCK = 4096  # items per block of an NPZ array (already in memory: blocks only bound the per-block lists)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read(f, n: int, path: Path) -> bytes:
    """Read up to ``n`` bytes; a truncated or corrupt gzip stream is an AugsvcError naming the file."""
    try:
        return f.read(n)
    except (EOFError, OSError, zlib.error) as e:
        raise AugsvcError(f"{path}: truncated or corrupt gzip data ({e})") from None


def _idx_header(f, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = _read(f, 4, path)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise AugsvcError(f"{path}: not an IDX file (bad magic number {head!r})")
    ndim = head[3]
    if not 1 <= ndim <= 4:
        raise AugsvcError(f"{path}: IDX header says {ndim} dimensions; expected 1 (labels) or 3-4 (images)")
    raw = _read(f, 4 * ndim, path)
    if len(raw) < 4 * ndim:
        raise AugsvcError(f"{path}: IDX header is truncated ({4 + len(raw)} of {4 + 4 * ndim} bytes)")
    return np.dtype(_IDX_DTYPES[head[2]]), struct.unpack(f">{ndim}I", raw)


def _class_name(value: object) -> str | None:
    """A class name from an array label: an integer (or an integral, finite float); None otherwise."""
    v = value.item() if isinstance(value, np.generic) else value
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    if isinstance(v, str) and v.strip():
        return v
    if isinstance(v, bytes) and v.strip():
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


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


def _idx_check(img_path: Path, lab_path: Path, fi, fl, opts: IngestOptions):
    """(image dtype, item shape, items, label dtype) from an IDX pair's open headers, with the reader's checks."""
    idt, idims = _idx_header(fi, img_path)
    ldt, ldims = _idx_header(fl, lab_path)
    if len(idims) not in (3, 4) or len(ldims) != 1:
        raise AugsvcError(f"{img_path}: expected images (N, H, W[, C]) and labels (N,)")
    if idims[0] != ldims[0]:
        raise AugsvcError(f"{img_path} has {idims[0]} images but {lab_path} has {ldims[0]} labels")
    shape = idims[1:]
    if 0 in shape:
        raise AugsvcError(f"{img_path}: IDX images have a zero dimension {tuple(shape)}")
    if opts.max_pixels is not None and shape[0] * shape[1] > opts.max_pixels:
        raise AugsvcError(
            f"{img_path}: IDX images are {shape[1]}x{shape[0]} = {shape[0] * shape[1]:,} pixels, above "
            f"the limit of {opts.max_pixels:,} (raise --max-pixels to accept them)"
        )
    return idt, shape, idims[0], ldt


def _idx_names(lab: bytes, ldt: np.dtype, count: int) -> tuple[list[str | None], dict[int, str]]:
    """Class names of ``count`` IDX labels (None where a label is not a class index) and why, by position."""
    labels = np.frombuffer(lab, ldt, count=count).tolist()
    names = [str(v) for v in labels] if ldt.kind in "iu" else [_class_name(v) for v in labels]
    return names, {j: f"label {labels[j]!r} is not a class index" for j, v in enumerate(names) if v is None}


def idx_source(root: Path, opts: IngestOptions) -> Source:
    pairs = _idx_pairs(root)
    base = root if root.is_dir() else root.parent

    def blocks() -> Iterator[ArrayBlock | Bad]:
        for img_path, lab_path in pairs:
            split = opts.split or split_from_name(img_path.name, "train")
            rel = relative(img_path, base)
            with _open(img_path) as fi, _open(lab_path) as fl:
                idt, shape, n, ldt = _idx_check(img_path, lab_path, fi, fl, opts)
                size = int(np.prod(shape)) * idt.itemsize
                block = max(1, min(_IDX_BLOCK, _IDX_BLOCK_BYTES // size))
                for start in range(0, n, block):  # read blocks of items: memory stays bounded, reads are few
                    k = min(block, n - start)
                    try:
                        buf, lab = fi.read(size * k), fl.read(ldt.itemsize * k)
                    except (EOFError, OSError, zlib.error) as e:
                        yield Bad(rel, None, f"truncated or corrupt gzip data at item {start} of {n} ({e})")
                        return
                    whole = min(len(buf) // size, len(lab) // ldt.itemsize)
                    imgs = np.frombuffer(buf, idt, count=whole * size // idt.itemsize).reshape(whole, *shape)
                    names, reasons = _idx_names(lab, ldt, whole)
                    sources = [f"{rel}#{i}" for i in range(start, start + whole)]
                    if whole:
                        yield ArrayBlock(sources, split, names, imgs, None, reasons)
                    if whole < k:
                        yield Bad(rel, None, f"file ends at item {start + whole} of {n} (truncated)")
                        return

    def ranges() -> list[RangedFile] | None:
        return idx_layout(pairs, base, opts)

    return Source("image", block_items(blocks), blocks=blocks, ranges=ranges)


def _gzip_size(path: Path) -> int:
    """The uncompressed size a gzip file's trailer states (modulo 2**32; the last member's only)."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


def idx_layout(pairs: list[tuple[Path, Path]], base: Path, opts: IngestOptions) -> list[RangedFile] | None:
    """Every IDX image file as a :class:`RangedFile` (with its labels read), so that workers read their own rows.

    The headers get the reader's checks (the same errors). None when a file may hold fewer (or other) items than its
    header says: a short labels file, an image file shorter than the header promises, or a gzip trailer that states
    another size; the driver then reads the blocks itself, which reports such a file item by item."""
    out = []
    for img_path, lab_path in pairs:
        with _open(img_path) as fi, _open(lab_path) as fl:
            gz = isinstance(fi, gzip.GzipFile)
            idt, shape, n, ldt = _idx_check(img_path, lab_path, fi, fl, opts)
            try:
                lab = fl.read(ldt.itemsize * n)
            except (EOFError, OSError, zlib.error):
                return None
        if len(lab) < ldt.itemsize * n:
            return None
        offset = 4 + 4 * (len(shape) + 1)
        size = int(np.prod(shape)) * idt.itemsize
        stated = _gzip_size(img_path) if gz else img_path.stat().st_size
        if (gz and stated != (offset + n * size) % 2**32) or (not gz and stated < offset + n * size):
            return None
        names, reasons = _idx_names(lab, ldt, n)
        split = opts.split or split_from_name(img_path.name, "train")
        out.append(RangedFile(str(img_path), relative(img_path, base), split, gz, idt.str, tuple(shape), n, offset,
                              names, reasons, read_idx_rows))  # fmt: skip
    return out


def read_idx_rows(f: RangedFile, lo: int, hi: int) -> np.ndarray:
    """Items ``lo:hi`` of the IDX image file ``f`` as an array. A gzip file is decompressed in one call up to item
    ``hi`` (with ISA-L when the `fast-gzip` extra is installed); when that is its last item, the stream's end, CRC and
    size are checked too.

    Raises ``InputChanged`` when the file no longer holds them (shorter, corrupt gzip data)."""
    size = f.row_bytes
    start, end = f.offset + lo * size, f.offset + hi * size
    try:
        with open(f.path, "rb") as fh:
            if not f.gz:
                fh.seek(start)
                buf = fh.read(end - start)
            else:
                data = fh.read()
                d = _inflate.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member, header and trailer checked
                out = d.decompress(data, end)
                if hi == f.n and (d.decompress(d.unconsumed_tail, 1) or not d.eof or d.unused_data):
                    raise InputChanged(f"{f.rel}: more data after item {hi} of {f.n}, or no gzip end")
                buf = memoryview(out)[start:end]
    except (EOFError, OSError, zlib.error, _inflate.error) as e:
        raise InputChanged(f"{f.rel}: cannot read items {lo}-{hi} ({e})") from None
    if len(buf) < end - start:
        raise InputChanged(f"{f.rel}: ends before item {hi} of {f.n}")
    return np.frombuffer(buf, f.dtype).reshape(hi - lo, *f.shape)


def _npz_array(data, key: str, path: Path) -> np.ndarray:
    try:
        return data[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise AugsvcError(
                f"{path}: array {key!r} holds Python objects (dtype object), which are not read (they would need "
                "pickle); save it as a numeric array"
            ) from None
        raise AugsvcError(f"{path}: array {key!r} cannot be read ({e})") from None
    except Exception as e:  # noqa: BLE001 - a corrupt zip raises anything from zipfile, zlib or numpy's format code
        raise AugsvcError(f"{path}: array {key!r} cannot be read (corrupt file? {type(e).__name__}: {e})") from None


def npz_labels(y: np.ndarray, path: Path, key: str) -> tuple[list[str | None], np.ndarray | None, str | None]:
    """(class name per item or None when it is not a label, soft labels (N, C) float32 or None, a note).

    1-D ``y``: integer (or integral float, or string) class labels. 2-D ``y`` of C columns: rows that are exactly
    one-hot are read as class indices (argmax); any other row makes the whole array soft labels (each row must be
    finite, non-negative and sum to 1 within 1e-3), with the argmax as the hard label. The note says which.
    """
    if y.ndim == 1:
        return [_class_name(v) for v in y.tolist()], None, None
    if y.ndim != 2 or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise AugsvcError(f"{path}: {key} has shape {y.shape} and dtype {y.dtype}; expected (N,) labels or (N, C)")
    yf = y.astype(np.float64)
    c = y.shape[1]
    hard = np.argmax(yf, axis=1)
    one_hot = bool(np.all((yf == 0) | (yf == 1)) and np.all(yf.sum(axis=1) == 1))
    if one_hot:
        return [str(int(i)) for i in hard], None, f"{key}: one-hot rows of {c} classes read as class indices (argmax)"
    ok = np.isfinite(yf).all(axis=1) & (yf >= 0).all(axis=1) & (np.abs(yf.sum(axis=1) - 1) <= 1e-3)
    names = [str(int(i)) if good else None for i, good in zip(hard, ok, strict=True)]
    note = f"{key}: rows of {c} probabilities read as soft labels (hard label: argmax)"
    return names, yf.astype(np.float32), note


def npz_source(path: Path, opts: IngestOptions) -> Source:
    if not path.is_file():
        raise AugsvcError(f"{path}: an NPZ source is one .npz file")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            for key in (opts.x_key, opts.y_key):
                if key not in files:
                    raise AugsvcError(f"{path}: no array {key!r} (has {', '.join(files)}); pass --x-key/--y-key")
            y = _npz_array(data, opts.y_key, path)
            x_shape = _npz_array(data, opts.x_key, path).shape
    except AugsvcError:
        raise
    except Exception as e:  # noqa: BLE001 - as above: a corrupt zip container fails in many ways
        raise AugsvcError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    if len(x_shape) not in (3, 4):
        raise AugsvcError(f"{path}: {opts.x_key} has shape {x_shape}; expected (N, H, W) or (N, H, W, C)")
    if x_shape[0] != len(y):
        raise AugsvcError(f"{path}: {opts.x_key} has {x_shape[0]} items but {opts.y_key} has {len(y)}")
    names, soft, note = npz_labels(y, path, opts.y_key)
    class_names = [str(i) for i in range(y.shape[1])] if y.ndim == 2 else None
    if class_names and opts.classes is not None and len(opts.classes) != len(class_names):
        raise AugsvcError(
            f"{path}: {opts.y_key} has {len(class_names)} columns but --classes names {len(opts.classes)}"
        )

    def blocks() -> Iterator[ArrayBlock]:
        with np.load(path, allow_pickle=False) as data:
            x = _npz_array(data, opts.x_key, path)
        split = opts.split or split_from_name(path.stem, "train")
        rename = bool(class_names and opts.classes)
        labels = [None if v is None else opts.classes[int(v)] if rename else v for v in names]
        reasons = {
            i: f"{opts.y_key}[{i}] = {y[i].tolist()!r} is not a class label" for i, v in enumerate(names) if v is None
        }
        for start in range(0, len(x), _NPZ_BLOCK):
            end = min(len(x), start + _NPZ_BLOCK)
            yield ArrayBlock(
                [f"{path.name}#{i}" for i in range(start, end)],
                split,
                labels[start:end],
                x[start:end],
                None if soft is None else soft[start:end],
                {i - start: r for i, r in reasons.items() if start <= i < end},
            )

    return Source(
        "image",
        block_items(blocks),
        blocks=blocks,
        class_names=(opts.classes or class_names),
        notes=[note] if note else [],
        soft_labels=soft is not None,
    )
