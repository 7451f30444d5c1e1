"""What the engine publishes: an event per task that moves and per run that ends, sent once the transaction that
made the move commits (a rolled-back move announces nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified.events import EventBus
from unified.outcome_plan import PlannedOutcome
from unified.store.base import Store
from unified.store.records import RunRecord, TaskRecord
from unified.utils import Clock


class EngineEvents:
    """Engine's events (mixed in: it uses the engine's bus, clock, run cache and after-commit hook)."""

    bus: EventBus
    clock: Clock
    store: Store
    after_commit: Callable[[Callable[[], None]], None]
    _run: Callable[[str | None], RunRecord | None]

    def _emit(self, name: str, record: TaskRecord, ended: PlannedOutcome | None = None) -> None:
        """Publish a task event once the transaction commits; ``ended``: the attempt the event ends, if any."""
        if self.bus.wants(name):
            self._publish_task_event(name, record, ended)

    def _emit_all(self, events: list[tuple[str, TaskRecord, PlannedOutcome | None]]) -> None:
        """:meth:`_emit` of each ``(name, record, ended)``: a batch of reports' events, the bus asked once per name
        (a batch holds two or three), and no call for those that no subscriber wants (usually all of them)."""
        wanted: dict[str, bool] = {}
        for name, record, ended in events:
            if (wants := wanted.get(name)) is None:
                wants = wanted[name] = self.bus.wants(name)
            if wants:
                self._publish_task_event(name, record, ended)

    def _publish_task_event(self, name: str, record: TaskRecord, ended: PlannedOutcome | None) -> None:
        run = self._run(record.run_id) if record.run_id else None
        attempt_state = attempt_seconds = None
        if ended is not None:
            attempt_state = ended.attempt_outcome["state"]
            if ended.started_at is not None:
                attempt_seconds = max(0.0, ended.attempt_outcome["finished_at"] - ended.started_at)
        self._publish(
            {
                "event": name,
                "task_id": record.task_id,
                "id": record.id,
                "run_id": record.run_id,
                "workflow_id": run.workflow_id if run else None,
                "name": record.name,
                "state": record.state,
                "attempt": record.attempts,
                "attempt_state": attempt_state,
                "attempt_seconds": attempt_seconds,
                "error": record.error,
                "at": self.clock.now(),
            }
        )

    def _emit_run(self, name: str, run: RunRecord) -> None:
        """Publish a run's end; one that did not succeed names the tasks that ended badly and the first one's error
        (read only when something listens: an alert on it says why, not just that)."""
        if not self.bus.wants(name):
            return
        failed: list[TaskRecord] = []
        if run.state != "success":
            failed = [t for t in self.store.run_tasks(run.run_id) if t.state in ("failure", "timeout")]
        self._publish(
            {
                "event": name,
                "task_id": None,
                "id": None,
                "run_id": run.run_id,
                "workflow_id": run.workflow_id,
                "name": None,
                "state": run.state,
                "attempt": None,
                "error": failed[0].error if failed else None,
                "failed_tasks": [t.task_id for t in failed],
                "trigger": run.trigger,
                "schedule_id": run.schedule_id,
                "at": self.clock.now(),
            }
        )

    def _publish(self, event: dict[str, Any]) -> None:
        self.after_commit(lambda: self.bus.publish(event))
