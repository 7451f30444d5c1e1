"""``/audit`` (admin): the log of every mutating request."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from unified.routes.deps import ADMIN, MAX_PAGE, decode_cursor, offset_page, services
from unified.schemas import AuditOut, AuditPage
from unified.utils import iso

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[ADMIN])


@router.get("", response_model=AuditPage, summary="The audit log, newest first")
def list_audit(
    request: Request, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50, cursor: str | None = None
) -> AuditPage:
    """Who did what: key name, role, method, path, target and outcome of each mutating request; paginated."""
    offset = decode_cursor(cursor, "o") or 0
    found = services(request).store.list_audit(limit + 1, offset)
    items, next_cursor = offset_page(found, offset, limit)
    return AuditPage(items=[AuditOut(**{**asdict(a), "at": iso(a.at)}) for a in items], next_cursor=next_cursor)
