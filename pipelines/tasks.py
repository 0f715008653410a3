"""What every build task shares: reading a part, payloads of rows, writing rows as Parquet chunks.

The tasks themselves live with their stage kinds (``pipelines/stages/``); each is a pure function of (plan, part
files), run on Ray workers or in-process, whose random draws come from ``rng_for(seed, stage, copy, sample_id)``
or a documented variant, so their bytes do not depend on worker count or scheduling.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipelines import storefs
from pipelines.plan import BuildPlan
from pipelines.storeshards import write_parquet
from schemas import imagecodec
from schemas.arrow import schema_for
from schemas.errors import AugsvcError
from schemas.recipe import Recipe

RAW_MAX_PIXELS = 64 * 64
_RECIPES: dict[str, Recipe] = {}  # per worker process: plan.recipe validated once (a few recipes at most)
_RECIPES_MAX = 8


def worker_recipe(plan: Any) -> Recipe:
    """The plan's recipe, validated and bound once per worker process (a small bounded cache)."""
    plan = getattr(plan, "base", plan)
    key = json.dumps(plan.recipe, sort_keys=True)
    if key not in _RECIPES:
        from pipelines.recipes import load_recipe

        if len(_RECIPES) >= _RECIPES_MAX:
            _RECIPES.pop(next(iter(_RECIPES)))
        _RECIPES[key] = load_recipe(plan.recipe)
    return _RECIPES[key]


def get_payload(row: dict, modality: str) -> Any:
    """A row's payload for ops: the decoded image (cached in ``row["_img"]``), ``text``, or ``src``."""
    if modality == "image":
        if "_img" not in row:
            row["_img"] = imagecodec.decode(
                row["image"], row["image_format"], row["height"], row["width"], row["channels"]
            )
        return row["_img"]
    if modality == "text":
        return row["text"]
    if modality == "translation":
        return row["src"]
    raise AugsvcError(f"{modality} rows have no per-row ops yet")


def set_payload(row: dict, value: Any, modality: str) -> None:
    """Replace a row's payload (an image is re-encoded when its part is written)."""
    if modality == "image":
        row["_img"] = value
        row["image"] = None
    elif modality == "text":
        row["text"] = value
    else:
        row["src"] = value


def encode_images(rows: list[dict], recipe: Recipe) -> None:
    """Encode every row whose image changed (``auto``: raw up to 64x64 pixels, else JPEG)."""
    for row in rows:
        if row.get("image") is not None:
            continue
        img = row["_img"]
        h, w, c = img.shape
        fmt = recipe.output_image_format
        if fmt == "auto":
            fmt = "raw" if h * w <= RAW_MAX_PIXELS else "jpeg"
        row.update(image=imagecodec.encode(img, fmt, jpeg_quality=recipe.jpeg_quality), image_format=fmt,
                   height=h, width=w, channels=c)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Execution: steps over parts


@dataclass
class Chunk:
    data: bytes
    rows: int
    split: str


@dataclass
class PartOut:
    """What a task returns: the chunks of one output part (each at most ``max_rows`` rows, one split)."""

    key: str
    chunks: list[Chunk] = field(default_factory=list)
    report: dict[str, Any] | None = None  # JSON-able, kept in the task's sidecar (a generator's quality gate)


def read_part(files: list[str], columns: list[str] | None = None) -> pa.Table:
    """One part (its files, in order) as one table."""
    tables = [storefs.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def write_rows(plan: BuildPlan, key: str, rows: list[dict]) -> PartOut:
    """Rows as Parquet chunks of at most ``plan.max_rows`` rows (images encoded first)."""
    if plan.modality == "image":
        encode_images(rows, worker_recipe(plan))
    schema = schema_for(plan.modality, plan.features, monolingual=plan.monolingual)
    out = PartOut(key)
    for start in range(0, len(rows), plan.max_rows):
        chunk = rows[start : start + plan.max_rows]
        cols = {f.name: [r.get(f.name) for r in chunk] for f in schema}
        out.chunks.append(
            Chunk(write_parquet(pa.Table.from_pydict(cols, schema=schema)), len(chunk), chunk[0]["split"])
        )
    return out


def worker_setup() -> None:
    """Per-task process settings: OpenCV single-threaded inside workers, no albumentations update check."""
    import cv2

    cv2.setNumThreads(0)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def split_of(f: str) -> str:
    """The split of a part file (one split per file; '' when empty)."""
    t = storefs.read_table(f, columns=["split"])
    return t["split"][0].as_py() if t.num_rows else ""
