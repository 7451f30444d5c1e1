"""API keys and roles: keys are random, hashed and shown once; revoked and expired keys stop working."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import pytest

from tests.integration.conftest import Api
from unified.auth import ApiKeys, Role, key_id_of
from unified.errors import AuthenticationError, PermissionDeniedError, ValidationError
from unified.store.memory import MemoryStore
from unified.utils import FakeClock


@pytest.fixture
def keys(clock: FakeClock) -> ApiKeys:
    return ApiKeys(MemoryStore(), clock)


def test_a_key_is_random_shown_once_and_stored_only_as_a_hash(keys: ApiKeys) -> None:
    record, key = keys.create("ci", "operator")
    other = keys.create("ci", "operator")[1]
    assert key != other and len(key.split("_", 2)[2]) >= 43, "32 random bytes, url-safe"
    stored = keys.store.get_api_key(record.key_id)
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(asdict(stored)) and key.split("_", 2)[2] not in repr(asdict(stored))
    principal = keys.authenticate(key)
    assert (principal.name, principal.role) == ("ci", Role.OPERATOR)


def test_wrong_revoked_and_expired_keys_are_refused(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("temp", "viewer", expires_at=clock.now() + 60)
    keys.authenticate(key)
    for bad in (None, "", "nonsense", key[:-1] + ("A" if key[-1] != "A" else "B")):
        with pytest.raises(AuthenticationError):
            keys.authenticate(bad)
    clock.advance(61)
    with pytest.raises(AuthenticationError, match="expired"):
        keys.authenticate(key)
    _, second = keys.create("other", "viewer")
    keys.revoke(key_id_of(second))
    with pytest.raises(AuthenticationError, match="revoked"):
        keys.authenticate(second)


def test_last_used_is_recorded(keys: ApiKeys, clock: FakeClock) -> None:
    record, key = keys.create("k", "viewer")
    assert record.last_used_at is None
    keys.authenticate(key)
    assert keys.store.get_api_key(record.key_id).last_used_at == clock.now()


def test_bad_key_requests_are_refused(keys: ApiKeys, clock: FakeClock) -> None:
    with pytest.raises(ValidationError, match="role"):
        keys.create("k", "superuser")
    with pytest.raises(ValidationError, match="name"):
        keys.create(" ", "viewer")
    with pytest.raises(ValidationError, match="past"):
        keys.create("k", "viewer", expires_at=clock.now() - 1)


def test_first_start_creates_one_admin_key_or_adopts_the_given_one(keys: ApiKeys) -> None:
    created = keys.bootstrap(None)
    assert created and keys.authenticate(created).role is Role.ADMIN
    assert keys.bootstrap(None) is None, "a store that has keys gets no new one"
    given = "x" * 40
    assert keys.bootstrap(given) is None and keys.authenticate(given).role is Role.ADMIN
    with pytest.raises(ValidationError, match="at least 32"):
        keys.bootstrap("short")


def test_roles_include_the_ones_below() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    from unified.auth import Principal, check_role

    with pytest.raises(PermissionDeniedError, match="operator role"):
        check_role(Principal("id", "name", Role.VIEWER), Role.OPERATOR)


def test_keys_are_managed_through_the_api(api: Api) -> None:
    created = api.call("POST", "/api-keys", json={"name": "dash", "role": "viewer", "owner": "pm team"})
    assert created.status_code == 201
    body = created.json()
    key, key_id = body["key"], body["key_id"]
    listed = api.call("GET", "/api-keys").json()
    assert [k["name"] for k in listed] == ["admin", "dash"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert api.client.get("/runs", headers={"X-API-Key": key}).status_code == 200
    assert api.client.get("/runs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert api.call("GET", f"/api-keys/{key_id}").json()["last_used_at"] is not None
    revoked = api.call("DELETE", f"/api-keys/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = api.client.get("/runs", headers={"X-API-Key": key})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


def test_a_key_may_expire_and_the_last_admin_key_stays(api: Api) -> None:
    body = {"name": "short", "role": "operator", "expires_at": "2026-01-01T00:10:00Z"}
    key = api.call("POST", "/api-keys", json=body).json()["key"]
    assert api.client.get("/runs", headers={"X-API-Key": key}).status_code == 200
    api.clock.advance(601)
    assert api.client.get("/runs", headers={"X-API-Key": key}).status_code == 401
    admin_id = key_id_of(api.admin_key)
    last = api.call("DELETE", f"/api-keys/{admin_id}")
    assert last.status_code == 409 and "last working admin key" in last.json()["error"]["message"]
    past = api.call("POST", "/api-keys", json={**body, "name": "past"})
    assert past.status_code == 422
