"""``augsvc models train-lm`` and ``augsvc models train-translator``: the small text models of the text generators.

Both read one split of a version from the store, train a tokenizer with ``tokenizers`` and a small transformer
(``generators/textgen/lm.py``), show progress (a bar on a terminal; plain lines with the loss, elapsed time and
ETA every 10 s otherwise, and one line up front when the first steps say the run will be long), checkpoint every
``--checkpoint-every`` steps (``--resume`` continues from the last one; Ctrl-C exits 130 saying which step is kept
and the command that resumes), and write into ``--out`` a model directory that ``lambada`` / ``backtranslate`` load
by path, plus ``training.json`` (settings, data hash, parameter count, loss history) and ``loss.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from schemas.errors import AugsvcError

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store root (default: $AUGSVC_STORE or ./augsvc-store).")]
# the options train-lm and train-translator share (their defaults differ)
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the model, tokenizer and reports.")]
Positive = Annotated[int, typer.Option(min=1)]
Rate = Annotated[float, typer.Option(min=0)]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from --out's checkpoint.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
ThreadsOpt = Annotated[int, typer.Option(help="torch CPU threads (0: torch's default).")]


def read_split(
    ref: str, split: str | None, store: str | None, columns: list[str], modality: str, need: str
) -> tuple[Any, dict[str, list]]:
    """(manifest, column -> values) of the rows of ``split`` (all rows when None) of version ``ref``; AugsvcError
    saying ``need`` when the version is not of ``modality``."""
    import pyarrow as pa

    from augsvc import api

    st = api.open_store(store)
    m = api.show(ref, store=st)
    ds, v = m.dataset, m.version
    if m.modality != modality:
        raise AugsvcError(f"{ds}@{v} holds {m.modality} rows; {need}")
    want = [c for c in columns if c != "split"] + ["split"]
    tables = [
        api.read_shard(f"{ds}@{v}", s, want, store=st) for s in m.shards if split is None or s.split in (split, None)
    ]
    if not tables:
        have = ", ".join(m.rows_per_split or {}) or "none"
        raise AugsvcError(f"{ds}@{v} has no rows in split {split!r} (splits: {have}); pass --split")
    t = pa.concat_tables(tables).to_pydict()
    keep = [i for i, s in enumerate(t["split"]) if split is None or s == split]
    return m, {c: [t[c][i] for i in keep] for c in columns}


def _languages(m: Any) -> tuple[str | None, str | None]:
    opts = (m.definition or {}).get("options", {}) if isinstance(m.definition, dict) else {}
    return opts.get("src_lang"), opts.get("tgt_lang")


def _kept(out: Path, steps: int) -> str:
    """What an interrupted training leaves: the step of ``OUT/checkpoint`` (written every --checkpoint-every)."""
    from augsvc.interrupt import checkpoint_epoch

    state = out / "checkpoint" / "state.pt"
    step = checkpoint_epoch(state, "step") if state.is_file() else None
    if step is None:
        return f"no checkpoint had been written yet (every --checkpoint-every steps), nothing kept in {out}"
    return f"{out / 'checkpoint'} holds step {step:,} of {steps:,}"


def _train(M: Any, label: str, what: str, *, out: Path, resume: bool, device: str, threads: int, quiet: bool,
           auto_class: str, fresh: Callable[[], tuple[Any, Any]], examples: list, settings: Any,
           meta: dict) -> None:  # fmt: skip
    """What ``train-lm`` and ``train-translator`` share once their examples are read: a fresh (tokenizer, model)
    from ``fresh()``, or with ``--resume`` the ones of ``OUT/checkpoint`` (loaded with ``transformers.<auto_class>``);
    ``M.train`` with a step display (a bar on a terminal, plain lines with ETA otherwise) and Ctrl-C handling;
    then the loss curve, ``training.json``'s seconds and the summary line (``what``: the curve's name)."""
    from augsvc.interrupt import on_interrupt
    from augsvc.progress import step_progress
    from generators.runtime import resolve_device

    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device, what="--device")
    ck = out / "checkpoint"
    if resume and (ck / "state.pt").is_file():
        import transformers

        tok = transformers.AutoTokenizer.from_pretrained(str(ck))
        model = getattr(transformers, auto_class).from_pretrained(str(ck))
    else:
        tok, model = fresh()
    steps = settings.steps
    hint = "fewer --steps, a smaller model or a GPU (--device cuda) shortens it; Ctrl-C keeps the last checkpoint"
    with on_interrupt(lambda: _kept(out, steps)), step_progress(label, quiet=quiet, hint=hint) as report:
        _, history = M.train(model, tok, examples, settings, out=out, resume=resume, device=dev, meta=meta,
                             threads=threads or None,
                             on_step=lambda step, total, loss: report(step, total, loss=loss))  # fmt: skip
    _finish(out, history, started, what)


def _finish(out: Path, history: list[dict], started: float, what: str) -> None:
    from augsvc.trainer.reports import plot_curves

    if history:
        plot_curves({what: [h["loss"] for h in history]}, out / "loss.png", title="training loss")
    info = json.loads((out / "training.json").read_text())
    info["seconds"] = round(time.time() - started, 1)
    (out / "training.json").write_text(json.dumps(info, indent=2))
    last = history[-1]["loss"] if history else float("nan")
    typer.echo(f"{out}: {info['parameters']:,} parameters, {info['examples']:,} examples, final loss {last:.3f}, "
               f"{info['seconds']} s; loss curve {out / 'loss.png'}")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``train-lm`` and ``train-translator`` to ``augsvc models``."""

    @app.command("train-lm")
    def train_lm(
        version: Annotated[str, typer.Argument(help="A text classification version (name or name@version).")],
        out: OutOpt,
        split: Annotated[str, typer.Option(help="Split whose texts it learns.")] = "train",
        steps: Positive = 2000,
        batch_size: Positive = 32,
        lr: Rate = 1e-3,
        layers: Positive = 2,
        n_embd: Annotated[int, typer.Option(min=8, help="Width (a multiple of --heads).")] = 64,
        heads: Positive = 4,
        vocab_size: Annotated[int, typer.Option(min=300)] = 4000,
        max_length: Annotated[int, typer.Option(min=8, help="Tokens per training line.")] = 64,
        seed: int = 0,
        checkpoint_every: Positive = 200,
        resume: ResumeOpt = False,
        device: DeviceOpt = "auto",
        threads: ThreadsOpt = 0,
        store: StoreOpt = None,
        quiet: bool = False,
    ):
        """Train a small GPT-2 on `label SEP text` lines of a text version (the model lambada fine-tunes)."""
        from generators.textgen import lm as M

        if n_embd % heads:
            raise AugsvcError(f"--n-embd {n_embd} is not a multiple of --heads {heads}")
        m, cols = read_split(version, split, store, ["label", "text"], "text", "train-lm needs a text version")
        rows = [(m.class_names[lab], t) for lab, t in zip(cols["label"], cols["text"], strict=True)
                if lab is not None and t and t.strip()]  # fmt: skip
        if not rows:
            raise AugsvcError(f"{m.dataset}@{m.version} split {split!r} has no labelled text")
        lines = M.lm_lines([a for a, _ in rows], [b for _, b in rows])

        def fresh() -> tuple[Any, Any]:
            tok = M.lm_tokenizer(lines, vocab_size)
            return tok, M.new_lm(tok, n_layer=layers, n_embd=n_embd, n_head=heads, n_positions=max(max_length, 64))

        settings = M.TrainSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_length=max_length,
                                   checkpoint_every=checkpoint_every)  # fmt: skip
        meta = {"source": f"{m.dataset}@{m.version}", "split": split, "class_names": m.class_names, "sep": M.LM_SEP}
        _train(M, "train-lm", "lm", out=out, resume=resume, device=device, threads=threads, quiet=quiet,
               auto_class="AutoModelForCausalLM", fresh=fresh, examples=lines, settings=settings,
               meta=meta)  # fmt: skip

    @app.command("train-translator")
    def train_translator(
        version: Annotated[str, typer.Argument(help="A parallel-text (translation) version.")],
        out: OutOpt,
        src: Annotated[str, typer.Option("--src", help="Language to translate from (e.g. en).")],
        tgt: Annotated[str, typer.Option("--tgt", help="Language to translate into (e.g. de).")],
        reverse: Annotated[
            bool,
            typer.Option("--reverse", help="The version's tgt column is --src (when its languages are not recorded)."),
        ] = False,
        split: Annotated[str, typer.Option(help="Split whose pairs it learns.")] = "train",
        limit: Annotated[int, typer.Option(help="Use only the first N pairs (0: all).")] = 0,
        steps: Positive = 4000,
        batch_size: Positive = 32,
        lr: Rate = 1e-3,
        layers: Positive = 2,
        d_model: Annotated[int, typer.Option(min=8, help="Width (a multiple of --heads).")] = 64,
        heads: Positive = 4,
        ffn: Annotated[int, typer.Option(min=8)] = 256,
        vocab_size: Annotated[int, typer.Option(min=300)] = 8000,
        max_length: Annotated[int, typer.Option(min=8, help="Tokens per sentence.")] = 64,
        seed: int = 0,
        checkpoint_every: Positive = 500,
        resume: ResumeOpt = False,
        device: DeviceOpt = "auto",
        threads: ThreadsOpt = 0,
        store: StoreOpt = None,
        quiet: bool = False,
    ):
        """Train a small Marian-style translator --src -> --tgt on a parallel-text version (e.g. Multi30k)."""
        from generators.textgen import lm as M

        if d_model % heads:
            raise AugsvcError(f"--d-model {d_model} is not a multiple of --heads {heads}")
        need = "train-translator needs a parallel-text version (ingest a folder of <split>.<lang> file pairs)"
        m, cols = read_split(version, split, store, ["src", "tgt"], "translation", need)
        vs, vt = _languages(m)
        if vs and vt:
            if (src, tgt) == (vs, vt):
                reverse = False
            elif (src, tgt) == (vt, vs):
                reverse = True
            else:
                raise AugsvcError(f"{m.dataset}@{m.version} pairs {vs} -> {vt}; --src {src} --tgt {tgt} is not one "
                                  "of its directions")  # fmt: skip
        pairs = [(s.strip(), t.strip()) for s, t in zip(cols["src"], cols["tgt"], strict=True)
                 if s and t and s.strip() and t.strip()]  # fmt: skip
        mono = sum(x is None for x in cols["src"])
        if mono and not quiet:
            typer.echo(f"{m.dataset}@{m.version}: {mono:,} monolingual rows (no source) are not training pairs; "
                       "skipped", err=True)  # fmt: skip
        if limit:
            pairs = pairs[:limit]
        if reverse:
            pairs = [(t, s) for s, t in pairs]
        if not pairs:
            raise AugsvcError(f"{m.dataset}@{m.version} split {split!r} has no complete sentence pairs")

        def fresh() -> tuple[Any, Any]:
            tok = M.translation_tokenizer([x for p in pairs for x in p], vocab_size)
            return tok, M.new_translator(tok, d_model=d_model, layers=layers, heads=heads, ffn=ffn,
                                         max_positions=max(2 * max_length, 128))  # fmt: skip

        settings = M.TrainSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_length=max_length,
                                   checkpoint_every=checkpoint_every)  # fmt: skip
        meta = {"source": f"{m.dataset}@{m.version}", "split": split, "src": src, "tgt": tgt, "pairs": len(pairs)}
        _train(M, f"train-translator {src}->{tgt}", f"{src}-{tgt}", out=out, resume=resume, device=device,
               threads=threads, quiet=quiet, auto_class="AutoModelForSeq2SeqLM", fresh=fresh, examples=pairs,
               settings=settings, meta=meta)  # fmt: skip
