"""Does back-translation help a small EN->DE translator? Multi30k (Sennrich et al. 2016's recipe, in miniature).

1. Draw ``--pairs`` parallel pairs from Multi30k train (seeded) and, from the rest, ``--mono`` German sentences whose
   English side is thrown away (monolingual target text).
2. Train one byte-level BPE vocabulary on the parallel subset (both languages) and three small Marian-style models
   (``generators/textgen/models.py``) with it, each for ``--steps`` steps of 32 pairs:
   - DE->EN on the subset (the back-translation model);
   - EN->DE ``base`` on the subset;
   - EN->DE ``+bt`` on the subset plus the synthetic pairs: the German sentences with English sources made by the
     ``backtranslate`` generator (rows with an empty source, ``backward_model`` = the DE->EN model; sampling or
     beam search as ``--bt-decoding`` says).
3. BLEU (sacrebleu, default 13a tokenisation) of greedy translations of the Multi30k 2016 Flickr test set (1,000
   sentences) for both EN->DE models, and chrF.

Both EN->DE models see the same number of updates; the ``+bt`` one sees more distinct pairs. ``--scale`` multiplies
pairs, monolingual sentences and steps (for a GPU); ``--quick`` is a few-minute run with tiny models.

    nice python bench/efficacy_backtranslation.py [--quick] [--scale 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from bench._util import emit, shared  # noqa: E402


def lines(name: str) -> list[str]:
    with gzip.open(shared("multi30k") / name, "rt", encoding="utf-8") as f:
        return [s.rstrip("\n") for s in f]


def train_model(tok, pairs: list[tuple[str, str]], args, seed: int, what: str):
    from generators.textgen import models as M

    t = time.time()
    model = M.new_translator(tok, d_model=args.d_model, layers=args.layers, heads=4, ffn=4 * args.d_model,
                             max_positions=128)  # fmt: skip
    settings = M.TrainSettings(steps=args.steps, batch_size=32, lr=args.lr, seed=seed, max_length=48,
                               checkpoint_every=10**9, warmup=0.05)  # fmt: skip
    model, hist = M.train(model, tok, pairs, settings, device=M.resolve_device(args.device))
    n = sum(p.numel() for p in model.parameters())
    secs = time.time() - t
    print(f"{what}: {len(pairs):,} pairs, {n:,} parameters, {args.steps} steps in {secs:.0f} s, "
          f"final loss {hist[-1]['loss']:.2f}", flush=True)  # fmt: skip
    return model, {"pairs": len(pairs), "parameters": n, "seconds": round(secs, 1), "loss": hist[-1]["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny models, 2,000 pairs, a few minutes")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies --pairs, --mono and --steps")
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--mono", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--bt-decoding", choices=["sample", "beam", "greedy"], default="sample")
    ap.add_argument("--test", type=int, default=1000, help="test sentences scored")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.mono, args.steps, args.d_model, args.layers, args.vocab_size = 2000, 4000, 800, 64, 2, 4000
    args.pairs, args.mono, args.steps = (int(x * args.scale) for x in (args.pairs, args.mono, args.steps))
    import sacrebleu
    import torch

    torch.set_num_threads(args.threads)
    from generators import build_generator
    from generators.base import FitData
    from generators.textgen import models as M

    started = time.time()
    en, de = lines("train.en.gz"), lines("train.de.gz")
    order = np.random.default_rng(args.seed).permutation(len(en))
    sub = [(en[i], de[i]) for i in order[: args.pairs]]
    mono = [de[i] for i in order[args.pairs : args.pairs + args.mono]]
    test_en, test_de = lines("test_2016_flickr.en.gz")[: args.test], lines("test_2016_flickr.de.gz")[: args.test]
    tok = M.translation_tokenizer([s for p in sub for s in p], args.vocab_size)
    out: dict = {"args": vars(args)}

    back, out["de-en"] = train_model(tok, [(d, e) for e, d in sub], args, args.seed, "DE->EN (back-translation)")
    # the generator loads models by path: save the DE->EN model beside the tokenizer
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        back.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        decoding = {"sample": {"do_sample": True, "top_k": 10}, "beam": {"do_sample": False, "num_beams": 4},
                    "greedy": {"do_sample": False}}[args.bt_decoding]  # fmt: skip
        gen = build_generator({"method": "backtranslate", "backward_model": tmp, "device": args.device,
                               "batch_size": 128, "max_length": 60, **decoding})  # fmt: skip
        X = np.empty((len(mono), 2), dtype=object)
        X[:, 0], X[:, 1] = None, mono
        t = time.time()
        fitted = gen.fit(FitData(X, np.full(len(mono), -1), [], "translation"), gen.load())
        made = fitted.generate(-1, len(mono), np.random.default_rng(args.seed))
        out["backtranslate"] = {**fitted.report()["backtranslate"][""], "seconds": round(time.time() - t, 1)}
    synthetic = [(str(s), str(t)) for s, t in made.X]
    print(f"back-translated {len(synthetic):,} of {len(mono):,} German sentences in "
          f"{out['backtranslate']['seconds']:.0f} s; e.g. " + " / ".join(f"{s!r} <- {t!r}" for s, t in synthetic[:2]),
          flush=True)  # fmt: skip

    scores = {}
    for arm, pairs in (("base", sub), ("+bt", sub + synthetic)):
        model, out[arm] = train_model(tok, pairs, args, args.seed, f"EN->DE {arm}")
        loaded = (model, tok, next(model.parameters()).device)
        t = time.time()
        hyp = M.translate(loaded, test_en, M.Decoding(do_sample=False, max_length=60, batch_size=128), 0)
        bleu = sacrebleu.corpus_bleu(hyp, [test_de]).score
        chrf = sacrebleu.corpus_chrf(hyp, [test_de]).score
        scores[arm] = {"bleu": round(bleu, 2), "chrf": round(chrf, 2), "decode_s": round(time.time() - t, 1)}
        print(f"EN->DE {arm}: BLEU {bleu:.2f}, chrF {chrf:.2f} on {len(test_en)} test sentences; e.g. {hyp[0]!r}",
              flush=True)  # fmt: skip
    out["scores"] = scores
    out["total_s"] = round(time.time() - started, 1)
    print(f"Multi30k EN->DE test BLEU: base {scores['base']['bleu']:.2f} | +back-translation "
          f"{scores['+bt']['bleu']:.2f} ({args.pairs} pairs + {len(synthetic)} synthetic, {args.steps} steps, "
          f"d_model {args.d_model}, {args.layers} layers; {out['total_s']:.0f} s in all)")  # fmt: skip
    emit(out, args.json)


if __name__ == "__main__":
    main()
