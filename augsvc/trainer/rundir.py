"""The run folder of ``augsvc train``: refuse to start over an existing run, refuse to resume under another config,
and write ``config.yaml`` (the config with versions pinned, defaults filled in and an ``augment`` recipe file
inlined, so it describes the run exactly). The refusals are the shared ones of ``schemas.resume``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from augsvc.trainer.config import TrainConfig
from schemas.errors import AugsvcError
from schemas.resume import config_changes, existing_run, refuse_changed, refuse_occupied

# what the trainer writes into a run folder (--overwrite removes these, nothing else)
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.json", "metrics.csv", "summary.json", "val_accuracy.png",
             "pretrain")  # fmt: skip
# any of these means the folder holds a run
RUN_MARKERS = ("config.yaml", "last.pt", "metrics.json", "pretrain")
# keys a resumed run may change: how long it trains and where (the rest decides the weights)
RESUME_MAY_CHANGE = ("epochs", "device", "threads")
HEADER = "# every key of this run, versions pinned and defaults filled in; null means the feature is off\n"


def run_settings(filled: TrainConfig) -> dict[str, Any]:
    """The JSON form of a checked config (``plan_run(...).filled``) with an ``augment`` recipe file replaced by its
    mapping, so an edited recipe file counts as a changed config."""
    from schemas.validation import read_mapping

    d = filled.model_dump(mode="json")
    if isinstance(filled.augment, str):
        d["augment"], _ = read_mapping(filled.augment, "augment recipe", "keys input, stages, ...")
    return d


def prepare_run_dir(out: str | Path, settings: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
    """Check ``out`` and write ``out/config.yaml`` from ``settings`` (:func:`run_settings`).

    Without ``resume``: a folder holding a run (``RUN_MARKERS``) is refused unless ``overwrite``, which removes the
    trainer's files (``RUN_FILES``) first. With ``resume``: a folder without a run is refused, and so is a config
    that differs from the run's ``config.yaml`` in any key but ``RESUME_MAY_CHANGE`` (each changed key named with
    its old and new value). Raises AugsvcError (one line)."""
    import yaml

    out = Path(out)
    if resume and overwrite:
        raise AugsvcError("--resume continues a run and --overwrite starts it again: pass one of them")
    if out.exists() and not out.is_dir():
        raise AugsvcError(f"--out {out} is a file, not a folder: give another --out")
    found = existing_run(out, RUN_MARKERS)
    if not resume:
        if not overwrite:
            refuse_occupied(out, found, extra="--overwrite to start it again")
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif not found:
        raise AugsvcError(f"{out}: no run to resume (no config.yaml or last.pt there); drop --resume to start one")
    elif (out / "config.yaml").is_file():
        old = yaml.safe_load((out / "config.yaml").read_text()) or {}
        changes = config_changes(old, settings, ignore=RESUME_MAY_CHANGE)
        refuse_changed(out, changes, advice=f"train with the run's own config ({out / 'config.yaml'}), pass "
                       "--overwrite to start it again, or give a new --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(HEADER + yaml.safe_dump(settings, sort_keys=False))
