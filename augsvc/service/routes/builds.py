"""Builds: submit a recipe, follow it (state, log, events), cancel it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from augsvc import api
from augsvc.service.deps import BUILD, READ, check_build_id, service_of
from augsvc.service.models import RECIPE_BODY, Build, BuildState, Submitted
from augsvc.service.routes.recipes import recipe_of

router = APIRouter(prefix="/api/builds", tags=["builds"])


def _get(request: Request, bid: str) -> dict:
    b = service_of(request).db.get(check_build_id(bid))
    if b is None:
        raise HTTPException(404, f"no build {bid}")
    return b


@router.post(
    "",
    dependencies=[BUILD],
    status_code=202,
    response_model=Submitted,
    responses={200: {"model": Submitted, "description": "an identical build (duplicate: true)"}},
    openapi_extra=RECIPE_BODY,
)
async def submit(request: Request) -> JSONResponse:
    """Queue a build of the recipe (YAML or JSON body). The version id is computed first (a dry run with every
    check), so a bad recipe is refused here, and an identical submission returns the same build (200) while it is
    queued or running, or when it succeeded and its version is still in the store; otherwise it is queued again."""
    svc = service_of(request)
    recipe = await recipe_of(request)
    dry = await run_in_threadpool(api.plan, recipe, store=svc.store)  # every check, no re-hash of the input
    b, duplicate = svc.db.submit(dry.dataset, dry.version, recipe["input"], recipe, done=dry.up_to_date)
    svc.worker.wake()
    return JSONResponse(b | {"duplicate": duplicate}, status_code=200 if duplicate else 202)


@router.get("", dependencies=[READ], response_model=list[Build])
def builds(request: Request, state: BuildState | None = None, limit: int = 200) -> list[dict]:
    """Builds, newest first (``state``: one of the build states)."""
    return service_of(request).db.list(state, max(1, min(limit, 1000)))


@router.get("/{bid}", dependencies=[READ], response_model=Build)
def build(request: Request, bid: str) -> dict:
    """One build: state, tasks done so far, the version id, the error of a failed build."""
    return _get(request, bid)


@router.get("/{bid}/log", dependencies=[READ], response_class=PlainTextResponse)
def build_log(request: Request, bid: str) -> str:
    """The build's log lines (text)."""
    _get(request, bid)
    return "\n".join(service_of(request).db.log(bid)) + "\n"


@router.get("/{bid}/recipe", dependencies=[READ], response_model=dict[str, Any])
def build_recipe(request: Request, bid: str) -> dict:
    """The recipe as submitted."""
    _get(request, bid)
    return service_of(request).db.recipe(bid) or {}


@router.post("/{bid}/cancel", dependencies=[BUILD], response_model=Build)
def cancel(request: Request, bid: str) -> dict:
    """Cancel a queued build, or stop a running one after its current task (finished tasks are kept)."""
    _get(request, bid)
    return service_of(request).db.request_cancel(bid)


_EVENTS = {200: {"content": {"text/event-stream": {}}, "description": "the build, each time it changes"}}


@router.get("/{bid}/events", dependencies=[READ], response_class=StreamingResponse, responses=_EVENTS)
async def events(request: Request, bid: str, timeout: float = 60.0) -> StreamingResponse:
    """Server-sent events: the build's JSON each time it changes, until it ends (or ``timeout`` seconds)."""
    _get(request, bid)
    db = service_of(request).db

    async def gen() -> Any:
        last, t_end = None, time.monotonic() + min(timeout, 600.0)
        while time.monotonic() < t_end:
            b = db.get(bid)
            if b != last:
                yield f"data: {json.dumps(b)}\n\n"
                last = b
            if b is None or not BuildState(b["state"]).live:
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(gen(), media_type="text/event-stream")
