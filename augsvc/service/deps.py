"""What every router needs: the service behind the app, the token check (an HTTP bearer scheme, so the OpenAPI
description says how to authenticate), the capped request body and the name rule for path parameters."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from augsvc.service.auth import role_of

if TYPE_CHECKING:
    from augsvc.service.app import Service

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # always fullmatch: no trailing newline
_BUILD_ID_RE = re.compile(r"[0-9a-f]{16}")
bearer = HTTPBearer(
    auto_error=False,
    description="a read token (GET routes) or a build token (also builds, previews, cancels); "
    "not needed when the service runs with --no-auth",
)


def service_of(request: Request) -> Service:
    """The :class:`augsvc.service.app.Service` of the app serving ``request``."""
    return request.app.state.service


def need(role: str) -> Any:
    """A dependency that lets the request through when it carries a token of ``role`` (a build token also reads):
    401 without a known token, 403 for a read token on a build route; everything passes with ``--no-auth``."""

    async def dep(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        # async: a few comparisons, run on the event loop instead of a worker thread per request
        tokens = service_of(request).cfg.tokens
        if not tokens:
            return "build"
        got = role_of(cred.credentials.strip() if cred is not None else None, tokens)
        if got is None:
            raise HTTPException(401, "missing or unknown token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        if role == "build" and got != "build":
            raise HTTPException(403, "a read token: submitting or cancelling builds needs a build token")
        return got

    return Depends(dep)


READ, BUILD = need("read"), need("build")


def check_name(value: str, what: str) -> str:
    """``value`` if it is a plain name (letters, digits, '.', '_', '-'; no '/', '..' start, NUL), else 400."""
    if not _NAME_RE.fullmatch(value):
        raise HTTPException(400, f"{what} {value!r} is not valid: use letters, digits, '.', '_' and '-'")
    return value


def check_build_id(bid: str) -> str:
    if not _BUILD_ID_RE.fullmatch(bid):
        raise HTTPException(400, f"build id {bid!r} is not valid: 16 hex digits")
    return bid


async def body_of(request: Request) -> bytes:
    """The request body, at most ``max_body`` bytes (413 beyond, with or without a Content-Length)."""
    cap = service_of(request).cfg.max_body
    n = request.headers.get("content-length")
    if n is not None and (not n.isdigit() or int(n) > cap):
        raise HTTPException(413, f"request body over {cap} bytes")
    chunks, size = [], 0
    async for c in request.stream():
        size += len(c)
        if size > cap:
            raise HTTPException(413, f"request body over {cap} bytes")
        chunks.append(c)
    return b"".join(chunks)
