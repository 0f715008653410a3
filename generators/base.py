"""The generator protocol: how a recipe's ``generator:`` stage synthesises new labelled rows.

Shaped after imbalanced-learn's sampler template (``imblearn/base.py``): construction only stores parameters (a
frozen pydantic model, validated at recipe load time); one place (:func:`normalise_targets`) turns every form of
``sampling_strategy`` into new rows per class; :meth:`Generator.fit` sees the rows of one augmented split and returns
a :class:`Fitted` whose :meth:`Fitted.generate` makes ``n`` rows of one class from an explicit
``numpy.random.Generator``, with the parent rows and per-row lineage extras of each.

Data handed to ``fit`` (:class:`FitData`), by modality:

- ``image``: ``X`` uint8 array (n, height, width, channels); every image one size (the stage refuses otherwise).
- ``tabular``: ``X`` object array (n, features), columns in ``features`` order (numeric columns hold floats).
- ``text``: ``X`` object array (n,) of str.

``y`` is int64 (n,) class indices into ``class_names``. :class:`Generated` payloads come back in the same form.

A generator that loads a model (``model_backed = True``) is run by the build in a pool of Ray actors, one load per
actor (:meth:`Generator.load`), and never holds the model in its parameters; its :meth:`Generator.identity` names the
model's content hash so that another model gives another version id.

Adding a generator: subclass :class:`Generator` with a ``method: Literal["name"]`` field, set ``modalities``,
implement ``fit`` (and ``check_counts`` if a class needs a minimum of rows), and call :func:`register_generator`
(see ``generators/__init__.py``). ``tests/test_generator_suite.py`` then checks it with every other generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.errors import AugsvcError

StrategyName = Literal["auto", "minority", "not minority", "not majority", "all"]
Ratio = Annotated[float, Field(gt=0, le=1)]
Strategy = Ratio | StrategyName | dict[str, Annotated[int, Field(ge=0)]]


@dataclass(frozen=True)
class FitData:
    """The rows of one augmented split that a generator fits on (see the module doc for ``X`` by modality)."""

    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    modality: str
    features: dict[str, str] = field(default_factory=dict)  # tabular: column -> numeric | categorical
    sources: list[str] | None = None  # each row's ``source`` (for error messages)
    embedding: np.ndarray | None = None  # float (n, d): the generator's ``feature_column``, when it asks for one
    cache_dir: str | None = None  # a folder kept across resumes of this build stage (a fine-tuned model, say)

    def where(self, i: int) -> str:
        """How to name row ``i`` in an error message."""
        return f"row {i} (source {self.sources[i]})" if self.sources else f"row {i}"


@dataclass(frozen=True)
class Generated:
    """``n`` new rows of one class: payloads ``X`` (same form as :class:`FitData` ``X``), ``parents[i]`` the row
    indices (into the fitted ``X``) row ``i`` was made from (empty for a sample drawn from a model), and ``info[i]``
    the JSON-able extras of its lineage step (a gap, a latent seed, a filter score...)."""

    X: np.ndarray
    parents: list[tuple[int, ...]]
    info: list[dict[str, Any]]

    def __post_init__(self) -> None:
        if not len(self.X) == len(self.parents) == len(self.info):
            raise AugsvcError(
                f"a generator returned {len(self.X)} rows, {len(self.parents)} parent lists and {len(self.info)} "
                "lineage records; they must match"
            )

    def __len__(self) -> int:
        return len(self.parents)


class Fitted:
    """A generator fitted on one split. ``generate`` must draw only from ``rng`` (same rng state, same rows)."""

    def generate(self, label: int, n: int, rng: np.random.Generator) -> Generated:
        """About ``n`` new rows of class index ``label`` (exactly ``n`` unless the method documents otherwise)."""
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """JSON-able summary for the build report and the manifest (a quality gate, say); empty by default."""
        return {}


class Generator(BaseModel):
    """Base of every generator's parameter model. Subclasses add ``method: Literal[...]`` and their parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modalities: ClassVar[tuple[str, ...]] = ()
    model_backed: ClassVar[bool] = False  # loads a model: run in an actor pool, one load per actor

    method: str
    sampling_strategy: Strategy = Field(
        "auto",
        description="float ratio minority/majority (two classes), auto, minority, not minority, not majority, all, "
        "or {class: target rows} (imbalanced-learn's forms)",
    )
    n_per_class: int | None = Field(
        None, ge=1, description="add exactly this many rows to every class instead of balancing (sampling_strategy)"
    )

    @field_validator("sampling_strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        forms = f"a ratio in (0, 1], one of {', '.join(get_args(StrategyName))}, or {{class: target rows}}"
        if isinstance(v, bool) or not isinstance(v, int | float | str | dict):
            raise ValueError(f"{v!r} is not a sampling strategy; give {forms}")
        if isinstance(v, int | float) and not 0 < v <= 1:
            raise ValueError(f"ratio {v} is outside (0, 1] (minority rows / majority rows after sampling)")
        if isinstance(v, str) and v not in get_args(StrategyName):
            raise ValueError(f"{v!r} is not a sampling strategy; give {forms}")
        if isinstance(v, dict):
            bad = {c: n for c, n in v.items() if isinstance(n, bool) or not isinstance(n, int) or n < 0}
            if bad:
                raise ValueError(f"target rows must be whole numbers >= 0, got {bad}")
        return v

    @model_validator(mode="after")
    def _one_target_form(self) -> Generator:
        if self.n_per_class is not None and self.sampling_strategy != "auto":
            raise ValueError("give either n_per_class or sampling_strategy, not both")
        return self

    # -- planning (driver side, no data) ---------------------------------------------------------------------------

    def targets(self, class_counts: dict[str, int]) -> dict[str, int]:
        """New rows per class (only classes that get some) for a split with these counts; raises AugsvcError when
        the request cannot be met (see :func:`normalise_targets` and :meth:`check_counts`)."""
        if self.n_per_class is not None:
            need = {c: self.n_per_class for c, n in class_counts.items() if n > 0}
        else:
            need = normalise_targets(class_counts, self.sampling_strategy)
        self.check_counts({c: class_counts[c] for c in need}, class_counts)
        return need

    def check_counts(self, needing: dict[str, int], class_counts: dict[str, int]) -> None:
        """Raise AugsvcError when a class to oversample has too few rows for this method (default: no minimum)."""

    def check_data(self, modality: str, class_names: list[str], features: dict[str, str]) -> None:
        """Raise AugsvcError when this generator cannot work on such a version (checked in dry runs too)."""
        if modality not in self.modalities:
            raise AugsvcError(f"generator {self.method!r} works on {' or '.join(self.modalities)} rows, not {modality}")

    def identity(self) -> dict[str, Any]:
        """What besides the parameters decides the output (a model's content hash); enters the version id."""
        return {}

    # -- work (task side) ------------------------------------------------------------------------------------------

    def load(self) -> Any:
        """Load the model once per worker/actor (model-backed generators); passed to ``fit`` as ``model``."""
        return None

    def fit(self, data: FitData, model: Any = None) -> Fitted:
        """Fit on the rows of one split and return the object that generates."""
        raise NotImplementedError


def normalise_targets(class_counts: dict[str, int], strategy: Any) -> dict[str, int]:
    """Every ``sampling_strategy`` form -> new rows per class (only classes that get some), as imbalanced-learn's
    over-samplers decide them (``imblearn.utils.check_sampling_strategy``).

    Raises AugsvcError for fewer than two classes with rows, a strategy that would shrink a class, names an unknown
    class or is a ratio over more than two classes.
    """
    from imblearn.utils import check_sampling_strategy

    counts = {str(c): int(n) for c, n in class_counts.items() if n > 0}
    if len(counts) < 2:
        raise AugsvcError(f"balancing needs at least two classes with rows; got {counts or 'none'}")
    names = list(counts)
    given = strategy
    if isinstance(strategy, dict):
        for c, target in strategy.items():
            if c not in counts:
                raise AugsvcError(f"sampling_strategy: unknown class {c!r}; classes are {', '.join(names)}")
            _check_not_shrinking(c, counts[c], target, f"sampling_strategy asks class {c!r} for {target} rows")
        strategy = {names.index(c): t for c, t in strategy.items()}
    elif isinstance(strategy, float):
        if len(counts) != 2:
            raise AugsvcError(
                f"sampling_strategy {strategy}: a ratio works for two classes only, there are {len(counts)}; "
                "give {class: target rows} instead"
            )
        major = max(counts, key=counts.get)
        for c, n in counts.items():
            if c != major:
                target = int(counts[major] * strategy)
                if target == n:  # imbalanced-learn refuses a ratio that adds nothing
                    raise AugsvcError(
                        f"sampling_strategy {strategy} x {counts[major]} ({major!r}) asks class {c!r} for {target} "
                        f"rows and it has {n} already; raise the ratio or drop the stage"
                    )
                _check_not_shrinking(
                    c, n, target, f"sampling_strategy {strategy} x {counts[major]} ({major!r}) asks class {c!r} "
                    f"for {target} rows"
                )  # fmt: skip
    y = np.repeat(np.arange(len(names)), list(counts.values()))
    try:
        out = check_sampling_strategy(strategy, y, "over-sampling")
    except ValueError as e:
        raise AugsvcError(f"sampling_strategy {given!r}: {e}") from None
    return {names[int(c)]: int(n) for c, n in out.items() if n > 0}


def _check_not_shrinking(cls: str, have: int, target: int, asked: str) -> None:
    if target < have:
        raise AugsvcError(
            f"{asked} but it has {have}; an over-sampler cannot shrink a class: ask for at least {have} rows "
            f"(or leave {cls!r} out)"
        )
