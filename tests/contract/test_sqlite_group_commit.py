"""SQLite group commit: a transaction that ends while another thread waits to write hands its open transaction on,
and one COMMIT acknowledges both; a failing member loses only its own writes; a failed COMMIT fails every member."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers.workers import wait_until
from unified.errors import StoreError
from unified.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(f"sqlite:///{tmp_path / 'group.db'}") as opened:
        yield opened


def commits_of(store: SqliteStore) -> list[str]:
    """The COMMITs the store's connections send from now on (one entry each)."""
    seen: list[str] = []
    sa.event.listen(store._engine, "commit", lambda conn: seen.append("commit"))
    return seen


def two_writers(
    store: SqliteStore, second: Callable[[], Any], commits: list[str]
) -> tuple[dict[str, int], dict[str, BaseException]]:
    """The first thread writes queue limit ``a`` and ends its transaction only once the second thread waits for the
    turn; the second then runs ``second`` in its transaction. Returns how many COMMITs each had seen when its
    transaction returned, and the error each raised."""
    seen: dict[str, int] = {}
    errors: dict[str, BaseException] = {}
    inside = threading.Event()

    def first() -> None:
        try:
            with store.atomic():
                store.set_queue_limit("a", 1)
                inside.set()
                wait_until(lambda: store._group._waiting == 1, 5, "the second writer to wait for the turn", 0.001)
        except BaseException as exc:  # handed to the test
            errors["first"] = exc
        seen["first"] = len(commits)

    def then() -> None:
        inside.wait(5)
        try:
            with store.atomic():
                second()
        except BaseException as exc:  # handed to the test
            errors["second"] = exc
        seen["second"] = len(commits)

    threads = [threading.Thread(target=first), threading.Thread(target=then)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads), "a writer never returned"
    return seen, errors


def test_a_writer_waiting_for_the_turn_shares_the_commit_of_the_one_before(store: SqliteStore) -> None:
    commits = commits_of(store)
    seen, errors = two_writers(store, lambda: store.set_queue_limit("b", 2), commits)
    assert errors == {}
    assert store.queue_limits() == {"a": 1, "b": 2}
    assert commits == ["commit"], "one COMMIT for both transactions"
    assert seen == {"first": 1, "second": 1}, "the first transaction returned only once the shared COMMIT was done"


def test_a_member_that_fails_loses_only_its_own_writes(store: SqliteStore) -> None:
    def fails() -> None:
        store.set_queue_limit("b", 2)
        raise RuntimeError("the second transaction fails")

    commits = commits_of(store)
    _, errors = two_writers(store, fails, commits)
    assert list(errors) == ["second"] and str(errors["second"]) == "the second transaction fails"
    assert commits == ["commit"], "the failed member's thread commits the first one's transaction"
    assert store.queue_limits() == {"a": 1}, "the first transaction's write is kept, the failed one's is not"
    store.set_queue_limit("c", 3)  # the connection goes on working
    assert store.queue_limits() == {"a": 1, "c": 3}


def test_a_failed_commit_fails_every_member_and_keeps_nothing(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set_queue_limit("before", 1)
    conn = store._group._conn
    assert conn is not None

    def broken_commit() -> None:
        raise sa.exc.OperationalError("COMMIT", (), Exception("disk I/O error"))

    monkeypatch.setattr(conn, "commit", broken_commit)
    _, errors = two_writers(store, lambda: store.set_queue_limit("b", 2), [])
    monkeypatch.undo()
    assert sorted(errors) == ["first", "second"]
    for error in errors.values():
        assert isinstance(error, StoreError) and "disk I/O error" in str(error), error
    assert store.queue_limits() == {"before": 1}, "neither transaction's write is kept"
    store.set_queue_limit("after", 2)  # a new transaction works
    assert store.queue_limits() == {"before": 1, "after": 2}


def test_many_threads_writing_at_once_keep_exactly_what_succeeded(store: SqliteStore) -> None:
    """8 threads, 40 transactions each, every 7th failing after its write: what returned is stored, what raised is
    not, and everybody finishes (no member is left waiting for a commit)."""
    commits = commits_of(store)
    kept: set[str] = set()
    failures = []

    def writer(n: int) -> None:
        for i in range(40):
            name = f"w{n}-{i}"
            try:
                with store.atomic():
                    store.set_queue_limit(name, i + 1)
                    if (n + i) % 7 == 0:
                        raise RuntimeError(name)
            except RuntimeError:
                failures.append(name)
                continue
            kept.add(name)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads), "a writer never returned"
    assert len(kept) + len(failures) == 320 and failures
    assert set(store.queue_limits()) == kept
    assert len(commits) < len(kept), "some transactions shared a commit"
