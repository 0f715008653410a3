"""Model-backed text generators (backtranslate, lambada) and `augsvc models train-lm/train-translator`, with tiny
models trained here in seconds (tests/textgen_fixtures.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import textgen_fixtures as fx  # noqa: E402
from generator_cases import CASES  # noqa: E402

from generators import build_generator, generator_class  # noqa: E402
from generators.base import FitData  # noqa: E402
from generators.textgen import backtranslate as bt_mod  # noqa: E402
from generators.textgen import lambada as lb_mod  # noqa: E402
from generators.textgen import lm as tg_models  # noqa: E402
from schemas.errors import AugsvcError  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread trains these tiny models several times faster
    d = tmp_path_factory.mktemp("textgen-models")
    out = {"lm": fx.tiny_lm(d / "lm", steps=250), "en-xx": fx.tiny_translator(d / "en-xx", "en-xx", steps=250),
           "xx-en": fx.tiny_translator(d / "xx-en", "xx-en", steps=250)}  # fmt: skip
    yield out
    torch.set_num_threads(threads)


def split_data(per_class: int = 8, seed: int = 0) -> FitData:
    texts, y, names = fx.labelled_sentences(per_class=per_class, seed=seed)
    return FitData(np.array(texts, dtype=object), y, names, "text")


def lambada(models, **kw):
    spec = {"method": "lambada", "model": str(models["lm"]), "finetune_steps": 20, "device": "cpu",
            "n_per_class": 3, "max_rounds": 5, **kw}  # fmt: skip
    return build_generator(spec)


def backtranslate(models, **kw):
    spec = {"method": "backtranslate", "forward_model": str(models["en-xx"]), "backward_model": str(models["xx-en"]),
            "device": "cpu", "n_per_class": 3, **kw}  # fmt: skip
    return build_generator(spec)


# -- lambada -------------------------------------------------------------------------------------------------------


def test_lambada_counts_labels_lineage(models) -> None:
    gen = lambada(models)
    data = split_data()
    gen.check_data("text", data.class_names, {})
    assert gen.targets({"neg": 8, "pos": 8}) == {"neg": 3, "pos": 3}
    assert gen.identity()["model_sha256"] == tg_models.model_sha256(models["lm"])
    fitted = gen.fit(data, gen.load())
    train = {lb_mod.text_key(t) for t in data.X}
    for label in (0, 1):
        out = fitted.generate(label, 3, np.random.default_rng(label))
        assert len(out) == 3 and out.X.dtype == object
        assert all(isinstance(t, str) and t.strip() for t in out.X)
        assert not {lb_mod.text_key(t) for t in out.X} & train  # no copies of training sentences
        assert len({lb_mod.text_key(t) for t in out.X}) == 3  # no duplicates
        assert out.parents == [(), (), ()]
        for info in out.info:
            assert set(info) == {"score", "model", "finetune", "classifier"}
            assert info["model"] == gen.identity()["model_sha256"][:16] and 0.5 <= info["score"] <= 1.0
        assert [i["score"] for i in out.info] == sorted((i["score"] for i in out.info), reverse=True)
    rep = fitted.report()["lambada"]
    assert rep["pos"]["kept"] == 3 and rep["neg"]["candidates"] >= 3 * 5
    json.dumps(fitted.report())


def test_lambada_filter_drops_copies_duplicates_and_wrong_labels(models, monkeypatch) -> None:
    data = split_data()
    copy = str(data.X[np.flatnonzero(data.y == 1)[0]])
    words = " ".join(data.X[data.y == 1]).split()
    verdict = max(fx.GOOD, key=words.count)  # a positive word the classifier has seen most
    novel_pos = [t for t, _ in fx.parallel_pairs() if t.endswith(verdict) and t not in set(data.X)][:3]
    bad = max(fx.BAD, key=" ".join(data.X[data.y == 0]).split().count)
    novel_neg = [t for t, _ in fx.parallel_pairs() if t.endswith(bad) and t not in set(data.X)][:2]
    cands = ["", copy.upper(), novel_pos[0], novel_pos[0] + "  ", novel_pos[1], *novel_neg, novel_pos[2]]
    monkeypatch.setattr(lb_mod, "sample_lm", lambda *a, **k: list(cands))
    gen = lambada(models, finetune_steps=0, candidates_factor=1, max_rounds=1)
    fitted = gen.fit(data, gen.load())
    out = fitted.generate(1, 8, np.random.default_rng(0))
    assert set(out.X) == set(novel_pos)  # the three new positive sentences, each once
    st = dict(fitted.report()["lambada"]["pos"])
    fates = st.pop("fates")
    assert st == {"asked": 8, "candidates": 8, "empty": 1, "duplicates": 1, "training_copies": 1,
                  "wrong_label": 2, "below_min_score": 0, "not_needed": 0, "kept": 3}  # fmt: skip
    # every candidate's fate, in the order drawn, with the classifier's score where it was scored
    assert [f[1] for f in fates] == ["empty", "training_copies", "kept", "duplicates", "kept", "wrong_label",
                                     "wrong_label", "kept"]  # fmt: skip
    assert [f[2] is None for f in fates] == [True, True, False, True, False, False, False, False]
    probs = fitted.score(list(out.X))
    assert (probs.argmax(axis=1) == 1).all()
    assert [i["score"] for i in out.info] == pytest.approx(sorted(probs[:, 1], reverse=True), abs=1e-6)
    top = fitted.generate(1, 2, np.random.default_rng(0))  # asked for fewer: the best-scored survive
    assert list(top.X) == list(out.X[:2])


def test_lambada_same_seed_same_rows_and_global_rng_untouched(models) -> None:
    gen = lambada(models)
    fitted = gen.fit(split_data(), gen.load())
    before = torch.get_rng_state()
    a = fitted.generate(1, 3, np.random.default_rng(7))
    b = fitted.generate(1, 3, np.random.default_rng(7))
    assert list(a.X) == list(b.X) and a.info == b.info
    assert torch.equal(before, torch.get_rng_state())
    again = lambada(models).fit(split_data(), gen.load())  # fine-tuning is seeded too
    assert list(again.generate(1, 3, np.random.default_rng(7)).X) == list(a.X)


def test_lambada_finetune_cached_for_resume(models, tmp_path, monkeypatch) -> None:
    data = split_data()
    cached = FitData(data.X, data.y, data.class_names, "text", cache_dir=str(tmp_path / "cache"))
    gen = lambada(models)
    first = gen.fit(cached, gen.load())
    saved = list((tmp_path / "cache").glob("lambada-*/training.json"))
    assert len(saved) == 1 and not (saved[0].parent / "checkpoint").exists()
    rows = first.generate(0, 3, np.random.default_rng(1))

    def no_training(*a, **k):
        raise AssertionError("retrained although the fine-tuned model is cached")

    monkeypatch.setattr(lb_mod, "train", no_training)
    second = lambada(models).fit(cached, gen.load())
    assert list(second.generate(0, 3, np.random.default_rng(1)).X) == list(rows.X)
    other = FitData(data.X[:-1], data.y[:-1], data.class_names, "text", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(AssertionError, match="retrained"):  # other data -> another key -> trains
        lambada(models).fit(other, gen.load())


def test_model_loaded_once_per_fitted_instance(models, monkeypatch) -> None:
    calls = []
    real = lb_mod.load_pretrained
    monkeypatch.setattr(lb_mod, "load_pretrained", lambda *a, **k: calls.append(a) or real(*a, **k))
    gen = lambada(models)
    model = gen.load()  # what an actor does once
    for seed in (0, 1):  # two splits fitted by the same actor
        fitted = gen.fit(split_data(seed=seed), model)
        for label in (0, 1):
            fitted.generate(label, 2, np.random.default_rng(label))
    assert len(calls) == 1
    calls_bt = []
    real_bt = bt_mod.load_pretrained
    monkeypatch.setattr(bt_mod, "load_pretrained", lambda *a, **k: calls_bt.append(a) or real_bt(*a, **k))
    g = backtranslate(models)
    m = g.load()
    fitted = g.fit(split_data(), m)
    fitted.generate(0, 2, np.random.default_rng(0))
    fitted.generate(1, 2, np.random.default_rng(0))
    assert len(calls_bt) == 2  # forward and backward, once each


def test_lambada_class_without_text(models) -> None:
    texts, y, _ = fx.labelled_sentences(per_class=4)
    data = FitData(np.array(texts, dtype=object), y, ["neg", "pos", "meh"], "text")
    gen = lambada(models, finetune_steps=0)
    fitted = gen.fit(data, gen.load())
    with pytest.raises(AugsvcError, match="class 'meh' has no training text"):
        fitted.generate(2, 3, np.random.default_rng(0))


def test_lambada_records_and_warns_when_its_filter_cannot_reject(models) -> None:
    """Issue 26: with one class (in the version, or in the split for the bag-of-words classifier) the classifier
    filter cannot reject a candidate: the report says `classifier_filter: off` and carries a one-line warning."""
    texts, y, names = fx.labelled_sentences(per_class=6)
    pos = [t for t, c in zip(texts, y, strict=True) if c == 1]
    one = FitData(np.array(pos, dtype=object), np.zeros(len(pos), np.int64), ["pos"], "text")
    gen = lambada(models, finetune_steps=0, max_rounds=1)
    fitted = gen.fit(one, gen.load())
    fitted.generate(0, 2, np.random.default_rng(0))
    rep = fitted.report()
    assert rep["classifier_filter"] == "off: the version has one class ('pos')"
    assert rep["warnings"][0].startswith("classifier filter off: the version has one class ('pos'), so no classifier")
    assert "\n" not in rep["warnings"][0]
    split_one = FitData(np.array(pos, dtype=object), np.ones(len(pos), np.int64), names, "text")
    rep = gen.fit(split_one, gen.load()).report()
    assert rep["classifier_filter"] == "off: the split's texts are all of one class ('pos')"
    both = gen.fit(split_data(), gen.load())
    assert both.report()["classifier_filter"] == "on" and "warnings" not in both.report()


def test_lambada_fine_tune_reports_progress_inside_the_build_task(models, store) -> None:
    """Issue 26: a build's display shows the fine-tune's steps (not `0/1` until the task ends)."""
    import io

    from augsvc.progress import PlainProgress
    from pipelines.recipes import load_recipe
    from pipelines.runner import build

    lam = {"method": "lambada", "model": str(models["lm"]), "finetune_steps": 6, "device": "cpu", "n_per_class": 1,
           "max_rounds": 1}  # fmt: skip
    spec = {"input": "tiny", "output": "tiny_progress", "seed": 5, "stages": [{"name": "lam", "generator": lam}]}
    buf = io.StringIO()
    with PlainProgress("build tiny_progress", every=0, out=buf) as bar:
        build(load_recipe(spec), store, workers=0, progress=bar)
    lines = buf.getvalue().splitlines()
    steps = [ln for ln in lines if ln.startswith("build tiny_progress: lambada fine-tune: step ")]
    assert [ln.split()[5] for ln in steps] == [f"{s}/6" for s in range(1, 7)] and "loss" in steps[0]
    assert any(ln.startswith("build tiny_progress: lambada ") and "kept" in ln for ln in lines)  # sampling rounds


# -- backtranslate -------------------------------------------------------------------------------------------------


def test_backtranslate_paraphrases_keep_label_and_parents(models) -> None:
    gen = backtranslate(models)
    data = split_data()
    gen.check_data("text", data.class_names, {})
    ident = gen.identity()
    assert ident["forward_model_sha256"] != ident["backward_model_sha256"]
    fitted = gen.fit(data, gen.load())
    for label in (0, 1):
        out = fitted.generate(label, 3, np.random.default_rng(3))
        assert len(out) == 3
        for text, (parent,), info in zip(out.X, out.parents, out.info, strict=True):
            assert data.y[parent] == label  # made from a row of the class it is added to
            assert text and text != data.X[parent]
            assert info["backward_model"] == ident["backward_model_sha256"][:16] and "pivot" in info
        again = fitted.generate(label, 3, np.random.default_rng(3))
        assert list(again.X) == list(out.X) and again.parents == out.parents
    beam = backtranslate(models, do_sample=False, num_beams=2).fit(data, gen.load())
    out = beam.generate(1, 3, np.random.default_rng(0))
    assert all(t and t != data.X[p[0]] for t, p in zip(out.X, out.parents, strict=True))


def test_backtranslate_drops_empty_outputs_and_copies(models, monkeypatch) -> None:
    data = split_data(per_class=3)

    def fake(loaded, texts, decoding, seed, **kw):
        if loaded is fake_models["forward"].inner.loaded:
            return [f"pivot {t}" for t in texts]
        return ["" if i % 3 == 0 else (t.removeprefix("pivot ") if i % 3 == 1 else "new words") for i, t in
                enumerate(texts)]  # fmt: skip

    gen = backtranslate(models, max_rounds=2)
    fake_models = gen.load()
    monkeypatch.setattr(tg_models, "translate", fake)
    fitted = gen.fit(data, fake_models)
    out = fitted.generate(1, 3, np.random.default_rng(0))
    # pass 1: 3 rows -> empty, copy, kept; pass 2: 2 rows -> empty, copy, then the last row -> empty
    assert list(out.X) == ["new words"]
    report = fitted.report()
    assert report["backtranslate"] == {"pos": {"asked": 3, "made": 1, "tried": 6}}
    # sampling: nothing is cached; 6 rows went through each direction
    assert report["throughput"]["forward"]["sentences"] == 6 and report["throughput"]["forward"]["cache_hits"] == 0


def test_backtranslate_parallel_text_monolingual_rows(models) -> None:
    pairs = fx.parallel_pairs()[:10]
    X = np.empty((10, 2), dtype=object)
    for i, (en, xx) in enumerate(pairs):
        X[i] = [None if i >= 6 else en, xx] if i != 7 else ["  ", xx]
    data = FitData(X, np.full(10, -1, dtype=np.int64), [], "translation")
    gen = build_generator({"method": "backtranslate", "backward_model": str(models["xx-en"]), "device": "cpu",
                           "do_sample": False})  # fmt: skip
    gen.check_data("translation", [], {})
    assert gen.targets({"": 10}) == {"": 10}
    fitted = gen.fit(data, gen.load())
    out = fitted.generate(-1, 10, np.random.default_rng(0))
    assert out.X.shape == (len(out), 2) and 1 <= len(out) <= 4
    assert {p[0] for p in out.parents} <= {6, 7, 8, 9}
    for (src, tgt), (p,), info in zip(out.X, out.parents, out.info, strict=True):
        assert tgt == pairs[p][1] and src and src != tgt and info["synthetic"] is True
    assert fitted.report()["backtranslate"][""]["monolingual"] == 4


# -- errors --------------------------------------------------------------------------------------------------------


def test_clear_errors(models, tmp_path) -> None:
    with pytest.raises(AugsvcError, match="does not exist"):
        build_generator({"method": "lambada", "model": str(tmp_path / "nope")}).check_data("text", ["a"], {})
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(AugsvcError, match="has no tokenizer"):
        build_generator({"method": "lambada", "model": str(bare)}).check_data("text", ["a"], {})
    with pytest.raises(AugsvcError, match="is an encoder-decoder .* needs a causal LM"):
        build_generator({"method": "lambada", "model": str(models["en-xx"])}).check_data("text", ["a"], {})
    with pytest.raises(AugsvcError, match="backward_model: .* is a causal LM"):
        build_generator({"method": "backtranslate", "backward_model": str(models["lm"])}).identity()
    with pytest.raises(AugsvcError, match="works on text rows, not image"):
        lambada(models).check_data("image", ["a"], {})
    with pytest.raises(AugsvcError, match="not tabular"):
        backtranslate(models).check_data("tabular", ["a"], {})
    with pytest.raises(AugsvcError, match="needs forward_model"):
        build_generator({"method": "backtranslate", "backward_model": str(models["xx-en"])}).check_data("text", [], {})
    with pytest.raises(AugsvcError, match="num_beams > 1 is beam search"):
        backtranslate(models, num_beams=4)
    with pytest.raises(AugsvcError, match="unknown key 'temprature'"):
        lambada(models, temprature=0.5)
    if not torch.cuda.is_available():
        with pytest.raises(AugsvcError, match="no CUDA GPU"):
            lambada(models, device="cuda").load()


def test_identity_follows_model_content(models, tmp_path) -> None:
    import shutil

    copy = tmp_path / "lm-copy"
    shutil.copytree(models["lm"], copy)
    a = lambada(models).identity()
    assert build_generator({"method": "lambada", "model": str(copy)}).identity() == a  # same bytes, same id
    (copy / "training.json").write_text("{}")  # reports are not part of the model
    assert build_generator({"method": "lambada", "model": str(copy)}).identity() == a
    fx.tiny_lm(copy, steps=5, seed=1)
    assert build_generator({"method": "lambada", "model": str(copy)}).identity() != a


@pytest.mark.parametrize("method", ["lambada", "backtranslate"])
def test_suite_case(method, models, tmp_path) -> None:
    cls = generator_class(method)
    assert cls.model_backed
    # reuse the module's models as the suite case's (same fixtures; saves training them again)
    names = {"lambada": {"tiny-lm": "lm"}, "backtranslate": {"tiny-mt-en-xx": "en-xx", "tiny-mt-xx-en": "xx-en"}}
    for link, key in names[method].items():
        (tmp_path / link).symlink_to(models[key])
    params, data = CASES[method](tmp_path)
    gen = build_generator(params)
    gen.check_data(data.modality, data.class_names, data.features)
    counts = {c: int((data.y == i).sum()) for i, c in enumerate(data.class_names)}
    need = gen.targets(counts)
    fitted = gen.fit(data, gen.load())
    for c, n in need.items():
        out = fitted.generate(data.class_names.index(c), n, np.random.default_rng(0))
        assert len(out) == n


# -- CLI -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    d = tmp_path_factory.mktemp("cli")
    s = Store(d / "store")
    texts, y, names = fx.labelled_sentences()
    f = d / "t.tsv"
    f.write_text("label\ttext\n" + "".join(f"{names[c]}\t{t}\n" for t, c in zip(texts, y, strict=True)))
    ingest(f, name="tiny", store=s, options=IngestOptions(format="tsv"), workers=0)
    p = d / "mt"
    p.mkdir()
    pairs = fx.parallel_pairs()
    (p / "train.en").write_text("".join(a + "\n" for a, _ in pairs))
    (p / "train.xx").write_text("".join(b + "\n" for _, b in pairs))
    ingest(p, name="par", store=s, options=IngestOptions(src_lang="en", tgt_lang="xx"), workers=0)
    return s


def cli(*args):
    from typer.testing import CliRunner

    from augsvc.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_train_lm_checkpoint_resume_and_use(store, tmp_path) -> None:
    out = tmp_path / "lm"
    common = ["--out", out, "--store", store.root, "--vocab-size", 300, "--n-embd", 32, "--heads", 2,
              "--batch-size", 8, "--threads", 1, "--quiet", "--checkpoint-every", 10, "--device", "cpu"]  # fmt: skip
    r = cli("models", "train-lm", "tiny", "--steps", 20, *common)
    assert r.exit_code == 0, r.output
    info = json.loads((out / "training.json").read_text())
    assert info["settings"]["steps"] == 20 and info["class_names"] == ["neg", "pos"] and info["examples"] == 216
    assert (out / "loss.png").stat().st_size > 0 and (out / "checkpoint" / "state.pt").is_file()
    r = cli("models", "train-lm", "tiny", "--steps", 30, "--resume", *common)
    assert r.exit_code == 0, r.output
    hist = json.loads((out / "training.json").read_text())["history"]
    assert [h["step"] for h in hist] == [10, 20, 30] and hist[:2] == info["history"]
    gen = build_generator({"method": "lambada", "model": str(out), "finetune_steps": 5, "device": "cpu",
                           "n_per_class": 1, "max_rounds": 1})  # fmt: skip
    gen.check_data("text", ["neg", "pos"], {})
    fitted = gen.fit(split_data(), gen.load())
    assert len(fitted.generate(1, 1, np.random.default_rng(0))) <= 1
    r = cli("models", "train-lm", "par", "--out", tmp_path / "x", "--store", store.root, "--quiet")
    assert r.exit_code != 0 and "needs a text version" in str(r.exception)


def test_cli_train_translator_directions(store, tmp_path) -> None:
    common = ["--store", store.root, "--vocab-size", 300, "--d-model", 32, "--heads", 2, "--ffn", 64,
              "--batch-size", 8, "--threads", 1, "--quiet", "--steps", 10, "--device", "cpu"]  # fmt: skip
    for src, tgt in (("en", "xx"), ("xx", "en")):
        out = tmp_path / f"{src}-{tgt}"
        r = cli("models", "train-translator", "par", "--src", src, "--tgt", tgt, "--out", out, *common)
        assert r.exit_code == 0, r.output
        info = json.loads((out / "training.json").read_text())
        assert (info["src"], info["tgt"], info["kind"]) == (src, tgt, "seq2seq") and (out / "loss.png").is_file()
        build_generator({"method": "backtranslate", "backward_model": str(out)}).check_data("translation", [], {})
    r = cli("models", "train-translator", "par", "--src", "en", "--tgt", "fr", "--out", tmp_path / "f", *common)
    assert r.exit_code != 0 and "not one of its directions" in str(r.exception)
    r = cli("models", "train-translator", "tiny", "--src", "en", "--tgt", "xx", "--out", tmp_path / "g", *common)
    assert r.exit_code != 0 and "parallel-text version" in str(r.exception)


def test_text_generators_in_a_build(models, store) -> None:
    """lambada and backtranslate as recipe stages through `augsvc build`'s generator stage (in-process: one model
    load per build): counts per class, lineage, the filter report in the manifest, the same version id again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.recipes import load_recipe
    from pipelines.runner import build

    lam = {"method": "lambada", "model": str(models["lm"]), "finetune_steps": 20, "device": "cpu",
           "n_per_class": 2, "max_rounds": 5}  # fmt: skip
    bt = {"method": "backtranslate", "forward_model": str(models["en-xx"]), "backward_model": str(models["xx-en"]),
          "device": "cpu", "n_per_class": 2}  # fmt: skip
    spec = {"input": "tiny", "output": "tiny_gen", "seed": 3,
            "stages": [{"name": "lambada", "generator": lam}, {"name": "bt", "generator": bt}]}  # fmt: skip
    m_in = store.manifest(*store.resolve("tiny"))
    rep = build(load_recipe(spec), store, workers=0)
    m = rep.manifest
    assert all(m.rows_per_class[c] <= m_in.rows_per_class[c] + 4 for c in m.class_names)
    assert m.rows > m_in.rows and "lambada" in m.stage_reports
    assert set(m.definition["stage_identity"]) == {"0", "1"}
    ds, v = store.resolve("tiny_gen")
    rows = pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]).to_pylist()
    made = [json.loads(r["lineage"])[-1] for r in rows if r["lineage"]]
    assert {s["generator"] for s in made} <= {"lambada", "backtranslate"} and made
    assert all(r["text"].strip() for r in rows)
    again = build(load_recipe(spec | {"output": "tiny_gen2"}), store, workers=0)
    assert again.version == rep.version


# -- monolingual rows in translation versions (back-translation inside `augsvc build`) ------------------------------

PAR_VERSION = "575e9ffb33c981e1"  # the fixture's parallel version, ingested before monolingual rows existed


@pytest.fixture(scope="module")
def mixed(store, tmp_path_factory) -> str:
    """A translation version with genuine pairs, target-only lines (an empty source line) and a target-only file:
    train = 30 lines of pairs (lines 3 and 7 without English) + 12 lines of ``train.mono.xx``; test = 5 pairs."""
    from pipelines.ingest import IngestOptions, ingest

    pairs = fx.parallel_pairs()
    d = tmp_path_factory.mktemp("mixed") / "mt"
    d.mkdir()
    train, mono, test = pairs[:30], pairs[100:112], pairs[200:205]
    (d / "train.en").write_text("".join(("" if i in (2, 6) else a) + "\n" for i, (a, _) in enumerate(train)))
    (d / "train.xx").write_text("".join(b + "\n" for _, b in train))
    (d / "train.mono.xx").write_text("".join(b + "\n" for _, b in mono))
    (d / "test.en").write_text("".join(a + "\n" for a, _ in test))
    (d / "test.xx").write_text("".join(b + "\n" for _, b in test))
    opts = IngestOptions(src_lang="en", tgt_lang="xx", monolingual=True)
    ingest(d, name="mixed", store=store, options=opts, workers=0)
    with pytest.raises(AugsvcError, match=r"split 'train.mono' has \['xx'\].*pass --monolingual"):
        ingest(d, name="mixed2", store=store, options=IngestOptions(src_lang="en", tgt_lang="xx"), workers=0)
    with pytest.raises(AugsvcError, match="with --monolingual pass --tgt-lang"):
        ingest(d, name="mixed2", store=store, options=IngestOptions(monolingual=True), workers=0)
    (d / "val.en").write_text("a\n")
    with pytest.raises(AugsvcError, match=r"split 'val' has \['en'\].*must be target-language \(xx\) text"):
        ingest(d, name="mixed2", store=store, options=opts, workers=0)
    (d / "val.en").unlink()
    return "mixed"


def shard_rows(store, ref: str) -> tuple[object, list[dict], list]:
    import pyarrow.parquet as pq

    ds, v = store.resolve(ref)
    m = store.manifest(ds, v)
    tables = [pq.read_table(store.version_dir(ds, v) / s.path) for s in m.shards]
    return m, [r for t in tables for r in t.to_pylist()], [t.schema for t in tables]


def test_ingest_monolingual_rows(store, mixed) -> None:
    m, rows, schemas = shard_rows(store, mixed)
    assert m.modality == "translation" and m.monolingual == {"test": 0, "train": 14}
    assert m.rows_per_split == {"test": 5, "train": 42} and m.definition["options"]["monolingual"] is True
    assert all(s.field("src").nullable and not s.field("tgt").nullable for s in schemas)
    mono = [r for r in rows if r["src"] is None]
    assert sorted(r["source"] for r in mono)[:3] == ["train.mono:1", "train.mono:10", "train.mono:11"]
    assert {r["source"] for r in mono} >= {"train:3", "train:7"} and all(r["tgt"].strip() for r in mono)
    assert store.verify(*store.resolve(mixed)) == []
    # versions without monolingual rows keep their bytes' schema and their ids
    m_par, _, par_schemas = shard_rows(store, "par")
    from pipelines.ingest.options import INGEST_FORMAT_VERSION

    assert m_par.version == PAR_VERSION or INGEST_FORMAT_VERSION != 3  # (a format bump changes every id anyway)
    assert m_par.monolingual is None
    assert "monolingual" not in m_par.definition["options"] and not par_schemas[0].field("src").nullable


def bt_recipe(models, out: str, **kw) -> dict:
    stage = {"name": "bt", "generator": {"method": "backtranslate", "backward_model": str(models["xx-en"]),
                                         "device": "cpu", "do_sample": False, **kw.pop("gen", {})}}  # fmt: skip
    return {"input": "mixed", "output": out, "seed": 1, "stages": [stage | kw]}


def test_backtranslate_build_on_monolingual_rows(models, store, mixed) -> None:
    """The classic use inside `augsvc build`: genuine pairs + synthetic pairs made from the monolingual rows (each
    marked synthetic, its parent the monolingual row); the monolingual rows themselves are not passed on."""
    from pipelines.recipes import load_recipe
    from pipelines.runner import build

    m_in, rows_in, _ = shard_rows(store, mixed)
    by_id = {r["sample_id"]: r for r in rows_in}
    rep = build(load_recipe(bt_recipe(models, "bt_out")), store, workers=0)
    m, rows, schemas = shard_rows(store, "bt_out")
    made = [r for r in rows if r["lineage"]]
    genuine = [r for r in rows if not r["lineage"]]
    assert sorted(r["sample_id"] for r in genuine) == sorted(r["sample_id"] for r in rows_in if r["src"] is not None)
    assert 1 <= len(made) <= 14 and all(r["split"] == "train" for r in made) and all(r["src"] for r in rows)
    for r in made:
        (step,) = json.loads(r["lineage"])
        parent = by_id[step["parents"][0]]
        assert step["generator"] == "backtranslate" and step["synthetic"] is True and len(step["parents"]) == 1
        assert parent["src"] is None and r["tgt"] == parent["tgt"] and r["source"] == parent["source"]
        assert r["src"] != r["tgt"] and r["label"] is None
    assert m.monolingual == {"test": 0, "train": 0} and all(s.field("src").nullable for s in schemas)
    report = m.stage_reports["bt"]["train"]["backtranslate"][""]
    assert report["monolingual"] == 14 and report["made"] == len(made)
    assert store.verify(*store.resolve("bt_out")) == []
    assert build(load_recipe(bt_recipe(models, "bt_out2")), store, workers=0).version == rep.version
    # keep_monolingual passes them on as well; keep_originals: false leaves the synthetic pairs alone
    keep = build(load_recipe(bt_recipe(models, "bt_keep", gen={"keep_monolingual": True})), store, workers=0)
    assert keep.manifest.monolingual == {"test": 0, "train": 14} and keep.manifest.rows == m.rows + 14
    only = build(load_recipe(bt_recipe(models, "bt_only", keep_originals=False)), store, workers=0)
    assert only.manifest.rows_per_split == {"test": 5, "train": len(made)}


def test_monolingual_rows_downstream(models, store, mixed, tmp_path) -> None:
    """Readers of translation versions: the stream yields None sources, preview marks them, train-translator skips
    them, and what cannot use them says so in one line."""
    from augsvc.stream import Stream
    from pipelines.preview import render_table
    from pipelines.recipes import load_recipe
    from pipelines.runner import build

    srcs = [s for b in Stream(mixed, store=store, batch_size=16, shuffle=False, split="train") for s in b["src"]]
    assert len(srcs) == 42 and sum(s is None for s in srcs) == 14
    table = render_table(load_recipe(bt_recipe(models, "bt_prev")), store, n=3, copies=1)
    assert "(monolingual: no source) =>" in table and "backtranslate" in table
    with pytest.raises(AugsvcError, match="has no monolingual .* ingest target-language text with --monolingual"):
        build(load_recipe(bt_recipe(models, "bt_par") | {"input": "par"}), store, workers=0)
    with pytest.raises(AugsvcError, match="keep_monolingual is for parallel-text versions"):
        build_generator({"method": "backtranslate", "forward_model": str(models["en-xx"]), "keep_monolingual": True,
                         "backward_model": str(models["xx-en"])}).check_data("text", ["a"], {})  # fmt: skip
    r = cli("models", "train-translator", mixed, "--src", "en", "--tgt", "xx", "--out", tmp_path / "m", "--store",
            store.root, "--vocab-size", 300, "--d-model", 16, "--heads", 2, "--ffn", 32, "--steps", 2,
            "--batch-size", 4, "--threads", 1, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "14 monolingual rows (no source) are not training pairs" in r.output
    assert json.loads((tmp_path / "m" / "training.json").read_text())["pairs"] == 28
    from augsvc.trainer.config import TrainConfig
    from augsvc.trainer.loop import train

    with pytest.raises(AugsvcError, match="no classifier for translation versions"):
        train(TrainConfig(data=mixed, epochs=1), store, tmp_path / "run")


def test_hf_translator_language_codes(models, monkeypatch) -> None:
    """Many-to-many models: the source code goes on the tokenizer, the target code's token is forced first."""
    from generators.textgen.translators import CachedTranslator, HFTranslator

    gen = backtranslate(models, do_sample=False)
    loaded = gen.load()["forward"].inner.loaded
    with pytest.raises(AugsvcError, match="one-direction model"):
        HFTranslator(loaded, gen.decoding, "en", "xx")
    tok = loaded.tokenizer
    tok.add_tokens(["__xx__"])
    tok.src_lang = None  # what an M2M/NLLB tokenizer has
    seen = {}

    def fake(ld, texts, decoding, seed, **kw):
        seen.update(kw, src=ld.tokenizer.src_lang)
        return [t.upper() for t in texts]

    monkeypatch.setattr(tg_models, "translate", fake)
    tr = CachedTranslator(HFTranslator(loaded, gen.decoding, "en", "__xx__"))
    assert tr.translate(["a b", "a b", "c"], 0) == ["A B", "A B", "C"]
    assert seen == {"forced_bos_token_id": tok.convert_tokens_to_ids("__xx__"), "src": "en"}
    assert tr.translate(["c"], 1) == ["C"] and tr.stats()["cache_hits"] == 2  # greedy: cached by content
    with pytest.raises(AugsvcError, match="language code 'zz' is not in its vocabulary"):
        HFTranslator(loaded, gen.decoding, "en", "zz")
    with pytest.raises(AugsvcError, match="give both source_lang and pivot_lang"):
        backtranslate(models, source_lang="en")
