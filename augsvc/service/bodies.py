"""Parsing what clients send (recipe bodies, Range headers) and streaming shard bytes back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException

from augsvc import api
from schemas.errors import AugsvcError
from schemas.validation import MAX_DEPTH, nesting_depth

CHUNK = 1 << 20


def parse_recipe_body(raw: bytes, content_type: str) -> dict:
    """A recipe mapping from a request body: JSON when the content type says so, else YAML (duplicate keys
    refused). AugsvcError (400) names the line of bad YAML, a body nested deeper than ``MAX_DEPTH`` levels, or the
    recipe key (checked by ``api.load_recipe``)."""
    import yaml

    from schemas.validation import _unique_key_loader

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AugsvcError("request body: the recipe is not UTF-8 text") from None
    if "\x00" in text:
        raise AugsvcError("request body: the recipe holds a NUL byte")
    too_deep = AugsvcError(f"request body: nested deeper than {MAX_DEPTH} levels; a recipe is a few levels deep")
    try:
        if "json" in content_type:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise AugsvcError(f"request body:{e.lineno}: not valid JSON: {e.msg}") from None
        else:
            try:
                data = yaml.load(text, Loader=_unique_key_loader())
            except yaml.YAMLError as e:
                mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
                where = f"request body:{mark.line + 1}" if mark is not None else "request body"
                raise AugsvcError(f"{where}: not valid YAML: {problem or ' '.join(str(e).split())}") from None
    except RecursionError:
        raise too_deep from None
    if nesting_depth(data) > MAX_DEPTH:
        raise too_deep
    if not isinstance(data, dict):
        raise AugsvcError(f"request body: a recipe is a mapping (input, output, stages), got {type(data).__name__}")
    api.load_recipe(data)  # every key checked (AugsvcError names it) before anything else happens
    return data


def parse_range(header: str | None, size: int) -> tuple[int, int]:
    """[start, end) for a single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range of a ``size``-byte file
    (the whole file without a header); 416 for anything else."""
    if not header:
        return 0, size
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (m[1] == "" and m[2] == ""):
        raise HTTPException(
            416, "Range: one range 'bytes=START-END' is supported", {"Content-Range": f"bytes */{size}"}
        )
    if m[1] == "":
        start, end = max(0, size - int(m[2])), size
    else:
        start = int(m[1])
        end = min(size, int(m[2]) + 1) if m[2] else size
    if start >= size or end <= start:
        raise HTTPException(416, f"Range outside the file ({size} bytes)", {"Content-Range": f"bytes */{size}"})
    return start, end


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` header names ``etag`` (or ``*``); weak tags compare by their value."""
    if not header:
        return False
    return any(t.strip().removeprefix("W/") in (etag, "*") for t in header.split(","))


def read_range(f: Any, start: int, end: int) -> Iterator[bytes]:
    """The bytes [start, end) of the open binary file ``f`` (from ``api.open_shard_file``), in 1 MiB chunks;
    closes ``f`` at the end."""
    with f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
