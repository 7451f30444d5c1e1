"""``/metrics``: Prometheus text (viewer role; scrapers send the key as a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from unified.errors import NotFoundError
from unified.metrics import CONTENT_TYPE
from unified.routes.deps import VIEWER, services

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[VIEWER],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    """Tasks and runs by state, queue depth, attempt durations and scheduler lag, in the Prometheus text format."""
    collector = services(request).metrics
    if collector is None:
        raise NotFoundError("metrics are off in this server")
    return Response(collector.render(), media_type=CONTENT_TYPE)
