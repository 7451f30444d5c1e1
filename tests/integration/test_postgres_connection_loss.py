"""PostgreSQL drops every connection (as a restart does): the store says so with StoreError and recovers, and a run
carried by worker processes still finishes, with each result written once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers.postgres import drop_connections
from tests.helpers.workers import Fleet, wait_until
from unified.engine import Engine
from unified.errors import StoreError
from unified.store.sql import SqlStore
from unified.task import Task

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlStore]:
    """A SQL store on the test's schema."""
    opened = SqlStore(pg_url)
    yield opened
    opened.close()


def test_pooled_connections_that_were_dropped_are_replaced(pg_url: str, store: SqlStore) -> None:
    store.count_tasks_by_state()  # leaves a connection in the pool
    assert drop_connections(pg_url) >= 1
    assert store.count_tasks_by_state() == {}, "the dead pooled connection is noticed and replaced"


def test_a_transaction_cut_off_raises_store_error_and_writes_nothing(pg_url: str, store: SqlStore) -> None:
    engine = Engine(store)
    with pytest.raises(StoreError, match="could not be used"), store.atomic():
        engine.submit([Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 2))])
        drop_connections(pg_url)
        store.count_tasks_by_state()
    assert store.count_tasks_by_state() == {}, "rolled back"
    engine.submit([Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 2))])
    assert store.get_task("a").state == "queued"


def test_a_pool_that_gets_no_working_connection_raises_store_error(store: SqlStore) -> None:
    engine = Engine(store)

    def refuse(_dbapi_connection: object, _record: object, _proxy: object) -> None:
        raise sa.exc.DisconnectionError("the server closed this pooled connection (the test refuses every one)")

    # as a server dropping sessions faster than the pool makes them: its reconnects on checkout all fail, and
    # SQLAlchemy then raises InvalidRequestError, which ended a worker's dispatcher and reporter threads
    sa.event.listen(store._engine, "checkout", refuse)
    try:
        verbs = {
            "read": store.count_tasks_by_state,
            "write": lambda: engine.submit([Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 2))]),
            "claim, in autocommit": lambda: store.claim_tasks("w", time.time(), 30.0),
        }
        for what, verb in verbs.items():
            with pytest.raises(StoreError, match="no working connection"):
                verb()
                pytest.fail(f"the {what} went through")
    finally:
        sa.event.remove(store._engine, "checkout", refuse)
    assert store.count_tasks_by_state() == {}, "nothing was written, and the store works again"


def test_a_run_survives_dropped_connections(pg_url: str, store: SqlStore, tmp_path: Path) -> None:
    engine = Engine(store)
    layers = [[f"l{depth}-{n}" for n in range(4)] for depth in range(8)]
    tasks = [
        Task(task_id=name, func="tests.helpers.tasks:sleep_for", args=(0.15,), dependencies=layers[d - 1] if d else [])
        for d, layer in enumerate(layers)
        for name in layer
    ]
    # a lease outlives many beats: with every session killed ten times a second, a slow machine's heartbeats can
    # fail for a second in a row, and a lapsed lease is a lost attempt (these tasks have no retries); a claim whose
    # answer a kill swallowed is handed back by the heartbeat two beats later (WorkerPool._unknown_leases)
    fleet = Fleet(pg_url, tmp_path, concurrency=4, poll_seconds=30.0, lease_seconds=4.0, heartbeat_seconds=0.2)
    fleet.start(2)
    stop_dropping = threading.Event()
    drops: list[int] = []

    def keep_dropping() -> None:
        while not stop_dropping.wait(0.1):
            drops.append(drop_connections(pg_url))

    dropper = threading.Thread(target=keep_dropping)
    try:
        run_id = engine.create_run(None, None, tasks)
        dropper.start()
        wait_until(lambda: _run_state(store, run_id) != "running", 40, "the run finishing", every=0.1)
        stop_dropping.set()
        dropper.join(5)
        assert _run_state(store, run_id) == "success", fleet.output()
        assert len(drops) >= 3 and sum(drops) > 0, "connections were dropped during the run"
        for record in store.run_tasks(run_id):
            states = [a.state for a in store.list_attempts(record.id)]
            assert states.count("success") == 1 and states[-1] == "success", (record.task_id, states)

        started = time.monotonic()  # the listeners reconnected: new work still wakes the workers at once
        (late,) = engine.submit([Task(func="tests.helpers.tasks:add", args=(2, 2))])
        wait_until(lambda: store.get_task(late).state == "success", 10, "a task queued after the drops")
        assert time.monotonic() - started < 5.0
        assert "cannot" in fleet.output() or "lost the notification connection" in fleet.output(), "it was logged"
    finally:
        stop_dropping.set()
        assert fleet.stop() == [0, 0], fleet.output()


def _run_state(store: SqlStore, run_id: str) -> str:
    try:
        return store.get_run(run_id).state
    except StoreError:
        return "running"  # the test's own connection was dropped too; look again


def test_a_session_stopped_in_a_transaction_ends_and_a_vanished_peer_is_noticed(pg_url: str) -> None:
    """A frozen or cut-off worker's open transaction held the row locks every other worker's lease expiry waits on
    until TCP keepalive noticed it (about two hours): the server now ends it within about 30 s when the client is gone
    and after 10 minutes idle when it is frozen, and the client's socket gives up on a vanished server within about
    30 s. What the URL sets is kept."""
    own = sa.make_url(pg_url).update_query_dict({"keepalives_idle": "99"})
    for url, idle in ((pg_url, "10"), (own.render_as_string(hide_password=False), "99")):
        opened = SqlStore(url)
        try:
            with opened._engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == "10min"
                assert conn.exec_driver_sql("SHOW tcp_keepalives_idle").scalar() == "10"  # the server's side
                libpq = conn.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
                assert (libpq["keepalives_idle"], libpq["tcp_user_timeout"]) == (idle, "30000")
        finally:
            opened.close()
