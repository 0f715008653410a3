"""What the service's routes return (pydantic response models, so ``/openapi.json`` describes every response) and
the build-state enum the build database, the worker and the routes share."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class BuildState(StrEnum):
    """A build's life: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def live(self) -> bool:
        """Queued or running: the build may still change."""
        return self in (BuildState.queued, BuildState.running)


class Health(BaseModel):
    ok: bool
    version: str
    store: str
    builds: dict[str, int] = Field(description="state -> number of builds")
    auth: bool = Field(description="whether tokens are required (false: --no-auth, loopback only)")


class VersionInfo(BaseModel):
    version: str
    created: str | None
    modality: str
    rows: int
    rows_per_class: dict[str, int]
    rows_per_split: dict[str, int]
    parents: list[str]
    kind: str | None
    shards: int
    soft_labels: bool
    quarantined: int
    quarantine: list[dict[str, Any]] = Field(description="the first 20 quarantined items")


class DatasetInfo(BaseModel):
    name: str
    versions: list[VersionInfo] = Field(description="newest first")
    tags: dict[str, str] = Field(description="tag -> version id")


class Build(BaseModel):
    id: str = Field(description="16 hex digits of sha256('output@version')")
    dataset: str
    version: str
    input: str
    state: BuildState
    tasks_done: int
    reused_tasks: int
    rows_out: int | None
    error: str | None
    attempts: int
    cancel_requested: bool
    submitted: float = Field(description="Unix time (s)")
    started: float | None
    finished: float | None


class Submitted(Build):
    duplicate: bool = Field(description="an identical build was already queued, running or succeeded")


class Problem(BaseModel):
    detail: str


#: the request body of ``POST /api/builds`` and ``POST /api/preview`` in the OpenAPI description
RECIPE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A recipe (docs/ops.md): YAML, or JSON with Content-Type: application/json.",
        "content": {
            "application/yaml": {"schema": {"$ref": "#/components/schemas/Recipe"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/Recipe"}},
        },
    }
}
