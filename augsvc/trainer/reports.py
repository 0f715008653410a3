"""Run reports: per-epoch metrics (JSON, CSV), a validation-accuracy plot, and the comparison of several runs.

Plots are drawn with OpenCV (already a dependency), so reports need no plotting library.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from schemas.errors import AugsvcError


def write_reports(out: Path, history: list[dict]) -> None:
    (out / "metrics.json").write_text(json.dumps(history, indent=2))
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    plot_curves({out.name: [h["val_acc"] for h in history]}, out / "val_accuracy.png")


def plot_curves(curves: dict[str, list[float]], path: str | Path, title: str = "validation accuracy") -> Path:
    """A line plot (OpenCV, no matplotlib needed): one line per run, epochs on x, accuracy on y."""
    import cv2

    W, H, L, B = 640, 420, 60, 70
    img = np.full((H, W, 3), 255, np.uint8)
    colours = [(200, 80, 30), (30, 140, 30), (30, 30, 200), (160, 60, 160), (0, 140, 200), (90, 90, 90)]
    n = max((len(c) for c in curves.values()), default=1)
    vals = [v for c in curves.values() for v in c] or [0.0, 1.0]
    lo, hi = max(0.0, min(vals) - 0.05), max(vals) + 0.05
    hi = min(1.0, hi) if max(vals) <= 1.0 else hi
    hi = hi if hi > lo else lo + 0.1
    cv2.rectangle(img, (L, 20), (W - 20, H - B), (0, 0, 0), 1)
    for t in np.linspace(lo, hi, 5):
        y = int(H - B - (t - lo) / (hi - lo) * (H - B - 20))
        cv2.putText(img, f"{t:.2f}", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, title + " per epoch", (L, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(img, "epoch", ((L + W - 20) // 2 - 20, H - B + 32), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for j in sorted({*range(0, n, -(-n // 10)), n - 1}):
        x = int(L + (j / max(n - 1, 1)) * (W - 20 - L))
        cv2.putText(img, str(j + 1), (x - 4, H - B + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    for i, (name, c) in enumerate(curves.items()):
        col = colours[i % len(colours)]
        pts = [(int(L + (j / max(n - 1, 1)) * (W - 20 - L)), int(H - B - (v - lo) / (hi - lo) * (H - B - 20)))
               for j, v in enumerate(c)]  # fmt: skip
        for a, b in zip(pts, pts[1:], strict=False):
            cv2.line(img, a, b, col, 2)
        for p in pts:
            cv2.circle(img, p, 3, col, -1)
        legend = (L + 10 + 180 * (i % 3), H - 18 + 12 * (i // 3) - 12 * ((len(curves) - 1) // 3))
        cv2.putText(img, name, legend, cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1)
    path = Path(path)
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def read_history(run: Path) -> list[dict]:
    """A run's per-epoch rows (``metrics.json``), checked: a non-empty list of mappings with a numeric ``val_acc``.
    AugsvcError (one line naming the folder) for a folder that is not a run of ``augsvc train``."""
    f = run / "metrics.json"
    hint = "pass the --out folder of 'augsvc train'"
    if not f.is_file():
        raise AugsvcError(f"{run}: not a run directory (no metrics.json); {hint}")
    try:
        hist = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AugsvcError(f"{f}: not JSON ({e}); {hint}") from None
    if not isinstance(hist, list) or not hist:
        what = "an empty list" if isinstance(hist, list) else f"a JSON {type(hist).__name__}"
        raise AugsvcError(f"{f} holds {what}, not per-epoch rows of a run of 'augsvc train'; {hint}")
    for i, h in enumerate(hist):
        if not isinstance(h, dict) or not isinstance(h.get("val_acc"), int | float):
            raise AugsvcError(f"{f}: row {i} has no numeric val_acc, so this is not a run of 'augsvc train'; {hint}")
    return hist


def compare(run_dirs: list[str | Path], out_png: str | Path, *, table: bool = False) -> list[dict]:
    """One plot of validation accuracy per epoch over several runs (baseline vs augmented vs distilled) and one
    row per run (best val accuracy, the macro-F1 of that epoch when recorded, epochs, parameters, data);
    ``table=True`` also prints the rows. AugsvcError (one line) for a folder that is not a run."""
    rows, curves = [], {}
    for d in run_dirs:
        d = Path(d)
        hist = read_history(d)
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else {}
        if not isinstance(summary, dict):
            summary = {}
        name = d.name if d.name not in curves else f"{d.parent.name}/{d.name}#{len(rows) + 1}"
        curves[name] = [h["val_acc"] for h in hist]
        best = max(hist, key=lambda h: h["val_acc"])
        rows.append({"run": name, "best_val_acc": best["val_acc"], "val_macro_f1": best.get("val_macro_f1"),
                     "epochs": len(hist), "parameters": summary.get("parameters"),
                     "data": summary.get("data")})  # fmt: skip
    plot_curves(curves, out_png)
    if table:
        print(format_table(rows))
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`compare` rows."""
    lines = [f"{'run':24s} {'best val acc':>12s} {'macro-F1':>8s} {'epochs':>6s} {'params':>9s}  data"]
    for r in rows:
        f1 = f"{r['val_macro_f1']:8.4f}" if r.get("val_macro_f1") is not None else f"{'-':>8s}"
        lines.append(
            f"{r['run']:24s} {r['best_val_acc']:12.4f} {f1} {r['epochs']:6d} {r['parameters'] or 0:9d}  "
            f"{r['data'] or ''}"
        )
    return "\n".join(lines)


def format_scores(result: dict) -> str:
    """``augsvc evaluate``'s text: accuracy and macro-F1, then precision, recall, F1 and support per class."""
    lines = [f"{result['run']} on {result['data']} split {result['split']} ({result['rows']} rows): "
             f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}",
             f"{'class':20s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>7s}"]  # fmt: skip
    for name, c in result["per_class"].items():
        lines.append(f"{name[:20]:20s} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:7.4f} {c['support']:7d}")
    return "\n".join(lines)
