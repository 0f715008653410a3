"""``augsvc tune SPACE.yaml``: the search space file, one pydantic model (:class:`TuneSpace`).

```yaml
data: flowers                 # NAME, NAME@VERSION or NAME@TAG (pinned to a version when the search starts)
train_split: train
val_split: val                # every trial reports this split's accuracy each epoch
seed: 0                       # the same training seed in every trial (paired comparison); sampling seed too
trials: 8                     # trials (default: twice the number of policies)
epochs: 10                    # most epochs per trial; ASHA stops weak trials earlier
grace_period: 3               # ASHA: epochs every trial gets (default: a third of epochs)
train: {batch_size: 32, lr: 0.003}   # any other `augsvc train` key, the same in every trial
policies:                     # each trial picks one
  - none
  - trivial_augment
  - rand_augment: {n: [1, 3]}          # magnitude left out: its own bounds, [0, 10]
  - augmix: {severity: [1, 10]}
  - fixed: {name: fliprotate, stages: [{op: [{op: hflip, p: 0.5}, {op: rotate, limit: 30}]}]}
mix: [none, {method: mixup, alpha: [0.1, 0.4]}, {method: cutmix}]
label_smoothing: [0.0, 0.2]   # a number, or [lo, hi]
augment: [on_the_fly, offline]
offline_copies: [1, 4]        # offline: k fixed augmented copies per row plus the original
```

A policy is ``none``, ``fixed`` (a list of recipe op stages, used as written) or an op name with its parameters:
a number or value is used as given, ``[lo, hi]`` for a numeric parameter is searched uniformly (integers as
integers). Parameters of the policy ops (``rand_augment``: ``n``, ``magnitude``; ``augmix``: ``severity``) that are
left out are searched over the op's own bounds; every other left-out parameter keeps the op's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import AugsvcError
from schemas.validation import read_mapping, validation_message

# parameters searched over the op's own bounds when the space names the op but not them
DEFAULT_SEARCHED: dict[str, tuple[str, ...]] = {"rand_augment": ("n", "magnitude"), "augmix": ("severity",)}
# default alpha range for batch mixing (MixConfig.alpha has no upper bound): Zhang et al. use 0.1-0.4 for mixup,
# Yun et al. 1.0 for CutMix
DEFAULT_MIX_ALPHA = (0.1, 1.0)
# keys of `augsvc train` that the search sets itself
TUNED_KEYS = ("data", "train_split", "val_split", "epochs", "seed", "augment", "augment_copies", "augment_cycle", "mix",
              "label_smoothing", "patience")  # fmt: skip

Number = int | float


class Range(BaseModel):
    """A searched parameter: uniform over ``[lo, hi]`` (``integer``: randint over lo..hi inclusive)."""

    lo: float
    hi: float
    integer: bool = False

    def mid(self) -> float | int:
        v = (self.lo + self.hi) / 2
        return int(round(v)) if self.integer else v

    def label(self) -> str:
        return f"[{self.lo:g}, {self.hi:g}]"


class Policy(BaseModel):
    """One candidate policy after validation: ``kind`` none / fixed / op."""

    kind: Literal["none", "fixed", "op"]
    name: str
    op: str | None = None
    fixed: dict[str, Any] = Field(default_factory=dict)  # op: parameters as given
    ranges: dict[str, Range] = Field(default_factory=dict)  # op: searched parameters
    stages: list[dict[str, Any]] = Field(default_factory=list)  # fixed: recipe stages


class MixChoice(BaseModel):
    """One candidate batch mixing: ``method`` none / mixup / cutmix / average, alpha a value or a range."""

    method: Literal["none", "mixup", "cutmix", "average"]
    alpha: float | Range | None = None


class TuneSpace(BaseModel):
    """The whole space file; see the module docstring for an example and :func:`load_space` for errors."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="version to tune on: NAME, NAME@VERSION or NAME@TAG")
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = Field(None, description="split for --test (the search never reads it)")
    seed: int = Field(0, ge=0)
    trials: int | None = Field(None, ge=1, le=10000, description="trials (default: 2 x policies)")
    epochs: int = Field(10, ge=1, le=1000, description="most epochs per trial (ASHA max_t)")
    grace_period: int | None = Field(
        None, ge=1, description="ASHA: epochs every trial gets before it may be stopped (default: a third of epochs)"
    )
    reduction_factor: float = Field(3.0, gt=1, description="ASHA: keep 1/reduction_factor at each rung")
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_concurrent: int | None = Field(None, ge=1, description="trials at once (default: as the cluster allows)")
    seeds: int = Field(3, ge=1, le=100, description="--test: seeds per retrained recipe")
    train: dict[str, Any] = Field(default_factory=dict, description="other `augsvc train` keys, every trial")
    policies: list[Any] = Field(min_length=1, description="candidate policies (none, fixed, an op)")
    mix: list[Any] = Field(default_factory=lambda: ["none"], min_length=1, description="candidate batch mixing")
    label_smoothing: Any = Field(0.0, description="a value or [lo, hi] within [0, 1)")
    augment: list[Literal["on_the_fly", "offline"]] = Field(default_factory=lambda: ["on_the_fly"], min_length=1)
    offline_copies: Any = Field(4, description="offline: copies per row, a value or [lo, hi] within 1..100")

    @field_validator("train")
    @classmethod
    def _train_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if k in TUNED_KEYS]
        if bad:
            raise ValueError(f"{', '.join(bad)} set by the search itself; give them at the top level of the space")
        return v

    def parsed_policies(self) -> list[Policy]:
        return [parse_policy(p, i) for i, p in enumerate(self.policies)]

    def parsed_mix(self) -> list[MixChoice]:
        return [parse_mix(m, i) for i, m in enumerate(self.mix)]

    def smoothing(self) -> float | Range:
        return _value_or_range(self.label_smoothing, "label_smoothing", 0.0, 0.999, integer=False)

    def copies(self) -> int | Range:
        return _value_or_range(self.offline_copies, "offline_copies", 1, 100, integer=True)

    def grace(self) -> int:
        """ASHA's grace period: as given, else a third of ``epochs`` (augmentation often costs accuracy in the
        first epochs and pays later, so a one-epoch grace period favours no augmentation)."""
        return self.grace_period or max(1, self.epochs // 3)

    def n_trials(self) -> int:
        return self.trials or 2 * len(self.policies)


def _is_pair(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v)


def _value_or_range(v: Any, key: str, lo: float, hi: float, *, integer: bool) -> Any:
    """A number or a [lo, hi] range within the bounds; ValueError naming ``key`` otherwise."""
    kind = "an integer" if integer else "a number"
    if _is_pair(v):
        a, b = v
        if integer and not all(float(x).is_integer() for x in v):
            raise ValueError(f"{key}: range {list(v)} must hold integers")
        if a > b:
            raise ValueError(f"{key}: range {list(v)} has lo > hi; write [lo, hi]")
        if a < lo or b > hi:
            raise ValueError(f"{key}: range {list(v)} is outside the bounds [{lo:g}, {hi:g}]")
        return Range(lo=a, hi=b, integer=integer)
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not float(v).is_integer()):
        raise ValueError(f"{key}: expected {kind} or [lo, hi], got {v!r}")
    if v < lo or v > hi:
        raise ValueError(f"{key}: {v} is outside the bounds [{lo:g}, {hi:g}]")
    return int(v) if integer else float(v)


def field_bounds(cls: type, name: str) -> tuple[float, float, bool] | None:
    """(lo, hi, integer) of a numeric op field from its pydantic constraints; None when not numeric or open."""
    import annotated_types as at

    f = cls.model_fields[name]
    if f.annotation not in (int, float):
        return None
    lo = hi = None
    for m in f.metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo = m.gt
        elif isinstance(m, at.Le):
            hi = m.le
        elif isinstance(m, at.Lt):
            hi = m.lt
    if lo is None or hi is None:
        return None
    return float(lo), float(hi), f.annotation is int


def parse_policy(entry: Any, i: int) -> Policy:
    """One ``policies`` entry -> :class:`Policy`; ValueError ``policies[i]: ...`` on anything wrong."""
    from pipelines.transforms.base import get_op_class
    from pipelines.transforms.compose import build_op

    where = f"policies[{i}]"
    if entry in (None, "none"):
        return Policy(kind="none", name="none")
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(f"{where}: expected none, an op name, {{OP: {{param: value or [lo, hi]}}}} or "
                         f"{{fixed: {{name, stages}}}}, got {entry!r}")  # fmt: skip
    (key, params), = entry.items()  # fmt: skip
    params = params or {}
    if not isinstance(params, dict):
        raise ValueError(f"{where}: {key}: expected a mapping of parameters, got {params!r}")
    if key == "fixed":
        return _parse_fixed(params, where)
    try:
        cls = get_op_class(str(key))
    except AugsvcError as e:
        raise ValueError(f"{where}: {e}") from None
    if cls.name in ("sequence", "one_of", "some_of", "sometimes"):
        raise ValueError(f"{where}: {key} is a composition; put it in a fixed policy (fixed: {{stages: ...}})")
    fixed, ranges = {}, {}
    for name, v in params.items():
        if name not in cls.model_fields:
            from schemas.suggest import did_you_mean

            hint = did_you_mean(str(name), list(cls.model_fields))
            raise ValueError(f"{where}: {key}: unknown parameter {name!r}" + (f" ({hint})" if hint else "")
                             + f"; allowed: {', '.join(cls.model_fields)}")  # fmt: skip
        bounds = field_bounds(cls, name)
        if bounds is not None and _is_pair(v):
            lo, hi, integer = bounds
            ranges[name] = _value_or_range(v, f"{where}: {key}.{name}", lo, hi, integer=integer)
        else:
            fixed[name] = v
    for name in DEFAULT_SEARCHED.get(cls.name, ()):
        if name not in params:
            lo, hi, integer = field_bounds(cls, name)  # type: ignore[misc]
            ranges[name] = Range(lo=lo, hi=hi, integer=integer)
    try:  # the op must build at the ranges' ends
        for end in ("lo", "hi"):
            build_op({"op": cls.name, **fixed, **{k: _cast(getattr(r, end), r) for k, r in ranges.items()}})
    except AugsvcError as e:
        raise ValueError(f"{where}: {e}") from None
    return Policy(kind="op", name=cls.name, op=cls.name, fixed=fixed, ranges=ranges)


def _cast(v: float, r: Range) -> float | int:
    return int(v) if r.integer else float(v)


def _parse_fixed(params: dict[str, Any], where: str) -> Policy:
    from pipelines.recipes import load_recipe

    extra = set(params) - {"name", "stages"}
    if extra:
        raise ValueError(f"{where}: fixed: unknown key {sorted(extra)[0]!r}; allowed keys: name, stages")
    stages = params.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"{where}: fixed: needs stages, a list of recipe op stages ({{op: ...}})")
    for j, st in enumerate(stages):
        if not isinstance(st, dict) or "op" not in st:
            raise ValueError(f"{where}: fixed: stages[{j}]: an op stage ({{op: SPEC or [SPECS]}}) is needed")
    try:
        load_recipe({"input": "x", "output": "y", "stages": stages})  # only the stages are checked here
    except AugsvcError as e:
        raise ValueError(f"{where}: fixed: {' '.join(str(e).split())}") from None
    name = str(params.get("name") or f"fixed{where[len('policies') :]}")
    return Policy(kind="fixed", name=name, stages=stages)


def parse_mix(entry: Any, i: int) -> MixChoice:
    """One ``mix`` entry: ``none``, a method name, or ``{method, alpha: value or [lo, hi]}``."""
    where = f"mix[{i}]"
    if entry in (None, "none"):
        return MixChoice(method="none")
    if isinstance(entry, str):
        entry = {"method": entry}
    if not isinstance(entry, dict) or "method" not in entry or set(entry) - {"method", "alpha"}:
        raise ValueError(f"{where}: expected none, mixup, cutmix, average or {{method: M, alpha: A or [lo, hi]}}, "
                         f"got {entry!r}")  # fmt: skip
    method = entry["method"]
    if method not in ("mixup", "cutmix", "average"):
        raise ValueError(f"{where}: unknown method {method!r}; use none, mixup, cutmix or average")
    alpha = entry.get("alpha")
    if alpha is None:
        alpha = Range(lo=DEFAULT_MIX_ALPHA[0], hi=DEFAULT_MIX_ALPHA[1])
    else:
        alpha = _value_or_range(alpha, f"{where}.alpha", 1e-3, 100.0, integer=False)
    return MixChoice(method=method, alpha=alpha)


def load_space(source: str | Path | dict) -> TuneSpace:
    """Validate a space file or mapping; every problem is one AugsvcError line naming the file and key."""
    data, where = read_mapping(source, "search space", "data, policies, ...")
    try:
        space = TuneSpace.model_validate(data)
    except ValidationError as e:
        raise AugsvcError(validation_message(e, where, lambda loc: TuneSpace)) from None
    try:
        space.parsed_policies()
        space.parsed_mix()
        space.smoothing()
        space.copies()
        _check_train(space)
    except ValueError as e:
        raise AugsvcError(f"{where}: {e}") from None
    if space.grace_period is not None and space.grace_period > space.epochs:
        raise AugsvcError(f"{where}: grace_period {space.grace_period} is more than epochs {space.epochs}")
    return space


def _check_train(space: TuneSpace) -> None:
    from augsvc.trainer.config import TrainConfig

    try:
        TrainConfig.model_validate({"data": space.data, **space.train})
    except ValidationError as e:
        msg = validation_message(e, "train", lambda loc: TrainConfig)
        raise ValueError(msg.splitlines()[0]) from None
