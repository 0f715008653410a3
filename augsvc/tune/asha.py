"""ASHA that keeps a record of the trials it stopped, so the table can tell them from trials cut by ``--budget`` or
an interruption (Ray Tune marks all of them TERMINATED). Imports Ray: load it only inside the search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class RecordingASHA(ASHAScheduler):
    """Ray Tune's ``ASHAScheduler`` (Li et al. 2020, asynchronous successive halving); every trial it stops before
    ``max_t`` has its id appended (one line) to the file ``record`` (absolute path, kept across ``--resume``:
    the scheduler is restored from Ray Tune's pickled state with the same path)."""

    def __init__(self, *, record: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = str(record)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and result.get(self._time_attr, self._max_t) < self._max_t:
            with open(self.record, "a") as f:
                f.write(f"{trial.trial_id}\n")
        return decision
