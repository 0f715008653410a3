"""The search space as Ray Tune sees it, and a trial's config back as a candidate: its recipe and train config.

A candidate is a JSON-able dict (policy index and parameters, mix, label smoothing, offline copies); ``label`` names
it in tables, ``recipe_of`` turns it into a recipe ``augsvc build`` accepts, ``train_config`` into the trainer's.
"""

from __future__ import annotations

import json
from typing import Any

from augsvc.tune.space import MixChoice, Policy, Range, TuneSpace

METRIC = "val_acc"


# -- candidates --------------------------------------------------------------------------------------------------
def param_space(space: TuneSpace) -> dict[str, Any]:
    """The Ray Tune search space: flat keys, one choice of policy/mix/mode plus every range (unused ones are
    ignored by the trial that does not pick their policy)."""
    from ray import tune

    def dist(r: Range) -> Any:
        return tune.randint(int(r.lo), int(r.hi) + 1) if r.integer else tune.uniform(r.lo, r.hi)

    ps: dict[str, Any] = {"policy": tune.choice(list(range(len(space.policies))))}
    for i, p in enumerate(space.parsed_policies()):
        for name, r in p.ranges.items():
            ps[f"p{i}.{name}"] = dist(r)
    ps["mix"] = tune.choice(list(range(len(space.mix))))
    for j, m in enumerate(space.parsed_mix()):
        if isinstance(m.alpha, Range):
            ps[f"mix{j}.alpha"] = dist(m.alpha)
    for key, v in (("label_smoothing", space.smoothing()), ("offline_copies", space.copies())):
        if isinstance(v, Range):
            ps[key] = dist(v)
    ps["augment"] = tune.choice(list(space.augment))
    return ps


def first_points(space: TuneSpace) -> list[dict[str, Any]]:
    """Every policy once, at the op's defaults where they lie in the range (RandAugment's n=2, magnitude=9),
    else the middle; no mixing, the lowest smoothing, the first augment mode."""
    from pipelines.transforms.base import get_op_class

    points = []
    for i, p in enumerate(space.parsed_policies()):
        pt: dict[str, Any] = {"policy": i, "mix": 0, "augment": space.augment[0]}
        for name, r in p.ranges.items():
            d = get_op_class(p.op).model_fields[name].default
            pt[f"p{i}.{name}"] = d if isinstance(d, int | float) and r.lo <= d <= r.hi else r.mid()
        for j, m in enumerate(space.parsed_mix()):
            if isinstance(m.alpha, Range):
                pt[f"mix{j}.alpha"] = m.alpha.mid()
        ls, cp = space.smoothing(), space.copies()
        if isinstance(ls, Range):
            pt["label_smoothing"] = ls.lo
        if isinstance(cp, Range):
            pt["offline_copies"] = int(cp.lo)
        points.append(pt)
    return points[: space.n_trials()]


def candidate(space: TuneSpace, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config -> the candidate it trains: ``{policy, params, stages, mix, alpha, label_smoothing,
    augment, copies, label}`` (JSON-able)."""
    i = int(config["policy"])
    p: Policy = space.parsed_policies()[i]
    params = {**p.fixed}
    for name, r in p.ranges.items():
        v = config[f"p{i}.{name}"]
        params[name] = int(v) if r.integer else round(float(v), 4)
    j = int(config.get("mix", 0))
    m: MixChoice = space.parsed_mix()[j]
    alpha = None
    if m.method != "none":
        alpha = round(float(config[f"mix{j}.alpha"]), 4) if isinstance(m.alpha, Range) else m.alpha
    ls, cp = space.smoothing(), space.copies()
    ls = round(float(config["label_smoothing"]), 4) if isinstance(ls, Range) else ls
    cp = int(config["offline_copies"]) if isinstance(cp, Range) else cp
    mode = config.get("augment", "on_the_fly") if p.kind != "none" else "on_the_fly"
    if p.kind == "op":
        stages = [{"name": p.name, "op": {"op": p.op, **params}}]
    else:
        stages = [dict(st) for st in p.stages]
    cand = {"policy": p.name, "params": params, "stages": stages, "mix": m.method, "alpha": alpha,
            "label_smoothing": ls, "augment": mode, "copies": cp if mode == "offline" else None}  # fmt: skip
    cand["label"] = label(cand)
    return cand


def baseline() -> dict[str, Any]:
    """No augmentation, no mixing, no smoothing."""
    cand = {"policy": "none", "params": {}, "stages": [], "mix": "none", "alpha": None, "label_smoothing": 0.0,
            "augment": "on_the_fly", "copies": None}  # fmt: skip
    cand["label"] = label(cand)
    return cand


def label(c: dict[str, Any]) -> str:
    """A short human form: ``rand_augment(n=2, magnitude=7.3) + mixup(0.3) + ls 0.05, offline x4``."""

    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list | dict) else str(v)

    parts = [c["policy"] + (f"({', '.join(f'{k}={fmt(v)}' for k, v in c['params'].items())})" if c["params"] else "")]
    if c["mix"] != "none":
        parts.append(f"{c['mix']}({fmt(c['alpha'])})")
    if c["label_smoothing"]:
        parts.append(f"ls {fmt(c['label_smoothing'])}")
    s = " + ".join(parts)
    return s + (f", offline x{c['copies']}" if c["augment"] == "offline" else "")


def recipe_of(space: TuneSpace, cand: dict[str, Any], ref: str) -> dict[str, Any] | None:
    """The candidate's op stages as a recipe (what ``augsvc build`` and the trainer's ``augment:`` read), or None
    for no augmentation. Offline candidates get ``copies`` on their stage (one stage) or the first stage."""
    if not cand["stages"]:
        return None
    stages = [dict(st) for st in cand["stages"]]
    if cand["augment"] == "offline":
        stages[0]["copies"] = cand["copies"]
        stages[0]["keep_originals"] = True
    dataset = ref.split("@")[0]
    return {"schema_version": 1, "input": ref, "output": f"{dataset}_tuned", "seed": space.seed,
            "splits": [space.train_split], "stages": stages}  # fmt: skip


def train_config(space: TuneSpace, cand: dict[str, Any], ref: str, seed: int) -> Any:
    """The ``TrainConfig`` of one trial (or one --test retrain)."""
    from augsvc.trainer.config import TrainConfig

    d: dict[str, Any] = {"device": "cpu" if not space.gpus_per_trial else "auto",
                         "threads": max(1, int(space.cpus_per_trial)), **space.train}  # fmt: skip
    d.update(data=ref, train_split=space.train_split, val_split=space.val_split, epochs=space.epochs, seed=seed,
             label_smoothing=cand["label_smoothing"], augment=recipe_of(space, cand, ref))  # fmt: skip
    if cand["augment"] == "offline" and d["augment"] is not None:
        # equal optimizer steps per epoch for every candidate: an offline epoch passes over one of the k + 1 fixed
        # views in turn (all of them every k + 1 epochs), not over all k + 1 (which would be (k + 1)x the steps at
        # every ASHA rung and in the --test retraining against the baseline)
        d["augment_copies"] = cand["copies"]
        d["augment_cycle"] = True
    if cand["mix"] != "none":
        d["mix"] = {"method": cand["mix"], "alpha": cand["alpha"]}
    return TrainConfig.model_validate(d)


# -- the trial ---------------------------------------------------------------------------------------------------
