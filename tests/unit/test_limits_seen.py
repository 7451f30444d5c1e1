"""LimitsSeen: whether any queue limit exists, read at most once per recheck interval (clock injected)."""

from __future__ import annotations

from unified.store.sql_wakeups import LimitsSeen


class Reads:
    """A stand-in for the database read: answers ``value`` and counts the calls."""

    def __init__(self, value: bool) -> None:
        self.value, self.count = value, 0

    def __call__(self, _conn: object) -> bool:
        self.count += 1
        return self.value


def test_the_answer_is_read_once_and_again_once_the_recheck_interval_passed() -> None:
    now = [100.0]
    reads = Reads(False)
    seen = LimitsSeen(reads, recheck_seconds=1.0, clock=lambda: now[0])
    assert seen.any("conn") is False and reads.count == 1
    now[0] = 100.9
    assert seen.any("conn") is False and reads.count == 1, "within the interval: the last answer"
    reads.value = True  # another process set a limit
    assert seen.any("conn") is False, "not seen before the interval ends"
    now[0] = 101.0
    assert seen.any("conn") is True and reads.count == 2


def test_forget_reads_again_at_once() -> None:
    reads = Reads(False)
    seen = LimitsSeen(reads, clock=lambda: 5.0)
    assert seen.any("conn") is False
    reads.value = True  # this store set a limit
    seen.forget()
    assert seen.any("conn") is True and reads.count == 2
