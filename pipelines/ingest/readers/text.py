"""Labelled text: CSV, TSV, JSONL and label-prefixed lines (``LABEL<sep>text``, e.g. TREC's ``DESC:manner How ...``).

A folder source holds one file per split (``TREC.train``/``TREC.test``); a file source is one split. Lines are
decoded one by one with ``--encoding`` so an undecodable line is reported with its line number.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.readers.textio import csv_records, decoded_lines
from pipelines.ingest.records import Bad, Record, relative, split_from_name
from schemas.errors import AugsvcError

TEXT_NAMES = re.compile(r"^(text|sms|sentence|review|content|message|body|question|document)$", re.I)
LABEL_NAMES = re.compile(r"^(label|class|category|target|y|sentiment)$", re.I)


def source(path: Path, opts: IngestOptions) -> Source:
    files = files_of(path)
    if not files:
        raise AugsvcError(f"{path}: no files")
    base = path if path.is_dir() else path.parent

    def items() -> Iterator[Record | Bad]:
        for f in files:
            rel = relative(f, base)
            split = opts.split if (opts.split and path.is_file()) else split_from_name(f.name, "train")
            reader = {"lines": _lines, "jsonl": _jsonl}.get(opts.format, _delimited)
            yield from reader(f, rel, split, opts)

    return Source("text", items)


def _record(rel: str, n: int, split: str, text: str | None, label: object) -> Record | Bad:
    label_s = "" if label is None else str(label).strip()
    if label_s == "":
        return Bad(rel, n, "missing label")
    if text is None or not str(text).strip():
        return Bad(rel, n, "empty text")
    return Record(f"{rel}:{n}", split, label_s, str(text), n)


def _lines(f: Path, rel: str, split: str, opts: IngestOptions) -> Iterator[Record | Bad]:
    sep = opts.label_sep
    for n, line in decoded_lines(f, opts.encoding, rel):
        if isinstance(line, Bad):
            yield line
            continue
        if not line.strip():
            continue  # blank lines separate nothing in this format; they are not items
        label, found, text = line.partition(sep)
        if not found:
            yield Bad(rel, n, f"no separator {sep!r} between label and text")
            continue
        if opts.label_level == "coarse":
            label = label.split(":", 1)[0]
        yield _record(rel, n, split, text.strip(), label)


def _json_label(value: object) -> str | None:
    """A JSON label as a class name: a string, or an integer (a float only when integral); None if not a label."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


def _jsonl(f: Path, rel: str, split: str, opts: IngestOptions) -> Iterator[Record | Bad]:
    tcol, lcol = opts.text_column or "text", opts.label_column or "label"
    for n, line in decoded_lines(f, opts.encoding, rel):
        if isinstance(line, Bad):
            yield line
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            yield Bad(rel, n, f"not valid JSON ({msg})")
            continue
        if not isinstance(obj, dict):
            yield Bad(rel, n, "not a JSON object")
            continue
        if tcol not in obj:
            yield Bad(rel, n, f"no key {tcol!r} (has {', '.join(obj)}); pass --text-column")
            continue
        text, label = obj[tcol], obj.get(lcol)
        if not isinstance(text, str):
            yield Bad(rel, n, f"{tcol!r} is {_json_kind(text)}, not a string")
            continue
        if label is not None and _json_label(label) is None:
            yield Bad(rel, n, f"{lcol!r} is {_json_kind(label)}; a label is a string or an integer")
            continue
        yield _record(rel, n, split, text, None if label is None else _json_label(label))


def _json_kind(value: object) -> str:
    """How a JSON value reads in an error message: 'an object', 'a list', 'true', 'NaN', 'the number 1.5'."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "infinite"
    return f"the number {value!r}"


def _column(spec: str | None, header: list[str] | None, pattern: re.Pattern, fallback: int, what: str) -> int:
    if spec is not None:
        if header is not None and spec in header:
            return header.index(spec)
        if spec.isdigit():
            return int(spec)
        raise AugsvcError(f"--{what}-column {spec!r}: no such column (columns: {', '.join(header or [])})")
    if header is not None:
        for i, h in enumerate(header):
            if pattern.match(h.strip()):
                return i
    return fallback


def _delimited(f: Path, rel: str, split: str, opts: IngestOptions) -> Iterator[Record | Bad]:
    delim = opts.delimiter or ("\t" if opts.format == "tsv" or f.suffix.lower() == ".tsv" else ",")
    quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
    records = csv_records(f, opts.encoding, rel, delim, quoting=quoting)
    first, first_line = None, 0
    for n, row in records:
        if isinstance(row, Bad):
            yield row
            continue
        first, first_line = row, n
        break
    if first is None:
        return
    header_flag = opts.header
    if header_flag is None:
        named = any(c is not None and not c.isdigit() for c in (opts.text_column, opts.label_column))
        header_flag = named or any(TEXT_NAMES.match(c.strip()) or LABEL_NAMES.match(c.strip()) for c in first)
    header = [c.strip() for c in first] if header_flag else None
    ncols = len(first)
    label_i = _column(opts.label_column, header, LABEL_NAMES, 0, "label")
    text_i = _column(opts.text_column, header, TEXT_NAMES, 1 if label_i == 0 else 0, "text")
    if max(label_i, text_i) >= ncols:
        raise AugsvcError(f"{rel}: has {ncols} columns; text column {text_i} / label column {label_i} out of range")
    if not header_flag:
        records = itertools.chain([(first_line, first)], records)
    for n, row in records:
        if isinstance(row, Bad):
            yield row
            continue
        if len(row) != ncols:
            yield Bad(rel, n, f"expected {ncols} fields separated by {delim!r}, got {len(row)}")
            continue
        yield _record(rel, n, split, row[text_i], row[label_i])
