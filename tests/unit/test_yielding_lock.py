"""The memory store's lock: exclusive across threads, re-entrant for its owner, and it waits out any hold."""

from __future__ import annotations

import threading
import time

import pytest

from unified.store import yielding_lock
from unified.store.yielding_lock import YieldingLock

WAIT = 10.0  # seconds: a bound on every join, never reached when the lock works


def test_threads_never_hold_it_together() -> None:
    lock = YieldingLock()
    inside = 0
    overlaps = 0
    counter = 0

    def work() -> None:
        nonlocal inside, overlaps, counter
        for _ in range(500):
            with lock:
                inside += 1
                if inside > 1:
                    overlaps += 1
                value = counter
                time.sleep(0)  # lets the other threads run here: without the lock they would interleave
                counter = value + 1  # a lost update if two threads were in here at once
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == 0
    assert counter == 2_000


def test_the_owner_may_enter_again_and_others_wait_for_the_outermost_exit() -> None:
    lock = YieldingLock()
    entered = threading.Event()
    with lock:
        with lock:
            pass
        other = threading.Thread(target=lambda: (lock.__enter__(), entered.set(), lock.__exit__(None, None, None)))
        other.start()
        assert not entered.wait(0.05)  # still held by the outer block
    assert entered.wait(WAIT)
    other.join(WAIT)


@pytest.mark.parametrize("brief", [0.0, 3600.0], ids=["long hold: sleeps at once", "brief hold: yields first"])
def test_a_waiter_gets_the_lock_once_the_holder_lets_go(monkeypatch: pytest.MonkeyPatch, brief: float) -> None:
    monkeypatch.setattr(yielding_lock, "BRIEF_SECONDS", brief)
    lock = YieldingLock()
    release, took, holding = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            holding.set()
            release.wait(WAIT)

    def waiter() -> None:
        with lock:
            took.set()

    first = threading.Thread(target=holder)
    first.start()
    assert holding.wait(WAIT)
    second = threading.Thread(target=waiter)
    second.start()
    assert not took.wait(0.02)
    release.set()
    assert took.wait(WAIT)
    first.join(WAIT)
    second.join(WAIT)


def test_a_reentry_leaves_the_hold_as_long_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hold's age runs from the outermost entry: a waiter sleeps at once on a long hold the owner re-entered."""
    clock = [0.0]
    naps: list[float] = []
    monkeypatch.setattr(yielding_lock, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(yielding_lock, "sleep", naps.append)
    lock = YieldingLock()
    took = threading.Event()
    with lock:
        clock[0] = 1.0  # far beyond BRIEF_SECONDS
        with lock:
            waiter = threading.Thread(target=lambda: (lock.__enter__(), took.set(), lock.__exit__(None, None, None)))
            waiter.start()
            assert not took.wait(0.02)
    assert took.wait(WAIT)
    waiter.join(WAIT)
    assert naps == []
