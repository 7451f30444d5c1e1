"""The scheduler: decides when a schedule fires, records each fire once, and starts its run or task.

A fire is written to the store under the unique key (schedule_id, fire_time) in the same transaction that
starts its run, so any number of schedulers sharing one database start each fire time exactly once. The
background loop sleeps until the earliest next fire (or until a schedule changes, or the clock jumps) instead
of polling the table; ``run_once`` fires what is due now in the calling thread, for tests and scripts.

Missed fire times (the scheduler was down) follow the schedule's ``catchup``: off, one run for the latest
missed time and a ``schedule_missed`` event for the rest; on, one run per missed time, oldest first, never
more than ``max_active_runs`` active at once (the rest wait for a later pass).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from unified import events as ev
from unified.cron import Timing, check_cron, check_interval, load_zone, to_epoch
from unified.engine import Engine
from unified.errors import NotFoundError, UnifiedError, ValidationError
from unified.store.records import UNFINISHED_STATES, FireRecord, ScheduleRecord
from unified.task import Task, check_dict, check_sla
from unified.utils import check_params, iso, new_id, to_json

log = logging.getLogger("unified.scheduler")

FINISH_EVENTS = (
    ev.TASK_SUCCEEDED, ev.TASK_FAILED, ev.TASK_TIMEOUT, ev.TASK_CANCELED, ev.TASK_SKIPPED,
    ev.WORKFLOW_SUCCEEDED, ev.WORKFLOW_FAILED, ev.WORKFLOW_CANCELED,
)  # fmt: skip
BACKFILL_LIMIT = 10_000
QUEUED_REASON = "backfill: waits for a free run (max_active_runs)"
QUEUED_SWEEP_LIMIT = 1000  # queued fires looked at per pass


@dataclass(frozen=True)
class When:
    """When a schedule fires: a cron expression or an interval, its zone and bounds, and its catch-up policy."""

    cron: str | None = None
    interval_seconds: float | None = None
    timezone: str = "UTC"
    start_at: datetime | float | str | None = None  # naive datetimes are read in ``timezone``
    end_at: datetime | float | str | None = None
    catchup: bool = False
    max_active_runs: int = 1


@dataclass(frozen=True)
class Fired:
    """What one fire did: ``started`` a run or task, ``skipped`` it (max_active_runs), or ``failed`` to start."""

    schedule_id: str
    fire_time: float
    state: str
    run_id: str | None = None
    task_id: str | None = None
    reason: str | None = None


def fires_as(schedule: ScheduleRecord, when: When) -> bool:
    """Whether a stored schedule fires as ``when`` says: the same times, zone, bounds and catch-up policy."""
    zone = load_zone(when.timezone)
    wanted = (
        check_cron(when.cron) if when.cron is not None else None, when.interval_seconds, when.timezone,
        to_epoch(when.start_at, zone, "start_at"), to_epoch(when.end_at, zone, "end_at"), bool(when.catchup),
        when.max_active_runs,
    )  # fmt: skip
    stored = (
        schedule.cron, schedule.interval_seconds, schedule.timezone, schedule.start_at, schedule.end_at,
        schedule.catchup, schedule.max_active_runs,
    )  # fmt: skip
    return stored == wanted


def timing_of(schedule: ScheduleRecord) -> Timing:
    """The fire-time rules of a stored schedule."""
    anchor = schedule.start_at
    if anchor is None and schedule.interval_seconds is not None:
        anchor = schedule.created_at + schedule.interval_seconds
    return Timing(
        schedule.cron, schedule.interval_seconds, schedule.timezone, schedule.start_at, schedule.end_at, anchor
    )


class Scheduler:
    """Fires the schedules of one store through one engine; ``start()`` runs it in a background thread."""

    def __init__(self, engine: Engine, *, max_wait_seconds: float = 5.0, busy_wait_seconds: float = 2.0) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self.max_wait_seconds = max_wait_seconds  # also how soon schedules added by other processes are seen
        self.busy_wait_seconds = busy_wait_seconds  # re-check of catch-up waiting on max_active_runs
        self._blocked: set[str] = set()  # catch-up schedules waiting for an active run to finish
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False
        self.queued_sweep_seconds = 30.0  # how often to look for queued backfill fires while none were seen
        self._queued_at: float | None = None  # when a look found none; None: look on the next pass
        self.clock.on_advance(self.wake)

    # -- defining schedules ------------------------------------------------------------------------------
    def add_task(self, task: Task, when: When, name: str | None = None) -> str:
        """Schedule an ad-hoc task (each fire queues a fresh copy); returns the schedule id."""
        if task.dependencies:  # each fire would fail: what it names is no task of its own
            raise ValidationError("a scheduled task cannot depend on other tasks: schedule a workflow instead")
        spec = self.engine.functions.register(task, for_good=True)
        spec["task_id"] = None
        if not self.store.keeps_objects:
            to_json({k: v for k, v in spec.items() if k != "ref"}, f"the arguments of task {task.name!r}")
        return self._add("task", {"task": spec}, when, name or task.name)

    def add_workflow(
        self,
        workflow_id: str,
        when: When,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        sla_seconds: float | None = None,
    ) -> str:
        """Schedule runs of a stored workflow with ``params``; returns the schedule id."""
        check_dict("params", params, "parameter names")
        workflow = self.store.get_workflow(workflow_id)
        check_params(params, "the params of the scheduled runs")
        target = {"workflow_id": workflow_id, "params": dict(params or {}), "sla_seconds": check_sla(sla_seconds)}
        return self._add("workflow", target, when, name or workflow.name)

    def _add(self, target_type: str, target: dict[str, Any], when: When, name: str) -> str:
        runs = when.max_active_runs
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValidationError(f"max_active_runs must be a whole number of at least 1, not {runs!r}")
        if when.interval_seconds is not None:
            check_interval(when.interval_seconds)
        tz = load_zone(when.timezone)
        now = self.clock.now()
        record = ScheduleRecord(
            new_id(), name, target_type, target, when.cron, when.interval_seconds, when.timezone,
            to_epoch(when.start_at, tz, "start_at"), to_epoch(when.end_at, tz, "end_at"), bool(when.catchup), runs,
            created_at=now, updated_at=now,
        )  # fmt: skip
        timing = timing_of(record)  # validates cron, interval and the start/end order
        record.cron = timing.cron
        if record.start_at is not None and (record.catchup or record.start_at > now):
            record.next_fire_at = timing.first_at_or_after(record.start_at)
        else:
            record.next_fire_at = timing.next_after(now)
        self.store.put_schedule(record)
        log.info("schedule %s (%s) added; first fire %s", record.schedule_id, record.name, iso(record.next_fire_at))
        self.wake()
        return record.schedule_id

    def pause(self, schedule_id: str) -> None:
        """Stop firing a schedule until it is resumed."""
        self.store.get_schedule(schedule_id)
        self.store.update_schedule(schedule_id, paused=True, updated_at=self.clock.now())
        self.wake()

    def resume(self, schedule_id: str) -> None:
        """Fire a paused schedule again; what it missed while paused fires only if its catchup is on."""
        schedule = self.store.get_schedule(schedule_id)
        now = self.clock.now()
        changes: dict[str, Any] = {"paused": False, "updated_at": now}
        if not schedule.catchup and schedule.next_fire_at is not None and schedule.next_fire_at <= now:
            changes["next_fire_at"] = timing_of(schedule).next_after(now)
        self.store.update_schedule(schedule_id, **changes)
        self.wake()

    def remove(self, schedule_id: str) -> None:
        """Delete a schedule; the runs it started and its fire history stay."""
        self.store.delete_schedule(schedule_id)
        self._blocked.discard(schedule_id)
        self.wake()

    # -- reading -----------------------------------------------------------------------------------------
    def describe(self, schedule_id: str) -> dict[str, Any]:
        """A schedule as a JSON-ready dict, with its next fire time and its last fire."""
        return self._describe(self.store.get_schedule(schedule_id))

    def describe_all(self) -> list[dict[str, Any]]:
        """Every schedule as a dict, oldest first."""
        return [self._describe(s) for s in self.store.list_schedules()]

    def _describe(self, s: ScheduleRecord) -> dict[str, Any]:
        fires = self.store.list_fires(s.schedule_id, 1)
        last = fires[0] if fires else None
        target = dict(s.target)
        if "task" in target:
            target["task"] = {k: v for k, v in target["task"].items() if k != "ref"}
        return {
            "schedule_id": s.schedule_id,
            "name": s.name,
            "target_type": s.target_type,
            "target": target,
            "cron": s.cron,
            "interval_seconds": s.interval_seconds,
            "timezone": s.timezone,
            "start_at": iso(s.start_at),
            "end_at": iso(s.end_at),
            "catchup": s.catchup,
            "max_active_runs": s.max_active_runs,
            "paused": s.paused,
            "next_fire_time": iso(s.next_fire_at),
            "last_fire_time": iso(s.last_fire_at),
            "last_fire": None
            if last is None
            else {
                "fire_time": iso(last.fire_time),
                "state": last.state,
                "run_id": last.run_id,
                "task_id": last.task_id,
                "reason": last.reason,
            },
            "created_at": iso(s.created_at),
            "updated_at": iso(s.updated_at),
        }

    def next_fire_times(self, schedule_id: str, n: int = 5) -> list[datetime]:
        """The next ``n`` fire times after now (or from start_at when later), as aware datetimes in its zone."""
        timing = timing_of(self.store.get_schedule(schedule_id))
        now = self.clock.now()
        if timing.start_at is not None and timing.start_at > now:
            fires = timing.times_from(timing.start_at)
        else:
            fires = (t for t in timing.times_from(now) if t > now)
        return [timing.local(t) for _, t in zip(range(n), fires, strict=False)]

    # -- firing ------------------------------------------------------------------------------------------
    def run_once(self) -> list[Fired]:
        """Fire every schedule that is due now, in this thread; returns what was fired."""
        now = self.clock.now()
        fired: list[Fired] = []
        seen: set[str] = set()  # due ones stay due when they cannot fire yet (catch-up at max_active_runs)
        while batch := [s for s in self.store.due_schedules(now, limit=100 + len(seen)) if s.schedule_id not in seen]:
            for schedule in batch:
                seen.add(schedule.schedule_id)
                try:
                    fired += self._fire_due(schedule, now)
                except UnifiedError:
                    log.exception("schedule %s (%s) could not fire; will try again",
                                  schedule.schedule_id, schedule.name)  # fmt: skip
        self._blocked &= seen  # paused or removed meanwhile: no longer waited for
        try:
            fired += self._start_queued(now)
        except UnifiedError:
            log.exception("backfilled fire times waiting for a free run could not start; will try again")
        return fired

    def backfill(self, schedule_id: str, start: datetime | float | str, end: datetime | float | str) -> list[Fired]:
        """Fire the schedule's fire times in ``[start, end]`` (up to now, and within its own start and end) that have
        not fired yet, oldest first, whether or not it is paused: as many as its ``max_active_runs`` leaves room for
        now, the rest recorded ``queued`` and started by the scheduler as its runs finish."""
        schedule = self.store.get_schedule(schedule_id)
        timing = timing_of(schedule)
        first, last = to_epoch(start, timing.zone, "start"), to_epoch(end, timing.zone, "end")
        if last < first:  # type: ignore[operator]
            raise ValidationError("backfill end is before its start: give start <= end")
        now = self.clock.now()
        times = timing.between(first, min(last, now), limit=BACKFILL_LIMIT + 1)  # type: ignore[arg-type, type-var]
        if len(times) > BACKFILL_LIMIT:
            raise ValidationError(f"that range holds more than {BACKFILL_LIMIT} fire times: backfill it in parts")
        free = schedule.max_active_runs - self._active(schedule)
        fired: list[Fired] = []
        for fire_time in times:
            if free > 0:
                outcome = self._fire(schedule, fire_time, now)
                free -= outcome is not None and outcome.state == "started"
            elif self.store.insert_fire(FireRecord(schedule_id, fire_time, now, state="queued", reason=QUEUED_REASON)):
                outcome = Fired(schedule_id, fire_time, "queued", reason=QUEUED_REASON)
                self._queued_at = None  # look for it on the next pass
                self._listen()
            else:
                outcome = None  # fired (or queued) before
            if outcome is not None:
                fired.append(outcome)
        log.info("schedule %s backfilled %d fire(s) of %d in range", schedule_id, len(fired), len(times))
        return fired

    def _start_queued(self, now: float) -> list[Fired]:
        """Start backfilled fire times waiting for a free run, oldest first, as their schedules' runs finish."""
        if self._queued_at is not None and now - self._queued_at < self.queued_sweep_seconds:
            return []
        queued = self.store.queued_fires(limit=QUEUED_SWEEP_LIMIT)
        self._queued_at = None if queued else now  # while some wait, every pass looks (runs finish elsewhere)
        fired: list[Fired] = []
        free: dict[str, int] = {}
        schedules: dict[str, ScheduleRecord | None] = {}
        for fire in queued:
            sid = fire.schedule_id
            if sid not in schedules:
                try:
                    schedules[sid] = self.store.get_schedule(sid)
                except NotFoundError:
                    schedules[sid] = None
            schedule = schedules[sid]
            if schedule is None:
                reason = "the schedule was removed before this backfilled time could start"
                self.store.update_fire(sid, fire.fire_time, expected_state="queued", state="failed", reason=reason)
                continue
            if sid not in free:
                free[sid] = schedule.max_active_runs - self._active(schedule)
            if free[sid] > 0:
                outcome = self._fire(schedule, fire.fire_time, now, queued=True)
                if outcome is not None:
                    fired.append(outcome)
                free[sid] -= outcome is None or outcome.state == "started"
        return fired

    def _fire_due(self, schedule: ScheduleRecord, now: float) -> list[Fired]:
        timing = timing_of(schedule)
        fired: list[Fired] = []
        due: float | None = schedule.next_fire_at
        if schedule.catchup:
            free = schedule.max_active_runs - self._active(schedule)
            while due is not None and due <= now and free > 0:
                outcome = self._fire(schedule, due, now)
                if outcome is not None:
                    fired.append(outcome)
                # a time another scheduler fired counts as started: it may have been (the next pass counts again)
                free -= outcome is None or outcome.state == "started"
                due = timing.next_after(due)
            if due is not None and due <= now:
                self._block(schedule.schedule_id)
            else:
                self._blocked.discard(schedule.schedule_id)
            next_fire = due
        else:
            latest, missed = timing.latest_between(due, now)  # type: ignore[arg-type]
            if latest is not None:
                full = self._active(schedule) >= schedule.max_active_runs
                outcome = self._fire(schedule, latest, now, skip_reason="max_active_runs reached" if full else None)
                if outcome is not None:
                    fired.append(outcome)
                    if missed:
                        self._missed(schedule, due, missed, "the scheduler was not running at those times")  # type: ignore[arg-type]
            next_fire = timing.next_after(now)
        last = max([f.fire_time for f in fired], default=None)
        changes: dict[str, Any] = {"next_fire_at": next_fire, "updated_at": now}
        if last is not None and (schedule.last_fire_at is None or last > schedule.last_fire_at):
            changes["last_fire_at"] = last
        self.store.update_schedule(schedule.schedule_id, **changes)
        return fired

    def _active(self, schedule: ScheduleRecord) -> int:
        """How many runs (or tasks) this schedule started are not finished, counted up to max_active_runs."""
        cap, sid = schedule.max_active_runs, schedule.schedule_id
        if schedule.target_type == "workflow":
            return len(self.store.list_runs(state="running", limit=cap, schedule_id=sid))
        return sum(len(self.store.list_tasks(state=s, limit=cap, schedule_id=sid)) for s in UNFINISHED_STATES)

    def _fire(
        self,
        schedule: ScheduleRecord,
        fire_time: float,
        now: float,
        skip_reason: str | None = None,
        queued: bool = False,
    ) -> Fired | None:
        """Record the fire and start its target in one transaction; None if another scheduler fired it first. A
        ``queued`` fire (a backfilled time that waited for a free run) is taken from ``queued`` to started instead."""
        sid = schedule.schedule_id
        run_id = task_id = None
        inserted = False
        try:
            with self.engine.batch():
                state = "skipped" if skip_reason else "started"
                if queued:
                    taken = self.store.update_fire(sid, fire_time, expected_state="queued", state=state, reason=None)
                else:
                    taken = self.store.insert_fire(FireRecord(sid, fire_time, now, state=state, reason=skip_reason))
                if not taken:
                    return None
                inserted = True
                if skip_reason:
                    outcome = Fired(sid, fire_time, "skipped", reason=skip_reason)
                else:
                    run_id, task_id = self._start(schedule, fire_time)
                    self.store.update_fire(sid, fire_time, run_id=run_id, task_id=task_id)
                    outcome = Fired(sid, fire_time, "started", run_id, task_id)
        except UnifiedError as exc:
            if not inserted:
                raise
            reason = f"{type(exc).__name__}: {exc}"
            log.error("schedule %s (%s) could not start its %s fire: %s", sid, schedule.name, iso(fire_time), reason)
            # a SQL store rolled the fire back with the run; the memory store keeps it
            if queued:  # back to queued on a SQL store (unless another scheduler took it since); started on memory
                expected = None if self.store.keeps_objects else "queued"
                if not self.store.update_fire(sid, fire_time, expected_state=expected, state="failed", reason=reason):
                    return None
            elif not self.store.insert_fire(FireRecord(sid, fire_time, now, state="failed", reason=reason)):
                if not self.store.keeps_objects:
                    return None  # another scheduler fired that time since: its record stands
                self.store.update_fire(sid, fire_time, state="failed", reason=reason)
            outcome = Fired(sid, fire_time, "failed", reason=reason)
        if outcome.state != "started":
            self._missed(schedule, fire_time, 1, outcome.reason or "")
        else:
            log.info("schedule %s fired %s: %s", sid, iso(fire_time), run_id or task_id)
        return outcome

    def _start(self, schedule: ScheduleRecord, fire_time: float) -> tuple[str | None, str | None]:
        """Start the schedule's target for one fire; returns (run_id, task_id)."""
        sid, target = schedule.schedule_id, schedule.target
        metadata = {"schedule_id": sid, "fire_time": iso(fire_time), "trigger": "schedule"}
        if schedule.target_type == "workflow":
            if target.get("sla_seconds") is not None:
                metadata["sla_seconds"] = target["sla_seconds"]
            run_id = self.engine.start_workflow(
                target["workflow_id"], target.get("params"), None, "schedule", metadata, schedule_id=sid
            )
            return run_id, None
        spec = {**target["task"], "metadata": {**target["task"].get("metadata", {}), **metadata}}
        return None, self.engine.submit_specs([spec], schedule_id=sid)[0]

    def _missed(self, schedule: ScheduleRecord, first: float, count: int, reason: str) -> None:
        target = schedule.target
        self.engine.bus.publish(
            {
                "event": ev.SCHEDULE_MISSED,
                "task_id": None,
                "id": None,
                "run_id": None,
                "workflow_id": target.get("workflow_id"),
                "name": target["task"].get("name") if "task" in target else schedule.name,
                "state": None,
                "attempt": None,
                "error": {"type": "ScheduleMissed", "message": reason},
                "at": self.clock.now(),
                "schedule_id": schedule.schedule_id,
                "schedule_name": schedule.name,
                "fire_time": iso(first),
                "missed": count,
            }
        )

    def _block(self, schedule_id: str) -> None:
        self._blocked.add(schedule_id)
        self._listen()

    def _listen(self) -> None:
        """Wake up when a run ends (a catch-up or a backfill waits for one) rather than polling for it."""
        if not self._listening:
            self._listening = True
            waiting = lambda _event: (self._blocked or self._queued_at is None) and self.wake()  # noqa: E731
            self.engine.bus.subscribe(waiting, FINISH_EVENTS)

    # -- the background loop -----------------------------------------------------------------------------
    def start(self) -> None:
        """Fire due schedules from a background thread until :meth:`stop`."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="unified-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (waiting up to ``timeout`` seconds for a pass in progress)."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Look at the schedules again now (they changed, or the clock jumped)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("scheduler pass failed; trying again shortly")
            self._sleep()

    def seconds_to_sleep(self) -> float:
        """How long the loop may sleep: until the earliest next fire, capped; short while catch-up waits."""
        try:
            due = self.store.next_schedule_fire()
        except UnifiedError:
            return self.busy_wait_seconds
        if due is None:
            return self.max_wait_seconds
        now = self.clock.now()
        remaining = due - now
        if remaining <= 0:  # a catch-up waiting for max_active_runs, or a fire time reached during the pass
            try:
                waiting = self.store.due_schedules(now, limit=len(self._blocked) + 1)
            except UnifiedError:
                return self.busy_wait_seconds
            return 0.0 if any(s.schedule_id not in self._blocked for s in waiting) else self.busy_wait_seconds
        return min(remaining, self.max_wait_seconds)

    def _sleep(self) -> None:
        timeout = self.seconds_to_sleep()
        with self._cond:
            if not self._woken and not self._stopping.is_set():
                self._cond.wait(timeout)
            self._woken = False
