"""Recipes: the catalogue of stage kinds and previews (nothing is written to the store)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from augsvc import api
from augsvc.service.bodies import parse_recipe_body
from augsvc.service.deps import BUILD, READ, body_of, service_of
from augsvc.service.models import RECIPE_BODY

router = APIRouter(prefix="/api", tags=["recipes"])


async def recipe_of(request: Request) -> dict:
    """The recipe in the request body (YAML, or JSON by content type), checked key by key (400 naming it)."""
    return parse_recipe_body(await body_of(request), request.headers.get("content-type", ""))


@router.get("/catalogue", dependencies=[READ], response_model=dict[str, dict[str, Any]])
def catalogue() -> dict:
    """Stage kinds with their parameters and defaults: ops, mix methods, generators, teacher."""
    return api.catalogue()


@router.post(
    "/preview",
    dependencies=[BUILD],
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "text/markdown": {}}, "description": "the preview"}},
    openapi_extra=RECIPE_BODY,
)
async def preview(request: Request, n: int = 8, copies: int = 3, cell: int = 96) -> Response:
    """What the recipe (YAML or JSON body) makes from a few rows of its input: a PNG grid for images, a
    Markdown table for text and tabular rows. Nothing is written to the store. Needs a build token: a recipe runs
    its stages on the service's machine and may name files there (a teacher checkpoint)."""
    recipe = await recipe_of(request)
    if not (1 <= n <= 64 and 1 <= copies <= 8 and 16 <= cell <= 256):
        raise HTTPException(422, "preview limits: 1 <= n <= 64, 1 <= copies <= 8, 16 <= cell <= 256")
    return await run_in_threadpool(render_preview, service_of(request).store, recipe, n, copies, cell)


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
