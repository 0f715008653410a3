"""One registry type (``schemas/registry.py``) behind ops, stage kinds, generators, ingest formats and classifier
kinds: register, get with did-you-mean, names, lazily imported built-ins."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest

from schemas.errors import AugsvcError
from schemas.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def test_register_get_names_and_did_you_mean() -> None:
    reg: Registry[int] = Registry("colour")
    reg.register("red", obj=1)

    @reg.register("green", "verde")
    def green() -> int:
        return 2

    assert reg.get("red") == 1 and reg.get("verde") is green
    assert reg.names() == ["green", "red", "verde"] and "red" in reg and "blue" not in reg
    with pytest.raises(AugsvcError, match=r"^colour 'gren' is unknown \(did you mean 'green'\?\); known: green, red"):
        reg.get("gren")
    with pytest.raises(TypeError, match="registered twice"):
        reg.register("red", obj=3)
    reg.register("red", obj=3, replace=True)
    assert reg.get("red") == 3
    reg.unregister("red")
    assert "red" not in reg


def test_builtins_are_imported_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reg_plugin_mod.py").write_text(
        "from test_registry import PLUGINS\nPLUGINS.register('late', obj='loaded')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "late" in PLUGINS.names() and "reg_plugin_mod" not in sys.modules
    assert PLUGINS.get("late") == "loaded" and "reg_plugin_mod" in sys.modules


PLUGINS: Registry[str] = Registry("plugin", {"late": "reg_plugin_mod"})


def test_families_register_many_names_on_first_lookup() -> None:
    from pipelines.transforms.base import OPS, get_op_class

    assert get_op_class("hflip").name == "hflip" and len(OPS.names()) > 30
    with pytest.raises(AugsvcError, match=r"unknown op 'hflpi'; did you mean 'hflip'\? \(known ops: "):
        get_op_class("hflpi")


def test_every_pluggable_set_is_one_registry_type() -> None:
    from generators import GENERATORS
    from generators.nets.prep import CLASSIFIERS
    from pipelines.ingest.readers import INGEST_FORMATS
    from pipelines.stages import STAGE_KINDS
    from pipelines.transforms.base import OPS

    for reg in (GENERATORS, CLASSIFIERS, INGEST_FORMATS, STAGE_KINDS, OPS):
        assert isinstance(reg, Registry) and reg.names()
    assert {"op", "mix", "generator", "teacher"} <= set(STAGE_KINDS.names())
    assert {"cnn", "text_cnn", "mlp", "hf"} <= set(CLASSIFIERS.names())


def test_ingest_formats_match_the_options_literal() -> None:
    from pipelines.ingest.options import Format
    from pipelines.ingest.readers import INGEST_FORMATS

    assert set(typing.get_args(Format)) - {"auto"} == set(INGEST_FORMATS.names())


def test_unknown_names_are_one_line_with_a_suggestion() -> None:
    from generators import generator_class
    from generators.nets.prep import build_model
    from pipelines.stages import stage_kind

    with pytest.raises(AugsvcError, match=r"generator method 'smtoe' is unknown \(did you mean 'smote'\?\)"):
        generator_class("smtoe")
    with pytest.raises(AugsvcError, match=r"unknown key 'mixx' \(did you mean 'mix'\?\)"):
        stage_kind("mixx")
    with pytest.raises(AugsvcError, match=r"model kind 'cnnn' is unknown \(did you mean 'cnn'\?\)"):
        build_model("cnnn", 2, None)  # type: ignore[arg-type]


def test_train_config_names_the_unknown_model_kind() -> None:
    from augsvc.trainer.config import load_config

    with pytest.raises(AugsvcError, match=r"model: model kind 'text_ccn' is unknown \(did you mean 'text_cnn'\?\)"):
        load_config({"data": "x", "model": "text_ccn"})


def test_a_registered_classifier_kind_trains_without_other_changes() -> None:
    """A new backbone is one register call: build_model and the trainer's config know it at once."""
    from augsvc.trainer.config import load_config
    from generators.nets.prep import CLASSIFIERS, Prep, build_model, register_classifier

    @register_classifier("tiny_linear", ("tabular",), "a linear layer (test)")
    def _tiny(num_classes: int, prep: Prep, width: float, channels: int):
        import torch

        return torch.nn.Linear(prep.n_inputs(), num_classes)

    try:
        assert load_config({"data": "x", "model": "tiny_linear"}).model == "tiny_linear"
        prep = Prep("tabular", {"stats": {"a": (0.0, 1.0)}, "levels": {}})
        assert build_model("tiny_linear", 3, prep).out_features == 3
    finally:
        CLASSIFIERS.unregister("tiny_linear")


def test_importing_the_registries_stays_light() -> None:
    code = (
        "import sys, generators, pipelines.stages, pipelines.ingest.readers, generators.nets.prep\n"
        "generators.generator_names(); pipelines.stages.kind_names(); pipelines.ingest.readers.INGEST_FORMATS.names()\n"
        "print(','.join(m for m in ('torch', 'transformers', 'cv2', 'generators.gan.generator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
