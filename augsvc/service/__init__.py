"""``augsvc serve``: the HTTP service (FastAPI app, build queue in SQLite, web page); see docs/service.md.

``create_app`` and ``ServiceConfig`` live in :mod:`augsvc.service.app` (imported on first use, so the CLI's
``--help`` does not load FastAPI)."""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from augsvc.service import app

        return getattr(app, name)
    raise AttributeError(name)
