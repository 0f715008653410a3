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

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, ValidationError, model_validator

from schemas.errors import AugsvcError
from schemas.validation import read_mapping, validation_message

RECIPE_SCHEMA_VERSION = 1
# stage kinds whose key always appears in a stage's definition (null when absent): the build ids of recipes written
# before the stage-kind registry depend on it
LEGACY_KINDS = ("op", "mix", "generator", "teacher")


MAX_TARGET = 100_000_000  # rows per class a target may ask for (a plan holds one entry per row)


class Stage(BaseModel):
    """One recipe stage: the keys every stage kind shares, plus exactly one *kind key* (``op``, ``mix``,
    ``generator``, ``teacher`` or a registered kind) holding that kind's spec.

    This model checks the shape only; ``pipelines.stages.bind`` validates the spec with the kind's own model
    (``pipelines/stages/``) and attaches the result (:attr:`built`). ``pipelines.recipes.load_recipe`` does both.
    """

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(None, description="label for logs and lineage (default: stage-<index>)")
    copies: StrictInt = Field(1, ge=0, le=1000, description="augmented copies per selected row (true is not a number)")
    keep_originals: bool = Field(True, description="keep the stage's input rows in its output")
    classes: list[str] | None = Field(None, description="only rows of these classes get copies")
    target_per_class: int | dict[str, int] | None = Field(
        None, description="add copies until each class (or each named class) has this many rows"
    )
    _built: Any = PrivateAttr(None)
    _canonical: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_kind(self) -> Stage:
        keys = list(self.model_extra or {})
        from schemas.suggest import closest

        for key in keys:
            hint = closest(key, [f for f in type(self).model_fields if f != "name"])
            if key not in LEGACY_KINDS and hint is not None:
                raise ValueError(f"unknown key {key!r} (did you mean {hint!r}?)")
        if not keys:
            raise ValueError(
                "a stage needs one kind key: op, mix, generator, teacher (or a registered kind); see augsvc ops"
            )
        if len(keys) > 1:
            raise ValueError(f"a stage has exactly one kind key; got {', '.join(keys)} (a misspelled key?)")
        if self.target_per_class is not None and self.copies != 1:
            raise ValueError("give either copies or target_per_class, not both")
        targets = self.target_per_class
        bad = [targets] if isinstance(targets, int) else list((targets or {}).values())
        if any(t < 0 for t in bad):
            raise ValueError(f"target_per_class must be rows >= 0, got {targets}")
        if any(t > MAX_TARGET for t in bad):
            raise ValueError(f"target_per_class must be at most {MAX_TARGET:,} rows per class, got {max(bad):,}")
        return self

    @property
    def kind(self) -> str:
        """The stage's kind key (``op``, ``mix``, ...)."""
        return next(iter(self.model_extra or {}))

    @property
    def spec(self) -> Any:
        """The kind's spec as written in the recipe."""
        return (self.model_extra or {})[self.kind]

    @property
    def built(self) -> Any:
        """What the kind built from the spec at bind time (an op, a MixSpec, a generator, a TeacherSpec...)."""
        if self._built is None:
            raise AugsvcError("recipe stages are not bound yet: load recipes with pipelines.recipes.load_recipe")
        return self._built

    def bind(self, built: Any, canonical: Any) -> None:
        """Attach the kind's validated spec (``built``) and its JSON form for the build id (``canonical``)."""
        self._built, self._canonical = built, canonical

    def definition(self) -> dict[str, Any]:
        """What the build's bytes depend on for this stage (stable across releases; see LEGACY_KINDS)."""
        if self._built is None:
            raise AugsvcError("recipe stages are not bound yet: load recipes with pipelines.recipes.load_recipe")
        out: dict[str, Any] = {"name": self.name}
        for k in LEGACY_KINDS:
            out[k] = self._canonical if k == self.kind else None
        if self.kind not in LEGACY_KINDS:
            out[self.kind] = self._canonical
        out.update(copies=self.copies, keep_originals=self.keep_originals, classes=self.classes,
                   target_per_class=self.target_per_class)  # fmt: skip
        return out


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = RECIPE_SCHEMA_VERSION
    input: str = Field(description="source dataset: NAME, NAME@VERSION or NAME@TAG")
    output: str = Field(description="name of the dataset the build publishes")
    seed: int = Field(0, ge=0, description="root of every random draw")
    splits: list[str] = Field(
        default_factory=lambda: ["train"], min_length=1, description="splits that are augmented (at least one)"
    )
    output_image_format: Literal["auto", "raw", "jpeg", "png", "webp"] = Field(
        "auto", description="codec of augmented images (auto: raw up to 64x64 pixels, else jpeg)"
    )
    jpeg_quality: int = Field(95, ge=1, le=100)
    max_mutation_fraction: float | None = Field(
        0.2, ge=0, le=1, description="text: most words edited per copy, as a fraction (EDA); null: no cap"
    )
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _not_its_own_moving_input(self) -> Recipe:
        name, _, sel = self.input.partition("@")
        if name == self.output and not re.fullmatch(r"[0-9a-f]{16}", sel):
            raise ValueError(
                f"output {self.output!r} is also the input ({self.input!r}) without a pinned version: every rerun "
                f"would build on its own last output and move 'latest' under every other reader; pin the input "
                f"(input: {name}@<version id>) or choose another output name"
            )
        return self

    def definition(self) -> dict[str, Any]:
        """What the build's bytes depend on (the output name is not part of it); stages must be bound."""
        out = self.model_dump(mode="json", exclude={"output", "stages"})
        out["stages"] = [st.definition() for st in self.stages]
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def read_recipe(source: str | Path | dict) -> tuple[Recipe, str]:
    """(recipe, where) from a YAML file path or a dict, its shape validated (stage specs are not: see
    ``pipelines.recipes.load_recipe``); every problem raises one clear AugsvcError naming the key."""
    data, where = read_mapping(source, "recipe", "input, output, seed and stages")
    try:
        return Recipe.model_validate(data), where
    except ValidationError as e:
        raise AugsvcError(
            validation_message(e, where, lambda loc: Stage if "stages" in loc else Recipe, "recipe")
        ) from None
    except AugsvcError as e:
        raise AugsvcError(f"{where}: {e}") from None
