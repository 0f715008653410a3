"""Class-conditional GAN: training, checkpoints, the ``gan`` generator and its quality gate, ``train-gan``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from generator_cases import gan_case
from typer.testing import CliRunner

from generators import build_generator
from generators.base import FitData
from generators.gan.generator import GanParams, frechet_distance, latent
from generators.gan.train import GanTrainConfig, read_gan_checkpoint, train_gan
from schemas.errors import AugsvcError

CLASSES = ["bar", "dot", "top"]
TINY = {"epochs": 2, "batch_size": 8, "z_dim": 8, "g_width": 4, "d_width": 4, "sample_every": 1, "threads": 1}


def tiny_images(per_class: int = 8, side: int = 16, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three recognisable classes: a vertical bar, a centre dot, a bright top half (plus noise)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 40, (3 * per_class, side, side, channels)).astype(np.uint8)
    y = np.repeat(np.arange(3), per_class)
    h = side // 2
    for i, c in enumerate(y):
        if c == 0:
            X[i, :, h - 2 : h + 2] = 220
        elif c == 1:
            X[i, h - 3 : h + 3, h - 3 : h + 3] = 220
        else:
            X[i, :h] = 220
    return X, y


def train_gate(path: Path, X: np.ndarray, y: np.ndarray, steps: int = 40) -> Path:
    """A small CNN trained on the real images, saved the way 'augsvc train' saves best.pt."""
    from generators.nets.classifiers import SmallCNN

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SmallCNN(X.shape[-1], len(CLASSES), 0.25)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    path.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "prep": {}, "kind": "cnn", "width": 0.25, "class_names": CLASSES,
                "modality": "image", "channels": X.shape[-1], "max_len": 64, "epoch": 0}, path / "best.pt")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny GAN (2 epochs) and a gate classifier, shared by the module's tests."""
    root = tmp_path_factory.mktemp("gan")
    X, y = tiny_images()
    summary = train_gan(X, y, CLASSES, root / "gan", GanTrainConfig(**TINY), progress=False)
    return {"root": root, "X": X, "y": y, "summary": summary, "gan": root / "gan",
            "gate": train_gate(root / "gate", X, y)}  # fmt: skip


def fitdata(X: np.ndarray, y: np.ndarray, names: list[str] = CLASSES) -> FitData:
    return FitData(X=X, y=y.astype(np.int64), class_names=list(names), modality="image")


# -- training --------------------------------------------------------------------------------------------------


def test_training_steps_change_weights_and_write_outputs(trained: dict) -> None:
    from generators.gan.nets import GanDiscriminator, GanGenerator

    out = trained["gan"]
    last = torch.load(out / "last.pt", weights_only=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the init train_gan starts from
        g0, d0 = GanGenerator(16, 1, 3, 8, 4), GanDiscriminator(16, 1, 3, 4)
    assert any(not torch.equal(v, g0.state_dict()[k]) for k, v in last["G"].items() if v.dtype.is_floating_point)
    assert any(not torch.equal(v, d0.state_dict()[k]) for k, v in last["D"].items() if v.dtype.is_floating_point)
    assert last["step"] == 2 * (24 // 8) and len(last["history"]) == 2
    ck = read_gan_checkpoint(out)
    assert ck["class_names"] == CLASSES and ck["image_shape"] == [16, 16, 1] and ck["channels"] == 1
    assert ck["content_sha256"] == trained["summary"]["content_sha256"] and len(ck["content_sha256"]) == 64
    for f in ("gan.pt", "samples/epoch_0001.png", "samples/epoch_0002.png", "losses.png", "metrics.json"):
        assert (out / f).is_file(), f
    assert np.isfinite([h["loss_d"] for h in json.loads((out / "metrics.json").read_text())]).all()


def test_training_is_deterministic_resumable_and_leaves_global_rng(tmp_path: Path, trained: dict) -> None:
    X, y = trained["X"], trained["y"]
    state = torch.get_rng_state()
    again = train_gan(X, y, CLASSES, tmp_path / "again", GanTrainConfig(**TINY), progress=False)
    assert torch.equal(state, torch.get_rng_state())  # fork_rng: the caller's generator is untouched
    assert again["content_sha256"] == trained["summary"]["content_sha256"]
    train_gan(X, y, CLASSES, tmp_path / "resumed", GanTrainConfig(**TINY | {"epochs": 1}), progress=False)
    resumed = train_gan(X, y, CLASSES, tmp_path / "resumed", GanTrainConfig(**TINY), resume=True, progress=False)
    assert resumed["content_sha256"] == trained["summary"]["content_sha256"]
    other = train_gan(X, y, CLASSES, tmp_path / "other", GanTrainConfig(**TINY | {"seed": 1}), progress=False)
    assert other["content_sha256"] != again["content_sha256"]
    ms = [train_gan(X, y, CLASSES, tmp_path / f"ms{i}", GanTrainConfig(**TINY | {"diversity_weight": 1.0}),
                    progress=False)["content_sha256"] for i in range(2)]  # fmt: skip
    assert ms[0] == ms[1] != again["content_sha256"]  # the mode-seeking term is deterministic too
    with pytest.raises(AugsvcError, match=r"cannot resume GAN training .*: its config changed \(data_sha256: "):
        train_gan(X[::-1].copy(), y, CLASSES, tmp_path / "resumed", GanTrainConfig(**TINY | {"epochs": 3}),
                  resume=True, progress=False)  # fmt: skip


def test_large_images_are_resized_with_a_warning(tmp_path: Path) -> None:
    X, y = tiny_images(per_class=2, side=80, channels=3)
    with pytest.warns(UserWarning, match="resizing 80x80 images to 64x64"):
        s = train_gan(X, y, CLASSES, tmp_path / "big", GanTrainConfig(**TINY | {"epochs": 1}), progress=False)
    assert s["image_shape"] == [64, 64, 3] and s["source_shape"] == [80, 80, 3]
    gen = GanParams(checkpoint=str(tmp_path / "big"), device="cpu")
    out = gen.fit(fitdata(X, y)).generate(1, 2, np.random.default_rng(0))
    assert out.X.shape == (2, 80, 80, 3)  # back to the version's size


def test_bad_training_input_is_refused(tmp_path: Path) -> None:
    X, y = tiny_images(per_class=2)
    with pytest.raises(AugsvcError, match="uint8 images"):
        train_gan(X.astype(np.float32), y, CLASSES, tmp_path / "x", GanTrainConfig(**TINY), progress=False)
    with pytest.raises(AugsvcError, match="class indices"):
        train_gan(X, y + 5, CLASSES, tmp_path / "x", GanTrainConfig(**TINY), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(AugsvcError, match="no CUDA GPU"):
            train_gan(X, y, CLASSES, tmp_path / "x", GanTrainConfig(**TINY | {"device": "cuda"}), progress=False)


# -- the generator ---------------------------------------------------------------------------------------------


def test_generate_counts_shapes_dtypes_lineage(trained: dict) -> None:
    gen = build_generator({"method": "gan", "checkpoint": str(trained["gan"]), "n_per_class": 5, "device": "cpu"})
    assert gen.model_backed and gen.targets({"bar": 8, "dot": 8, "top": 8}) == {"bar": 5, "dot": 5, "top": 5}
    gen.check_data("image", CLASSES, {})
    fitted = gen.fit(fitdata(trained["X"], trained["y"]), gen.load())
    for label in range(3):
        out = fitted.generate(label, 5, np.random.default_rng(label))
        assert out.X.shape == (5, 16, 16, 1) and out.X.dtype == np.uint8 and len(out) == 5
        assert out.parents == [()] * 5
        assert [r["latent_index"] for r in out.info] == list(range(5))
        assert {r["checkpoint_sha256"] for r in out.info} == {trained["summary"]["content_sha256"]}
    assert fitted.generate(0, 0, np.random.default_rng(0)).X.shape == (0, 16, 16, 1)
    rep = fitted.report()
    assert rep["classes"]["dot"] == {"candidates": 5, "kept": 5}  # no gate: counts only


def test_same_seed_same_images_whatever_the_batch(trained: dict) -> None:
    fit = GanParams(checkpoint=str(trained["gan"]), device="cpu").fit(fitdata(trained["X"], trained["y"]))
    a = fit.generate(2, 7, np.random.default_rng(11))
    b = fit.generate(2, 7, np.random.default_rng(11))
    small = GanParams(checkpoint=str(trained["gan"]), device="cpu", batch_size=3)
    small = small.fit(fitdata(trained["X"], trained["y"]))
    c = small.generate(2, 7, np.random.default_rng(11))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.X, c.X) and a.info == c.info
    assert not np.array_equal(a.X, fit.generate(2, 7, np.random.default_rng(12)).X)
    # a row is reproducible from its lineage alone
    from generators.gan.train import build_generator_net

    net = build_generator_net(read_gan_checkpoint(trained["gan"]))
    r = a.info[4]
    z = torch.from_numpy(latent(r["latent_seed"], r["latent_index"], 8))[None]
    with torch.no_grad():
        from generators.gan.nets import to_uint8

        assert np.array_equal(to_uint8(net(z, torch.tensor([2])))[0], a.X[4])


def test_quality_gate_threshold_and_report(trained: dict) -> None:
    X, y = trained["X"], trained["y"]
    scored = GanParams(
        checkpoint=str(trained["gan"]), gate_checkpoint=str(trained["gate"]), device="cpu", min_intended_fraction=0
    )  # (a 2-epoch GAN: its rows are not yet their class)
    conf = [r["gate_confidence"] for r in scored.fit(fitdata(X, y)).generate(1, 40, np.random.default_rng(0)).info]
    threshold = float(np.quantile(conf, 0.7))  # about 30% of the candidates pass
    gen = GanParams(checkpoint=str(trained["gan"]), gate_checkpoint=str(trained["gate"]), min_confidence=threshold,
                    device="cpu", max_candidates_factor=20, min_intended_fraction=0)  # fmt: skip
    assert set(gen.identity()) == {"checkpoint_sha256", "gate_sha256"}
    gen.check_data("image", CLASSES, {})
    fitted = gen.fit(fitdata(X, y))
    out = fitted.generate(1, 6, np.random.default_rng(0))
    assert len(out) == 6 and all(r["gate_confidence"] >= threshold for r in out.info)
    assert [r["latent_index"] for r in out.info] != list(range(6))  # some candidates were dropped
    rep = fitted.report()["classes"]["dot"]
    assert rep["kept"] == 6 and rep["candidates"] > 6
    assert 0 <= rep["intended_fraction"] <= 1 and rep["mean_confidence"] >= threshold
    assert rep["frechet_distance"] >= 0
    json.dumps(fitted.report())
    strict = GanParams(checkpoint=str(trained["gan"]), gate_checkpoint=str(trained["gate"]), min_confidence=1.0,
                       device="cpu", max_candidates_factor=1)  # fmt: skip
    with pytest.raises(AugsvcError, match="reach min_confidence 1.0"):
        strict.fit(fitdata(X, y)).generate(0, 4, np.random.default_rng(0))


def biased_gate(path: Path, trained: dict, favour: int = 0) -> Path:
    """A gate that calls every image class ``favour`` (the trained gate with its head replaced by a constant)."""
    ck = torch.load(Path(trained["gate"]) / "best.pt", weights_only=False)
    ck["model"]["head.weight"] = torch.zeros_like(ck["model"]["head.weight"])
    ck["model"]["head.bias"] = torch.tensor([50.0 if c == favour else 0.0 for c in range(len(CLASSES))])
    path.mkdir(parents=True, exist_ok=True)
    torch.save(ck, path / "best.pt")
    return path


def test_gate_refuses_a_class_it_calls_another_unless_overridden(tmp_path: Path, trained: dict) -> None:
    """Issue 26: rows the gate scores at 0% intended are refused by default; min_intended_fraction 0 publishes them
    with a warning in the report; a class the gate agrees with has none."""
    X, y = trained["X"], trained["y"]
    gate = biased_gate(tmp_path / "biased", trained)  # every image is 'bar'
    gen = GanParams(checkpoint=str(trained["gan"]), gate_checkpoint=str(gate), device="cpu")
    fitted = gen.fit(fitdata(X, y))
    assert len(fitted.generate(0, 5, np.random.default_rng(0))) == 5  # 'bar': 100% intended
    with pytest.raises(AugsvcError, match=r"class 'dot': the quality gate assigns 0% of its 5 rows to 'dot' \(5 look "
                       r"like 'bar'\), below min_intended_fraction 0.5.*min_intended_fraction: 0"):  # fmt: skip
        fitted.generate(1, 5, np.random.default_rng(0))
    loose = GanParams(checkpoint=str(trained["gan"]), gate_checkpoint=str(gate), device="cpu", min_intended_fraction=0)
    fitted = loose.fit(fitdata(X, y))
    fitted.generate(0, 5, np.random.default_rng(0))
    assert len(fitted.generate(1, 5, np.random.default_rng(0))) == 5
    rep = fitted.report()
    assert rep["classes"]["dot"]["intended_fraction"] == 0 and rep["classes"]["bar"]["intended_fraction"] == 1
    assert len(rep["warnings"]) == 1 and rep["warnings"][0].startswith("class 'dot': the gate assigns only 0% of its 5")
    assert "bar 5" in rep["warnings"][0]
    ungated = GanParams(checkpoint=str(trained["gan"]), device="cpu").fit(fitdata(X, y))
    ungated.generate(1, 2, np.random.default_rng(0))
    assert "not checked" in ungated.report()["note"] and "warnings" not in ungated.report()


def test_frechet_distance_is_zero_for_same_and_grows_with_shift() -> None:
    a = np.random.default_rng(0).standard_normal((200, 4))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, a + 3) == pytest.approx(36, rel=1e-6)


def test_smallcnn_features_feed_the_unchanged_head() -> None:
    from generators.nets.classifiers import SmallCNN

    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = SmallCNN(1, 3, 0.25).eval()
    x = torch.randint(0, 255, (2, 16, 16, 1), dtype=torch.uint8)
    assert m.features(x).shape == (2, 32) and torch.equal(m(x), m.head(m.features(x)))


def test_mismatches_fail_clearly(tmp_path: Path, trained: dict) -> None:
    X, y = trained["X"], trained["y"]
    gen = GanParams(checkpoint=str(trained["gan"]), device="cpu")
    with pytest.raises(AugsvcError, match="trained on classes"):
        gen.check_data("image", ["a", "b", "c"], {})
    with pytest.raises(AugsvcError, match="works on image rows, not text"):
        gen.check_data("text", CLASSES, {})
    with pytest.raises(AugsvcError, match="3 channels"):
        gen.fit(fitdata(np.repeat(X, 3, axis=3), y))
    with pytest.raises(AugsvcError, match="trained on 16x16 images, the rows are 20x20"):
        gen.fit(fitdata(np.zeros((3, 20, 20, 1), np.uint8), np.arange(3)))
    with pytest.raises(AugsvcError, match="no GAN checkpoint"):
        GanParams(checkpoint=str(tmp_path / "nothing")).identity()
    with pytest.raises(AugsvcError, match="not a GAN checkpoint"):
        GanParams(checkpoint=str(trained["gate"] / "best.pt")).identity()
    with pytest.raises(AugsvcError, match="no classifier checkpoint"):
        GanParams(checkpoint=str(trained["gan"]), gate_checkpoint=str(tmp_path)).identity()
    with pytest.raises(AugsvcError, match="min_confidence needs gate_checkpoint"):
        build_generator({"method": "gan", "checkpoint": "x", "min_confidence": 0.5})
    ck = torch.load(trained["gan"] / "gan.pt", weights_only=False)
    next(iter(ck["generator"].values())).add_(1.0)
    torch.save(ck, tmp_path / "tampered.pt")
    with pytest.raises(AugsvcError, match="changed or damaged"):
        GanParams(checkpoint=str(tmp_path / "tampered.pt")).load()
    if not torch.cuda.is_available():
        with pytest.raises(AugsvcError, match="no CUDA GPU"):
            GanParams(checkpoint=str(trained["gan"]), device="cuda").load()


def test_identity_follows_the_checkpoint(tmp_path: Path, trained: dict) -> None:
    X, y = trained["X"], trained["y"]
    train_gan(X, y, CLASSES, tmp_path / "g2", GanTrainConfig(**TINY | {"seed": 3}), progress=False)
    a = GanParams(checkpoint=str(trained["gan"])).identity()
    b = GanParams(checkpoint=str(tmp_path / "g2" / "gan.pt")).identity()
    assert a["checkpoint_sha256"] == trained["summary"]["content_sha256"] and a != b


# -- augsvc models train-gan -----------------------------------------------------------------------------------


def test_train_gan_command_end_to_end(tmp_path: Path) -> None:
    from augsvc.cli import app
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    X, y = tiny_images(per_class=6)
    src = tmp_path / "raw"
    src.mkdir()
    np.savez(src / "train.npz", x=X[..., 0], y=np.array(CLASSES)[y])
    store = Store(tmp_path / "store")
    ingest(src / "train.npz", name="shapes", store=store, options=IngestOptions(format="npz"), workers=0)
    out, at = tmp_path / "run", str(tmp_path / "store")
    args = ["models", "train-gan", "shapes", "--out", str(out), "--epochs", "2", "--batch-size", "6",
            "--sample-every", "1", "--g-width", "4", "--d-width", "4", "--threads", "1", "--store", at]  # fmt: skip
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["images"] == 18 and summary["steps"] == 6 and summary["data"].startswith("shapes@")
    assert (out / "samples" / "epoch_0002.png").is_file() and (out / "losses.png").is_file()
    ck = read_gan_checkpoint(out)
    assert ck["class_names"] == sorted(CLASSES) and ck["image_shape"] == [16, 16, 1]
    res = CliRunner().invoke(app, [*args[:6], "3", *args[7:], "--resume"])
    assert res.exit_code == 0, res.output
    assert "3 epochs" in res.output and read_gan_checkpoint(out)["epoch"] == 2
    res = CliRunner().invoke(app, ["models", "train-gan", "nope", "--out", str(out), "--store", at])
    assert res.exit_code != 0


def test_suite_case_gives_a_working_generator(tmp_path: Path) -> None:
    params, data = gan_case(tmp_path)
    gen = build_generator(params)
    need = gen.targets({c: int((data.y == i).sum()) for i, c in enumerate(data.class_names)})
    fitted = gen.fit(data, gen.load())
    for c, n in need.items():
        out = fitted.generate(data.class_names.index(c), n, np.random.default_rng(0))
        assert len(out) == n and out.X.shape[1:] == data.X.shape[1:]


def test_gan_stage_in_a_build_with_gate_report_and_identity(tmp_path: Path, trained: dict) -> None:
    """A recipe with a `gan` stage runs through `augsvc build`'s generator stage: counts per class, lineage with
    the checkpoint hash, the quality gate in the manifest, the same version for the same inputs, dry run first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.ingest import IngestOptions, ingest
    from pipelines.recipes import load_recipe
    from pipelines.runner import build
    from pipelines.store import Store

    X, y = trained["X"], trained["y"]
    src = tmp_path / "raw"
    src.mkdir()
    np.savez(src / "train.npz", x=X[..., 0], y=np.array(CLASSES)[y])
    store = Store(tmp_path / "store")
    ingest(src / "train.npz", name="shapes", store=store, options=IngestOptions(format="npz"), workers=0)
    gen = {
        "method": "gan",
        "checkpoint": str(trained["gan"]),
        "n_per_class": 4,
        "gate_checkpoint": str(trained["gate"]),
        "min_intended_fraction": 0,  # a 2-epoch GAN: what the gate thinks of its rows is tested below
    }
    spec = {"input": "shapes", "output": "aug", "seed": 1, "stages": [{"name": "gan", "generator": gen}]}
    dry = build(load_recipe(spec), store, dry_run=True)
    assert dry.plan.counts_out["train"] == {c: 12 for c in CLASSES}
    rep = build(load_recipe(spec), store, workers=0)
    assert rep.manifest.rows_per_class == {c: 12 for c in CLASSES}
    gate = rep.manifest.stage_reports["gan"]["train"]
    assert gate and all(k in json.dumps(gate) for k in ("mean_confidence", "frechet"))
    ds, v = store.resolve("aug")
    rows = pa.concat_tables([pq.read_table(store.version_dir(ds, v) / s.path) for s in rep.manifest.shards]).to_pylist()
    synth = [r for r in rows if r["lineage"]]
    assert len(synth) == 12 and {r["height"] for r in synth} == {16}
    step = json.loads(synth[0]["lineage"])[-1]
    assert step["generator"] == "gan" and step["parents"] == [] and step["checkpoint_sha256"]
    assert "stage_identity" in rep.manifest.definition
    again = build(load_recipe(spec | {"output": "aug2"}), store, workers=0)
    assert again.version == rep.version


def test_build_output_shows_the_gate_report_as_a_table_and_warns(tmp_path: Path, trained: dict) -> None:
    """`augsvc build` prints the gate's report as a table (not one JSON line), flags an off-class class with a
    WARNING line, and by default refuses to publish it (exit 2, nothing published)."""
    import yaml

    from augsvc.cli import app
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.store import Store

    X, y = trained["X"], trained["y"]
    src = tmp_path / "raw"
    src.mkdir()
    np.savez(src / "train.npz", x=X[..., 0], y=np.array(CLASSES)[y])
    store = Store(tmp_path / "store")
    ingest(src / "train.npz", name="shapes", store=store, options=IngestOptions(format="npz"), workers=0)
    gate = biased_gate(tmp_path / "biased", trained)
    gen = {"method": "gan", "checkpoint": str(trained["gan"]), "n_per_class": 3, "gate_checkpoint": str(gate)}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"input": "shapes", "output": "aug", "stages": [{"name": "gan", "generator": gen}]})
    )
    args = ["build", str(recipe), "--workers", "0", "--store", str(tmp_path / "store")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "below min_intended_fraction 0.5" in str(res.exception or res.output)
    assert not store.datasets() or "aug" not in store.datasets()
    recipe.write_text(yaml.safe_dump({"input": "shapes", "output": "aug", "stages": [
        {"name": "gan", "generator": gen | {"min_intended_fraction": 0}}]}))  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.strip().startswith("stage gan, split train:"))
    assert lines[head + 1].split()[:3] == ["classes", "candidates", "kept"]
    assert [ln.split()[0] for ln in lines[head + 2 : head + 5]] == CLASSES
    warn = [ln.strip() for ln in lines if "WARNING" in ln]
    assert len(warn) == 2 and all(w.startswith("WARNING stage gan, split train: class '") for w in warn)
    assert not any(ln.strip().startswith("{") or ': {"' in ln for ln in lines)  # no raw JSON
