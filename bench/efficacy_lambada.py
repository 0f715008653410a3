"""Does LAMBADA help a classifier with few labelled questions? TREC-6 with 10, 20 and 50 questions per class.

For each seed and shot count k: k questions per class are drawn from TREC.train (300 others are held out for the
CNN's model selection). Training sets:

- ``base``: the 6k seed questions alone;
- ``+lambada``: plus k generated questions per class from the ``lambada`` generator (``generators/textgen``):
  a small GPT-2 fine-tuned on ``label SEP text`` lines of the seed questions, ``candidates_factor`` x k candidates
  per class, filtered (duplicates and copies dropped, a bag-of-words classifier fitted on the seeds must agree,
  best scores kept);
- ``+eda``: plus 4 copies of each seed question made by an augsvc build with bench/efficacy_text.py's EDA stage
  (WordNet synonym replace/insert, random swap, random delete; the noise stage when WordNet is not installed).

Classifiers (bench/efficacy_text.py's helpers): a bag-of-words logistic regression and augsvc's text CNN (fixed
optimizer steps, best epoch on the held-out 300); accuracy on the 500 TREC.test questions, mean and standard error
over the seeds.

No pretrained GPT-2 exists on this machine, so the "pretrained" LM is made here once: a GPT-2 config (``--layers``,
``--n-embd``) with a byte-level BPE, trained on the *unlabelled* TREC.train questions (plain text, no labels: the
stand-in for what a general LM has read; the test questions are never seen). Model sizes and times are printed.

    nice python bench/efficacy_lambada.py [--quick] [--seeds 5] [--shots 10,20,50] [--models bow,cnn]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from bench._util import emit, shared  # noqa: E402
from bench.efficacy_text import EDA, NOISE, bow_accuracy, cnn_accuracy, publish, rows_of, wordnet_available  # noqa: E402


def per_class(rows: list[dict], k: int, seed: int) -> list[dict]:
    """k rows of every class, drawn with ``seed`` (sorted by sample id first, so the draw depends on data only)."""
    rng = np.random.default_rng([seed, k])
    out = []
    for c in sorted({r["label"] for r in rows}):
        mine = sorted((r for r in rows if r["label"] == c), key=lambda r: r["sample_id"])
        out += [mine[i] for i in rng.choice(len(mine), size=min(k, len(mine)), replace=False)]
    return out


def pretrain_lm(texts: list[str], out: Path, args) -> dict:
    from generators.textgen import lm as M

    t = time.time()
    lines = [q.strip() + M.LM_EOS for q in texts]
    tok = M.lm_tokenizer(lines, args.vocab_size)
    model = M.new_lm(tok, n_layer=args.layers, n_embd=args.n_embd, n_head=4, n_positions=64)
    settings = M.TrainSettings(steps=args.pretrain_steps, batch_size=32, lr=2e-3, seed=0, max_length=48,
                               checkpoint_every=10**9)  # fmt: skip
    _, hist = M.train(model, tok, lines, settings, out=out)
    n = sum(p.numel() for p in model.parameters())
    return {"parameters": n, "seconds": round(time.time() - t, 1), "final_loss": hist[-1]["loss"]}


def lambada_rows(seed_rows: list[dict], names: list[str], k: int, seed: int, lm: Path, args, loaded) -> tuple:
    from generators import build_generator
    from generators.base import FitData

    gen = build_generator({"method": "lambada", "model": str(lm), "finetune_steps": args.finetune_steps,
                           "finetune_lr": 1e-3, "finetune_seed": seed, "n_per_class": k, "device": "cpu",
                           "candidates_factor": args.candidates_factor, "max_rounds": 2,
                           "top_k": 0, "top_p": 0.95})  # fmt: skip
    data = FitData(np.array([r["text"] for r in seed_rows], dtype=object),
                   np.array([r["label"] for r in seed_rows], dtype=np.int64), names, "text")  # fmt: skip
    fitted = gen.fit(data, loaded)
    new = []
    for c, name in enumerate(names):
        out = fitted.generate(c, k, np.random.default_rng([seed, k, c]))
        for j, text in enumerate(out.X):
            sid = hashlib.blake2b(f"lambada/{seed}/{k}/{c}/{j}".encode(), digest_size=8).hexdigest()
            new.append({"sample_id": sid, "label": c, "soft_label": None, "split": "train", "lineage": None,
                        "source": f"lambada:{name}:{j}", "teacher_logits": None, "text": text})  # fmt: skip
    return new, fitted.report()["lambada"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 seeds, 10 and 20 per class, small steps")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--shots", default="10,20,50")
    ap.add_argument("--models", default="bow,cnn")
    ap.add_argument("--steps", type=int, default=400, help="text CNN optimizer steps per training run")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--vocab-size", type=int, default=4000)
    ap.add_argument("--pretrain-steps", type=int, default=3000)
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--candidates-factor", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.shots, args.steps = 2, "10,20", 200
        args.layers, args.n_embd, args.pretrain_steps, args.finetune_steps = 2, 64, 800, 150
    import torch

    torch.set_num_threads(args.threads)
    from generators.textgen.lm import load_pretrained
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store

    models = args.models.split(",")
    shots = [int(s) for s in args.shots.split(",")]
    no_wordnet = wordnet_available()
    eda_stage = NOISE if no_wordnet else EDA
    print(f"EDA arm: {eda_stage['name']}" + (f" ({no_wordnet})" if no_wordnet else ""), flush=True)
    arms = ["base", "+lambada", "+eda"]
    res = {m: {k: {a: [] for a in arms} for k in shots} for m in models}
    stats: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        rep = ingest(shared("trec6"), name="trec", store=store,
                     options=IngestOptions(format="lines", encoding="latin-1"), workers=0)  # fmt: skip
        names = rep.manifest.class_names
        everything = rows_of(store, "trec")
        train = [r for r in everything if r["split"] == "train"]
        test = [r for r in everything if r["split"] == "test"]
        lm = Path(tmp) / "lm"
        info = pretrain_lm([r["text"] for r in train], lm, args)
        print(f"LM: GPT-2 {args.layers} layers, n_embd {args.n_embd}, {info['parameters']:,} parameters, "
              f"{args.pretrain_steps} steps on {len(train)} unlabelled questions in {info['seconds']} s "
              f"(loss {info['final_loss']:.2f})", flush=True)  # fmt: skip
        stats["lm"] = info
        loaded = load_pretrained(lm, "causal", "cpu")
        times = {"lambada_s": [], "eda_s": []}
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(train))
            val_rows = [train[i] for i in order[:300]]
            pool = [train[i] for i in order[300:]]
            publish(store, val_rows, f"v300s{seed}", "val", seed, names)
            for k in shots:
                seeds_rows = per_class(pool, k, seed)
                t = time.time()
                synth, st = lambada_rows(seeds_rows, names, k, seed, lm, args, loaded)
                times["lambada_s"].append(time.time() - t)
                stats[f"s{seed}k{k}"] = st
                base = f"k{k}s{seed}"
                publish(store, seeds_rows, base, "train", seed, names)
                publish(store, seeds_rows + synth, f"{base}-lambada", "train", seed, names)
                t = time.time()
                recipe = {"input": base, "output": f"{base}-eda", "seed": seed, "stages": [eda_stage]}
                build(load_recipe(recipe), store, workers=0)
                times["eda_s"].append(time.time() - t)
                versions = {"base": base, "+lambada": f"{base}-lambada", "+eda": f"{base}-eda"}
                for arm in arms:
                    rows = rows_of(store, versions[arm])
                    if "bow" in models:
                        res["bow"][k][arm].append(bow_accuracy(rows, test))
                    if "cnn" in models:
                        acc = cnn_accuracy(store, versions[arm], f"v300s{seed}", len(rows), seed, args.steps,
                                           Path(tmp))  # fmt: skip
                        res["cnn"][k][arm].append(acc)
                kept = sum(v["kept"] for v in st.values())
                cands = sum(v["candidates"] for v in st.values())
                print(f"seed {seed} k={k}: lambada kept {kept}/{cands} candidates ({times['lambada_s'][-1]:.0f} s); "
                      + "; ".join(f"{m} " + " | ".join(f"{a} {res[m][k][a][-1]:.3f}" for a in arms) for m in models),
                      flush=True)  # fmt: skip
                if seed == 0:
                    print("  e.g. " + " / ".join(f"{names[r['label']]}: {r['text']}" for r in synth[:: max(1, k)][:6]))
    summary = {}
    for m in models:
        label = {"bow": "bag-of-words logistic regression", "cnn": f"text CNN, {args.steps} steps"}[m]
        for k in shots:
            cells = {a: (float(np.mean(v)), float(np.std(v) / np.sqrt(len(v)))) for a, v in res[m][k].items()}
            summary[f"{m}/k{k}"] = {a: [round(x, 4), round(s, 4)] for a, (x, s) in cells.items()}
            print(f"TREC-6 test accuracy, {label}, {k} per class (mean +- s.e. over {args.seeds} seeds): "
                  + " | ".join(f"{a} {x:.3f} +- {s:.3f}" for a, (x, s) in cells.items()))  # fmt: skip
    print(f"time per set: lambada fine-tune+generate {np.mean(times['lambada_s']):.0f} s, "
          f"EDA build {np.mean(times['eda_s']):.0f} s")  # fmt: skip
    emit({"per_seed": res, "summary": summary, "lambada_stats": stats, "times": times}, args.json)


if __name__ == "__main__":
    main()
