"""Leases of pending alerts (Store.take_alerts, renew_alerts, update_owned_alert) and SLA watches (insert, due,
settle), the same on every store: a lapsed lease is taken once, a live one never; a watch is settled once."""

from __future__ import annotations

import threading

import pytest

from unified.errors import NotFoundError
from unified.store.base import Store
from unified.store.records import AlertRecord, SlaWatchRecord

MINE, THEIRS = "host:1:aaaa", "host:2:bbbb"


def alert(
    alert_id: str, owner: str | None, lease: float | None, status: str = "pending", at: float = 1.0
) -> AlertRecord:
    """A stored alert of a rule, leased to ``owner`` until ``lease``."""
    return AlertRecord(alert_id, "task_failed", {"alert_id": alert_id}, at, "webhook", status, rule_id="r",
                       owner=owner, lease_expires_at=lease)  # fmt: skip


def test_only_pending_alerts_whose_lease_lapsed_are_taken_longest_lapsed_first(store: Store) -> None:
    store.insert_alert(alert("live", THEIRS, 200.0))
    store.insert_alert(alert("lapsed-late", THEIRS, 90.0, at=2.0))
    store.insert_alert(alert("lapsed-early", THEIRS, 50.0, at=3.0))
    store.insert_alert(alert("sent", THEIRS, 10.0, status="sent"))
    store.insert_alert(alert("unleased", None, None))  # stored before leases: left as it is
    taken = store.take_alerts(MINE, 100.0, 160.0, limit=1)
    assert [(a.alert_id, a.owner, a.lease_expires_at) for a in taken] == [("lapsed-early", MINE, 160.0)]
    assert [a.alert_id for a in store.take_alerts(MINE, 100.0, 160.0)] == ["lapsed-late"]
    assert store.take_alerts(MINE, 100.0, 160.0) == [], "leased now: not taken again"
    by_id = {a.alert_id: a for a in store.list_alerts()}
    assert (by_id["live"].owner, by_id["live"].lease_expires_at) == (THEIRS, 200.0)
    assert by_id["unleased"].owner is None and by_id["sent"].owner == THEIRS


def test_a_renewal_extends_only_the_named_pending_leases_of_the_owner(store: Store) -> None:
    store.insert_alert(alert("a", MINE, 100.0))
    store.insert_alert(alert("b", MINE, 100.0))
    store.insert_alert(alert("done", MINE, 100.0, status="sent"))
    store.insert_alert(alert("c", THEIRS, 100.0))
    store.insert_alert(alert("dropped", MINE, 100.0))  # leased to MINE, but no longer in its hands: not named
    assert store.renew_alerts(MINE, 300.0, ["a", "b", "done", "c", "missing"]) == 2
    assert [a.alert_id for a in store.take_alerts("host:3:cccc", 200.0, 260.0)] == ["c", "dropped"]
    assert store.renew_alerts("host:9:none", 300.0, ["a", "b"]) == 0
    assert store.renew_alerts(MINE, 300.0, []) == 0


def test_an_owned_update_is_fenced_by_owner_and_pending(store: Store) -> None:
    store.insert_alert(alert("a", THEIRS, 50.0))
    assert store.take_alerts(MINE, 100.0, 160.0)
    assert store.update_owned_alert("a", THEIRS, status="sent", attempts=1) is False, "taken over: fenced off"
    assert store.update_owned_alert("a", MINE, status="sent", attempts=1, owner=None) is True
    assert store.update_owned_alert("a", MINE, status="failed") is False, "no longer pending"
    (stored,) = store.list_alerts()
    assert (stored.status, stored.attempts, stored.owner) == ("sent", 1, None)
    with pytest.raises(NotFoundError):
        store.update_owned_alert("missing", MINE, status="sent")


def test_concurrent_takers_never_take_the_same_alert(store: Store) -> None:
    for n in range(60):
        store.insert_alert(alert(f"a{n:02}", "dead", 10.0))
    taken: dict[str, list[str]] = {}
    start = threading.Barrier(3)

    def take(owner: str) -> None:
        start.wait(5)
        mine = taken.setdefault(owner, [])
        while batch := store.take_alerts(owner, 100.0, 200.0, limit=7):
            mine.extend(a.alert_id for a in batch)

    threads = [threading.Thread(target=take, args=(f"taker-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    everyone = [alert_id for ids in taken.values() for alert_id in ids]
    assert sorted(everyone) == [f"a{n:02}" for n in range(60)], "each taken exactly once"
    owners = {a.alert_id: a.owner for a in store.list_alerts(limit=100)}
    assert all(owners[alert_id] == owner for owner, ids in taken.items() for alert_id in ids)


def test_sla_watches_are_due_earliest_first_and_settled_once(store: Store) -> None:
    store.insert_sla_watches([SlaWatchRecord("task", "t1", 160.0, 60.0), SlaWatchRecord("run", "r1", 130.0, 30.0),
                              SlaWatchRecord("task", "r1", 500.0, 400.0)])  # fmt: skip
    store.insert_sla_watches([SlaWatchRecord("task", "t1", 999.0, 899.0)])  # already watched: kept as it was
    store.insert_sla_watches([])
    assert store.next_sla_deadline() == 130.0
    assert store.due_sla_watches(100.0) == []
    due = store.due_sla_watches(160.0)
    assert [(w.kind, w.key, w.deadline, w.sla_seconds, w.outcome) for w in due] == [
        ("run", "r1", 130.0, 30.0, None), ("task", "t1", 160.0, 60.0, None)]  # fmt: skip
    assert [w.key for w in store.due_sla_watches(160.0, limit=1)] == ["r1"]
    assert store.settle_sla_watch("run", "r1", "missed", 170.0) is True
    assert store.settle_sla_watch("run", "r1", "met", 171.0) is False, "settled once"
    assert store.settle_sla_watch("run", "nope", "met", 171.0) is False
    assert [w.key for w in store.due_sla_watches(1000.0)] == ["t1", "r1"]  # the task r1 is another watch
    assert store.next_sla_deadline() == 160.0
    assert store.settle_sla_watch("task", "t1", "met", 180.0) and store.settle_sla_watch("task", "r1", "gone", 600.0)
    assert store.due_sla_watches(1000.0) == [] and store.next_sla_deadline() is None
