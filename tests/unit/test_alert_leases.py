"""Alerts outlive the process that raised them: a pending alert is leased to its alert service, renewed while that
service lives, and taken over (once) by another service when the lease lapses. SLA deadlines are stored with the
work and settled once by whichever process checks them first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.helpers.tasks import add
from tests.unit.test_alerts_channels import Receiver
from unified.alerts import AlertService, LogChannel, WebhookChannel
from unified.engine import Engine
from unified.errors import StoreError
from unified.executor import Executor
from unified.store.memory import MemoryStore
from unified.store.records import AlertRecord, SlaWatchRecord
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.worker import WorkerPool

FAILED = {"event": "task_failed", "task_id": "t", "name": "t", "workflow_id": None, "at": 0.0}


def test_a_live_service_keeps_its_alerts_and_a_dead_ones_are_taken_over_once() -> None:
    store, clock = MemoryStore(), FakeClock()
    hold = threading.Event()
    hook = Receiver(hold=hold)
    alive = AlertService(Engine(store, clock), threaded=False, lease_seconds=30)
    other = AlertService(Engine(store, clock), threaded=False, lease_seconds=30)
    try:
        alive.add_rule(["task_failed"], WebhookChannel(hook.url))
        alive.engine.bus.publish(FAILED)
        assert hook.got.wait(5), "the delivery is under way (held by the receiver)"
        for _ in range(30):
            clock.advance(9)  # every keeper looks each 10 s at most: the live one renews its lease
        assert other.take_over() == 0, "a live service's alert is never taken over"
        (held,) = store.list_alerts()
        assert (held.status, held.owner, held.lease_expires_at) == ("pending", alive.owner, clock.now() + 30)
        # a process that raised an alert and died before sending it: nothing renews its lease
        log_rule = alive.add_rule(["task_retrying"], LogChannel())
        orphan = AlertRecord("orphan", "task_retrying", dict(FAILED, alert_id="orphan"), clock.now(), "log",
                             "pending", rule_id=log_rule, owner="dead", lease_expires_at=clock.now() + 30)  # fmt: skip
        store.insert_alert(orphan)
        clock.advance(29)
        assert other.take_over() == 0, "not before its lease lapsed"
        clock.advance(2)  # a keeper takes it over on the advance (the first to look: `alive`, renewing its own)
        # `alive` sends it from its log lane while its webhook alert is still held
        deadline = time.monotonic() + 5
        while not store.list_alerts(status="sent") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.list_alerts(status="sent")[0].alert_id == "orphan"
        taken = next(a for a in store.list_alerts() if a.alert_id == "orphan")
        assert (taken.owner, taken.attempts, taken.error) == (alive.owner, 1, None)
        assert other.take_over() == 0 and alive.take_over() == 0, "taken once"
    finally:
        hold.set()
        alive.close()
        other.close()
        hook.close()
    assert [len(hook.requests), {a.status for a in store.list_alerts()}] == [1, {"sent"}]


def test_a_taken_over_alert_whose_rule_is_gone_is_recorded_failed() -> None:
    store, clock = MemoryStore(), FakeClock()
    store.insert_alert(AlertRecord("a1", "task_failed", dict(FAILED, alert_id="a1"), clock.now(), "log", "pending",
                                   rule_id="deleted", owner="dead", lease_expires_at=clock.now()))  # fmt: skip
    service = AlertService(Engine(store, clock), threaded=False)
    clock.advance(1)
    (alert,) = service.list_alerts()
    assert (alert["status"], alert["error"]) == ("failed", "not sent: its alert rule was deleted first")
    service.close()


def test_a_delivery_fenced_off_by_a_takeover_leaves_the_record_to_the_new_owner() -> None:
    store, clock = MemoryStore(), FakeClock()
    first = AlertService(Engine(store, clock), threaded=False)
    rule_id = first.add_rule(["task_failed"], LogChannel())
    record = AlertRecord("a1", "task_failed", dict(FAILED, alert_id="a1"), clock.now(), "log", "pending",
                         rule_id=rule_id, owner=first.owner, lease_expires_at=clock.now())  # fmt: skip
    store.insert_alert(record)
    assert store.take_alerts("another", clock.now() + 1, clock.now() + 60)  # first stalled past its lease
    assert first.deliver("a1", {"type": "log"}, record.payload) is True  # sent all the same (at least once) ...
    (alert,) = store.list_alerts()
    assert (alert.status, alert.owner) == ("pending", "another"), "... but the record is the new owner's to write"
    first.close()


def sla_events(tm: TaskManager) -> list[dict[str, Any]]:
    """The sla_missed events a handler of ``tm`` heard."""
    heard: list[dict[str, Any]] = []
    tm.add_alert_handler(heard.append, events=["sla_missed"])
    return heard


def test_sla_deadlines_outlive_the_submitting_process_and_are_raised_once(clock: FakeClock) -> None:
    store = MemoryStore()
    submitter = TaskManager(store=store, max_workers=0, clock=FakeClock(clock.now()), run_scheduler=False)
    late = submitter.queue_task(add, args=(1, 1), name="late", sla_seconds=60, queue="never")
    on_time = submitter.queue_task(add, args=(2, 2), name="on-time", sla_seconds=60, queue="soon")
    finished_late = submitter.queue_task(add, args=(3, 3), name="finished-late", sla_seconds=60, queue="later")
    submitter.shutdown()  # gone, and its watch with it
    runner = TaskManager(store=store, max_workers=0, clock=clock, run_scheduler=False)  # no one hears sla_missed
    managers = [runner]
    try:
        clock.advance(30)
        assert WorkerPool(runner.engine, Executor(clock), 0, ["soon"]).run_until_idle() == 1
        clock.advance(40)  # past the deadlines, which nobody here listens for: they wait for someone who does
        assert runner.alerts.sla.check() == 0
        assert WorkerPool(runner.engine, Executor(clock), 0, ["later"]).run_until_idle() == 1
        first = TaskManager(store=store, max_workers=0, clock=clock, run_scheduler=False)
        second = TaskManager(store=store, max_workers=0, clock=clock, run_scheduler=False)
        managers += [first, second]
        heard_first, heard_second = sla_events(first), sla_events(second)
        clock.advance(1)  # both check on the advance
        heard = heard_first + heard_second
        assert sorted(e["id"] for e in heard) == sorted([late, finished_late]), "each once, by one process"
        assert {e["id"]: e["state"] for e in heard} == {late: "queued", finished_late: "success"}
        clock.advance(600)
        assert len(heard_first + heard_second) == 2
        assert not store.due_sla_watches(clock.now()), "every deadline settled, the one met too"
        assert store.settle_sla_watch("task", on_time, "missed", clock.now()) is False
    finally:
        for tm in managers:
            tm.shutdown()


def test_a_process_nobody_in_which_hears_sla_missed_waits_a_poll_not_a_passed_deadline(drained: TaskManager) -> None:
    drained.queue_task(add, args=(1, 1), sla_seconds=1)
    assert drained.alerts.sla.seconds_to_next() == 1.0, "woken for the deadline it submitted"
    drained.clock.advance(2)  # the check runs: no rule or handler here takes sla_missed
    assert drained.alerts.sla.seconds_to_next() == drained.alerts.sla.poll_seconds, "no busy loop on the deadline"
    assert [w.key for w in drained.store.due_sla_watches(drained.clock.now())], "left for a process that listens"


def test_an_event_after_the_service_closed_leaves_its_alert_for_another_process() -> None:
    store, clock = MemoryStore(), FakeClock()
    closed = AlertService(Engine(store, clock), threaded=False)
    closed.add_rule(["task_failed"], LogChannel())
    closed.close()
    closed.engine.bus.publish(FAILED)  # an attempt ending while its process shuts down
    (alert,) = store.list_alerts()
    assert (alert.status, alert.owner, alert.lease_expires_at) == ("pending", None, clock.now())
    other = AlertService(Engine(store, clock), threaded=False)
    clock.advance(1)
    assert other.flush(10) and store.list_alerts(status="sent")
    other.close()


def test_a_shut_down_manager_on_a_shared_fake_clock_checks_no_more_deadlines(clock: FakeClock) -> None:
    store = MemoryStore()
    closed = TaskManager(store=store, max_workers=0, clock=clock, run_scheduler=False)
    heard_closed = sla_events(closed)
    closed.shutdown()
    live = TaskManager(store=store, max_workers=0, clock=clock, run_scheduler=False)
    try:
        heard_live = sla_events(live)
        task_id = live.queue_task(add, args=(1, 1), sla_seconds=5)
        clock.advance(10)  # every keeper registered on the clock is called, the closed service's first
        assert heard_closed == [], "a shut-down manager raises nothing"
        assert [e["id"] for e in heard_live] == [task_id], "the live one settles the deadline and hears it"
    finally:
        live.shutdown()


class SlaReadsFail(MemoryStore):
    """A store whose SLA deadlines cannot be read (one bad row, a table left behind by a failed migration)."""

    def due_sla_watches(self, now: float, limit: int = 100) -> list[SlaWatchRecord]:
        raise StoreError("the sla_watches table cannot be read")


def orphaned_alert(store: MemoryStore, service: AlertService, now: float) -> None:
    """A pending alert of ``service``'s log rule (which also takes sla_missed), left by a process that died."""
    rule_id = service.add_rule(["task_failed", "sla_missed"], LogChannel())
    store.insert_alert(AlertRecord("orphan", "task_failed", dict(FAILED, alert_id="orphan"), now, "log", "pending",
                                   rule_id=rule_id, owner="dead", lease_expires_at=now))  # fmt: skip


def test_a_failing_sla_check_does_not_stop_the_leases_on_a_fake_clock() -> None:
    store, clock = SlaReadsFail(), FakeClock()
    service = AlertService(Engine(store, clock), threaded=False)
    try:
        orphaned_alert(store, service, clock.now())
        clock.advance(1)  # the SLA check fails (logged), the takeover goes on; the advance does not raise
        assert service.flush(10) and [a.alert_id for a in store.list_alerts(status="sent")] == ["orphan"]
    finally:
        service.close()


def test_a_failing_sla_check_does_not_stop_the_keeper_thread_renewing_and_taking_over() -> None:
    store = SlaReadsFail()
    service = AlertService(Engine(store), lease_seconds=0.3)  # the keeper looks every 0.1 s
    try:
        orphaned_alert(store, service, time.time())
        deadline = time.monotonic() + 10
        while not store.list_alerts(status="sent") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [a.alert_id for a in store.list_alerts(status="sent")] == ["orphan"], "taken over despite the failure"
    finally:
        service.close()


@contextmanager
def held_webhook(
    store: MemoryStore, clock: FakeClock, **options: Any
) -> Iterator[tuple[AlertService, Receiver, threading.Event]]:
    """An alert service (keeping on ``clock``'s advances) and a webhook receiver holding each request until the event
    is set; all closed afterwards."""
    hold = threading.Event()
    hook = Receiver(hold=hold)
    service = AlertService(Engine(store, clock), threaded=False, **options)
    try:
        yield service, hook, hold
    finally:
        hold.set()
        service.close()
        hook.close()


def test_a_takeover_takes_no_more_than_the_lanes_have_room_for() -> None:
    store, clock = MemoryStore(), FakeClock()
    with held_webhook(store, clock, queue_size=2) as (service, hook, hold):
        rule_id = service.add_rule(["task_failed"], WebhookChannel(hook.url))
        for n in range(5):  # left by a process that died with them pending
            alert_id, now = f"a{n}", clock.now()
            store.insert_alert(AlertRecord(alert_id, "task_failed", dict(FAILED, alert_id=alert_id), now + n, "webhook",
                                           "pending", rule_id=rule_id, owner="dead", lease_expires_at=now))  # fmt: skip
        clock.advance(1)  # taken: as many as the channel's queue holds
        assert hook.got.wait(5), "the first is being sent (held by the receiver)"
        clock.advance(1)  # the queue is still full: the rest wait in the store, not recorded failed
        assert not store.list_alerts(status="failed"), "a taken-over alert is never dropped for a full queue"
        hold.set()
        deadline = time.monotonic() + 10
        while len(store.list_alerts(status="sent")) < 5 and time.monotonic() < deadline:
            clock.advance(1)  # each keeper round takes what fits
            service.flush(5)
        assert sorted(a.alert_id for a in store.list_alerts(status="sent")) == [f"a{n}" for n in range(5)]


class FirstRecordFails(MemoryStore):
    """A store that fails the first write of an alert's outcome (the database was briefly unreachable)."""

    failed = False

    def update_owned_alert(self, alert_id: str, owner: str, /, **changes: Any) -> bool:
        if not self.failed:
            self.failed = True
            raise StoreError("the database is unreachable")
        return super().update_owned_alert(alert_id, owner, **changes)


def test_an_alert_whose_outcome_could_not_be_recorded_is_not_renewed_for_ever() -> None:
    store, clock = FirstRecordFails(), FakeClock()
    with held_webhook(store, clock, lease_seconds=30) as (service, hook, _):
        service.add_rule(["task_retrying"], LogChannel())
        service.add_rule(["task_failed"], WebhookChannel(hook.url))
        service.engine.bus.publish(dict(FAILED, event="task_retrying"))
        assert service.flush(10) and store.failed, "sent, but its outcome was not recorded: pending, leased here"
        service.engine.bus.publish(FAILED)  # another alert this service holds meanwhile (a slow channel)
        assert hook.got.wait(5)
        for _ in range(4):
            clock.advance(9)  # the keeper renews what it holds; the unrecorded alert is no longer in its hands
        assert service.flush(0) is False, "the webhook alert is still being sent"
        deadline = time.monotonic() + 5  # its lease lapsed and it was taken over: sent again (at least once)
        while not store.list_alerts(status="sent") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [a.event for a in store.list_alerts(status="sent")] == ["task_retrying"]


class CloseBeforeClear(threading.Event):
    """The keeper's wake event, with a close() landing between the keeper's stop check and its clear of the event
    (what close() does: stop, then wake the keeper; the clear undoes the wake)."""

    def __init__(self, service: AlertService) -> None:
        super().__init__()
        self.service = service

    def clear(self) -> None:
        self.service._stopping.set()
        self.set()
        super().clear()


def test_a_close_just_before_the_keeper_clears_its_wake_still_stops_it_at_once() -> None:
    service = AlertService(Engine(MemoryStore()), threaded=False)
    service._wake = CloseBeforeClear(service)
    keeper = threading.Thread(target=service._keep_loop, daemon=True)
    keeper.start()
    keeper.join(2)  # the keeper would otherwise sleep its whole wait (5 s and more) before it saw the stop
    assert not keeper.is_alive(), "a closed service leaves no keeper thread behind"
    service.close()
