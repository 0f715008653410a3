"""Labelled text: CSV, TSV, JSONL and label-prefixed lines (``LABEL<sep>text``, e.g. TREC's ``DESC:manner How ...``).

A folder source holds one file per split (``TREC.train``/``TREC.test``); a file source is one split. Lines are
decoded one by one with ``--encoding`` so an undecodable line is reported with its line number.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.records import Bad, Record, relative, split_from_name
from schemas.errors import AugsvcError

TEXT_NAMES = re.compile(r"^(text|sms|sentence|review|content|message|body|question|document)$", re.I)
LABEL_NAMES = re.compile(r"^(label|class|category|target|y|sentiment)$", re.I)


def decoded_lines(path: Path, encoding: str, rel: str) -> Iterator[tuple[int, str | Bad]]:
    """(line number, text or Bad) for every physical line, without the line ending."""
    try:
        "".encode(encoding)
    except LookupError as e:
        raise AugsvcError(f"unknown --encoding {encoding!r}") from e
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            raw = raw.rstrip(b"\r\n")
            if n == 1 and raw.startswith(b"\xef\xbb\xbf") and encoding.replace("-", "").lower() == "utf8":
                raw = raw[3:]
            try:
                yield n, raw.decode(encoding)
            except UnicodeDecodeError as e:
                yield (
                    n,
                    Bad(
                        rel,
                        n,
                        f"cannot decode as {encoding} (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                        "pass --encoding (for example latin-1) or fix the line",
                    ),
                )


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
        except json.JSONDecodeError as e:
            yield Bad(rel, n, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield Bad(rel, n, "not a JSON object")
            continue
        if tcol not in obj:
            yield Bad(rel, n, f"no key {tcol!r} (has {', '.join(obj)}); pass --text-column")
            continue
        yield _record(rel, n, split, obj[tcol], obj.get(lcol))


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
    numbered = list(decoded_lines(f, opts.encoding, rel))
    good = [(n, t) for n, t in numbered if not isinstance(t, Bad)]
    for _, t in numbered:
        if isinstance(t, Bad):
            yield t
    if not good:
        return
    first = next(csv.reader([good[0][1]], delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else 0))
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
    rows = good[1:] if header_flag else good
    # csv may join physical lines (quoted newlines): feed lines and map back to the first line of each row
    line_iter = iter(rows)
    current = [0]

    def feed() -> Iterator[str]:
        for n, t in line_iter:
            current[0] = n
            yield t

    quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(feed(), delimiter=delim, quoting=quoting)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield Bad(rel, current[0], f"malformed {opts.format} row ({e})")
            continue
        n = current[0]
        if len(row) != ncols:
            yield Bad(rel, n, f"expected {ncols} fields separated by {delim!r}, got {len(row)}")
            continue
        yield _record(rel, n, split, row[text_i], row[label_i])
