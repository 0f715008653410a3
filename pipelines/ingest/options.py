"""Ingest options: one pydantic model, defaults in one place. What changes the bytes goes into the version id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Format = Literal["auto", "images", "idx", "npz", "csv", "tsv", "jsonl", "lines", "tabular", "parallel", "parquet"]
ImageStorage = Literal["auto", "raw", "jpeg", "png", "webp"]

# Bumped whenever ingest code changes the bytes it writes for the same input and options.
# Images above this many pixels are bad items (checked from the header, before decoding): 100 M pixels is
# 300 MB of RGB; a 261 KB PNG can claim 16384x16384.
DEFAULT_MAX_PIXELS = 100_000_000

INGEST_FORMAT_VERSION = 3  # 3: EXIF orientation applied, exif_orientation column, csv records


class IngestOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = "auto"
    # text / tabular
    text_column: str | None = Field(None, description="text column name (or 0-based index without a header)")
    label_column: str | None = Field(None, description="label column name (or 0-based index without a header)")
    header: bool | None = Field(None, description="first line is a header; default: sniffed")
    encoding: str = "utf-8"
    delimiter: str | None = Field(None, description="field delimiter for csv/tsv/tabular; default by format")
    label_sep: str = Field(" ", description="'lines' format: separator between the label and the text")
    label_level: Literal["coarse", "fine"] = Field("coarse", description="'lines' labels like DESC:manner")
    split: str | None = Field(None, description="split name for a single-file source (default: from file name)")
    # images
    resize: tuple[int, int] | None = Field(None, description="(height, width) to resize every image to")
    image_storage: ImageStorage = "auto"
    jpeg_quality: int = Field(95, ge=1, le=100)
    max_pixels: int | None = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="refuse (quarantine) images above this many pixels; None: no limit"
    )
    labels_file: str | None = Field(None, description="flat image folder: CSV/JSONL mapping file name -> label")
    # arrays
    x_key: str = "x"
    y_key: str = "y"
    # parallel text
    src_lang: str | None = None
    tgt_lang: str | None = None
    monolingual: bool = Field(
        False,
        description="parallel text: keep target-only text as monolingual rows (src null) instead of refusing it: "
        "a line whose source side is empty, and a <stem>.<tgt> file with no <stem>.<src> beside it",
    )
    # parquet
    image_column: str | None = None
    # common
    classes: list[str] | None = Field(None, description="class names in label order (default: sorted)")
    on_error: Literal["fail", "skip"] = "fail"
    dedupe: bool = False
    shard_rows: int | None = Field(None, ge=1, description="rows per shard (default by modality)")

    @field_validator("resize", mode="before")
    @classmethod
    def _parse_resize(cls, v: object) -> object:
        if isinstance(v, str):
            parts = v.lower().replace("x", ",").split(",")
            try:
                nums = [int(p) for p in parts if p.strip()]
            except ValueError as e:
                raise ValueError(f"resize {v!r}: give HEIGHTxWIDTH, e.g. 128x128, or one number") from e
            return (nums[0], nums[0]) if len(nums) == 1 else tuple(nums)
        return v

    def definition(self) -> dict:
        """The options that change the output bytes (execution-only options excluded)."""
        # options added later enter only when set, so versions ingested before them keep their ids
        later = {k for k, v in _LATER_DEFAULTS.items() if getattr(self, k) == v}
        return self.model_dump(exclude={"on_error", *later}) | {"ingest_format_version": INGEST_FORMAT_VERSION}


_LATER_DEFAULTS = {"monolingual": False}
