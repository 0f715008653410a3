"""Pydantic model of ``<store>/<dataset>/<version>/manifest.json``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_SCHEMA_VERSION = 1


class ShardInfo(BaseModel):
    """One immutable Parquet shard of a version."""

    model_config = ConfigDict(extra="forbid")

    path: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str = Field(min_length=64, max_length=64)
    split: str | None = None


class QuarantineItem(BaseModel):
    """An input item that was skipped, with where it was and why."""

    model_config = ConfigDict(extra="forbid")

    source: str
    line: int | None = None
    reason: str


class Manifest(BaseModel):
    """Everything that defines and describes one published version."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = MANIFEST_SCHEMA_VERSION
    dataset: str
    version: str
    modality: Literal["image", "text", "tabular", "translation"]
    class_names: list[str] = Field(default_factory=list)
    rows: int = Field(ge=0)
    rows_per_class: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardInfo]
    parents: list[str] = Field(default_factory=list)
    definition: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    package_version: str
    created: str
    quarantine: list[QuarantineItem] = Field(default_factory=list)
    rows_per_split: dict[str, int] = Field(default_factory=dict)
    splits: dict[str, dict[str, int]] = Field(default_factory=dict, description="split -> class -> rows")
    features: dict[str, str] = Field(default_factory=dict, description="tabular: column -> numeric|categorical")
    image_storage: str | None = Field(None, description="image storage policy: auto, raw, jpeg, png or webp")
    soft_labels: bool = False
    duplicates: list[list[str]] = Field(default_factory=list, description="groups of byte-identical inputs")
    duplicates_dropped: int = 0
    monolingual: dict[str, int] | None = Field(
        None,
        description="translation versions whose src may be null (ingested with --monolingual, or built from one): "
        "split -> rows with a null src (target-only text); None for every other version",
    )
    stage_reports: dict[str, Any] = Field(
        default_factory=dict, description="stage name -> a stage's report (a generator's quality gate per split)"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="what the job that made the version changed or kept that a reader should know (classes kept "
        "without rows, how the input was read); printed in the job's summary and by 'augsvc show'",
    )

    def inherited(self) -> dict[str, Any]:
        """Fields a version derived row for row from this one (a split, a label subset) carries over unchanged:
        features, image storage, soft labels, duplicate groups. Counts are the deriving job's to make."""
        return {
            "features": self.features,
            "image_storage": self.image_storage,
            "soft_labels": self.soft_labels,
            "duplicates": self.duplicates,
            "duplicates_dropped": self.duplicates_dropped,
        }


def empty_class_notes(
    class_names: list[str], rows_per_class: dict[str, int], *, how: str = "give --classes without them to drop them"
) -> list[str]:
    """One note naming the classes of ``class_names`` that have no rows (kept so that label ids stay put), or none.

    ``rows_per_class``: class name -> rows, as in :class:`Manifest` (a missing class counts 0); ``how``: what the
    user can do about it, the note's last clause."""
    empty = [c for c in class_names if not rows_per_class.get(c)]
    if not empty:
        return []
    shown = ", ".join(map(repr, empty[:10])) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
    return [f"class(es) {shown} have no rows: kept in class_names (0 in rows_per_class) so label ids stay put; {how}"]
