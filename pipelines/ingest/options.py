"""Ingest options: one pydantic model, defaults in one place. What changes the bytes goes into the version id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: every ingest format, in the order help texts list them, with the reader that opens it
#: (``module:function`` under ``pipelines/ingest/readers/``): the one list of formats
READERS = {
    "images": "images:source",
    "idx": "arrays:idx_source",
    "npz": "arrays:npz_source",
    "csv": "text:source",
    "tsv": "text:source",
    "jsonl": "text:source",
    "lines": "text:source",
    "tabular": "tabular:source",
    "parallel": "parallel:source",
    "parquet": "parquet:source",
}
FORMATS = tuple(READERS)
Format = Literal[("auto", *FORMATS)]  # type: ignore[valid-type]
ImageStorage = Literal["auto", "raw", "jpeg", "png", "webp"]


def format_list(*, auto: bool = True) -> str:
    """The formats as a sentence: ``auto, images, ... or parquet`` (without ``auto`` when it is False)."""
    names = ("auto", *FORMATS) if auto else FORMATS
    return f"{', '.join(names[:-1])} or {names[-1]}"


# Bumped whenever ingest code changes the bytes it writes for the same input and options.
# Images above this many pixels are bad items (checked from the header, before decoding): 100 M pixels is
# 300 MB of RGB; a 261 KB PNG can claim 16384x16384.
DEFAULT_MAX_PIXELS = 100_000_000

INGEST_FORMAT_VERSION = 3  # 3: EXIF orientation applied, exif_orientation column, csv records


class IngestOptions(BaseModel):
    """Every reader option with its default. The ``description`` of each field is also its ``augsvc ingest --help``
    text: the command's flags are made from this model (``augsvc/cli_ingest.py``)."""

    model_config = ConfigDict(extra="forbid")

    format: Format = Field("auto", description=f"{format_list()}.")
    # text / tabular
    text_column: str | None = Field(None, description="Text column (name, or index without header).")
    label_column: str | None = Field(None, description="Label column (name, or index without header).")
    header: bool | None = Field(None, description="First line is a header.")  # None: sniffed
    encoding: str = Field("utf-8", description="Text encoding, e.g. latin-1.")
    delimiter: str | None = Field(None, description="Field delimiter (default by format).")
    label_sep: str = Field(" ", description="'lines' format: label/text separator.")
    label_level: Literal["coarse", "fine"] = Field("coarse", description="'lines' format: coarse (DESC) or fine "
                                                   "(DESC:manner).")  # fmt: skip
    split: str | None = Field(None, description="Split name for a single-file source.")  # default: from file name
    # images
    resize: tuple[int, int] | None = Field(None, description="Resize images to HEIGHTxWIDTH (or one number).")
    image_storage: ImageStorage = Field("auto", description="auto, raw, jpeg, png or webp (see docs).")
    jpeg_quality: int = Field(95, ge=1, le=100, description="Quality for jpeg/webp storage.")
    labels_file: str | None = Field(None, description="Flat image folder: CSV/JSONL file -> label map.")
    max_pixels: int | None = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        description="Quarantine images above this many pixels (default 100,000,000; 0: no limit).",
        json_schema_extra={"cli_default": None},  # the flag is left out unless given (None would mean no limit)
    )
    # arrays
    x_key: str = Field("x", description="NPZ images array name.")
    y_key: str = Field("y", description="NPZ labels array name.")
    # parallel text
    src_lang: str | None = Field(None, description="Parallel text: source language suffix.")
    tgt_lang: str | None = Field(None, description="Parallel text: target language suffix.")
    monolingual: bool = Field(False, description="Parallel text: keep target-only text as rows with no source.")
    # (a line whose source side is empty, and a <stem>.<tgt> file with no <stem>.<src> beside it: src is null)
    # parquet
    image_column: str | None = Field(None, description="Parquet source: column of encoded images.")
    # common
    classes: list[str] | None = Field(None, description="Comma-separated class names in label order.")
    on_error: Literal["fail", "skip"] = Field("fail", description="fail: stop at the first bad item; skip: "
                                              "quarantine it.")  # fmt: skip
    dedupe: bool = Field(False, description="Drop byte-identical duplicates.")
    shard_rows: int | None = Field(None, ge=1, description="Rows per shard (default by modality).")

    @field_validator("classes", mode="before")
    @classmethod
    def _parse_classes(cls, v: object) -> object:
        """``"a, b,c"`` -> ``["a", "b", "c"]`` (the command line's form); an empty string is no list."""
        if isinstance(v, str):
            return [c.strip() for c in v.split(",")] if v else None
        return v

    @field_validator("max_pixels", mode="before")
    @classmethod
    def _no_limit(cls, v: object) -> object:
        return None if v == 0 else v  # 0: no limit (the command line's form)

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
