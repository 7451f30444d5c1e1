"""Engine events and the bus that delivers them; a subscriber that raises is logged and never breaks a run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from unified.errors import ValidationError

log = logging.getLogger("unified.events")

TASK_SUCCEEDED = "task_succeeded"
TASK_FAILED = "task_failed"  # retries exhausted
TASK_TIMEOUT = "task_timeout"
TASK_RETRYING = "task_retrying"
TASK_CANCELED = "task_canceled"
TASK_SKIPPED = "task_skipped"
WORKFLOW_SUCCEEDED = "workflow_succeeded"
WORKFLOW_FAILED = "workflow_failed"
WORKFLOW_CANCELED = "workflow_canceled"
SCHEDULE_MISSED = "schedule_missed"  # a fire time passed without a run (scheduler down, max_active_runs, error)
SLA_MISSED = "sla_missed"  # a task or run had not finished sla_seconds after it was queued

EVENTS = frozenset(
    {
        TASK_SUCCEEDED,
        TASK_FAILED,
        TASK_TIMEOUT,
        TASK_RETRYING,
        TASK_CANCELED,
        TASK_SKIPPED,
        WORKFLOW_SUCCEEDED,
        WORKFLOW_FAILED,
        WORKFLOW_CANCELED,
        SCHEDULE_MISSED,
        SLA_MISSED,
    }
)

Handler = Callable[[dict[str, Any]], None]
Accepts = Callable[[str], bool]  # whether a subscriber takes an event of this name at this moment


class EventBus:
    """Synchronous publish/subscribe of event dicts (``{"event": name, ...}``)."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[Handler, frozenset[str] | None, Accepts | None]] = []
        self._lock = threading.Lock()

    def subscribe(self, handler: Handler, events: Iterable[str] | None = None, accepts: Accepts | None = None) -> None:
        """Call ``handler`` for the named events (all when None) that ``accepts``, if given, takes when they happen.

        ``accepts`` is for a subscriber whose interest changes while it runs (alert rules come and go): an event that
        no subscriber takes is not even built (see :meth:`wants`).
        """
        wanted = None if events is None else frozenset(events)
        if wanted is not None and (unknown := wanted - EVENTS):
            raise ValidationError(f"unknown event names {sorted(unknown)}; choose from {sorted(EVENTS)}")
        with self._lock:
            self._subscribers = [*self._subscribers, (handler, wanted, accepts)]

    def wants(self, name: str) -> bool:
        """Whether any subscriber takes an event of this name now (the engine builds one per task transition
        only then)."""
        for _, wanted, accepts in self._subscribers:  # a loop, not any() over a generator: three calls per task
            if (wanted is None or name in wanted) and (accepts is None or accepts(name)):
                return True
        return False

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` to every subscriber that takes it, logging (not raising) their errors."""
        name = event["event"]
        for handler, wanted, accepts in self._subscribers:
            if not _takes(wanted, accepts, name):
                continue
            try:
                handler(event)
            except Exception:
                log.exception("event handler %r failed on %s; the run goes on", handler, name)


def _takes(wanted: frozenset[str] | None, accepts: Accepts | None, name: str) -> bool:
    return (wanted is None or name in wanted) and (accepts is None or accepts(name))
