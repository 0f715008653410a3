"""``augsvc preview``: originals beside augmented copies, one PNG grid, before building 100,000 images.

Copy ``c`` of a row goes through every stage with the same generators a build uses for copy ``c``
(``rng_for(seed, stage, c, sample_id)``), so what you see is what the build makes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipelines import imagecodec
from pipelines.gridlabels import label_grid
from pipelines.rng import rng_for
from pipelines.store import Store
from schemas.errors import AugsvcError
from schemas.recipe import Recipe


def _fit(img: np.ndarray, cell: int) -> np.ndarray:
    import cv2

    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    h, w = img.shape[:2]
    scale = cell / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_AREA
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    out = np.full((cell, cell, 3), 255, np.uint8)
    y0, x0 = (cell - nh) // 2, (cell - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


def pick_rows(store: Store, recipe: Recipe, n: int) -> list[dict]:
    """n rows of the augmented splits, spread over the classes, chosen by a seeded hash (not file order)."""
    ds, v = store.resolve(recipe.input)
    m = store.manifest(ds, v)
    if m.modality != "image":
        raise AugsvcError(f"preview renders images; {ds}@{v} holds {m.modality} rows")
    by_class: dict[int, list[tuple[bytes, dict]]] = {}
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
    queues = [sorted(v_, key=lambda kv: kv[0]) for _, v_ in sorted(by_class.items())]
    picked: list[dict] = []
    i = 0
    while len(picked) < n and any(i < len(q) for q in queues):
        for q in queues:
            if i < len(q) and len(picked) < n:
                picked.append(q[i][1])
        i += 1
    return picked


def render_preview(
    recipe: Recipe, store: Store, out: str | Path, *, n: int = 16, copies: int = 4, cell: int = 96
) -> Path:
    import cv2

    rows = pick_rows(store, recipe, n)
    pad = 4
    grid_rows = []
    for row in rows:
        orig = imagecodec.decode(row["image"], row["image_format"], row["height"], row["width"], row["channels"])
        cells = [_fit(orig, cell)]
        for c in range(copies):
            x = orig
            for k, st in enumerate(recipe.stages):
                x, _ = st.built(x, rng_for(recipe.seed, k, c, row["sample_id"]))
            cells.append(_fit(x, cell))
        line = np.full((cell, (cell + pad) * len(cells) + pad * 3, 3), 255, np.uint8)
        xpos = 0
        for j, im in enumerate(cells):
            line[:, xpos : xpos + cell] = im
            xpos += cell + pad + (pad * 3 if j == 0 else 0)  # a wider gap after the original
        grid_rows.append(line)
    sep = np.full((pad, grid_rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([x for r in grid_rows for x in (r, sep)], axis=0)
    names = store.manifest(*store.resolve(recipe.input)).class_names
    classes = [names[r["label"]] if r["label"] is not None and 0 <= r["label"] < len(names) else "?" for r in rows]
    col_x = [0] + [cell + pad * 4 + (cell + pad) * c for c in range(copies)]
    headers = ["original"] + [f"copy {c + 1}" for c in range(copies)]
    grid = label_grid(grid, col_x, headers, [(cell + pad) * i for i in range(len(rows))], classes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid[:, :, ::-1]):
        raise AugsvcError(f"{out}: could not write the PNG (check the folder and the .png extension)")
    return out


def render_text_preview(
    recipe: Recipe, store: Store, *, n: int = 10, copies: int = 3, out: str | Path | None = None
) -> str:
    """Originals vs augmented copies of text rows as a Markdown table (or HTML when ``out`` ends in .html).

    Copies are made exactly as a build makes them (same generators, same mutation cap)."""
    import html

    from pipelines.tasks import apply_stage_op

    ds, v = store.resolve(recipe.input)
    m = store.manifest(ds, v)
    if m.modality != "text":
        raise AugsvcError(f"text preview needs a text version; {ds}@{v} holds {m.modality} rows")
    picked: list[dict] = []
    for s in m.shards:
        if len(picked) >= n:
            break
        if s.split is not None and s.split not in recipe.splits:
            continue
        table = store.read_shard(ds, v, s.path)
        picked += [r for r in table.to_pylist() if r["split"] in recipe.splits]
    picked = picked[:n]
    lines = []
    for row in picked:
        variants = []
        for c in range(copies):
            x = row["text"]
            for k, st in enumerate(recipe.stages):
                if st.kind == "op":
                    x, _ = apply_stage_op(recipe, k, x, rng_for(recipe.seed, k, c, row["sample_id"]), "text")
            variants.append(x)
        lines.append((m.class_names[row["label"]], row["text"], variants))
    if out is not None and str(out).endswith(".html"):
        cells = [(html.escape(lab), html.escape(t), "<br>".join(html.escape(x) for x in vs)) for lab, t, vs in lines]
        body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in cells)
        text = f"<table><tr><th>label</th><th>original</th><th>augmented</th></tr>{body}</table>\n"
    else:
        esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
        rows_md = [f"| {esc(lab)} | {esc(t)} | {'<br>'.join(esc(x) for x in vs)} |" for lab, t, vs in lines]
        text = "\n".join(["| label | original | augmented |", "|---|---|---|", *rows_md]) + "\n"
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text
