"""Reading the store: datasets, tags, manifests, verify and shard downloads.

Caching: a URL that names a full version id names immutable bytes, so its manifest and shards are sent
``immutable`` for a year (``private`` when tokens are configured: nothing authenticated is ``public``); a URL that
goes through a tag or an id prefix can name other bytes tomorrow, so it is ``no-cache`` (revalidate: the ETag, the
shard's sha256, makes that a 304). Everything else is ``no-store`` (:mod:`augsvc.service.guard`).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from augsvc import api
from augsvc.service.bodies import etag_matches, parse_range, read_range
from augsvc.service.deps import READ, check_name, service_of
from augsvc.service.models import DatasetInfo
from schemas.errors import AugsvcError
from schemas.manifest import Manifest

router = APIRouter(prefix="/api/datasets", tags=["datasets"], dependencies=[READ])
_SHARD_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.parquet")  # a file name inside a version's shards/
YEAR = 365 * 24 * 3600


def _resolved(request: Request, name: str, version: str) -> tuple[str, str]:
    check_name(name, "dataset")
    check_name(version, "version or tag")
    try:
        return api.resolve(f"{name}@{version}", store=service_of(request).store)
    except AugsvcError as e:
        raise HTTPException(404, str(e)) from None


def cache_control(request: Request, named: str, version: str) -> str:
    """``Cache-Control`` of a response about ``version`` reached through the path segment ``named``."""
    private = bool(service_of(request).cfg.tokens)
    if named == version:
        return f"{'private' if private else 'public'}, max-age={YEAR}, immutable"
    return "private, no-cache" if private else "no-cache"


@router.get("", response_model=list[DatasetInfo])
async def datasets(request: Request) -> Response:
    """Every dataset with its versions (newest first: rows, classes, parents, quarantine count) and tags."""
    listing = service_of(request).listing
    body = listing.cached_json() or await run_in_threadpool(listing.datasets_json)  # kept bytes: no thread hop
    return Response(body, media_type="application/json")


@router.get("/{name}", response_model=DatasetInfo)
def dataset(request: Request, name: str) -> dict:
    """One dataset, as in the listing."""
    check_name(name, "dataset")
    svc = service_of(request)
    versions = api.versions(name, store=svc.store)
    if not versions:
        raise HTTPException(404, f"no dataset {name!r} in the store")
    return svc.listing.dataset(name, versions)


@router.get("/{name}/tags", response_model=dict[str, str])
def tags(request: Request, name: str) -> dict[str, str]:
    """tag -> version id (empty when the dataset has none)."""
    check_name(name, "dataset")
    return api.tags(name, store=service_of(request).store)


@router.get("/{name}/versions/{version}/manifest", response_model=Manifest)
def manifest(request: Request, name: str, version: str) -> Response:
    """The manifest of ``name@version`` (``version``: an id, a unique prefix or a tag)."""
    ds, v = _resolved(request, name, version)
    body = service_of(request).listing.manifest(ds, v).model_dump_json()
    return Response(body, media_type="application/json",
                    headers={"Cache-Control": cache_control(request, version, v)})  # fmt: skip


@router.get("/{name}/versions/{version}/verify", response_model=api.VerifyResult,
            responses={429: {"description": "too many verifies running"}})  # fmt: skip
def verify(request: Request, name: str, version: str) -> dict:
    """Re-hash every shard against the manifest. At most ``verify_slots`` run at once (429 with Retry-After
    beyond: a verify reads the whole version)."""
    svc = service_of(request)
    ds, v = _resolved(request, name, version)
    if not svc.verify_slots.acquire(blocking=False):
        raise HTTPException(429, "too many verifies running; retry in a few seconds", {"Retry-After": "5"})
    try:
        return api.verify(f"{ds}@{v}", store=svc.store).model_dump()
    finally:
        svc.verify_slots.release()


_SHARD = "/{name}/versions/{version}/shards/{shard}"
_SHARD_RESPONSES: dict = {
    200: {"content": {"application/vnd.apache.parquet": {}}, "description": "the shard"},
    206: {"description": "a range of the shard"},
    304: {"description": "If-None-Match names the shard's ETag"},
    416: {"description": "a Range outside the file"},
}


@router.get(_SHARD, response_class=Response, responses=_SHARD_RESPONSES, operation_id="get_shard")
@router.head(_SHARD, response_class=Response, responses=_SHARD_RESPONSES, operation_id="head_shard")
def shard(request: Request, name: str, version: str, shard: str) -> Response:
    """One shard's bytes; ``X-Content-SHA256`` (and the ETag) carry the manifest's sha256 of the whole file.
    A ``Range: bytes=a-b`` header gets 206 with that part (a resumed download); ``If-None-Match`` with the ETag
    gets 304; ``HEAD`` gets the headers alone."""
    ds, v = _resolved(request, name, version)
    if not _SHARD_RE.fullmatch(shard):
        raise HTTPException(400, f"shard {shard!r} is not valid: a file name such as part-00000.parquet")
    svc = service_of(request)
    info = next((s for s in svc.listing.manifest(ds, v).shards if s.path == f"shards/{shard}"), None)
    if info is None:
        raise HTTPException(404, f"{ds}@{v} has no shard {shard!r}")
    f = api.open_shard_file(f"{ds}@{v}", info, store=svc.store)  # 400: a link out of the store, not a file
    etag = f'"{info.sha256}"'
    headers = {"ETag": etag, "X-Content-SHA256": info.sha256, "Accept-Ranges": "bytes",
               "Cache-Control": cache_control(request, version, v)}  # fmt: skip
    if etag_matches(request.headers.get("if-none-match"), etag):
        f.close()
        return Response(status_code=304, headers=headers)
    try:
        start, end = parse_range(request.headers.get("range"), info.bytes)
    except HTTPException:
        f.close()
        raise
    headers["Content-Length"] = str(end - start)
    status = 200
    if request.headers.get("range"):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.bytes}"
    if request.method == "HEAD":
        f.close()
        return Response(status_code=status, headers=headers, media_type="application/vnd.apache.parquet")
    return StreamingResponse(read_range(f, start, end), status_code=status, headers=headers,
                             media_type="application/vnd.apache.parquet")  # fmt: skip
