"""What a training run needs from its version, checked before any heavy work (streams, vocabularies, pretraining,
Ray trials): labels, splits, a model kind that reads the version's modality, a usable Hugging Face folder, mixing
and resizing only on images. ``augsvc train`` (``plan_run``) and ``augsvc tune`` (once, before Ray starts) share
these checks, so both refuse the same things with the same one line naming the key and what to use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augsvc.trainer.config import TrainConfig
from schemas.errors import AugsvcError

# weight files ``from_pretrained`` loads (PyTorch or safetensors, single or sharded)
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def check_model_kind(kind: str, modality: str, ref: str, *, key: str = "model") -> None:
    """Refuse (AugsvcError, one line naming ``key``) a model kind that is not registered
    (``generators.nets.prep.CLASSIFIERS``) or does not read ``modality`` versions."""
    from generators.nets.prep import CLASSIFIERS

    if kind not in CLASSIFIERS:
        raise AugsvcError(f"{key}: {CLASSIFIERS.unknown_message(kind)}")
    reads = CLASSIFIERS.get(kind).modalities
    if modality not in reads:
        fits = [k for k, c in CLASSIFIERS.load_all().items() if modality in c.modalities]
        raise AugsvcError(f"{key}: {kind} reads {' or '.join(reads)} versions; {ref} is {modality} "
                          f"(use {' or '.join(fits) or 'another version'}, or leave model out)")  # fmt: skip


def check_hf_path(path: str, modality: str, *, key: str = "hf_path") -> None:
    """Refuse (AugsvcError, one line naming ``key``) a folder ``transformers`` could not load as a classifier of
    ``modality``: not a folder, no ``config.json``, a config transformers cannot read, an architecture with no
    sequence (text) or image classification head, no weights file (``HF_WEIGHTS``), or (text) no tokenizer.
    Reads only the folder's small files (config, tokenizer); never downloads. A packaged model's name (``minilm``)
    stands for its folder (``generators.textgen.sources.PACKAGED``; refused naming the pip command if missing)."""
    from generators.textgen.sources import PACKAGED, packaged_path

    if path in PACKAGED:
        path = str(packaged_path(path, key))
    p = Path(path)
    what = "a local Hugging Face model folder (config.json, weights" + (", tokenizer)" if modality == "text" else ")")
    if not p.is_dir():
        raise AugsvcError(f"{key}: {path} is not a folder; give {what}")
    if not (p / "config.json").is_file():
        raise AugsvcError(f"{key}: {path} has no config.json; give {what} (save_pretrained writes one)")
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
    )

    try:
        config = transformers.AutoConfig.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # transformers raises ValueError/OSError/KeyError for unknown or broken configs
        raise AugsvcError(
            f"{key}: {path}/config.json is not a config transformers can read "
            f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}); give {what}"
        ) from None
    heads = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING if modality == "text" else MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING
    if type(config) not in heads:
        task = "sequence" if modality == "text" else "image"
        raise AugsvcError(f"{key}: {path} is a {config.model_type} model, which transformers has no {task} "
                          f"classification head for; give a {modality} classifier (e.g. BERT, ViT)")  # fmt: skip
    if not any((p / f).is_file() for f in HF_WEIGHTS):
        raise AugsvcError(f"{key}: {path} holds no weights ({' or '.join(HF_WEIGHTS[:2])}); give {what}")
    if modality == "text":
        try:
            transformers.AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except Exception as e:  # missing vocab files raise OSError/ValueError/TypeError depending on the class
            raise AugsvcError(f"{key}: {path} has no usable tokenizer ({type(e).__name__}); save the tokenizer "
                              "into the folder (tokenizer.save_pretrained)") from None  # fmt: skip


def check_model(cfg: TrainConfig, ref: str, manifest: Any, *, prefix: str = "") -> str:
    """The model kind ``cfg`` trains on ``manifest``'s version (``model``, else the modality's default), checked:
    it reads the modality, and an ``hf_path`` is a usable classifier folder. Keys are named ``prefix + key``
    (``train.model`` in a tune space). Returns the kind; AugsvcError (one line) otherwise."""
    from generators.nets.prep import default_kind, is_backbone_kind

    kind = cfg.model or default_kind(manifest.modality)
    if is_backbone_kind(kind):  # a pretrained image backbone: an image version, and its weights file is there
        if manifest.modality != "image":
            raise AugsvcError(f"{prefix}model: {kind} is an image backbone; {ref} is {manifest.modality}")
        from generators.nets.backbones import weights_path

        if cfg.pretrained == "hub" and not cfg.allow_download:
            raise AugsvcError(f"{prefix}pretrained: hub downloads weights; set allow_download: true to allow it")
        weights_path(kind, cfg.pretrained)
        return kind
    check_model_kind(kind, manifest.modality, ref, key=f"{prefix}model")
    if kind == "hf" and cfg.hf_path:
        check_hf_path(cfg.hf_path, manifest.modality, key=f"{prefix}hf_path")
    return kind


@dataclass
class RunPlan:
    """A checked run: the training version pinned (``ref``), its manifest, the validation version, the model kind,
    and ``filled``: the config with versions pinned and the kind filled in (what ``config.yaml`` records)."""

    ref: str
    manifest: Any
    val_ref: str
    kind: str
    filled: TrainConfig


def plan_run(cfg: TrainConfig, store: Any) -> RunPlan:
    """Resolve and check everything ``augsvc train`` needs from the store before any heavy work: the training
    version has labels and ``train_split``, the model reads its modality (and ``hf_path`` is usable), the
    validation split is labelled, ``mix`` and ``progressive_resize`` get images. AugsvcError (one line) otherwise."""
    from augsvc import api
    from pipelines.unlabelled import require_labels, require_split_labels

    ds, v = api.resolve(cfg.data, store=store)
    ref = f"{ds}@{v}"
    m = api.show(ref, store=store)
    who = "augsvc train (a classifier learns from the labels of 'data')"
    if cfg.pretrain is not None and cfg.epochs == 0:
        # pretraining alone (the pretrain checks its own data: pretrain.data, images); filled in as a fine-tuning
        # run would be, so resuming it with epochs > 0 (fine-tuning next) is the same config
        kind = cfg.model or "cnn"
        val_ref = "@".join(api.resolve(cfg.val_data or ref, store=store))
        return RunPlan(ref, m, val_ref, kind, cfg.model_copy(update={"data": ref, "val_data": val_ref, "model": kind}))
    require_labels(m, who)
    if m.rows_per_split and cfg.train_split not in m.rows_per_split:
        raise AugsvcError(f"train_split: {ref} has no split {cfg.train_split!r} (has {', '.join(m.rows_per_split)})")
    kind = check_model(cfg, ref, m)
    val_ref = "@".join(api.resolve(cfg.val_data or ref, store=store))
    require_split_labels(api.show(val_ref, store=store), cfg.val_split,
                         f"augsvc train validation (val_data, val_split {cfg.val_split!r})")  # fmt: skip
    if cfg.mix and m.modality != "image":
        raise AugsvcError(f"mix: batch mixing works on image batches; {ref} is {m.modality} "
                          "(build a mixed version instead)")  # fmt: skip
    if cfg.progressive_resize and m.modality != "image":
        raise AugsvcError(f"progressive_resize works on images; {ref} is {m.modality}")
    if cfg.resize and m.modality != "image":
        raise AugsvcError(f"resize works on images; {ref} is {m.modality} (leave resize out)")
    filled = cfg.model_copy(update={"data": ref, "val_data": val_ref, "model": kind})
    return RunPlan(ref, m, val_ref, kind, filled)
