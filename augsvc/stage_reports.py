"""Stage reports (the manifest's ``stage_reports``: a generator's quality gate, LAMBADA's filter counts, a teacher's
agreement with the labels) as text for ``augsvc build``: a table per mapping of rows, ``key: value`` lines for the
rest, and every ``warnings`` entry as its own ``WARNING`` line, so that nothing a stage flagged hides in JSON.

Example (a ``gan`` stage with a gate)::

    stage gan, split train: checkpoint_sha256 3fa4..., gate runs/cnn, min_confidence none
      classes   candidates  kept  intended_fraction  mean_confidence  frechet_distance
      bar       40          40    1                  0.9712           12.31
      dot       40          40    0.45               0.5033           30.02
      WARNING stage gan, split train: class 'dot': the gate assigns only 45% of its 40 generated rows to 'dot' ...
"""

from __future__ import annotations

from typing import Any


def _cell(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:16] + "..."  # a sha256
    return str(v)


def _is_table(v: Any) -> bool:
    """A mapping of names to flat mappings (rows of a table)."""
    return (
        isinstance(v, dict)
        and bool(v)
        and all(
            isinstance(r, dict) and r and all(not isinstance(x, dict | list) for x in r.values()) for r in v.values()
        )
    )


def table_lines(name: str, rows: dict[str, dict[str, Any]], indent: str = "  ") -> list[str]:
    """``rows`` (row name -> column -> value) as aligned text lines; the first column is headed ``name``."""
    cols: list[str] = []
    for r in rows.values():
        cols += [c for c in r if c not in cols]
    grid = [[name, *cols]] + [[str(k), *(_cell(r.get(c)) for c in cols)] for k, r in rows.items()]
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    return [indent + "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip() for row in grid]


def _lines(title: str, report: Any, indent: str, warnings: list[str]) -> list[str]:
    if not isinstance(report, dict):
        return [f"{indent}{title}: {_cell(report)}"]
    flat = {k: v for k, v in report.items() if k != "warnings" and not isinstance(v, dict | list)}
    head = ", ".join(f"{k} {_cell(v)}" for k, v in flat.items())
    out = [f"{indent}{title}" + (f": {head}" if head else "")]
    for w in report.get("warnings") or []:
        warnings.append(f"{title}: {w}")
    for k, v in report.items():
        if k in flat or k == "warnings":
            continue
        if _is_table(v):
            out += table_lines(k, v, indent + "  ")
        elif isinstance(v, dict):
            out += _lines(k, v, indent + "  ", warnings)
        else:  # a list
            out.append(f"{indent}  {k}: {', '.join(_cell(x) for x in v)}")
    return out


def report_lines(stage: str, report: Any, indent: str = "  ") -> list[str]:
    """Text lines for one stage's report (``{split: {...}}`` for generators and teachers, with per-split
    ``warnings``, or any JSON-able mapping), its warnings last as ``WARNING stage S, split X: ...`` lines."""
    warnings: list[str] = []
    out: list[str] = []
    if isinstance(report, dict) and report and all(isinstance(v, dict) for k, v in report.items() if k != "warnings"):
        for w in report.get("warnings") or []:
            warnings.append(f"stage {stage}: {w}")
        for split, rep in report.items():
            if split != "warnings":
                out += _lines(f"stage {stage}, split {split}", rep, indent, warnings)
    else:
        out += _lines(f"stage {stage}", report, indent, warnings)
    return out + [f"{indent}WARNING {w}" if w.startswith("stage ") else f"{indent}WARNING stage {stage}: {w}"
                  for w in warnings]  # fmt: skip


def report_warnings(stage_reports: dict[str, Any]) -> list[str]:
    """Every warning of a build's stage reports, as ``stage S, split X: ...`` (what the build output flags)."""
    out = []
    for stage, rep in stage_reports.items():
        out += [
            ln.strip().removeprefix("WARNING ") for ln in report_lines(stage, rep) if ln.strip().startswith("WARNING ")
        ]
    return out
