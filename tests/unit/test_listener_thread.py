"""The thread behind a store's listen(): it reconnects with backoff, and calls back once whenever it (re)connects."""

from __future__ import annotations

import queue
from collections.abc import Callable

import pytest

from unified.store import listener_thread
from unified.store.listener_thread import ListenerThread


class Flaky(ListenerThread):
    """A connection that fails ``failures`` times, then works until stopped."""

    def __init__(self, callback: Callable[[str], None], failures: int) -> None:
        self.to_fail = failures
        self.served = 0
        super().__init__(callback, "test-db", (OSError,), 5.0, "test-listener")

    def _serve(self) -> None:
        self.served += 1
        if self.served <= self.to_fail:
            raise OSError("the database is down")
        self._connected()
        self._call("work")
        self._stopping.wait()


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_thread, "MAX_BACKOFF_SECONDS", 0.01)


def test_after_failures_a_listener_calls_back_once_for_what_it_missed_and_backs_off_afresh() -> None:
    heard: queue.SimpleQueue[str] = queue.SimpleQueue()
    listener = Flaky(heard.put, failures=2)
    try:
        assert heard.get(timeout=5) == "", "a look for work announced while it was away"
        assert heard.get(timeout=5) == "work"
        assert listener.served == 3 and listener._failures == 0
    finally:
        listener.stop()
    assert not listener._thread.is_alive()


def test_a_listener_calls_back_once_when_it_first_listens_for_what_was_said_before() -> None:
    heard: queue.SimpleQueue[str] = queue.SimpleQueue()
    listener = Flaky(heard.put, failures=0)
    try:
        assert heard.get(timeout=5) == "", "a look for work announced before it listened"
        assert heard.get(timeout=5) == "work"
    finally:
        listener.stop()
    assert heard.empty()


def test_a_failing_callback_is_logged_and_listening_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    heard: queue.SimpleQueue[str] = queue.SimpleQueue()

    def callback(queue_name: str) -> None:
        heard.put(queue_name)
        raise RuntimeError("the pool is gone")

    listener = Flaky(callback, failures=1)
    try:
        assert heard.get(timeout=5) == "" and heard.get(timeout=5) == "work"
    finally:
        listener.stop()
    assert "a notification callback failed" in caplog.text
