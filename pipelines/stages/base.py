"""The stage-kind protocol: what every kind of recipe stage (op, mix, generator, teacher, ...) implements.

A recipe stage is ``{<kind key>: <spec>, copies, keep_originals, classes, target_per_class, name}``. The kind
registered under the key (``pipelines/stages/__init__.py``) is the one object that the build runner, the dry run,
``augsvc preview``, ``runner.replay``, the stream and ``augsvc ops`` ask about that stage:

- ``parse(spec)`` validates the spec into the object tasks use (``stage.built``) and ``canonical(built)`` gives
  the JSON that enters the version id; ``identity(built)`` adds what besides the spec decides the output (a
  model's content hash).
- ``check(recipe, k, manifest)`` refuses a stage that cannot work on the input version (modality, classes, a
  missing checkpoint) - in dry runs too, so a dry run catches what the build would refuse.
- ``estimate(recipe, k, rows, class_names)`` returns the (sample_id, label, split) rows after the stage, for
  the dry run's plan.
- ``run(ctx, ks, parts)`` schedules the work of one step (stages ``ks``; consecutive stages of a kind with
  ``fuses = True`` form one step) over the parts and returns the new parts.
- ``apply_rows(ctx, k, rows)`` does the same in memory on a few rows: what ``augsvc preview`` shows.
- ``replay(recipe, step, original, partner)`` re-creates a row from its lineage step, where the kind can.

Everything a kind needs from the runner comes through :class:`StepContext`, so a new kind is one module plus a
``register_stage_kind`` call, with no change to the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe

Row = tuple[str, int, str]  # (sample_id, label, split): what plans are made from


@dataclass
class StepContext:
    """What the runner hands a stage kind for one step of a build (or a preview, with ``run`` in-process)."""

    recipe: Recipe
    manifest: Manifest
    plan: Any  # pipelines.plan.BuildPlan of the whole recipe (modality, features, class_names, max_rows)
    step: int  # index of this step (part of every task key)
    run: Callable[..., dict[str, list[str]]]  # run(fn, shared, [(key, args)]) -> key -> files (resumable tasks)
    run_actors: Callable[..., dict[str, list[str]]]  # run_actors(cls, init, [(key, args)]) -> key -> files
    metas: Callable[[list[list[str]]], list[list[Row]]]  # (sample_id, label, split) of each part's rows
    cache_dir: Callable[[str], str]  # a folder for this step kept across resumes, by name
    reports: dict[str, Any] = field(default_factory=dict)  # stage name -> JSON-able report (manifest, summary)
    task_reports: dict[str, Any] = field(default_factory=dict)  # task key -> the report its PartOut carried


class StageKind:
    """Base of every stage kind. Subclasses set ``key`` and implement ``parse``, ``estimate`` and ``run``."""

    key: ClassVar[str] = ""
    description: ClassVar[str] = ""
    fuses: ClassVar[bool] = False  # consecutive stages of this kind run as one step (rows never leave their part)
    streamable: ClassVar[bool] = False  # may run on the fly in the stream (per-row, label-invariant)
    mixes_labels: ClassVar[bool] = False  # rows it writes may carry soft labels
    # the shared stage keys it honours; a non-default value of any other is refused at load (stages.bind)
    stage_keys: ClassVar[frozenset[str]] = frozenset({"copies", "keep_originals", "classes", "target_per_class"})
    stage_keys_hint: ClassVar[str] = ""  # what to use instead, for that refusal
    task_rounds: ClassVar[int] = 1  # calls of ctx.run/run_actors per step (the progress total's estimate)
    needs_labels: ClassVar[bool] = False  # refused on an unlabelled version (pipelines.unlabelled)

    def parse(self, spec: Any) -> Any:
        """The spec as the kind's validated object; raise AugsvcError (or ValueError) naming the key."""
        raise NotImplementedError

    def canonical(self, built: Any, spec: Any) -> Any:
        """JSON form of the spec in the build definition (default: the spec as written)."""
        return spec

    def identity(self, built: Any) -> dict[str, Any]:
        """What besides the spec decides the output (a model's content hash); enters the version id."""
        return {}

    def check(self, recipe: Recipe, k: int, manifest: Manifest) -> None:
        """Raise AugsvcError when stage ``k`` cannot run on ``manifest``'s version."""

    def estimate(self, recipe: Recipe, k: int, rows: list[Row], class_names: list[str]) -> list[Row]:
        """Rows after stage ``k`` (a dry-run estimate where the outcome depends on data or chance)."""
        raise NotImplementedError

    def run(self, ctx: StepContext, ks: list[int], parts: list[list[str]]) -> list[list[str]]:
        """Do the work of stages ``ks`` (one step) over ``parts``; return the new parts."""
        raise NotImplementedError

    def apply_rows(self, ctx: StepContext, k: int, rows: list[dict]) -> list[dict]:
        """Stage ``k`` on a few decoded rows in memory (preview); rows keep the build's columns."""
        raise AugsvcError(f"stage kind {self.key!r} has no preview")

    def replay(self, recipe: Recipe, step: dict[str, Any], original: Any, partner: Any = None) -> Any:
        """Re-create a payload from its lineage ``step`` and the original (and partner) payload."""
        raise AugsvcError(f"step {step.get('stage')} ({self.key}) cannot be replayed from its original alone")

    def describe(self) -> dict[str, Any]:
        """Catalogue entry for ``augsvc ops --json``: the kind and its parameters."""
        return {"kind": self.key, "description": self.description}


def validate_spec(model: type, spec: Any, example: str) -> Any:
    """``model(**spec)``, or one AugsvcError line per problem naming the key (``example`` shows the expected form)."""
    from pydantic import ValidationError

    if not isinstance(spec, dict):
        raise AugsvcError(f"expected a mapping like {example}, got {spec!r}")
    try:
        return model(**spec)
    except ValidationError as e:
        from schemas.validation import validation_message

        raise AugsvcError(validation_message(e, "spec", lambda loc: model).removeprefix("spec: ")) from None


def selected_labels(recipe: Recipe, k: int, class_names: list[str]) -> set[int]:
    """Class indices stage ``k`` applies to (its ``classes``, default all); AugsvcError naming an unknown class."""
    st = recipe.stages[k]
    index = {c: i for i, c in enumerate(class_names)}
    for c in st.classes or []:
        if c not in index:
            from schemas.suggest import closest

            hint = closest(c, class_names)
            raise AugsvcError(
                f"stages[{k}].classes: unknown class {c!r}{f' (did you mean {hint!r}?)' if hint else ''}; "
                f"classes are {', '.join(class_names)}"
            )
    return {index[c] for c in st.classes} if st.classes else set(range(len(class_names)))


def stage_name(recipe: Recipe, k: int) -> str:
    return recipe.stages[k].name or f"stage-{k}"
