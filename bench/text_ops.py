"""Texts per second on one core for our text ops against nlpaug's equivalent augmenters, in the same run.

    python bench/text_ops.py [--quick] [--data sms|trec|synthetic ...] [--n 2000] [--repeats 3] [--json out.json]

Data: ``/work/shared/data/sms_spam/SMSSpamCollection`` (TSV, header ``Label<TAB>SMS``) or
``/work/shared/data/trec6/TREC.train`` (latin-1, ``COARSE:fine question``); synthetic sentences when missing.
Several ``--data`` sets run one after the other. Each op runs over the same texts at ``aug_p=0.1`` (at most 10
words), one call per text; passes of ours and nlpaug's alternate (so drifting load on a shared machine hits both)
and the best of ``--repeats`` passes is reported, as texts/s and microseconds per text. Our ops draw from one
``np.random.Generator`` passed to every call; nlpaug from Python's ``random``.

Pairs: random_swap vs ``RandomWordAug(action="swap")``, random_delete vs ``RandomWordAug(action="delete")``,
keyboard_typo vs ``KeyboardAug`` (one character per chosen word). synonym_replace has no nlpaug counterpart
here: ``SynonymAug`` needs NLTK's WordNet, which is not installed, and nlpaug would call ``nltk.download``
(blocked in this script), so it is timed alone with a thesaurus built from the data. A second table times the
other text ops alone (``--no-others`` skips it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._util import SHARED, emit, tiny  # noqa: E402
from pipelines.transforms.base import registry  # noqa: E402
from pipelines.transforms.text.char import KeyboardTypo  # noqa: E402
from pipelines.transforms.text.synonyms import ENGLISH_STOPWORDS  # noqa: E402
from pipelines.transforms.text.tokenize import Tokens  # noqa: E402
from pipelines.transforms.text.word import RandomDelete, RandomSwap, SynonymReplace  # noqa: E402

DATA = SHARED  # AUGSVC_SHARED_DATA or ../shared/data


def load_texts(which: str, n: int) -> tuple[str, list[str]]:
    sms, trec = DATA / "sms_spam" / "SMSSpamCollection", DATA / "trec6" / "TREC.train"
    if which == "sms" and sms.exists():
        lines = sms.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
        return str(sms), [line.split("\t", 1)[1] for line in lines if "\t" in line][:n]
    if which == "trec" and trec.exists():
        lines = trec.read_bytes().decode("latin-1").splitlines()
        return str(trec), [line.split(" ", 1)[1] for line in lines if " " in line][:n]
    rng = np.random.default_rng(0)
    vocab = "the a quick brown fox jumps over lazy dog it was not amused cat sat on mat today".split()
    texts = [" ".join(rng.choice(vocab, rng.integers(5, 25))).capitalize() + "." for _ in range(n)]
    return "synthetic", texts


def thesaurus_from(texts: list[str], n_words: int = 300) -> dict[str, list[str]]:
    """Map each of the most frequent non-stop words to three others (a stand-in thesaurus for timing)."""
    counts = Counter(w.lower() for t in texts for w in Tokens.from_text(t).words)
    common = [w for w, _ in counts.most_common() if w not in ENGLISH_STOPWORDS and w.isalpha()][:n_words]
    return {w: [common[(i + k) % len(common)] for k in (1, 2, 3)] for i, w in enumerate(common)}


def one_pass(fn, texts: list[str]) -> float:
    start = time.perf_counter()
    for t in texts:
        fn(t)
    return time.perf_counter() - start


def rates(fns: list, texts: list[str], repeats: int) -> list[float]:
    """Texts per second of each function: best of ``repeats`` passes, the functions' passes interleaved."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            best[k] = min(best[k], one_pass(fn, texts))
    return [len(texts) / b for b in best]


def ours(op):
    rng = np.random.default_rng(0)
    return lambda t: op(t, rng)[0]


def nlpaug_augmenters() -> tuple[dict[str, object], str | None]:
    try:
        import nltk

        def refuse(*args, **kwargs):
            raise RuntimeError("nltk.download blocked by bench/text_ops.py (offline run)")

        nltk.download = refuse
    except ImportError:
        pass
    try:
        import nlpaug.augmenter.char as nac
        import nlpaug.augmenter.word as naw
    except ImportError as e:
        raise SystemExit(
            f"bench/text_ops.py compares with nlpaug, which is not importable ({e}): "
            "pip install -c constraints.txt -e '.[bench]'"
        ) from None
    augs = {
        "random_swap": naw.RandomWordAug(action="swap", aug_p=0.1, aug_min=1, aug_max=10),
        "random_delete": naw.RandomWordAug(action="delete", aug_p=0.1, aug_min=1, aug_max=10),
        "keyboard_typo": nac.KeyboardAug(
            aug_word_p=0.1,
            aug_word_min=1,
            aug_word_max=10,
            aug_char_min=1,
            aug_char_max=1,
            min_char=3,
            include_special_char=False,
            include_numeric=False,
        ),
    }
    return augs, None


OTHER_OPS = {
    "synonym_insert": {"aug_p": 0.1},
    "random_crop": {"aug_p": 0.1},
    "sentence_shuffle": {},
    "char_insert": {"aug_p": 0.1},
    "char_delete": {"aug_p": 0.1},
    "char_swap": {"aug_p": 0.1},
    "ocr_noise": {"aug_p": 0.1},
}


def run_data(
    which: str, n: int, repeats: int, augs: dict[str, object], why: str | None, with_others: bool = True
) -> dict:
    source, texts = load_texts(which, n)
    n_words = np.mean([len(Tokens.from_text(t).words) for t in texts])
    print(f"data: {source}, {len(texts)} texts, {n_words:.1f} words avg")
    ops = {
        "synonym_replace": SynonymReplace(aug_p=0.1, synonyms=thesaurus_from(texts)),
        "random_swap": RandomSwap(aug_p=0.1),
        "random_delete": RandomDelete(aug_p=0.1),
        "keyboard_typo": KeyboardTypo(aug_p=0.1),
    }
    print(f"{'op':16s} {'ours texts/s':>13s} {'us/text':>8s} {'nlpaug texts/s':>15s} {'us/text':>8s} {'ratio':>7s}")
    sample = texts[3]
    examples, results = [], {}
    for name, op in ops.items():
        aug = augs.get(name)
        if aug is None:
            (ours_rate,) = rates([ours(op)], texts, repeats)
            reason = why or "SynonymAug needs WordNet (not installed; nlpaug would download it)"
            print(f"{name:16s} {ours_rate:13,.0f} {1e6 / ours_rate:8.2f} {'n/a':>15s} {'':>8s} {'n/a':>7s}  ({reason})")
            results[name] = {"ours_texts_per_s": ours_rate, "nlpaug_texts_per_s": None, "ratio": None}
        else:
            ours_rate, theirs = rates([ours(op), aug.augment], texts, repeats)
            print(
                f"{name:16s} {ours_rate:13,.0f} {1e6 / ours_rate:8.2f} {theirs:15,.0f} {1e6 / theirs:8.2f} "
                f"{ours_rate / theirs:6.1f}x"
            )
            results[name] = {"ours_texts_per_s": ours_rate, "nlpaug_texts_per_s": theirs, "ratio": ours_rate / theirs}
            examples.append((name, aug.augment(sample)))
        examples.append((name, op(sample, np.random.default_rng(1))[0]))
    print(f"\nexample input: {sample!r}")
    for i, (name, out) in enumerate(examples):
        who = "ours  " if i + 1 == len(examples) or examples[i + 1][0] != name else "nlpaug"
        print(f"  {name:16s} {who} {out!r}")
    others = {}
    if with_others:  # the text ops without an nlpaug counterpart here, timed the same way
        syn = thesaurus_from(texts)
        print(f"\n{'other ops':16s} {'ours texts/s':>13s} {'us/text':>8s}")
        for name, kw in OTHER_OPS.items():
            op = registry()[name](**({"synonyms": syn} if name.startswith("synonym_") else {}), **kw)
            (others[name],) = rates([ours(op)], texts, repeats)
            print(f"{name:16s} {others[name]:13,.0f} {1e6 / others[name]:8.2f}")
    return {"source": source, "texts": len(texts), "words_avg": float(n_words), "ops": results, "others": others}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 texts, 1 pass")
    ap.add_argument("--data", nargs="+", choices=["sms", "trec", "synthetic"], default=["sms"])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-others", action="store_true", help="skip the table of the ops without an nlpaug pair")
    args = ap.parse_args()
    n, repeats = (500, 1) if args.quick else (args.n, args.repeats)
    if args.quick and tiny():
        n = 20
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    if cpus:
        os.sched_setaffinity(0, {sorted(cpus)[0]})
    try:
        run_all(args, n, repeats)
    finally:
        if cpus:  # give the process its CPUs back (the smoke test runs other benches in it next)
            os.sched_setaffinity(0, cpus)


def run_all(args: argparse.Namespace, n: int, repeats: int) -> None:

    import random

    random.seed(0)
    np.random.seed(0)
    augs, why = nlpaug_augmenters()
    results = {}
    for k, which in enumerate(args.data):
        if k:
            print()
        results[which] = run_data(which, n, repeats, augs, why, not args.no_others)
    emit({"repeats": repeats, "data": results}, args.json)


if __name__ == "__main__":
    main()
