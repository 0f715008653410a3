"""The HTTP service (FastAPI): a thin shell over :mod:`augsvc.api` plus a build queue in SQLite.

Every ``/api`` route but ``/api/health`` needs ``Authorization: Bearer <token>`` when tokens are configured:
a read token for GETs and previews, a build token to submit or cancel builds. Names in paths (datasets,
versions, tags, shards) are checked against the store's name rule before anything touches the store, and a shard is
served only when the manifest lists it. Bodies are capped (``max_body`` bytes, 413 beyond).
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from augsvc import api
from augsvc.service.auth import role_of
from augsvc.service.db import BuildDB
from augsvc.service.worker import BuildWorker
from schemas.errors import AugsvcError
from schemas.version import PACKAGE_VERSION

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHARD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.parquet$")
_STATIC = Path(__file__).parent / "static"
CHUNK = 1 << 20
# the page: its own inline script and styles, images from blob: URLs it makes, requests to this origin only
_PAGE_HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}  # fmt: skip


@dataclass
class ServiceConfig:
    """What ``augsvc serve`` configures. ``tokens`` empty means no authentication (only allowed on loopback by the
    CLI); ``db`` defaults to ``<store>/.augsvc-service/builds.sqlite3`` for a local store."""

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


class Service:
    """The app's state: the store, the build database and the worker."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.store = api.open_store(cfg.store)
        if cfg.db is None and not self.store.local:
            raise AugsvcError(f"store {self.store.shown} is remote: give the build database a local path (--db)")
        self.db = BuildDB(cfg.db or self.store.root / ".augsvc-service" / "builds.sqlite3")
        self.recovered = self.db.recover(resume=cfg.resume)
        self.worker = BuildWorker(self.db, self.store, workers=cfg.workers, address=cfg.address,
                                  threads=cfg.build_threads, poll_s=cfg.poll_s)  # fmt: skip


def check_name(value: str, what: str) -> str:
    """``value`` if it is a plain name (letters, digits, '.', '_', '-'; no '/', '..' start, NUL), else 400."""
    if not _NAME_RE.match(value):
        raise HTTPException(400, f"{what} {value!r} is not valid: use letters, digits, '.', '_' and '-'")
    return value


def create_app(cfg: ServiceConfig) -> FastAPI:
    """The FastAPI app for ``cfg`` (the worker starts with the app's lifespan when ``cfg.start_worker``)."""
    from contextlib import asynccontextmanager

    svc = Service(cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import sys

        def ray_up() -> bool:
            return "ray" in sys.modules and sys.modules["ray"].is_initialized()

        ray_before = ray_up()
        if cfg.start_worker:
            svc.worker.start()
        yield
        svc.worker.stop()
        if not ray_before and ray_up():
            sys.modules["ray"].shutdown()  # the Ray connection (embedded Ray) its builds started

    app = FastAPI(
        title="augsvc", version=PACKAGE_VERSION, lifespan=lifespan,
        description="Build, version and serve augmented datasets: submit recipes, follow builds, read versions.",
    )  # fmt: skip
    app.state.service = svc

    @app.exception_handler(AugsvcError)
    async def _augsvc_error(_req: Request, exc: AugsvcError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def need(role: str):
        def dep(request: Request) -> str:
            if not cfg.tokens:
                return "build"
            header = request.headers.get("authorization", "")
            scheme, _, tok = header.partition(" ")
            got = role_of(tok.strip() if scheme.lower() == "bearer" else None, cfg.tokens)
            if got is None:
                raise HTTPException(401, "missing or unknown token: send 'Authorization: Bearer <token>'",
                                    headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            if role == "build" and got != "build":
                raise HTTPException(403, "a read token: submitting or cancelling builds needs a build token")
            return got

        return Depends(dep)

    read, write = need("read"), need("build")

    async def body_of(request: Request) -> bytes:
        n = request.headers.get("content-length")
        if n is not None and (not n.isdigit() or int(n) > cfg.max_body):
            raise HTTPException(413, f"request body over {cfg.max_body} bytes")
        chunks, size = [], 0
        async for c in request.stream():
            size += len(c)
            if size > cfg.max_body:
                raise HTTPException(413, f"request body over {cfg.max_body} bytes")
            chunks.append(c)
        return b"".join(chunks)

    async def recipe_of(request: Request) -> dict:
        raw = await body_of(request)
        return parse_recipe_body(raw, request.headers.get("content-type", ""))

    # -- pages and health ---------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_STATIC / "index.html", media_type="text/html",
                            headers=_PAGE_HEADERS)  # fmt: skip

    @app.get("/api/health", tags=["service"])
    def health() -> dict:
        """Liveness: the package version, the store and the build counts by state (no token needed)."""
        counts = svc.db.counts()
        return {"ok": True, "version": PACKAGE_VERSION, "store": svc.store.shown, "builds": counts,
                "auth": bool(cfg.tokens)}  # fmt: skip

    @app.get("/api/catalogue", tags=["recipes"], dependencies=[read])
    def catalogue() -> dict:
        """Stage kinds with their parameters and defaults: ops, mix methods, generators, teacher."""
        return api.catalogue()

    # -- datasets -----------------------------------------------------------------------------------------------
    @app.get("/api/datasets", tags=["datasets"], dependencies=[read])
    def datasets() -> list[dict]:
        """Every dataset with its versions (newest first: rows, classes, parents, quarantine count) and tags."""
        return [dataset_info(svc.store, d) for d in svc.store.datasets()]

    @app.get("/api/datasets/{name}", tags=["datasets"], dependencies=[read])
    def dataset(name: str) -> dict:
        check_name(name, "dataset")
        if name not in svc.store.datasets():
            raise HTTPException(404, f"no dataset {name!r} in the store")
        return dataset_info(svc.store, name)

    @app.get("/api/datasets/{name}/tags", tags=["datasets"], dependencies=[read])
    def tags(name: str) -> dict[str, str]:
        check_name(name, "dataset")
        return tags_of(svc.store, name)

    def resolved(name: str, version: str) -> tuple[str, str]:
        check_name(name, "dataset")
        check_name(version, "version or tag")
        try:
            return svc.store.resolve(f"{name}@{version}")
        except AugsvcError as e:
            raise HTTPException(404, str(e)) from None

    @app.get("/api/datasets/{name}/versions/{version}/manifest", tags=["datasets"], dependencies=[read])
    def manifest(name: str, version: str) -> Response:
        """The manifest of ``name@version`` (``version``: an id, a unique prefix or a tag)."""
        ds, v = resolved(name, version)
        return Response(svc.store.manifest(ds, v).model_dump_json(), media_type="application/json")

    @app.get("/api/datasets/{name}/versions/{version}/verify", tags=["datasets"], dependencies=[read])
    def verify(name: str, version: str) -> dict:
        """Re-hash every shard against the manifest."""
        ds, v = resolved(name, version)
        return api.verify(f"{ds}@{v}", store=svc.store).model_dump()

    @app.get(
        "/api/datasets/{name}/versions/{version}/shards/{shard}",
        tags=["datasets"],
        dependencies=[read],
        responses={200: {"content": {"application/vnd.apache.parquet": {}}}, 206: {"description": "a range"}},
    )
    def shard(name: str, version: str, shard: str, request: Request) -> Response:
        """One shard's bytes; ``X-Content-SHA256`` (and the ETag) carry the manifest's sha256 of the whole file.
        A ``Range: bytes=a-b`` header gets 206 with that part (a resumed download)."""
        ds, v = resolved(name, version)
        if not _SHARD_RE.match(shard):
            raise HTTPException(400, f"shard {shard!r} is not valid: a file name such as part-00000.parquet")
        info = next((s for s in svc.store.manifest(ds, v).shards if s.path == f"shards/{shard}"), None)
        if info is None:
            raise HTTPException(404, f"{ds}@{v} has no shard {shard!r}")
        start, end = parse_range(request.headers.get("range"), info.bytes)
        headers = {
            "X-Content-SHA256": info.sha256,
            "ETag": f'"{info.sha256}"',
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        status = 200
        if request.headers.get("range"):
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.bytes}"
        ref = svc.store.shard_ref(ds, v, info.path)
        return StreamingResponse(read_range(ref, start, end), status_code=status, headers=headers,
                                 media_type="application/vnd.apache.parquet")  # fmt: skip

    # -- recipes ------------------------------------------------------------------------------------------------
    @app.post(
        "/api/preview",
        tags=["recipes"],
        dependencies=[write],
        responses={200: {"content": {"image/png": {}, "text/markdown": {}}}},
    )
    async def preview(request: Request, n: int = 8, copies: int = 3, cell: int = 96) -> Response:
        """What the recipe (YAML or JSON body) makes from a few rows of its input: a PNG grid for images, a
        Markdown table for text and tabular rows. Nothing is written to the store. Needs a build token: a recipe runs
        its stages on the service's machine and may name files there (a teacher checkpoint)."""
        recipe = await recipe_of(request)
        if not (1 <= n <= 64 and 1 <= copies <= 8 and 16 <= cell <= 256):
            raise HTTPException(422, "preview limits: 1 <= n <= 64, 1 <= copies <= 8, 16 <= cell <= 256")
        return await run_in_threadpool(render_preview, svc.store, recipe, n, copies, cell)

    # -- builds -------------------------------------------------------------------------------------------------
    @app.post("/api/builds", tags=["builds"], dependencies=[write], status_code=202)
    async def submit(request: Request) -> JSONResponse:
        """Queue a build of the recipe (YAML or JSON body). The version id is computed first (a dry run with every
        check), so a bad recipe is refused here and an identical submission returns the same build (200)."""
        recipe = await recipe_of(request)
        dry = await run_in_threadpool(api.build, recipe, store=svc.store, workers=0, dry_run=True)
        b, duplicate = svc.db.submit(dry.dataset, dry.version, recipe["input"], recipe, done=dry.up_to_date)
        svc.worker.wake()
        return JSONResponse(b | {"duplicate": duplicate}, status_code=200 if duplicate else 202)

    @app.get("/api/builds", tags=["builds"], dependencies=[read])
    def builds(state: str | None = None, limit: int = 200) -> list[dict]:
        """Builds, newest first (``state``: queued, running, succeeded, failed or cancelled)."""
        return svc.db.list(state, max(1, min(limit, 1000)))

    def get_build(bid: str) -> dict:
        if not re.fullmatch(r"[0-9a-f]{16}", bid):
            raise HTTPException(400, f"build id {bid!r} is not valid: 16 hex digits")
        b = svc.db.get(bid)
        if b is None:
            raise HTTPException(404, f"no build {bid}")
        return b

    @app.get("/api/builds/{bid}", tags=["builds"], dependencies=[read])
    def build(bid: str) -> dict:
        """One build: state, tasks done so far, the version id, the error of a failed build."""
        return get_build(bid)

    @app.get("/api/builds/{bid}/log", tags=["builds"], dependencies=[read], response_class=PlainTextResponse)
    def build_log(bid: str) -> str:
        get_build(bid)
        return "\n".join(svc.db.log(bid)) + "\n"

    @app.get("/api/builds/{bid}/recipe", tags=["builds"], dependencies=[read])
    def build_recipe(bid: str) -> dict:
        get_build(bid)
        return svc.db.recipe(bid) or {}

    @app.post("/api/builds/{bid}/cancel", tags=["builds"], dependencies=[write])
    def cancel(bid: str) -> dict:
        """Cancel a queued build, or stop a running one after its current task (finished tasks are kept)."""
        get_build(bid)
        return svc.db.request_cancel(bid) or {}

    @app.get("/api/builds/{bid}/events", tags=["builds"], dependencies=[read])
    async def events(bid: str, timeout: float = 60.0) -> StreamingResponse:
        """Server-sent events: the build's JSON each time it changes, until it ends (or ``timeout`` seconds)."""
        get_build(bid)

        async def gen() -> Any:
            last, t_end = None, time.monotonic() + min(timeout, 600.0)
            while time.monotonic() < t_end:
                b = svc.db.get(bid)
                if b != last:
                    yield f"data: {json.dumps(b)}\n\n"
                    last = b
                if b is None or b["state"] not in ("queued", "running"):
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


def parse_recipe_body(raw: bytes, content_type: str) -> dict:
    """A recipe mapping from a request body: JSON when the content type says so, else YAML (duplicate keys
    refused). AugsvcError (400) names the line of bad YAML; the recipe itself is checked by ``api.load_recipe``."""
    import yaml

    from schemas.validation import _unique_key_loader

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AugsvcError("request body: the recipe is not UTF-8 text") from None
    if "\x00" in text:
        raise AugsvcError("request body: the recipe holds a NUL byte")
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


def read_range(ref: str, start: int, end: int) -> Iterator[bytes]:
    """The bytes [start, end) of a local path or store URI, in 1 MiB chunks."""
    from pipelines import storefs

    if storefs.is_local(ref):
        with open(ref.removeprefix("file://"), "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        return
    fs, path = storefs.resolve(ref)
    with fs.open_input_file(path) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def tags_of(store: Any, dataset: str) -> dict[str, str]:
    """tag -> version id of ``dataset`` (empty when it has none)."""
    import pyarrow.fs as pafs

    from pipelines import storefs

    fs, path = storefs.resolve(store.ref(dataset, "tags"))
    out = {}
    for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
        if i.type == pafs.FileType.File and _NAME_RE.match(i.base_name):
            with fs.open_input_stream(i.path) as f:
                out[i.base_name] = f.read().decode().strip()
    return dict(sorted(out.items()))


def dataset_info(store: Any, dataset: str) -> dict:
    """A dataset's versions (newest first) with rows, classes, lineage and quarantine, and its tags."""
    versions = []
    for v in store.versions(dataset):
        m = store.manifest(dataset, v)
        versions.append({
            "version": v, "created": m.created, "modality": m.modality, "rows": m.rows,
            "rows_per_class": m.rows_per_class, "rows_per_split": m.rows_per_split, "parents": m.parents,
            "kind": m.definition.get("kind"), "shards": len(m.shards), "soft_labels": m.soft_labels,
            "quarantined": len(m.quarantine),
            "quarantine": [q.model_dump() for q in m.quarantine[:20]],
        })  # fmt: skip
    versions.sort(key=lambda x: str(x["created"]), reverse=True)
    return {"name": dataset, "versions": versions, "tags": tags_of(store, dataset)}


def render_preview(store: Any, recipe: dict, n: int, copies: int, cell: int) -> Response:
    """``api.preview`` into a temporary folder: PNG bytes for image inputs, else the Markdown table."""
    with tempfile.TemporaryDirectory(prefix="augsvc-preview-") as d:
        m = api.show(api.load_recipe(recipe).input, store=store)
        if m.modality == "image":
            out = Path(d) / "preview.png"
            api.preview(recipe, out, store=store, n=n, copies=copies, cell=cell)
            return Response(out.read_bytes(), media_type="image/png", headers={"Cache-Control": "no-store"})
        text = api.preview(recipe, None, store=store, n=n, copies=copies, cell=cell)
        return Response(text, media_type="text/markdown; charset=utf-8")
