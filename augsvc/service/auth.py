"""Tokens: who may read and who may submit builds. Tokens come from a file and/or environment variables, are
compared in constant time (``hmac.compare_digest``) and never appear in messages or logs."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from schemas.errors import AugsvcError

ROLES = ("read", "build")  # a build token may also read
ENV_BUILD = "AUGSVC_TOKEN"
ENV_READ = "AUGSVC_READ_TOKEN"
MIN_LEN = 16


def load_tokens(token_file: str | Path | None = None, env: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    """(role, token) pairs from ``token_file`` (lines ``read <token>`` or ``build <token>``; ``#`` comments) and
    the variables ``AUGSVC_TOKEN`` (build) and ``AUGSVC_READ_TOKEN`` (read). AugsvcError names the file and line
    of a bad entry, never the token."""
    env = os.environ if env is None else env
    out: list[tuple[str, bytes]] = []
    for var, role in ((ENV_BUILD, "build"), (ENV_READ, "read")):
        if env.get(var):
            out.append((role, _checked(env[var].strip(), f"${var}")))
    if token_file is not None:
        path = Path(token_file)
        if not path.is_file():
            raise AugsvcError(f"{path}: token file not found")
        for i, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ROLES:
                raise AugsvcError(f"{path}:{i}: expected '<role> <token>' with role read or build")
            out.append((parts[0], _checked(parts[1], f"{path}:{i}")))
    return out


def _checked(token: str, where: str) -> bytes:
    if len(token) < MIN_LEN:
        raise AugsvcError(f"{where}: a token must have at least {MIN_LEN} characters (try: openssl rand -hex 24)")
    return token.encode()


def role_of(presented: str | None, tokens: list[tuple[str, bytes]]) -> str | None:
    """The role of the presented token (``build`` wins over ``read``), or None. Every configured token is
    compared, each in constant time, so the time taken does not say which one nearly matched."""
    if not presented:
        return None
    got = presented.encode()
    found: str | None = None
    for role, tok in tokens:
        if hmac.compare_digest(got, tok) and (found is None or role == "build"):
            found = role
    return found
