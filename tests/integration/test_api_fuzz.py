"""schemathesis against the app's OpenAPI, with an admin key: no 5xx, and every response fits its own schema."""

from __future__ import annotations

import secrets

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import tests.helpers.api_tasks  # noqa: F401  (registers tasks, so some generated requests succeed)
from unified.api import create_app
from unified.server import ServerSettings

ADMIN_KEY = secrets.token_urlsafe(32)
app = create_app(
    ServerSettings(database_url="memory://", workers=0, announce=False, admin_key=ADMIN_KEY, max_body_bytes=256 * 1024)
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_keeps_its_own_contract(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": ADMIN_KEY}, checks=CHECKS)
