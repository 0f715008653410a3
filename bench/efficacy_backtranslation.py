"""Does back-translation help a small EN->DE translator? Multi30k (Sennrich et al. 2016's recipe, in miniature),
run end to end through the ``augsvc`` command, as a user would:

1. Draw ``--pairs`` parallel pairs from Multi30k train (seeded) and, from the rest, ``--mono`` German sentences whose
   English side is thrown away; write them as ``train.en``/``train.de`` plus ``train.mono.de`` (target-only text)
   beside the 2016 Flickr test pairs, and ``augsvc ingest --monolingual`` the folder: one translation version whose
   train split holds the genuine pairs and the monolingual rows (``src`` null).
2. ``augsvc models train-translator`` (each trains its own byte-level BPE and a small Marian-style model, ``--steps``
   steps of ``--batch-size`` pairs, monolingual rows skipped):
   - DE->EN on the pairs (the back-translation model);
   - EN->DE ``base`` on the pairs.
3. ``augsvc build`` with one ``backtranslate`` generator stage (``backward_model`` = the DE->EN model; sampling or
   beam search as ``--bt-decoding`` says): the output version holds the genuine pairs plus one synthetic pair per
   monolingual row (marked synthetic, parent = that row).
4. ``augsvc models train-translator`` EN->DE ``+bt`` on the built version, same settings and steps as ``base``.
5. BLEU (sacrebleu, 13a) and chrF of greedy translations of the version's test split (the 2016 Flickr test set,
   first ``--test`` sentences) for both EN->DE models.

Both EN->DE models see the same number of updates; the ``+bt`` one sees more distinct pairs (and its tokenizer is
trained on them too). ``--scale`` multiplies pairs, monolingual sentences and steps (for a GPU); ``--quick`` is the
few-minute smoke setting. With ``--work DIR`` a rerun reuses what DIR already holds (the versions are up to
date; a model dir whose ``training.json`` has the same ``--steps`` is not trained again). Every reduction from
the issue's protocol (5,000 pairs, 10,000 monolingual sentences, 4,000 steps, d_model 128, 3 layers, 1,000 test
sentences) is printed.

    nice -n 10 python bench/efficacy_backtranslation.py [--quick] [--scale 1] [--work DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from bench._util import emit, shared  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = {"pairs": 5000, "mono": 10000, "steps": 4000, "d_model": 128, "layers": 3, "test": 1000}


def lines(name: str) -> list[str]:
    with gzip.open(shared("multi30k") / name, "rt", encoding="utf-8") as f:
        return [s.rstrip("\n") for s in f]


def augsvc(*args: object, store: Path) -> tuple[str, float]:
    """Run ``python -m augsvc ARGS --store STORE``; (stdout, seconds); exits with its stderr when it fails."""
    t = time.time()
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "augsvc", *map(str, args), "--store", str(store)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout, time.time() - t


def write_folder(d: Path, args) -> dict:
    """The ingest folder: the parallel subset, the German-only rest and the test pairs."""
    en, de = lines("train.en.gz"), lines("train.de.gz")
    order = np.random.default_rng(args.seed).permutation(len(en))
    sub, rest = order[: args.pairs], order[args.pairs : args.pairs + args.mono]
    d.mkdir(parents=True)
    (d / "train.en").write_text("".join(en[i] + "\n" for i in sub), encoding="utf-8")
    (d / "train.de").write_text("".join(de[i] + "\n" for i in sub), encoding="utf-8")
    (d / "train.mono.de").write_text("".join(de[i] + "\n" for i in rest), encoding="utf-8")
    for lang in ("en", "de"):
        test = lines(f"test_2016_flickr.{lang}.gz")[: args.test]
        (d / f"test_2016_flickr.{lang}").write_text("".join(s + "\n" for s in test), encoding="utf-8")
    return {"pairs": len(sub), "mono": len(rest)}


def train(version: str, src: str, tgt: str, out: Path, args, store: Path, what: str) -> dict:
    done = out / "training.json"
    if done.is_file() and json.loads(done.read_text())["settings"]["steps"] == args.steps:  # a rerun with --work
        info = json.loads(done.read_text())
        res = {"pairs": info["examples"], "parameters": info["parameters"], "seconds": info.get("seconds"),
               "loss": info["history"][-1]["loss"], "reused": True}  # fmt: skip
        print(f"{what}: reused {out} ({res['pairs']:,} pairs, {res['parameters']:,} parameters, {args.steps} steps "
              f"in {res['seconds']} s, final loss {res['loss']:.2f})", flush=True)  # fmt: skip
        return res
    _, secs = augsvc("models", "train-translator", version, "--src", src, "--tgt", tgt, "--out", out,
                     "--steps", args.steps, "--batch-size", args.batch_size, "--lr", args.lr,
                     "--layers", args.layers, "--d-model", args.d_model, "--heads", 4, "--ffn", 4 * args.d_model,
                     "--vocab-size", args.vocab_size, "--max-length", 48, "--seed", args.seed,
                     "--checkpoint-every", max(args.steps, 1), "--device", args.device, "--threads", args.threads,
                     "--quiet", store=store)  # fmt: skip
    info = json.loads((out / "training.json").read_text())
    res = {"pairs": info["examples"], "parameters": info["parameters"], "seconds": round(secs, 1),
           "loss": info["history"][-1]["loss"]}  # fmt: skip
    print(f"{what}: {res['pairs']:,} pairs, {res['parameters']:,} parameters, {args.steps} steps in {secs:.0f} s, "
          f"final loss {res['loss']:.2f}", flush=True)  # fmt: skip
    return res


def test_pairs(store: Path, version: str) -> tuple[list[str], list[str]]:
    from augsvc.model_cli.text_cli import read_split

    _, cols = read_split(version, "test", str(store), ["src", "tgt", "source"], "translation", "")
    order = sorted(range(len(cols["src"])), key=lambda i: int(cols["source"][i].rsplit(":", 1)[1]))
    return [cols["src"][i] for i in order], [cols["tgt"][i] for i in order]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny models, 2,000 pairs, a few minutes")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies --pairs, --mono and --steps")
    ap.add_argument("--pairs", type=int, default=PROTOCOL["pairs"])
    ap.add_argument("--mono", type=int, default=PROTOCOL["mono"])
    ap.add_argument("--steps", type=int, default=PROTOCOL["steps"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=PROTOCOL["d_model"])
    ap.add_argument("--layers", type=int, default=PROTOCOL["layers"])
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--bt-decoding", choices=["sample", "beam", "greedy"], default="sample")
    ap.add_argument("--test", type=int, default=PROTOCOL["test"], help="test sentences scored")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="folder for the store, data and models (default: a temporary one)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.mono, args.steps, args.d_model, args.layers, args.vocab_size = 2000, 4000, 800, 64, 2, 4000
    args.pairs, args.mono, args.steps = (int(x * args.scale) for x in (args.pairs, args.mono, args.steps))
    reduced = {k: (v, getattr(args, k)) for k, v in PROTOCOL.items() if getattr(args, k) < v}
    if reduced:
        print("reduced from the issue's protocol: " + ", ".join(f"{k} {a:,} -> {b:,}" for k, (a, b) in
                                                                  reduced.items()), flush=True)  # fmt: skip
    # `augsvc build` runs the generator with torch's default thread count; an idle OpenMP thread spinning on a busy
    # shared machine cost this bench most of its CPU time (2026-12-01), so every command gets --threads
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        store, models, data = work / "store", work / "models", work / "multi30k"
        out: dict = {"args": vars(args), "reduced": reduced, "data": write_folder(data, args)}
        text, secs = augsvc("ingest", data, "--name", "m30k", "--src-lang", "en", "--tgt-lang", "de",
                            "--monolingual", "--workers", 0, store=store)  # fmt: skip
        print(f"ingest ({secs:.0f} s): " + " ".join(text.split()), flush=True)
        out["de-en"] = train("m30k", "de", "en", models / "de-en", args, store, "DE->EN (back-translation)")
        out["base"] = train("m30k", "en", "de", models / "en-de", args, store, "EN->DE base")
        decoding = {"sample": {"do_sample": True, "top_k": 10}, "beam": {"do_sample": False, "num_beams": 4},
                    "greedy": {"do_sample": False}}[args.bt_decoding]  # fmt: skip
        recipe = {"input": "m30k", "output": "m30k_bt", "seed": args.seed, "splits": ["train"],
                  "stages": [{"name": "bt", "generator": {"method": "backtranslate",
                              "backward_model": str(models / "de-en"), "device": args.device, "batch_size": 64,
                              "max_length": 60, **decoding}}]}  # fmt: skip
        (work / "bt.yaml").write_text(json.dumps(recipe))  # JSON is YAML
        text, secs = augsvc("build", work / "bt.yaml", "--workers", 0, store=store)
        rep = json.loads(augsvc("show", "m30k_bt", "--json", store=store)[0])
        bt = rep["stage_reports"]["bt"]["train"]["backtranslate"][""]
        out["backtranslate"] = {**bt, "seconds": round(secs, 1), "rows": rep["rows_per_split"]}
        print(f"augsvc build (backtranslate, {secs:.0f} s): {bt['made']:,} synthetic pairs from {bt['monolingual']:,} "
              f"German-only rows ({bt['dropped']} dropped); m30k_bt train split {rep['rows_per_split']['train']:,} "
              "rows", flush=True)  # fmt: skip
        out["+bt"] = train("m30k_bt", "en", "de", models / "en-de-bt", args, store, "EN->DE +bt")

        import sacrebleu
        import torch

        torch.set_num_threads(args.threads)
        from generators.textgen import lm as M

        test_en, test_de = test_pairs(store, "m30k")
        scores = {}
        for arm, d in (("base", "en-de"), ("+bt", "en-de-bt")):
            loaded = M.load_pretrained(models / d, "seq2seq", args.device, arm)
            t = time.time()
            hyp = M.translate(loaded, test_en, M.Decoding(do_sample=False, max_length=60, batch_size=64), 0)
            bleu = sacrebleu.corpus_bleu(hyp, [test_de]).score
            chrf = sacrebleu.corpus_chrf(hyp, [test_de]).score
            scores[arm] = {"bleu": round(bleu, 2), "chrf": round(chrf, 2), "decode_s": round(time.time() - t, 1)}
            print(f"EN->DE {arm}: BLEU {bleu:.2f}, chrF {chrf:.2f} on {len(test_en)} test sentences; e.g. "
                  f"{hyp[0]!r}", flush=True)  # fmt: skip
    out["scores"] = scores
    out["total_s"] = round(time.time() - started, 1)
    print(f"Multi30k EN->DE test BLEU: base {scores['base']['bleu']:.2f} | +back-translation "
          f"{scores['+bt']['bleu']:.2f} ({args.pairs:,} pairs + {bt['made']:,} synthetic, {args.steps} steps, "
          f"d_model {args.d_model}, {args.layers} layers, {out['base']['parameters']:,} parameters; "
          f"{out['total_s']:.0f} s in all)")  # fmt: skip
    emit(out, args.json)


if __name__ == "__main__":
    main()
