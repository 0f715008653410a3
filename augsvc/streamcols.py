"""Shard tables to numpy columns, batch gathering and image decoding for :mod:`augsvc.stream` (no torch here)."""

from __future__ import annotations

from typing import Any

import numpy as np

META = ("image_format", "height", "width", "channels")


def to_numpy(t: Any, k: int, *, decode_images: bool, soft_labels: bool, want_soft: bool) -> dict[str, Any]:
    """A shard's table as numpy columns: raw images as one zero-copy (n, H, W, C) view where possible, labels as
    int64 (-1 for none), and ``soft_label`` as (n, k) float32 (one-hot where a row has none) when ``want_soft``."""
    n = t.num_rows
    out: dict[str, Any] = {}
    for name in t.column_names:
        col = t[name]
        if name == "image" and decode_images:
            out["image"] = raw_images(t) if {"image_format", "height"} <= set(t.column_names) else None
            if out["image"] is None:  # encoded or mixed shapes: decoded per batch
                out["image"] = col.to_numpy(zero_copy_only=False)
        elif name == "label":
            out["label"] = col.fill_null(-1).to_numpy().astype(np.int64)
        elif name == "soft_label":
            continue
        else:  # list columns (e.g. teacher_logits) give object arrays of arrays, None where null
            out[name] = col.to_numpy(zero_copy_only=False)
    if "label" in out and want_soft:
        soft = np.zeros((n, k), np.float32)
        labels = out.get("label", np.full(n, -1))
        ok = labels >= 0
        soft[np.flatnonzero(ok), labels[ok]] = 1.0
        col = t["soft_label"].combine_chunks() if "soft_label" in t.column_names else None
        if col is not None and soft_labels and col.null_count < n:
            valid = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
            values = col.drop_null().flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            soft[valid] = values.reshape(len(valid), k)
        out["soft_label"] = soft
    return out


def raw_images(t: Any) -> np.ndarray | None:
    """Zero-copy (n, H, W, C) uint8 view of a shard's image column when every row is raw with one shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = t.num_rows
    if n == 0 or t["image"].null_count or not pc.all(pc.equal(t["image_format"], "raw")).as_py():
        return None
    dims = [pc.min_max(t[k]) for k in ("height", "width", "channels")]
    if any(d["min"].as_py() != d["max"].as_py() for d in dims):
        return None
    h, w, c = (int(d["min"].as_py()) for d in dims)
    arr = t["image"].combine_chunks()
    wide = pa.types.is_large_binary(arr.type)
    offs = np.frombuffer(arr.buffers()[1], np.int64 if wide else np.int32)[arr.offset : arr.offset + n + 1]
    size = h * w * c
    if not (np.diff(offs) == size).all():
        return None
    return np.frombuffer(arr.buffers()[2], np.uint8, count=n * size, offset=int(offs[0])).reshape(n, h, w, c)


def gather(name: str, parts: list, m: int) -> Any:
    """Column ``name`` of the batch: rows ``rows`` of each shard's column placed at ``positions``."""
    cols = [cols[name] for _, cols, _ in parts]
    first = cols[0]
    if len(parts) == 1 and len(parts[0][0]) == m and np.array_equal(parts[0][0], np.arange(m)):
        return first[parts[0][2]]
    same = all(c.dtype == first.dtype and c.shape[1:] == first.shape[1:] for c in cols)
    out = np.empty((m, *first.shape[1:]), first.dtype) if same else np.empty(m, object)
    for (pos, _, rows), col in zip(parts, cols, strict=True):
        if same:
            out[pos] = col[rows]
        else:
            for p, r in zip(pos.tolist(), rows.tolist(), strict=True):
                out[p] = col[r]
    return out


def decode_rows(blobs: np.ndarray, meta: dict[str, np.ndarray], rows: list[int]) -> list[np.ndarray]:
    """Rows ``rows`` of a batch's encoded (or raw of mixed shapes) images as uint8 HWC arrays, in that order."""
    from schemas import imagecodec

    imgs = []
    for j in rows:
        b = blobs[j]
        if isinstance(b, np.ndarray):  # a row of a raw shard view
            imgs.append(b)
        else:
            f, h, w, c = (meta[k][j] for k in META)
            imgs.append(imagecodec.decode(b, str(f), int(h), int(w), int(c)))
    return imgs
