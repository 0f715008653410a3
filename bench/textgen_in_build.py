"""Both model-backed text stages inside ``augsvc build`` on ingested TREC, with models made by ``augsvc models``
(the issue's "done when" check; not an efficacy measurement).

1. ``augsvc ingest`` TREC-6 (``--format lines --encoding latin-1``).
2. ``augsvc models train-lm trec`` (a small GPT-2) and, unless ``--translators DIR`` names a folder holding
   ``en-de`` and ``de-en`` model dirs (e.g. ``bench/efficacy_backtranslation.py --work DIR``'s ``models``),
   ``augsvc ingest`` Multi30k and ``augsvc models train-translator`` both directions on it.
3. ``augsvc build`` of one recipe with a ``lambada`` stage and a ``backtranslate`` stage (round-trip paraphrases
   EN -> DE -> EN) on TREC's train split, ``--per-class`` new rows per class each.
4. Prints rows per class before and after, the stages' reports, a few generated rows with their lineage, and the
   time of every step; ``augsvc verify`` on the result.

    nice -n 10 python bench/textgen_in_build.py [--translators DIR] [--lm-steps 300] [--per-class 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import emit, shared  # noqa: E402
from bench.efficacy_backtranslation import augsvc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--translators", help="folder with en-de and de-en translator dirs (default: train them here)")
    ap.add_argument("--lm-steps", type=int, default=300)
    ap.add_argument("--mt-steps", type=int, default=300)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--finetune-steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", help="folder for the store and models (default: a temporary one)")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # the commands' torch threads (see the bt bench)
    out: dict = {"args": vars(args), "seconds": {}}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        store, models = work / "store", work / "models"
        sec = out["seconds"]
        _, sec["ingest_trec"] = augsvc("ingest", shared("trec6"), "--name", "trec", "--format", "lines",
                                       "--encoding", "latin-1", "--workers", 0, store=store)  # fmt: skip
        _, sec["train_lm"] = augsvc("models", "train-lm", "trec", "--out", models / "lm", "--steps", args.lm_steps,
                                    "--n-embd", 64, "--layers", 2, "--vocab-size", 2000, "--threads", args.threads,
                                    "--device", "cpu", "--quiet", store=store)  # fmt: skip
        if args.translators:
            mt = Path(args.translators)
        else:
            mt = models
            _, sec["ingest_m30k"] = augsvc("ingest", shared("multi30k"), "--name", "m30k", "--src-lang", "en",
                                           "--tgt-lang", "de", "--workers", 0, store=store)  # fmt: skip
            for s, t in (("en", "de"), ("de", "en")):
                _, sec[f"train_{s}_{t}"] = augsvc("models", "train-translator", "m30k", "--src", s, "--tgt", t,
                                                  "--out", mt / f"{s}-{t}", "--limit", 5000, "--steps", args.mt_steps,
                                                  "--d-model", 64, "--heads", 4, "--ffn", 256, "--vocab-size", 4000,
                                                  "--threads", args.threads, "--device", "cpu", "--quiet",
                                                  store=store)  # fmt: skip
        recipe = {"input": "trec", "output": "trec_gen", "seed": 0, "stages": [
            {"name": "lambada", "generator": {"method": "lambada", "model": str(models / "lm"), "device": "cpu",
                                              "n_per_class": args.per_class, "finetune_steps": args.finetune_steps}},
            {"name": "bt", "generator": {"method": "backtranslate", "forward_model": str(mt / "en-de"),
                                         "backward_model": str(mt / "de-en"), "device": "cpu",
                                         "n_per_class": args.per_class, "top_k": 10}},
        ]}  # fmt: skip
        (work / "gen.yaml").write_text(json.dumps(recipe))
        text, sec["build"] = augsvc("build", work / "gen.yaml", "--workers", 0, store=store)
        print(text.strip(), flush=True)
        verify, _ = augsvc("verify", "trec_gen", store=store)
        print(verify.strip())
        m_in = json.loads(augsvc("show", "trec", "--json", store=store)[0])
        m = json.loads(augsvc("show", "trec_gen", "--json", store=store)[0])
        out["rows_per_class"] = {"trec": m_in["splits"]["train"], "trec_gen": m["splits"]["train"]}
        out["stage_reports"] = m["stage_reports"]
        from augsvc.model_cli.text_cli import read_split

        _, cols = read_split("trec_gen", "train", str(store), ["label", "text", "lineage"], "text", "")
        for stage in ("lambada", "backtranslate"):
            made = [(lab, t, json.loads(li)[-1]) for lab, t, li in zip(cols["label"], cols["text"], cols["lineage"],
                                                                        strict=True) if li]  # fmt: skip
            made = [x for x in made if x[2]["generator"] == stage]
            out[f"{stage}_rows"] = len(made)
            print(f"{stage}: {len(made)} rows, e.g.")
            for lab, t, step in made[:: max(1, len(made) // 4)][:4]:
                info = {k: v for k, v in step.items() if k in ("score", "pivot", "parents")}
                print(f"  [{m['class_names'][lab]}] {t!r}  {json.dumps(info)}")
    out["total_s"] = round(time.time() - started, 1)
    print("train rows per class: " + ", ".join(f"{c} {out['rows_per_class']['trec'].get(c, 0)}->{n}"
                                               for c, n in out["rows_per_class"]["trec_gen"].items()))  # fmt: skip
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in out["seconds"].items()) + f"; {out['total_s']:.0f} in all")
    emit(out, args.json)


if __name__ == "__main__":
    main()
