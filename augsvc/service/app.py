"""The HTTP service (FastAPI): a thin shell over :mod:`augsvc.api` plus a build queue in SQLite.

The routes live in three routers (:mod:`augsvc.service.routes`: ``datasets``, ``recipes``, ``builds``); this module
holds the configuration, the service state and the app that mounts them. Every ``/api`` route but ``/api/health``
needs ``Authorization: Bearer <token>`` when tokens are configured: a read token for GETs, a build token to submit
or cancel builds and to preview. Without tokens (``--no-auth``, loopback only) :mod:`augsvc.service.guard` refuses
foreign Host headers and cross-site writes. Names in paths (datasets, versions, tags, shards) are checked against the
store's name rule before anything touches the store, and a shard is served only when the manifest lists it. Bodies
are capped (``max_body`` bytes, 413 beyond). docs/service.md, "Security model", says what each token may do.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from augsvc import api
from augsvc.service.db import BuildDB
from augsvc.service.guard import Guard, RedactQuery
from augsvc.service.listing import Listing
from augsvc.service.models import Health
from augsvc.service.worker import BuildWorker
from schemas.errors import AugsvcError
from schemas.version import PACKAGE_VERSION

_STATIC = Path(__file__).parent / "static"
# the page: its own inline script and styles, images from blob: URLs it makes, requests to this origin only
_PAGE_HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}  # fmt: skip
log = logging.getLogger("augsvc.service")


@dataclass
class ServiceConfig:
    """What ``augsvc serve`` configures. ``tokens`` empty means no authentication (only allowed on loopback by the
    CLI); ``db`` defaults to ``<store>/.augsvc-service/builds.sqlite3`` for a local store; ``allowed_hosts``: Host
    names a token-less service answers to besides loopback names; ``verify_slots``: verifies run at once."""

    store: Any = None
    db: str | Path | None = None
    tokens: list[tuple[str, bytes]] = field(default_factory=list)
    workers: int | None = None
    address: str | None = None
    build_threads: int = 1
    max_body: int = 1 << 20
    resume: bool = True
    start_worker: bool = True
    poll_s: float = 1.0
    allowed_hosts: list[str] = field(default_factory=list)
    verify_slots: int = 2


class Service:
    """The app's state: the store, its listing cache, the build database (one live service per database: a second
    one is refused before it touches the builds) and the worker."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.store = api.open_store(cfg.store)
        if cfg.db is None and not self.store.local:
            raise AugsvcError(f"store {self.store.shown} is remote: give the build database a local path (--db)")
        self.db = BuildDB(cfg.db or self.store.root / ".augsvc-service" / "builds.sqlite3")
        self.recovered = self.db.recover(resume=cfg.resume)
        self.listing = Listing(self.store)
        self.verify_slots = threading.BoundedSemaphore(cfg.verify_slots)
        self.worker = BuildWorker(self.db, self.store, workers=cfg.workers, address=cfg.address,
                                  threads=cfg.build_threads, poll_s=cfg.poll_s)  # fmt: skip


def create_app(cfg: ServiceConfig) -> FastAPI:
    """The FastAPI app for ``cfg`` (the worker starts with the app's lifespan when ``cfg.start_worker``; the
    build database is released when the lifespan ends)."""
    from contextlib import asynccontextmanager

    from fastapi_offline import FastAPIOffline

    from augsvc.service.routes import builds, datasets, recipes

    svc = Service(cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import sys

        def ray_up() -> bool:
            return "ray" in sys.modules and sys.modules["ray"].is_initialized()

        redact = RedactQuery()
        logging.getLogger("uvicorn.access").addFilter(redact)
        ray_before = ray_up()
        if cfg.start_worker:
            svc.worker.start()
        yield
        svc.worker.stop()
        logging.getLogger("uvicorn.access").removeFilter(redact)
        if not ray_before and ray_up():
            sys.modules["ray"].shutdown()  # the Ray connection (embedded Ray) its builds started

    # Swagger UI and ReDoc from the fastapi-offline package's files: /docs works without internet
    app = FastAPIOffline(
        title="augsvc", version=PACKAGE_VERSION, lifespan=lifespan, static_url="/docs-assets",
        description="Build, version and serve augmented datasets: submit recipes, follow builds, read versions.",
    )  # fmt: skip
    app.state.service = svc
    app.add_middleware(Guard, no_auth=not cfg.tokens, allowed_hosts=cfg.allowed_hosts)

    @app.exception_handler(AugsvcError)
    async def _augsvc_error(_req: Request, exc: AugsvcError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RecursionError)
    async def _too_deep(_req: Request, _exc: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "request: nested too deeply"}, status_code=400)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_STATIC / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/api/health", tags=["service"], response_model=Health)
    def health() -> dict:
        """Liveness: the package version, the store and the build counts by state (no token needed)."""
        return {"ok": True, "version": PACKAGE_VERSION, "store": svc.store.shown, "builds": svc.db.counts(),
                "auth": bool(cfg.tokens)}  # fmt: skip

    for r in (datasets.router, recipes.router, builds.router):
        app.include_router(r)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's description plus the recipe's JSON schema (the request body of builds and previews)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        from schemas.recipe import Recipe

        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        recipe = Recipe.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(recipe.pop("$defs", {}))
        schemas["Recipe"] = recipe
        app.openapi_schema = spec
    return app.openapi_schema


# kept importable from here (older callers and tests)
from augsvc.service.bodies import parse_range, parse_recipe_body  # noqa: E402,F401
from augsvc.service.deps import check_name  # noqa: E402,F401
