"""API keys and roles: create (the secret is shown once), authenticate, revoke; only a key's hash is stored.

A generated key reads ``unified_<key_id>_<secret>``: ``key_id`` (12 hex characters) is public and finds the
record, ``secret`` is 32 random bytes from :mod:`secrets`. The store keeps the SHA-256 of the whole key, and a
presented key is compared with it in constant time. A key given by the operator (``UNIFIED_ADMIN_KEY``) may have
any form of at least 32 characters; its id is derived from its hash. SHA-256 without a salt suffices because
every key carries at least 256 bits of randomness (the length rule keeps operator keys from being guessable).

Roles are ordered: ``viewer`` reads everything except keys, ``operator`` also queues, runs, cancels, retries,
pauses, resumes and backfills, ``admin`` may do everything.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from unified.auth_throttle import AuthThrottle
from unified.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from unified.store.base import Store
from unified.store.records import ApiKeyRecord
from unified.utils import Clock, iso

KEY_PREFIX = "unified"
SECRET_BYTES = 32
MIN_OPERATOR_KEY_LENGTH = 32
_GENERATED = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_[A-Za-z0-9_-]{{43,}}$")


class Role(enum.StrEnum):
    """What a key may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True if this role may do what ``needed`` may."""
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's id, name and role."""

    key_id: str
    name: str
    role: Role


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str:
    """The public id of a key: the id inside a generated key, else derived from the key's hash."""
    match = _GENERATED.match(key)
    return match.group(1) if match else "env-" + hash_key(key)[:12]


def parse_role(value: str) -> Role:
    """``value`` as a Role, or a ValidationError naming the choices."""
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(f"unknown role {value!r}: use one of {[r.value for r in Role]}") from None


def key_dict(record: ApiKeyRecord) -> dict[str, Any]:
    """A key's public fields as a JSON-ready dict (never its hash)."""
    return {
        "key_id": record.key_id,
        "name": record.name,
        "role": record.role,
        "owner": record.owner,
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "last_used_at": iso(record.last_used_at),
        "revoked_at": iso(record.revoked_at),
    }


def check_operator_key(key: str) -> None:
    """A ValidationError unless ``key`` (an admin key the operator chose: UNIFIED_ADMIN_KEY) is long enough."""
    if len(key) < MIN_OPERATOR_KEY_LENGTH:
        raise ValidationError(
            f"UNIFIED_ADMIN_KEY is {len(key)} characters; use at least {MIN_OPERATOR_KEY_LENGTH} random ones, "
            'e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )


class ApiKeys:
    """Creates, checks and revokes API keys on a store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        touch_interval_seconds: float = 60.0,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.touch_interval_seconds = touch_interval_seconds  # last_used_at is written at most this often
        self.throttle = AuthThrottle(clock) if throttle is None else throttle

    def create(
        self, name: str, role: str, expires_at: float | None = None, owner: str | None = None
    ) -> tuple[ApiKeyRecord, str]:
        """A new key: returns its record and the secret key text, which is shown once and never stored."""
        if not name or not name.strip():
            raise ValidationError("an API key needs a non-empty name, e.g. 'ci-pipeline'")
        parsed = parse_role(role)
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise ValidationError("expires_at is in the past: give a future time, or none for a key that never expires")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        record = ApiKeyRecord(key_id, name.strip(), parsed.value, hash_key(key), now, owner, expires_at)
        self.store.put_api_key(record)
        return record, key

    def adopt(self, key: str, name: str = "admin (UNIFIED_ADMIN_KEY)", role: Role = Role.ADMIN) -> ApiKeyRecord:
        """Store ``key`` given by the operator as a key of ``role``, unless it is stored already (even revoked)."""
        check_operator_key(key)
        key_id = key_id_of(key)
        try:
            return self.store.get_api_key(key_id)
        except NotFoundError:
            record = ApiKeyRecord(key_id, name, role.value, hash_key(key), self.clock.now())
            self.store.put_api_key(record)
            return record

    def bootstrap(self, admin_key: str | None) -> str | None:
        """First start: adopt ``admin_key`` or, when the store has no key at all, create an admin key.

        Returns the secret of a key created here (to be printed once), else None.
        """
        if admin_key:
            self.adopt(admin_key)
            return None
        if self.store.list_api_keys():
            return None
        return self.create("admin", Role.ADMIN.value, owner="created on first start")[1]

    def authenticate(self, key: str | None, client: str | None = None) -> Principal:
        """The principal of a presented key; AuthenticationError if it is missing, wrong, revoked or expired.

        ``client`` (a request's peer address) turns on the throttle: a key that fails counts against it, and a client
        over its limit gets TooManyAttempts without its key being checked."""
        if not key:
            raise AuthenticationError("no API key: send it in the X-API-Key header (or Authorization: Bearer KEY)")
        if client is None:
            return self._authenticate(key)
        self.throttle.check(client)
        try:
            return self._authenticate(key)
        except AuthenticationError:
            self.throttle.failed(client)
            raise

    def _authenticate(self, key: str) -> Principal:
        try:
            record = self.store.get_api_key(key_id_of(key))
        except NotFoundError:
            record = None
        if record is None or not hmac.compare_digest(record.key_hash, hash_key(key)):
            raise AuthenticationError("this API key is not valid: check it, or ask an admin for a new one")
        now = self.clock.now()
        if record.revoked_at is not None:
            raise AuthenticationError(f"API key {record.key_id!r} was revoked: ask an admin for a new one")
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationError(f"API key {record.key_id!r} expired at {iso(record.expires_at)}: get a new one")
        if record.last_used_at is None or now - record.last_used_at >= self.touch_interval_seconds:
            self.store.update_api_key(record.key_id, last_used_at=now)
        return Principal(record.key_id, record.name, Role(record.role))

    def identify(self, key: str | None) -> Principal | None:
        """The principal of a valid key, or None; unlike :meth:`authenticate` it neither raises nor records use."""
        try:
            record = self.store.get_api_key(key_id_of(key)) if key else None
        except NotFoundError:
            return None
        if record is None or not hmac.compare_digest(record.key_hash, hash_key(key or "")):
            return None
        return Principal(record.key_id, record.name, Role(record.role))

    def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent); returns its record. The last working admin key cannot be revoked."""
        with self.store.atomic():  # two admins revoking each other at once: the second one sees the first's revoke
            keys = self.store.lock_api_keys()
            record = next((k for k in keys if k.key_id == key_id), None) or self.store.get_api_key(key_id)
            now = self.clock.now()
            working_admins = [
                k.key_id
                for k in keys
                if k.role == Role.ADMIN.value and k.revoked_at is None and (k.expires_at is None or k.expires_at > now)
            ]
            if working_admins == [key_id]:
                raise ConflictError("this is the last working admin key: create another admin key before revoking it")
            if record.revoked_at is None:
                record.revoked_at = now
                self.store.update_api_key(key_id, revoked_at=record.revoked_at)
        return record

    def end_sessions(self, key_id: str) -> None:
        """End every web session signed in with this key (sign-out): their cookies no longer match its epoch."""
        with self.store.atomic():
            record = self.store.get_api_key(key_id)
            self.store.update_api_key(key_id, session_epoch=record.session_epoch + 1)

    def list(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        return self.store.list_api_keys()


def session_stamp(record: ApiKeyRecord) -> str:
    """What a web session made with this key remembers of it: a digest of its hash, role and session epoch. A
    session whose stamp differs from its key's was made before a sign-out, a change of role, or with another key
    of the same id (deleted and made again), and has ended."""
    seen = f"{record.key_hash}:{record.role}:{record.session_epoch}"
    return hashlib.sha256(seen.encode("utf-8")).hexdigest()[:32]


def client_address(request: Request) -> str:
    """The peer address a request came from, as the ASGI server gives it (behind a proxy: the proxy's, unless
    the server was told to trust its ``X-Forwarded-For``)."""
    return request.client.host if request.client else "unknown"


def presented_key(request: Request) -> str | None:
    """The key a request carries in ``X-API-Key`` or ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def check_role(principal: Principal, needed: Role) -> None:
    """PermissionDeniedError unless ``principal`` may act as ``needed``."""
    if not principal.role.allows(needed):
        raise PermissionDeniedError(
            f"this needs the {needed.value} role; key {principal.name!r} is {principal.role.value}: "
            "ask an admin for a key with that role"
        )
