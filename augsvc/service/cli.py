"""``augsvc serve``: registered on the main CLI by :func:`register` (FastAPI and uvicorn imported when it runs)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from schemas.errors import AugsvcError


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: all; needs tokens).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    token_file: Annotated[
        str | None,
        typer.Option(help="Lines 'read <token>' / 'build <token>' (or $AUGSVC_TOKEN, $AUGSVC_READ_TOKEN)."),
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without tokens (loopback only).")] = False,
    db: Annotated[str | None, typer.Option(help="Build database (default <store>/.augsvc-service/...).")] = None,
    workers: Annotated[int | None, typer.Option(help="Workers per build (0 = in-process; default: all cores).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster (default $RAY_ADDRESS, else embedded Ray).")] = None,
    builds: Annotated[int, typer.Option(help="Builds run at the same time.")] = 1,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes.")] = 1 << 20,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="After a restart, fail interrupted builds.")] = False,
    store: Annotated[str | None, typer.Option("--store", help="Store root (default $AUGSVC_STORE).")] = None,
):
    """Serve the store over HTTP: submit and follow builds, list and download versions, preview recipes, a web page
    at / and the OpenAPI spec at /docs (see docs/service.md)."""
    import os

    import uvicorn

    from augsvc.service import ServiceConfig, create_app
    from augsvc.service.auth import load_tokens

    tokens = load_tokens(token_file)
    if not tokens and not no_auth:
        raise AugsvcError("no tokens: set $AUGSVC_TOKEN / $AUGSVC_READ_TOKEN or --token-file (--no-auth: loopback)")
    if not tokens and not _loopback(host):
        raise AugsvcError(f"--no-auth serves only on loopback, not {host}: give tokens to listen on other addresses")
    address = address or os.environ.get("RAY_ADDRESS") or None
    cfg = ServiceConfig(store=store, db=db, tokens=tokens, workers=workers, address=address, build_threads=builds,
                        max_body=max_body, resume=not no_resume, allowed_hosts=[host])  # fmt: skip
    app = create_app(cfg)
    svc = app.state.service
    typer.echo(f"augsvc serve: store {svc.store.shown}, builds in {svc.db.path}, "
               f"{'token auth' if tokens else 'NO AUTH (loopback)'}, http://{host}:{port}/")  # fmt: skip
    if svc.recovered:
        typer.echo(f"  {len(svc.recovered)} build(s) interrupted by the last stop: "
                   + ("queued again" if not no_resume else "marked failed"))  # fmt: skip
    if workers != 0 or address:
        # Ray starts here, in the main thread, before uvicorn installs its signal handlers: started later from a
        # build thread, Ray's own SIGTERM handler would end the process before the service shut down cleanly
        from pipelines.executor import ensure_ray

        ensure_ray(workers, address)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
    finally:
        import sys

        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``augsvc`` command."""
    app.command("serve")(serve)
