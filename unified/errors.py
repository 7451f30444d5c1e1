"""The one error tree of unified; every exception the library raises on purpose is here.

    UnifiedError
    ├── ValidationError            bad input: options, import paths, cron, JSON
    │   ├── ImportPathError        an import path that does not resolve
    │   └── SerializationError     a value that cannot be stored as JSON
    ├── NotFoundError              an unknown task, run, workflow or version
    ├── ConflictError              the request clashes with what exists
    │   ├── DuplicateTaskError
    │   ├── CycleError
    │   ├── UnknownDependencyError
    │   └── InvalidTransitionError
    ├── TaskFailedError            a task ended badly; carries its error
    ├── TimeoutExpired             waiting for a task or run took too long
    ├── StoreError                 the database could not be used
    │   └── StoreConflict          it aborted a transaction to break a deadlock: safe to run again
    ├── AuthenticationError        no API key, or one that is wrong, revoked or expired
    ├── TooManyAttempts            too many failed authentications from one client: wait and try again
    └── PermissionDeniedError      a valid key whose role is too low for the request

Each message says what to do about it. ``HTTP_STATUS`` maps branches to HTTP codes for the API.
"""

from __future__ import annotations

from typing import Any


class UnifiedError(Exception):
    """Base of every error unified raises on purpose."""

    code = "error"


class ValidationError(UnifiedError, ValueError):
    """Input that cannot be accepted as given."""

    code = "invalid"


class ImportPathError(ValidationError):
    """An import path such as ``pkg.mod:function`` that does not resolve."""

    code = "bad_import_path"


class SerializationError(ValidationError):
    """A value (result, argument, parameter) that cannot be stored as JSON."""

    code = "not_serializable"


class NotFoundError(UnifiedError, KeyError):
    """An id that names nothing the store holds."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def not_found(what: str) -> NotFoundError:
    """The error for an id that names nothing: ``what`` says which, e.g. ``"task 'a1'"``."""
    return NotFoundError(f"no {what}: check the id (list them to see what exists)")


class ConflictError(UnifiedError):
    """A request that clashes with what already exists or with the current state."""

    code = "conflict"


def name_taken(name: str, holder: str | None) -> ConflictError:
    """The error for a second workflow of one name (``holder``: the id of the one that has it, if known)."""
    held = f" (id {holder})" if holder is not None else ""
    return ConflictError(f"a workflow named {name!r} exists{held}: use it, or give this one another name")


class DuplicateTaskError(ConflictError):
    """A task id that is already taken in its scope."""

    code = "duplicate"


class CycleError(ConflictError):
    """Dependencies that form a cycle; ``cycle`` lists the task ids around it."""

    code = "cycle"

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        path = " -> ".join([*cycle, cycle[0]])
        super().__init__(f"dependency cycle {path}: remove one of these dependencies")


class UnknownDependencyError(ConflictError):
    """A dependency on a task id that does not exist in the same workflow or group."""

    code = "unknown_dependency"


class InvalidTransitionError(ConflictError):
    """A state change the task state machine does not allow."""

    code = "invalid_transition"


class TaskFailedError(UnifiedError):
    """A task ended in failure, timeout, canceled or skipped; ``error`` holds what went wrong."""

    code = "task_failed"

    def __init__(self, message: str, *, task_id: str, state: str, error: dict[str, Any] | None = None):
        super().__init__(message)
        self.task_id = task_id
        self.state = state
        self.error = error or {}


class TimeoutExpired(UnifiedError, TimeoutError):
    """Waiting for a task or run did not finish within the given timeout."""

    code = "wait_timeout"


class StoreError(UnifiedError):
    """The store could not be reached or used. The message may name the database's host, port, user and name (for
    the operator); :meth:`for_clients` is what API clients and web pages are told instead."""

    code = "store_error"

    def for_clients(self, reference: str) -> str:
        """What happened in general and what to do, with the ``reference`` the full message was logged under."""
        return (
            "the server could not use its database just now: retry in a moment; if it goes on, ask the server's "
            f"operator to look for reference {reference} in the server's log"
        )


class StoreConflict(StoreError):
    """The database aborted a transaction to break a deadlock with another one; nothing of it was kept, and running
    it again is safe."""

    code = "store_conflict"

    def for_clients(self, reference: str) -> str:
        """A deadlock broken: nothing was kept, and the same request may simply be sent again."""
        return (
            "the database stopped this request to break a deadlock with another one, and kept nothing of it: send "
            f"it again (reference {reference} in the server's log)"
        )


class ChannelError(UnifiedError):
    """An alert channel could not deliver an alert: the address did not answer, or answered with an error. The
    message shows the address without its secret parts (a Slack webhook's path is its credential)."""

    code = "channel_error"


class AuthenticationError(UnifiedError):
    """A request without a usable API key: none given, unknown, revoked or expired."""

    code = "unauthorized"


class TooManyAttempts(UnifiedError):
    """Too many failed authentications came from one client; ``retry_after_seconds`` says when it may try again."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PermissionDeniedError(UnifiedError):
    """A request whose API key is valid but whose role does not allow it."""

    code = "forbidden"


HTTP_STATUS: dict[type[UnifiedError], int] = {
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    TooManyAttempts: 429,
    ValidationError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    TaskFailedError: 409,
    TimeoutExpired: 504,
    StoreError: 503,
    UnifiedError: 400,
}


def http_status(error: UnifiedError) -> int:
    """The HTTP status for ``error``: the entry of its nearest class in ``HTTP_STATUS``."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
