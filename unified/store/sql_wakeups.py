"""What one write transaction of the SQL store announces to other processes (PostgreSQL NOTIFY, see postgres.py).

The store collects the wake-ups of a transaction as its verbs run and sends them just before the commit, one
statement per kind with each queue named once, instead of one statement per task: PostgreSQL delivers them at
commit anyway, and a report of 200 outcomes would otherwise pay 200 extra round trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from unified.store.schema import NOTIFY_QUEUES, NOTIFY_ROOM, NOTIFY_ROOM_IN, NOTIFY_TASK_QUEUES


@dataclass
class Wakeups:
    """What one write transaction will announce to listeners (PostgreSQL NOTIFY), sent once just before it commits."""

    queues: set[str] = field(default_factory=set)  # queues with newly claimable work
    claimable: set[str] = field(default_factory=set)  # ids of tasks made claimable (their queues are looked up)
    room: set[str] = field(default_factory=set)  # ids of tasks that stopped running (room in a limited queue)
    limits: set[str] = field(default_factory=set)  # queues whose limit changed

    def send(self, conn: sa.Connection) -> None:
        """One statement per kind of wake-up, each queue named once."""
        if self.queues:
            conn.execute(NOTIFY_QUEUES, {"_queues": sorted(self.queues)})
        if self.claimable:
            conn.execute(NOTIFY_TASK_QUEUES, {"_ids": sorted(self.claimable)})
        if self.room:
            conn.execute(NOTIFY_ROOM, {"_ids": sorted(self.room)})
        if self.limits:
            conn.execute(NOTIFY_ROOM_IN, {"_queues": sorted(self.limits)})
