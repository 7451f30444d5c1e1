"""What one write transaction of the SQL store announces to other processes (PostgreSQL NOTIFY, see postgres.py).

The store collects the wake-ups of a transaction as its verbs run and sends them with the commit, in one statement
that names each payload once, instead of one statement per task: PostgreSQL delivers them at commit anyway, and a
report of 200 outcomes would otherwise pay 200 extra round trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
