"""Retries of a failed delivery span minutes: past a short wait the alert is parked in the store (pending, leased to
nobody, due at its next attempt), other alerts of the channel go on meanwhile, and whichever process looks first when
it is due (the one that parked it, or another after a restart) makes the next attempt, up to ``max_attempts``."""

from __future__ import annotations

import time

from tests.helpers.workers import wait_until
from tests.unit.test_alerts_channels import Receiver
from unified.alerts import AlertService, WebhookChannel
from unified.engine import Engine
from unified.store.memory import MemoryStore
from unified.store.records import AlertRecord
from unified.utils import FakeClock, SystemClock

FAILED = {"event": "task_failed", "task_id": "t", "name": "t", "workflow_id": None, "at": 0.0}


def stored(store: MemoryStore, alert_id: str) -> AlertRecord:
    """The stored alert with this id."""
    return next(a for a in store.list_alerts(limit=1000) if a.alert_id == alert_id)


def test_a_failed_alert_waits_in_the_store_without_holding_up_its_channel() -> None:
    store, clock = MemoryStore(), FakeClock()
    hook = Receiver(statuses=(500,))
    service = AlertService(Engine(store, clock), threaded=False)  # 2 s, then 4, 8, ... up to 300; 10 attempts
    try:
        service.add_rule(["task_failed", "task_timeout"], WebhookChannel(hook.url))
        service.engine.bus.publish(FAILED)  # answered 500
        service.engine.bus.publish({**FAILED, "event": "task_timeout"})  # answered 200 at once: not held up
        assert service.flush(10)
        first = next(a for a in store.list_alerts() if a.event == "task_failed")
        assert store.list_alerts(status="sent")[0].event == "task_timeout"
        assert (first.status, first.attempts, first.owner, first.lease_expires_at) == (
            "pending", 1, None, clock.now() + 2)  # fmt: skip
        assert "500" in (first.error or "")
        clock.advance(1)
        assert service.flush(10) and len(hook.requests) == 2, "not before it is due"
        clock.advance(1.5)  # due: the keeper takes it on the advance
        assert service.flush(10)
        again = stored(store, first.alert_id)
        assert (again.status, again.attempts, again.error, len(hook.requests)) == ("sent", 2, None, 3)
    finally:
        service.close()
        hook.close()


def test_a_restart_goes_on_with_the_attempts_and_stops_at_max_attempts() -> None:
    store, clock = MemoryStore(), FakeClock()
    hook = Receiver(statuses=(500,) * 10)
    before = AlertService(Engine(store, clock), threaded=False, max_attempts=3)
    try:
        before.add_rule(["task_failed"], WebhookChannel(hook.url))
        before.engine.bus.publish(FAILED)
        assert before.flush(10)
        before.close()  # the process stops; the alert waits for its second attempt in 2 s
        (alert,) = store.list_alerts()
        assert (alert.status, alert.attempts) == ("pending", 1)
        after = AlertService(Engine(store, clock), threaded=False, max_attempts=3)
        clock.advance(3)
        assert after.flush(10) and stored(store, alert.alert_id).attempts == 2
        assert stored(store, alert.alert_id).lease_expires_at == clock.now() + 4, "twice the wait"
        clock.advance(5)
        assert after.flush(10)
        final = stored(store, alert.alert_id)
        assert (final.status, final.attempts, len(hook.requests)) == ("failed", 3, 3)
        assert "500" in (final.error or "")
        clock.advance(600)
        assert after.flush(10) and len(hook.requests) == 3, "no attempt beyond max_attempts"
        after.close()
    finally:
        hook.close()


def test_the_keeper_thread_wakes_for_a_parked_retry_on_the_real_clock() -> None:
    store = MemoryStore()
    hook = Receiver(statuses=(500,))
    service = AlertService(Engine(store, SystemClock()), retry_delay_seconds=0.05, inline_retry_seconds=0)
    try:
        service.add_rule(["task_failed"], WebhookChannel(hook.url))
        started = time.monotonic()
        service.engine.bus.publish(FAILED)
        wait_until(lambda: store.list_alerts(status="sent"), 10, "the second attempt")
        assert time.monotonic() - started < service.lease_seconds / 3, "woken for it, not at the next lease pass"
        (alert,) = store.list_alerts()
        assert (alert.attempts, len(hook.requests)) == (2, 2)
    finally:
        service.close()
        hook.close()
