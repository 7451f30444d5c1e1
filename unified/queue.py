"""Ordering of ready work: a priority queue (higher first, FIFO among equals, honouring not-before) and a FIFO.

Both are thread-safe. ``get`` blocks up to a timeout; items whose not-before time has not come stay hidden.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from unified.utils import Clock, SystemClock

T = TypeVar("T")


class Empty(Exception):
    """Raised by ``get`` when nothing became available in time."""


class PriorityQueue(Generic[T]):
    """Higher priority first; first in, first out among equal priorities; an item waits for its not-before."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._ready: list[tuple[int, int, T]] = []  # (-priority, seq, item)
        self._delayed: list[tuple[float, int, int, T]] = []  # (not_before, -priority, seq, item)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._clock.on_advance(self._wake)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def put(self, item: T, priority: int = 0, not_before: float | None = None) -> None:
        """Add ``item``; it is not handed out before ``not_before`` (epoch seconds) if given."""
        with self._cond:
            seq = next(self._seq)
            if not_before is not None and not_before > self._clock.now():
                heapq.heappush(self._delayed, (not_before, -priority, seq, item))
            else:
                heapq.heappush(self._ready, (-priority, seq, item))
            self._cond.notify()

    def _promote_due(self) -> None:
        now = self._clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            _, neg_priority, seq, item = heapq.heappop(self._delayed)
            heapq.heappush(self._ready, (neg_priority, seq, item))

    def get_nowait(self) -> T:
        """The next ready item, or raise Empty."""
        with self._cond:
            self._promote_due()
            if not self._ready:
                raise Empty
            return heapq.heappop(self._ready)[2]

    def get(self, timeout: float | None = None) -> T:
        """The next ready item, waiting up to ``timeout`` real seconds (None: forever)."""
        with self._cond:
            # a deadline in real seconds: the wait is for another thread, not for (possibly fake) clock time
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                self._promote_due()
                if self._ready:
                    return heapq.heappop(self._ready)[2]
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty
                wait = remaining
                if self._delayed:
                    until_due = max(self._delayed[0][0] - self._clock.now(), 0.0)
                    wait = until_due if wait is None else min(wait, until_due)
                self._cond.wait(wait)

    def drain(self, keep: Callable[[T], bool]) -> list[T]:
        """Remove and return every ready item, due or not, for which ``keep`` is true (others are dropped)."""
        with self._cond:
            items = [entry[2] for entry in sorted(self._ready)] + [entry[3] for entry in sorted(self._delayed)]
            self._ready.clear()
            self._delayed.clear()
            return [item for item in items if keep(item)]

    def next_due(self) -> float | None:
        """The earliest not-before among waiting items, or None."""
        with self._cond:
            return self._delayed[0][0] if self._delayed else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)


class FifoQueue(Generic[T]):
    """First in, first out; thread-safe."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._cond = threading.Condition()

    def put(self, item: T, priority: int = 0, not_before: float | None = None) -> None:
        """Append ``item`` (priority and not_before are accepted for a common signature and ignored)."""
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def get_nowait(self) -> T:
        """The oldest item, or raise Empty."""
        with self._cond:
            if not self._items:
                raise Empty
            return self._items.popleft()

    def get(self, timeout: float | None = None) -> T:
        """The oldest item, waiting up to ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                raise Empty
            return self._items.popleft()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


__all__ = ["Empty", "FifoQueue", "PriorityQueue"]
