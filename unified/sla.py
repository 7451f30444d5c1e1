"""SLA watching: ``sla_missed`` for tasks and runs not finished ``sla_seconds`` after they were queued, raised once
across every process of a store.

The deadlines are stored with the work (``Store.insert_sla_watches``, written by the engine in the transaction that
stores the tasks or the run), so they outlive the process that submitted it. Any process running an
:class:`~unified.alerts.AlertService` checks them: :meth:`SlaWatch.check` reads the due, unsettled deadlines through
an index (a bounded query), looks at their task or run, and settles each by compare-and-set
(``Store.settle_sla_watch``); only the process whose compare-and-set won publishes the event. Time is the engine's
clock. A process in which no rule or handler takes ``sla_missed`` leaves the deadlines to the others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from unified import events as ev
from unified.engine import Engine
from unified.errors import NotFoundError
from unified.store.records import RunRecord, SlaWatchRecord, TaskRecord
from unified.utils import iso

log = logging.getLogger("unified.alerts")

MISSED, MET, GONE = "missed", "met", "gone"  # the outcomes of a deadline


class SlaWatch:
    """Raises ``sla_missed`` once for each task or run still unfinished (or finished late) at its stored deadline."""

    def __init__(self, engine: Engine, poll_seconds: float = 5.0, limit: int = 100) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds  # how soon a deadline stored by another process is looked at, at worst
        self.limit = limit  # deadlines read per query
        self.on_sooner: Callable[[], None] | None = None  # called when this process submits an earlier deadline
        self._soonest = math.inf  # the earliest unsettled deadline known here
        engine.on_submitted(self.note)

    def note(self, records: list[TaskRecord], run: RunRecord | None) -> None:
        """Learn of the deadlines of newly submitted work (an ``Engine.on_submitted`` listener): the check runs at
        the earliest of them rather than at the next poll."""
        slas = [r.created_at + r.spec["sla_seconds"] for r in records if r.spec.get("sla_seconds")]
        if run is not None and run.metadata.get("sla_seconds"):
            slas.append(run.created_at + float(run.metadata["sla_seconds"]))
        if slas and min(slas) < self._soonest:
            self._soonest = min(slas)
            if self.on_sooner is not None:
                self.on_sooner()

    def seconds_to_next(self) -> float:
        """How long the caller may wait before the next :meth:`check` (at most ``poll_seconds``)."""
        return max(0.0, min(self._soonest - self.engine.clock.now(), self.poll_seconds))

    def check(self) -> int:
        """Settle every deadline that passed; returns how many ``sla_missed`` events this call raised."""
        if not self.engine.bus.wants(ev.SLA_MISSED):
            self._soonest = math.inf  # nobody here would hear it: another process settles it (looked at each poll)
            return 0
        store, now = self.engine.store, self.engine.clock.now()
        raised = 0
        for _ in range(10):  # at most 10 * limit per call: the rest at the next
            due = store.due_sla_watches(now, self.limit)
            raised += sum(self._settle(watch, now) for watch in due)
            if len(due) < self.limit:
                break
        soonest = store.next_sla_deadline()
        self._soonest = math.inf if soonest is None else soonest
        return raised

    def _settle(self, watch: SlaWatchRecord, now: float) -> bool:
        store = self.engine.store
        try:
            if watch.kind == "task":
                record = store.get_task(watch.key)
                run = store.get_run(record.run_id) if record.run_id else None
                finished_at = record.finished_at
                ids = {"task_id": record.task_id, "id": record.id, "run_id": record.run_id, "name": record.name,
                       "state": record.state, "attempt": record.attempts}  # fmt: skip
            else:
                run = store.get_run(watch.key)
                finished_at = run.finished_at
                ids = {"task_id": None, "id": None, "run_id": run.run_id, "name": None, "state": run.state,
                       "attempt": None}  # fmt: skip
        except NotFoundError:
            store.settle_sla_watch(watch.kind, watch.key, GONE, now)
            return False
        missed = finished_at is None or finished_at > watch.deadline
        if not store.settle_sla_watch(watch.kind, watch.key, MISSED if missed else MET, now) or not missed:
            return False  # another process settled it first, or it finished in time
        what = f"{watch.kind} {ids['name'] or watch.key!r}"
        message = f"{what} had not finished {watch.sla_seconds:g} s after it was queued"
        self.engine.bus.publish(
            {"event": ev.SLA_MISSED, **ids, "workflow_id": run.workflow_id if run else None, "at": now,
             "error": {"type": "SlaMissed", "message": message}, "sla_seconds": watch.sla_seconds,
             "deadline": iso(watch.deadline)}
        )  # fmt: skip
        log.warning("%s", message)
        return True
