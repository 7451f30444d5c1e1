"""What one write transaction of the SQL store announces to other processes (PostgreSQL NOTIFY, see postgres.py).

The store collects the wake-ups of a transaction as its verbs run and sends them with the commit, in one statement
that names each payload once, instead of one statement per task: PostgreSQL delivers them at commit anyway, and a
report of 200 outcomes would otherwise pay 200 extra round trips.

Room wake-ups (a task stopped running) name only queues with a limit, which the NOTIFY statement looks up. With no
limit anywhere, the usual case, that statement found nothing and still cost a quarter of a W2 chain step on
PostgreSQL (it was sent with every outcome), so :class:`LimitsSeen` tells whether any limit exists, read at most once
a second; an empty claim uses it too, instead of a round trip to look behind limits (sql_claim.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RECHECK_SECONDS = 1.0  # how long a limit set by another process may go unseen without a listener (see LimitsSeen)


@dataclass
class Wakeups:
    """What one write transaction will announce to listeners (PostgreSQL NOTIFY), sent once just before it commits."""

    queues: set[str] = field(default_factory=set)  # queues with newly claimable work
    claimable: set[str] = field(default_factory=set)  # ids of tasks made claimable (their queues are looked up)
    room: set[str] = field(default_factory=set)  # ids of tasks that stopped running (room in a limited queue)
    limits: set[str] = field(default_factory=set)  # queues whose limit changed

    def taken(self, task_ids: list[str]) -> None:
        """These tasks were claimed by the same transaction that made them claimable: nothing to announce of them."""
        self.claimable.difference_update(task_ids)

    def notify(self) -> dict[str, list[str]] | None:
        """The parameters of the one NOTIFY statement that announces them all (None when there is nothing to say)."""
        if not (self.queues or self.claimable or self.room or self.limits):
            return None
        return {
            "_queues": sorted(self.queues),
            "_claimable": sorted(self.claimable),
            "_room": sorted(self.room),
            "_limits": sorted(self.limits),
        }


class LimitsSeen:
    """Whether any queue has a limit, as last read (``read(conn)``), read again once ``recheck_seconds`` old.

    A limit set through this store is seen at once (:meth:`forget`), and one set by another process as soon as
    this store's listener hears its room notification (which calls :meth:`forget` too). Without a listener it may go
    unseen for ``recheck_seconds``: this store's room wake-ups for it are then not sent (a worker waiting for room
    also claims on its poll, every second by default), and its empty claims do not look behind limits, so for that
    long they take nothing (the claim of unlimited work finds nothing while any limit exists). Every worker pool
    listens, so that is a process that claims through this store without one. Either way no limit is exceeded.
    """

    def __init__(
        self,
        read: Callable[[Any], bool],
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._recheck, self._clock = read, recheck_seconds, clock
        self._any = True
        self._read_at: float | None = None  # never read

    def any(self, conn: Any) -> bool:
        """Whether any queue had a limit when last read, reading it on ``conn`` if that is too long ago."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._recheck:
            self._any, self._read_at = self._read(conn), now
        return self._any

    def forget(self) -> None:
        """Read it again next time (a limit changed, here or as a room notification says)."""
        self._read_at = None
