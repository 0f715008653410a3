"""Decoding text files and parsing CSV records, shared by the text, tabular and parallel-text readers.

Bytes are decoded before lines are split (so a multi-byte encoding such as UTF-16 splits right), in blocks that end
at a newline byte for ASCII-compatible encodings (memory stays bounded; an undecodable line is reported with its
number). CSV goes through the ``csv`` module fed with whole physical lines, so a quoted field may hold newlines:
such a record is one item whose line number is its first physical line.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

from pipelines.ingest.records import Bad
from schemas.errors import AugsvcError

BLOCK_BYTES = 1 << 20
# Fields up to this many characters are read (the csv module's default limit is 131,072); longer ones are bad items.
FIELD_LIMIT = 64 << 20


def _check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError as e:
        raise AugsvcError(f"unknown --encoding {encoding!r}") from e


def _decode_error(rel: str, n: int, raw: bytes, e: UnicodeDecodeError, encoding: str) -> Bad:
    return Bad(
        rel,
        n,
        f"cannot decode as {encoding} (byte {raw[e.start]:#04x} at column {e.start + 1}); "
        "pass --encoding (for example latin-1) or fix the line",
    )


_WIDE_BOMS = {b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16", b"\xff\xfe\x00\x00": "utf-32"}


def _refuse_wide(rel: str, head: bytes, encoding: str) -> None:
    """AugsvcError when a file read with an ASCII-compatible ``encoding`` is UTF-16/32 (a byte-order mark, or NUL
    bytes between most characters): read that way its text would be interleaved with NULs, silently."""
    head = head[:4096]
    bom = next((enc for b, enc in sorted(_WIDE_BOMS.items(), key=lambda kv: -len(kv[0])) if head.startswith(b)), None)
    if bom is None and head and head.count(0) * 4 >= len(head):
        bom = "utf-16"
    if bom is not None:
        raise AugsvcError(
            f"{rel}: looks like {bom.upper()} text (a byte-order mark or NUL bytes between characters), not "
            f"{encoding}; pass --encoding {bom}"
        )


def decoded_lines(path: Path, encoding: str, rel: str, *, keepends: bool = False) -> Iterator[tuple[int, str | Bad]]:
    """(line number, text or Bad) for every physical line (split at ``\\n``), in order.

    ``keepends``: each line keeps its ``\\n`` (what the ``csv`` module needs); otherwise ``\\r\\n``/``\\n`` are
    stripped. A UTF-8 byte-order mark is dropped. Raises AugsvcError for an unknown encoding, or for a file in an
    encoding that is not ASCII-compatible (UTF-16/32) that does not decode as a whole.
    """
    name = _check_encoding(encoding)
    ascii_compatible = "\n".encode(name) == b"\n" and name not in ("utf-16", "utf-32")
    strip_bom = name == "utf-8"

    def out(n: int, line: str, last: bool):
        if keepends:
            return n, line if last else line + "\n"
        return n, line[:-1] if line.endswith("\r") else line

    if not ascii_compatible:
        data = path.read_bytes()
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            msg = f"{rel}: cannot decode as {encoding} (at byte {e.start}); pass the right --encoding"
            raise AugsvcError(msg) from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
            last_has_newline = True
        else:
            last_has_newline = False
        for i, line in enumerate(lines):
            yield out(i + 1, line, i == len(lines) - 1 and not last_has_newline)
        return

    n = 0
    with open(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(BLOCK_BYTES)
            eof = not block
            data = rest + block
            if not eof:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # a line longer than a block: keep reading
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
            if n == 0 and strip_bom and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            if n == 0:
                _refuse_wide(rel, data, name)
            if data:
                raws = data.split(b"\n")
                ends_with_newline = raws[-1] == b""
                if ends_with_newline:
                    raws.pop()
                try:
                    lines = data.decode(encoding).split("\n")
                    if ends_with_newline:
                        lines.pop()
                    decoded = len(lines) == len(raws)
                except UnicodeDecodeError:
                    decoded = False
                for i, raw in enumerate(raws):
                    n += 1
                    last = eof and i == len(raws) - 1 and not ends_with_newline
                    if decoded:
                        yield out(n, lines[i], last)
                        continue
                    try:
                        yield out(n, raw.decode(encoding), last)
                    except UnicodeDecodeError as e:
                        yield n, _decode_error(rel, n, raw.rstrip(b"\r"), e, encoding)
            if eof:
                return


def csv_records(
    path: Path, encoding: str, rel: str, delimiter: str, *, quoting: int = csv.QUOTE_MINIMAL
) -> Iterator[tuple[int, list[str] | Bad]]:
    """(first physical line, fields) of every non-blank CSV record of a file, or (line, Bad), in file order.

    A quoted field may span lines (one record, numbered by its first line). A quote that is never closed is one bad
    item naming the line it opened on and the lines it swallowed; so is malformed quoting (``"a"b``) and a field
    longer than ``FIELD_LIMIT`` characters; undecodable lines are bad items. Reading goes on after each.
    """
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    numbers: list[int] = []  # physical line numbers in the order they were fed to the parser
    undecodable: list[Bad] = []

    def feed() -> Iterator[str]:
        for n, t in decoded_lines(path, encoding, rel, keepends=True):
            if isinstance(t, Bad):
                undecodable.append(t)
                continue
            numbers.append(n)
            yield t

    reader = csv.reader(feed(), delimiter=delimiter, quoting=quoting, strict=quoting != csv.QUOTE_NONE)
    while True:
        start = reader.line_num
        try:
            row = next(reader)
            err = None
        except StopIteration:
            break
        except csv.Error as e:
            row, err = None, str(e)
        while undecodable:
            b = undecodable.pop(0)
            yield b.line, b
        if start >= len(numbers):
            break
        first, last = numbers[start], numbers[reader.line_num - 1] if reader.line_num else numbers[start]
        if err is not None:
            if "unexpected end of data" in err:
                span = f"lines {first}-{last}" if last > first else f"line {first}"
                reason = f"a quoted field opened on line {first} is never closed ({span} swallowed); close the quote"
            elif "field larger than field limit" in err:
                reason = f"a field is longer than {FIELD_LIMIT:,} characters (the CSV field limit)"
            else:
                reason = f"malformed CSV ({err}); quote fields that hold quotes, delimiters or newlines"
            yield first, Bad(rel, first, reason)
            continue
        if not row:
            continue  # blank line
        yield first, row
    for b in undecodable:
        yield b.line, b
