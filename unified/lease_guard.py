"""How a worker pool's reports and its lease renewals take turns.

The heartbeat renews the leases of the tasks the pool holds. Were an outcome committed while it renews, the task
would look lost (its lease no longer renewable) before the pool forgets it, and on PostgreSQL the two transactions
could deadlock on the same rows locked in different orders. So a renewal waits for the reports under way and holds
new ones back; reports do not wait for each other here (a pool's reporter, a runner applying its own outcome and a
queueing transaction applying parked ones may each be under way).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class LeaseGuard:
    """Any number of reports at once (shared), or one lease renewal (exclusive, and first in line once it waits).

    The guard is the context manager of a report (``with guard.reporting():``): a class rather than a generator,
    and a renewal woken only when one waits, since every batch of outcomes enters it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._reports = 0  # under way
        self._renewal = False  # under way or waiting for the reports to end

    def reporting(self) -> LeaseGuard:
        """A report's block: waits while a renewal is under way or waiting."""
        return self

    def __enter__(self) -> None:
        with self._lock:
            while self._renewal:
                self._changed.wait()
            self._reports += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:  # end_report's work here, not a call to it: once per batch of outcomes
            self._reports -= 1
            if self._renewal and not self._reports:
                self._changed.notify_all()

    def try_report(self) -> bool:
        """Begin a report without waiting: False if a renewal is under way or waiting. End it with end_report."""
        with self._lock:
            if self._renewal:
                return False
            self._reports += 1
            return True

    def end_report(self) -> None:
        """End a report (begun by :meth:`try_report`)."""
        self.__exit__(None, None, None)

    @contextmanager
    def renewing(self) -> Iterator[None]:
        """A renewal's block: waits for one under way, then holds new reports back and waits for those under way."""
        with self._lock:
            while self._renewal:
                self._changed.wait()
            self._renewal = True
            while self._reports:
                self._changed.wait()
        try:
            yield
        finally:
            with self._lock:
                self._renewal = False
                self._changed.notify_all()
