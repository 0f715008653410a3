"""Arrow schemas of shard rows, one per modality.

Every row carries the common columns; each modality adds its payload columns. The schemas are part of the
public on-disk contract (see ``docs/architecture.md``).
"""

from __future__ import annotations

import pyarrow as pa

ROW_SCHEMA_VERSION = 1

COMMON_FIELDS = [
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("label", pa.int32()),  # null for translation pairs and unlabelled rows (a transfer set)
    pa.field("soft_label", pa.list_(pa.float32())),  # one float per class, or null
    pa.field("split", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # where the row came from: "path", "path:line", "path#i"
    pa.field("lineage", pa.string()),  # JSON: op chain and sampled parameters; null for ingested rows
    pa.field("teacher_logits", pa.list_(pa.float32())),  # written by a teacher stage; null otherwise
]

IMAGE_FIELDS = [
    pa.field("image", pa.binary(), nullable=False),
    pa.field("image_format", pa.string(), nullable=False),  # raw | jpeg | png | webp | bmp
    pa.field("height", pa.int32(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("channels", pa.int32(), nullable=False),  # 1 (grey) or 3 (RGB)
    # EXIF orientation (1-8) of the source file, whose pixels were stored turned upright; null when it had none
    pa.field("exif_orientation", pa.int32()),
]

TEXT_FIELDS = [pa.field("text", pa.string(), nullable=False)]

TRANSLATION_FIELDS = [
    pa.field("src", pa.string(), nullable=False),
    pa.field("tgt", pa.string(), nullable=False),
]
# A translation version that may hold monolingual (target-only) rows: ``src`` is nullable, and null marks such a
# row. Only versions ingested with ``--monolingual`` (and versions built from them) use it; every other translation
# version keeps the non-nullable field, so its shard bytes and version id are what they were before.
MONOLINGUAL_TRANSLATION_FIELDS = [
    pa.field("src", pa.string()),  # null: a monolingual row (target-language text with no source sentence)
    pa.field("tgt", pa.string(), nullable=False),
]


def image_schema() -> pa.Schema:
    return pa.schema(COMMON_FIELDS + IMAGE_FIELDS)


def text_schema() -> pa.Schema:
    return pa.schema(COMMON_FIELDS + TEXT_FIELDS)


def translation_schema(monolingual: bool = False) -> pa.Schema:
    """Parallel-text rows; with ``monolingual`` the ``src`` field is nullable (null = a target-only row)."""
    return pa.schema(COMMON_FIELDS + (MONOLINGUAL_TRANSLATION_FIELDS if monolingual else TRANSLATION_FIELDS))


def tabular_schema(features: dict[str, str]) -> pa.Schema:
    """``features`` maps column name -> ``"numeric"`` (float64) or ``"categorical"`` (string)."""
    extra = []
    for name, kind in features.items():
        if name in {f.name for f in COMMON_FIELDS}:
            raise ValueError(f"feature column {name!r} clashes with a reserved column name")
        extra.append(pa.field(name, pa.float64() if kind == "numeric" else pa.string()))
    return pa.schema(COMMON_FIELDS + extra)


def schema_for(modality: str, features: dict[str, str] | None = None, monolingual: bool = False) -> pa.Schema:
    """The row schema of a version of ``modality``; ``monolingual`` (translation only) makes ``src`` nullable."""
    if modality == "image":
        return image_schema()
    if modality == "text":
        return text_schema()
    if modality == "translation":
        return translation_schema(monolingual)
    if modality == "tabular":
        return tabular_schema(features or {})
    raise ValueError(f"unknown modality {modality!r}")
