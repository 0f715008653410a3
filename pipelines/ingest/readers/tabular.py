"""Tabular CSV: numeric and categorical feature columns, the label column by name (default: a column named
class/label/target, else the last one). Column types are inferred over the whole file: a column is numeric when
every non-empty value parses as a number. Empty feature values become nulls; a missing label is a bad row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source
from pipelines.ingest.readers.text import LABEL_NAMES
from pipelines.ingest.readers.textio import csv_records
from pipelines.ingest.records import Bad, Record, split_from_name
from schemas.errors import AugsvcError


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _number(v: str, column: str) -> float | str:
    """``float(v)``, or why it is refused: NaN, infinities and values beyond float64's range (``1e400`` would
    become inf) are not silently kept."""
    import math

    x = float(v)
    if math.isfinite(x):
        return x
    shown = v if len(v) <= 24 else f"{v[:12]}...({len(v)} characters)"
    if v.strip().lstrip("+-").lower() in ("nan", "inf", "infinity"):
        return f"column {column!r}: {shown!r} is not a finite number; use an empty cell for a missing value"
    return f"column {column!r}: {shown!r} is beyond the float64 range; rescale the column"


def check_feature_names(path: Path, features: list[str]) -> None:
    """Feature columns become Arrow columns: names must be unique, non-empty and not a reserved row column."""
    from schemas.arrow import COMMON_FIELDS

    reserved = {f.name for f in COMMON_FIELDS}
    seen: set[str] = set()
    for h in features:
        if not h:
            raise AugsvcError(f"{path}: a header column has no name; name it (or pass --no-header)")
        if h in seen:
            raise AugsvcError(f"{path}: column {h!r} appears twice in the header; rename one")
        if h in reserved:
            raise AugsvcError(f"{path}: column {h!r} is a reserved row column name; rename it")
        seen.add(h)


def source(path: Path, opts: IngestOptions) -> Source:
    if not path.is_file():
        raise AugsvcError(f"{path}: a tabular source is one CSV file")
    rel = path.name
    delim = opts.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    records = list(csv_records(path, opts.encoding, rel, delim))
    parsed = [(n, row) for n, row in records if not isinstance(row, Bad)]
    if not parsed:
        raise AugsvcError(f"{path}: no rows")
    header = [h.strip() for h in parsed[0][1]]
    if opts.header is False:
        header = [f"f{i}" for i in range(len(header))]
    else:
        head_at = next(i for i, (_, row) in enumerate(records) if not isinstance(row, Bad))
        records = records[:head_at] + records[head_at + 1 :]
        parsed = parsed[1:]
    if opts.label_column is not None:
        if opts.label_column not in header:
            raise AugsvcError(f"--label-column {opts.label_column!r}: no such column (columns: {', '.join(header)})")
        label_i = header.index(opts.label_column)
    else:
        label_i = next((i for i, h in enumerate(header) if LABEL_NAMES.match(h)), len(header) - 1)
    ncols = len(header)
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:  # a second column named like the label would otherwise become a feature, silently
        raise AugsvcError(f"{path}: column {twice[0]!r} appears twice in the header; rename one")
    features = [h for i, h in enumerate(header) if i != label_i]
    check_feature_names(path, features)
    # a column's kind comes from the rows that are kept: a quarantined row (NUL cell, no label) must not turn a
    # numeric column categorical
    ok_rows = [(n, r) for n, r in parsed if len(r) == ncols and r[label_i].strip() and not any("\x00" in c for c in r)]
    kinds = {}
    for i, h in enumerate(header):
        if i == label_i:
            continue
        values = [r[i].strip() for _, r in ok_rows if r[i].strip() != ""]
        kinds[h] = "numeric" if values and all(_is_number(v) for v in values) else "categorical"
    split = opts.split or split_from_name(path.stem, "train")

    def items() -> Iterator[Record | Bad]:
        for n, row in records:
            if isinstance(row, Bad):
                yield row
                continue
            if len(row) != ncols:
                yield Bad(rel, n, f"expected {ncols} fields separated by {delim!r}, got {len(row)}")
                continue
            label = row[label_i].strip()
            if not label:
                yield Bad(rel, n, "missing label")
                continue
            if any("\x00" in c for c in row):
                yield Bad(rel, n, "a cell holds a NUL character (binary data, or UTF-16 read as another encoding)")
                continue
            values, why = {}, None
            for i, h in enumerate(header):
                if i == label_i:
                    continue
                v = row[i].strip()
                x = None if v == "" else (_number(v, h) if kinds[h] == "numeric" else v)
                if kinds[h] == "numeric" and isinstance(x, str):
                    why = x
                    break
                values[h] = x
            if why is not None:
                yield Bad(rel, n, why)
                continue
            yield Record(f"{rel}:{n}", split, label, values, n)

    return Source("tabular", items, features={h: kinds[h] for h in features})
