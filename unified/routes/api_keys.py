"""``/api-keys`` (admin): create a key (its secret is shown once), list, read and revoke keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from unified.auth import key_dict
from unified.routes.deps import ADMIN, services, set_target, timestamp
from unified.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut

router = APIRouter(prefix="/api-keys", tags=["api-keys"], dependencies=[ADMIN])


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED, summary="Create an API key")
def create_key(request: Request, body: ApiKeyIn) -> ApiKeyCreated:
    """Create a key; the response carries its secret this once (only a hash is stored)."""
    record, key = services(request).keys.create(body.name, body.role, timestamp(body.expires_at), body.owner)
    set_target(request, record.key_id)
    return ApiKeyCreated(**key_dict(record), key=key)


@router.get("", response_model=list[ApiKeyOut], summary="List API keys")
def list_keys(request: Request) -> list[ApiKeyOut]:
    """Every key's public fields, oldest first."""
    return [ApiKeyOut(**key_dict(r)) for r in services(request).keys.list()]


@router.get("/{key_id}", response_model=ApiKeyOut, summary="An API key")
def get_key(request: Request, key_id: str) -> ApiKeyOut:
    """One key's public fields."""
    return ApiKeyOut(**key_dict(services(request).store.get_api_key(key_id)))


@router.delete("/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_key(request: Request, key_id: str) -> ApiKeyOut:
    """Revoke a key at once (idempotent); the last working admin key cannot be revoked (409)."""
    keys = services(request).keys
    set_target(request, key_id)
    return ApiKeyOut(**key_dict(keys.revoke(key_id)))
