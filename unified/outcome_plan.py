"""A reported attempt, planned: the move its outcome asks of its task, before the engine applies a batch of them.

The engine applies a worker's reports set-wise (``Engine.complete_all``); each report is first planned here, from
the record and the outcome alone: success, cancel, a retry after its backoff (the task's retry policy), or the end
of the task, with the fields that move sets and what the attempt's own record gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from unified.errors import SerializationError
from unified.store.records import TaskRecord
from unified.task import ALLOWED_MOVES, RetryPolicy, TaskState, check_transition
from unified.utils import from_json, stored_json

S = TaskState
_JSON_AS_IS = frozenset({type(None), bool, int, str})  # values JSON gives back unchanged (a float may be NaN)


def _unstorable(exc: SerializationError) -> dict[str, Any]:
    """The error of an attempt whose result or metadata the store cannot keep (not retried: it would not change)."""
    return {"type": "SerializationError", "message": str(exc)}


class PlannedOutcome:
    """One reported attempt, planned: the move it asks of its task (None: none), with the fields that move sets
    (``changes``, the new state among them)."""

    __slots__ = ("attempt", "attempt_outcome", "changes", "logs", "moved", "new", "record", "started_at")

    def __init__(
        self,
        record: TaskRecord,
        new: TaskState | None,
        changes: dict[str, Any],
        logs: Iterable[tuple[float, str, str]],
        attempt_outcome: dict[str, Any],
    ) -> None:
        self.record, self.new, self.changes, self.moved = record, new, changes, False
        self.attempt = record.attempts
        self.logs = list(logs)
        self.attempt_outcome = attempt_outcome  # the attempt's state, finished_at and error
        self.started_at: float | None = None  # when this process claimed the attempt, if it did

    @classmethod
    def plan(
        cls, record: TaskRecord, state: str, outcome: dict[str, Any], now: float, keeps_objects: bool
    ) -> PlannedOutcome:
        """What ``state`` asks of ``record``: success, cancel, a retry after its backoff, or the end of it.
        ``keeps_objects``: the store keeps Python objects (memory), so a result need not be JSON."""
        error = outcome.get("error")
        retryable = outcome.get("retryable", True)
        result = outcome.get("result")
        if state == "success" and not keeps_objects and type(result) not in _JSON_AS_IS:
            try:  # the result as stored: dependants handed it in this process see what a later read would give
                result = from_json(stored_json(result, f"the result of task {record.task_id!r}"))
            except SerializationError as exc:
                state, error, retryable = "failure", _unstorable(exc), False
                result = None
        metadata = outcome.get("metadata")
        if metadata and not keeps_objects:
            try:  # refused by the store, the whole report would be: the task would run again and again
                stored_json(metadata, f"the ctx.metadata of task {record.task_id!r}")
            except SerializationError as exc:
                state, error, retryable = "failure", _unstorable(exc), False
                metadata = result = None
        changes: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
        if metadata is not None:
            changes["metadata"] = metadata
        new: TaskState | None
        if state == "success":
            new = S.SUCCESS
            changes.update(result=result, error=None, finished_at=now)
        elif state == "canceled":
            new = S.CANCELED if record.state == "running" else None
            changes.update(finished_at=now)
        else:
            tries = record.attempts - record.spec.get("retry_base", 0)
            delay = RetryPolicy.of_spec(record.spec).delay_after(tries) if retryable else None
            if delay is not None:
                new = S.RETRYING
                changes.update(error=error, not_before=now + delay)
            else:
                new = S.TIMEOUT if state == "timeout" else S.FAILURE
                changes.update(error=error, finished_at=now)
        if new is not None:
            if (record.state, new) not in ALLOWED_MOVES:
                check_transition(record.state, new)  # raises
            changes["state"] = str(new)  # its value (a StrEnum), without .value's two Python calls
        attempt = {"state": outcome.get("attempt_state") or state, "finished_at": now, "error": error}
        if (began := outcome.get("started_at")) is not None:  # when its code began, not when it was claimed
            attempt["started_at"] = began
            if record.attempts == 1:
                changes["started_at"] = began
        return cls(record, new, changes, outcome.get("logs") or (), attempt)

    def apply(self) -> None:
        """The move happened: bring the record up to date (the engine logs the move)."""
        record = self.record
        for name, value in self.changes.items():  # the new state among them
            setattr(record, name, value)
        self.moved = True
