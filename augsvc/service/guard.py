"""Request guards of a service without tokens (``--no-auth``, loopback only), as ASGI middleware.

A loopback service without tokens is reachable from every web page the user's browser opens. Two browser attacks
remain once the service listens on loopback only, and each is refused here:

- **DNS rebinding**: a page on ``evil.example`` whose name then resolves to 127.0.0.1 reads the API as its own
  origin. The browser still sends ``Host: evil.example:PORT``, so a request whose Host is not a loopback name or
  the address the service serves is refused (421).
- **Cross-site writes**: a page may send a "simple" cross-origin POST (``text/plain``, a form) without asking first.
  A state-changing request must carry a non-simple content type (JSON or YAML; the browser asks the service first,
  and the service never allows other origins) or the ``X-Augsvc-Client`` header (which also forces that question),
  and a foreign ``Origin`` / ``Sec-Fetch-Site: cross-site`` is refused (403).

With tokens, a browser cannot attach the bearer token by itself, so neither guard is needed and neither applies.

Every ``/api`` response without its own ``Cache-Control`` gets ``no-store`` (listings and builds change).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

CLIENT_HEADER = "x-augsvc-client"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_SIMPLE_TYPES = {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _host_name(host: str) -> str:
    """``host`` of a Host header value ``host[:port]`` (IPv6 literals keep their brackets), lowercase."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: the Host and cross-site checks of a token-less service (``no_auth``), and the default
    ``Cache-Control: no-store`` of ``/api`` responses. ``allowed_hosts``: Host names the service answers to
    besides loopback names (the address it was told to serve)."""

    def __init__(self, app, *, no_auth: bool, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.no_auth = no_auth
        self.allowed = _LOOPBACK_NAMES | {_host_name(h) for h in allowed_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.no_auth:
            refusal = self.refusal(scope["method"], headers)
            if refusal is not None:
                return await _reply(send, *refusal)
        if not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)

        async def send_with_default(message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"cache-control" not in names:
                    message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-store")]
            await send(message)

        return await self.app(scope, receive, send_with_default)

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) for a request a token-less service must refuse, else None."""
        host = headers.get("host", "")
        if _host_name(host) not in self.allowed:
            return 421, (f"Host {host[:100]!r} is not an address this service serves: without tokens it answers "
                         "only to loopback names (a guard against DNS rebinding)")  # fmt: skip
        if method in _SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and _host_name(urlsplit(origin).netloc) not in self.allowed:
            return 403, "a cross-site request: without tokens the service accepts writes from its own page only"
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "a cross-site request: without tokens the service accepts writes from its own page only"
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype in _SIMPLE_TYPES and CLIENT_HEADER not in headers:
            return 415, ("without tokens a write needs Content-Type: application/json or application/yaml, or the "
                         "header 'X-Augsvc-Client: 1' (a guard against cross-site form posts)")  # fmt: skip
        return None


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


_QUERY_SECRET = re.compile(r"([?&][^=&]*(?:token|key|secret|password|auth)[^=&]*=)[^&\s]*", re.IGNORECASE)


class RedactQuery(logging.Filter):
    """Masks the values of query parameters that look like secrets (``?token=...``) in uvicorn's access log:
    tokens are never accepted there, but a client that sends one should not have it written to disk."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = _QUERY_SECRET.sub(r"\1***", args[2])
            record.args = tuple(args)
        return True
