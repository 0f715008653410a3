"""``augsvc preview``: what a recipe makes, before building 100,000 rows: originals beside what each stage derived
from them (copies, mixed pairs, synthetic rows), as a PNG grid for images or a table for text and tabular rows.
Rows a generator drew from its model without a parent (GAN, LAMBADA) get lines of their own, one per class, whose
first cell says "no parent".

The rows go through every stage with the same code and generators as a build (``StageKind.apply_rows``: copy ``c``
of a row draws from ``rng_for(seed, stage, c, sample_id)``), so what you see is what the build makes. Mixing pairs
partners within the previewed rows; a generator stage fits on every row of the augmented splits, as in a build.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import stages
from pipelines.gridlabels import label_grid
from pipelines.plan import make_plan
from pipelines.stages.base import StepContext
from pipelines.store import Store
from schemas import imagecodec
from schemas.errors import AugsvcError
from schemas.manifest import Manifest
from schemas.recipe import Recipe

NO_PARENT = "_no_parent"  # marks the stand-in "original" of a line of rows generated without a parent


def _preview_recipe(recipe: Recipe, copies: int) -> Recipe:
    """The recipe with ``copies`` copies per row in its op and mix stages (no per-class targets)."""
    from pipelines.recipes import load_recipe

    data = recipe.model_dump(mode="json")
    for st in data["stages"]:
        if "op" in st or "mix" in st:
            st.update(copies=copies, target_per_class=None)
    return load_recipe(data)


def pick_rows(store: Store, recipe: Recipe, n: int, *, every: bool = False) -> tuple[Manifest, list[dict]]:
    """(manifest, rows of the augmented splits): ``n`` spread over the classes, chosen by a seeded hash (not file
    order), or every row when ``every`` (generator stages fit on the whole split)."""
    ds, v = store.resolve(recipe.input)
    m = store.manifest(ds, v)
    by_class: dict[Any, list[tuple[bytes, dict]]] = {}
    for s in m.shards:
        if s.split is not None and s.split not in recipe.splits:
            continue
        for row in store.read_shard(ds, v, s.path).to_pylist():
            if row["split"] not in recipe.splits:
                continue
            key = hashlib.blake2b(f"{recipe.seed}/preview/{row['sample_id']}".encode(), digest_size=8).digest()
            by_class.setdefault(row["label"], []).append((key, row))
    if not by_class:
        raise AugsvcError(f"{ds}@{v} has no rows in splits {recipe.splits}")
    queues = [sorted(v_, key=lambda kv: kv[0]) for _, v_ in sorted(by_class.items(), key=lambda kv: str(kv[0]))]
    picked: list[dict] = []
    i = 0
    limit = sum(len(q) for q in queues) if every else n
    while len(picked) < limit and any(i < len(q) for q in queues):
        for q in queues:
            if i < len(q) and len(picked) < limit:
                picked.append(q[i][1])
        i += 1
    return m, picked


def _no_tasks(*_: Any) -> dict:
    raise AugsvcError("preview runs stages in memory; a stage kind asked to schedule tasks")


def preview_lines(recipe: Recipe, store: Store, *, n: int = 16, copies: int = 4) -> tuple[Manifest, list[tuple]]:
    """Run the recipe in memory on a few rows: (manifest, [(original row, [derived rows])]) for up to ``n`` originals,
    each with up to ``copies`` rows derived from it (through any stage: op copies, mixes, synthetic rows). Rows
    generated without a parent among the previewed rows (a GAN or LAMBADA draws from its model) come last, one line
    per class, behind a stand-in original ``{"label": class, NO_PARENT: True}``."""
    recipe = _preview_recipe(recipe, copies)
    kinds = [stages.kind_of(recipe, k) for k in range(len(recipe.stages))]
    every = any(k.key == "generator" for k in kinds)
    m, rows = pick_rows(store, recipe, n, every=every)
    from pipelines.runner import check_recipe

    check_recipe(recipe, m)
    meta = [(r["sample_id"], r["label"], r["split"]) for r in rows]
    ctx = StepContext(recipe, m, make_plan(recipe, m, meta, only=set()), 0, _no_tasks, _no_tasks, _no_tasks, str)
    originals = {r["sample_id"]: r for r in rows}
    for k, kind in enumerate(kinds):
        ctx.step = k
        rows = kind.apply_rows(ctx, k, rows)
    children: dict[str, list[dict]] = {}
    orphans: dict[Any, list[dict]] = {}  # label -> generated rows with no parent among the previewed rows
    for r in rows:
        if not r.get("lineage"):
            continue
        first = json.loads(r["lineage"])[0]
        parent = first.get("parent") or (first.get("parents") or [None])[0]
        if parent in originals:
            children.setdefault(parent, []).append(r)
        else:  # drawn from a model (GAN, LAMBADA: no parent) or from rows outside the preview
            orphans.setdefault(r.get("label"), []).append(r)
    order = [sid for sid in originals if sid in children]
    if not every:
        order = [sid for sid in originals if sid in children or not (children or orphans)][:n]
    lines = [(originals[sid], children.get(sid, [])[:copies]) for sid in order[:n]]
    for lab in sorted(orphans, key=str):  # one line per class: a "no parent" cell, then the generated rows
        if len(lines) >= n:
            break
        lines.append(({"label": lab, NO_PARENT: True}, orphans[lab][:copies]))
    return m, lines


def _caption(row: dict, m: Manifest) -> str:
    """Short text under a cell: class (or soft label) and the last step's kind."""
    name = m.class_names[row["label"]] if row.get("label") is not None and m.class_names else "-"
    if row.get(NO_PARENT):
        return f"{name} (no parent)"
    if not row.get("lineage"):
        return name
    step = json.loads(row["lineage"])[-1]
    if "mix" in step:
        return f"{step['mix']['lam']:.2f} {name}"  # the anchor's weight, then the mixed row's class
    if "generator" in step:
        return f"{name} {step['generator']}"
    return name


def _image_of(row: dict, like: np.ndarray | None = None) -> np.ndarray:
    """The row's pixels; a light grey square for the stand-in original of generated rows (the size of ``like``)."""
    if row.get(NO_PARENT):
        shape = like.shape if like is not None else (8, 8, 3)
        return np.full(shape, 235, np.uint8)
    if row.get("_img") is not None:
        return row["_img"]
    return imagecodec.decode(row["image"], row["image_format"], row["height"], row["width"], row["channels"])


def _fit(img: np.ndarray, cell: int, caption: str) -> np.ndarray:
    import cv2

    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    h, w = img.shape[:2]
    scale = cell / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_AREA
    small = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=interp)
    strip = 14
    out = np.full((cell + strip, cell, 3), 255, np.uint8)
    y0, x0 = (cell - nh) // 2, (cell - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    text = caption[: max(4, cell // 5)]
    cv2.putText(out, text, (2, cell + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (40, 40, 40), 1, cv2.LINE_AA)
    return out


def render_preview(
    recipe: Recipe, store: Store, out: str | Path, *, n: int = 16, copies: int = 4, cell: int = 96
) -> Path:
    """A PNG grid: each line an original (captioned with its class), a gap, then what the recipe derived from it
    (captioned with class, mix weight or generator). Returns the path written."""
    import cv2

    m, lines = preview_lines(recipe, store, n=n, copies=copies)
    if m.modality != "image":
        raise AugsvcError(f"the PNG grid is for images; {recipe.input} holds {m.modality} rows (use --out x.md)")
    pad = 4
    width = (cell + pad) * (copies + 1) + pad * 3
    grid_rows = []
    for orig, kids in lines:
        first = _image_of(kids[0]) if kids else None
        cells = [_fit(_image_of(orig, first), cell, _caption(orig, m))] + [
            _fit(_image_of(r), cell, _caption(r, m)) for r in kids
        ]
        line = np.full((cells[0].shape[0], width, 3), 255, np.uint8)
        xpos = 0
        for j, im in enumerate(cells):
            line[:, xpos : xpos + cell] = im
            xpos += cell + pad + (pad * 3 if j == 0 else 0)  # a wider gap after the original
        grid_rows.append(line)
    if not grid_rows:
        raise AugsvcError(f"{recipe.input}: the recipe derived no rows from the previewed ones")
    sep = np.full((pad, width, 3), 255, np.uint8)
    grid = np.concatenate([x for r in grid_rows for x in (r, sep)], axis=0)
    names = m.class_names
    classes = [names[o["label"]] if o["label"] is not None and 0 <= o["label"] < len(names) else "-" for o, _ in lines]
    col_x = [0] + [cell + pad * 4 + (cell + pad) * c for c in range(copies)]
    headers = ["original"] + [f"derived {c + 1}" for c in range(copies)]
    row_h = grid_rows[0].shape[0] + pad
    grid = label_grid(grid, col_x, headers, [row_h * i for i in range(len(lines))], classes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid[:, :, ::-1]):
        raise AugsvcError(f"{out}: could not write the PNG (check the folder and the .png extension)")
    return out


def _cells(row: dict, m: Manifest) -> list[str]:
    if row.get(NO_PARENT):
        return ["(generated without a parent)"]
    if m.modality == "text":
        return [row["text"]]
    if m.modality == "translation":
        src = "(monolingual: no source)" if row["src"] is None else row["src"]
        return [f"{src} => {row['tgt']}"]
    return [", ".join(f"{f}={_fmt(row.get(f))}" for f in m.features)]


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def render_table(recipe: Recipe, store: Store, *, n: int = 10, copies: int = 3, out: str | Path | None = None) -> str:
    """Originals beside what the recipe derived from them, for text, translation and tabular rows: a Markdown table
    (or HTML when ``out`` ends in .html), written to ``out`` when given."""
    m, lines = preview_lines(recipe, store, n=n, copies=copies)
    if m.modality == "image":
        raise AugsvcError(f"{recipe.input} holds images: preview writes a PNG grid (--out grid.png)")
    table = [
        (_caption(o, m), _cells(o, m)[0], [f"{_caption(r, m)}: {_cells(r, m)[0]}" for r in kids]) for o, kids in lines
    ]
    if out is not None and str(out).endswith(".html"):
        esc = html.escape
        body = "".join(
            f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{'<br>'.join(esc(x) for x in c)}</td></tr>" for a, b, c in table
        )
        text = f"<table><tr><th>class</th><th>original</th><th>derived</th></tr>{body}</table>\n"
    else:
        esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        rows_md = [f"| {esc(a)} | {esc(b)} | {'<br>'.join(esc(x) for x in c)} |" for a, b, c in table]
        text = "\n".join(["| class | original | derived |", "|---|---|---|", *rows_md]) + "\n"
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text


def render_text_preview(
    recipe: Recipe, store: Store, *, n: int = 10, copies: int = 3, out: str | Path | None = None
) -> str:
    """Text rows: see :func:`render_table`."""
    return render_table(recipe, store, n=n, copies=copies, out=out)
