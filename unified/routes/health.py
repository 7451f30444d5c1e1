"""``/health``: is the server up (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from unified import __version__
from unified.routes.deps import services
from unified.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Is the server up (no API key needed)")
def health(request: Request) -> Health:
    """The server is up: version, store kind, workers and whether the scheduler runs here."""
    svc = services(request)
    return Health(
        version=__version__,
        store=svc.store.url.split(":", 1)[0],
        workers=svc.workers,
        scheduler=svc.scheduler is not None,
    )
