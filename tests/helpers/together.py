"""Calls made from several threads at the same moment, for tests of races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def at_once(calls: list[Callable[[], Any]], timeout: float = 30.0) -> tuple[list[Any], list[BaseException]]:
    """Run each call in a thread of its own, released together by a barrier; their results and their errors (in
    the order they ended). Fails if a thread is still running after ``timeout`` seconds."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        barrier.wait(timeout)
        try:
            results.append(call())
        except BaseException as exc:  # reported to the test, which decides
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), f"a call was still running after {timeout} s"
    return results, errors
