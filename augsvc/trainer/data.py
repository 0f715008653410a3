"""From a version to model inputs: ``fit_prep`` fits a :class:`generators.nets.prep.Prep` on the training split."""

from __future__ import annotations

import numpy as np

from augsvc.api import StoreArg as Store
from generators.nets.prep import Prep

__all__ = ["Prep", "fit_prep"]


def fit_prep(
    prep: Prep, store: Store, ref: str, split: str, features: dict[str, str], *, hf_path: str | None = None
) -> None:
    """Fit ``prep`` on ``split`` of version ``ref``: the word vocabulary (text), feature statistics and category
    levels (tabular); images need nothing."""
    from augsvc.stream import Stream

    if hf_path:
        prep.state["hf_path"] = hf_path
    elif prep.modality == "text":
        from generators.nets.classifiers import Vocab

        texts = [t for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=1024) for t in b["text"]]
        prep.state["vocab"] = Vocab.build(texts).words
    elif prep.modality == "tabular":
        num = [f for f, k in features.items() if k == "numeric"]
        cat = [f for f, k in features.items() if k == "categorical"]
        cols: dict[str, list] = {f: [] for f in features}
        for b in Stream(ref, store=store, split=split, shuffle=False, batch_size=4096):
            for f in features:
                cols[f] += list(b[f])
        stats = {}
        for f in num:
            v = np.array([np.nan if x is None else x for x in cols[f]], float)
            stats[f] = (float(np.nanmean(v)), float(np.nanstd(v)) or 1.0)
        prep.state.update(numeric=num, stats=stats, levels={f: sorted({str(v) for v in cols[f]}) for f in cat})
