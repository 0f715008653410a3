"""Recipe: what a build does to a source version. One pydantic model, YAML round trip, validated at load time.

```yaml
schema_version: 1
input: flowers            # NAME, NAME@VERSION or NAME@TAG
output: flowers_aug       # dataset name of the published version
seed: 0
splits: [train]           # splits that are augmented; other rows pass through unchanged
stages:
  - name: fliprotate
    op: [{op: hflip, p: 0.5}, {op: rotate, limit: 30}]   # a list is a sequence
    copies: 4             # augmented copies per row (or per-class targets, below)
    keep_originals: true
    classes: null         # only rows of these classes get copies
    target_per_class: null  # {class: rows} or an int for every class: add copies until reached
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from pipelines.mixing import MixSpec
from schemas.errors import AugsvcError
from schemas.validation import read_mapping, validation_message

RECIPE_SCHEMA_VERSION = 1


class TeacherSpec(BaseModel):
    """A teacher stage: a run directory (or best.pt) of ``augsvc train`` whose logits every row gets."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="run directory or .pt file of a trained model")
    batch_size: int = Field(256, ge=1)


class Stage(BaseModel):
    """One recipe stage: an op (or composition) and how its output joins the dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="label for logs and lineage (default: stage-<index>)")
    op: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None, description="per-row op spec, or a list of specs run in sequence"
    )
    mix: MixSpec | None = Field(None, description="label-mixing stage: pairs rows across the whole dataset")
    generator: dict[str, Any] | None = Field(None, description="generator stage, e.g. {method: smote, k_neighbors: 5}")
    teacher: TeacherSpec | None = Field(None, description="model stage: write teacher_logits from a trained run")
    copies: int = Field(1, ge=0, le=1000, description="augmented copies per selected row")
    keep_originals: bool = Field(True, description="keep the stage's input rows in its output")
    classes: list[str] | None = Field(None, description="only rows of these classes get copies")
    target_per_class: int | dict[str, int] | None = Field(
        None, description="add copies until each class (or each named class) has this many rows"
    )
    _op: Any = PrivateAttr(None)

    @field_validator("op")
    @classmethod
    def _op_spec(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("an empty op list does nothing; give at least one op")
        return v

    @model_validator(mode="after")
    def _build(self) -> Stage:
        from pipelines.transforms.compose import build_op

        given = [k for k in ("op", "mix", "generator", "teacher") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a stage has exactly one of op, mix, generator or teacher (got {', '.join(given) or 'none'})"
            )
        if self.op is not None:
            spec = {"op": "sequence", "ops": self.op} if isinstance(self.op, list) else self.op
            try:
                self._op = build_op(spec)
            except AugsvcError as e:  # reported by pydantic with this stage's location
                raise ValueError(str(e)) from None
        if self.generator is not None:
            from generators import build_generator

            try:
                self._op = build_generator(self.generator)
            except AugsvcError as e:
                raise ValueError(str(e)) from None
        if self.target_per_class is not None and self.copies != 1:
            raise ValueError("give either copies or target_per_class, not both")
        return self

    @property
    def built(self) -> Any:
        """The built op (op stages) or generator parameters (generator stages)."""
        return self._op

    @property
    def kind(self) -> str:
        for kind in ("op", "mix", "generator", "teacher"):
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated: one kind is set")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = RECIPE_SCHEMA_VERSION
    input: str = Field(description="source dataset: NAME, NAME@VERSION or NAME@TAG")
    output: str = Field(description="name of the dataset the build publishes")
    seed: int = Field(0, ge=0, description="root of every random draw")
    splits: list[str] = Field(default_factory=lambda: ["train"], description="splits that are augmented")
    output_image_format: Literal["auto", "raw", "jpeg", "png", "webp"] = Field(
        "auto", description="codec of augmented images (auto: raw up to 64x64 pixels, else jpeg)"
    )
    jpeg_quality: int = Field(95, ge=1, le=100)
    max_mutation_fraction: float | None = Field(
        0.2, ge=0, le=1, description="text: most words edited per copy, as a fraction (EDA); null: no cap"
    )
    stages: list[Stage] = Field(min_length=1)

    def definition(self) -> dict[str, Any]:
        """What the build's bytes depend on (the output name is not part of it)."""
        return self.model_dump(mode="json", exclude={"output"})

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def load_recipe(source: str | Path | dict) -> Recipe:
    """Load and validate a recipe from a YAML file path or a dict; every problem raises one clear AugsvcError."""
    data, where = read_mapping(source, "recipe", "input, output, seed and stages")
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise AugsvcError(
            validation_message(e, where, lambda loc: Stage if "stages" in loc else Recipe, "recipe")
        ) from None
    except AugsvcError as e:
        raise AugsvcError(f"{where}: {e}") from None
