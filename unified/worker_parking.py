"""Outcomes a worker pool's runners leave to a transaction of this process that is queueing tasks (SQLite).

On SQLite a process's write transactions take turns on one connection and each commit waits for a sync. A thread
queueing tasks one ``queue_task`` at a time and the runners reporting those tasks took turns at it: the queueing
transaction handed its open transaction to the runner waiting with an outcome, which applied it, committed for
both, and woke the queueing thread, two thread hand-overs per task. Instead, while a transaction of its own that
queues tasks is open in this process (``Engine.on_queueing``), a runner parks its outcome here and goes on; that
transaction applies what is parked just before it claims for the free runners (``Engine.on_claimable``), and the
outcomes share its commit. They are applied in a savepoint: if that fails, only they are undone and they go to the
pool's reporter, which applies them with its own retries, as it does with any it was not in time for and with
those whose transaction did not commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from unified.engine import Engine
from unified.lease_guard import LeaseGuard
from unified.store.records import TaskRecord

log = logging.getLogger("unified.worker")

MOST_APPLIED = 256  # parked outcomes one queueing transaction applies at most (as many as a reporter's batch)

Report = tuple[TaskRecord, str, dict[str, Any]]


class ParkedOutcomes:
    """The outcomes parked for the queueing transactions open in this process, and the ones each applied."""

    def __init__(
        self,
        engine: Engine,
        leases: LeaseGuard,
        to_reporter: Callable[[Report], None],
        forget: Callable[[Iterable[TaskRecord]], None],
    ) -> None:
        self._engine = engine
        self._leases = leases  # the pool's: reporting and renewing leases take turns
        self._to_reporter = to_reporter
        self._forget = forget  # the pool no longer holds these tasks' leases
        self._lock = threading.Lock()
        self._open = 0  # queueing transactions open now
        self._parked: list[Report] = []
        self._thread = threading.local()  # per queueing thread: whether its transaction is open, what it applied

    def park(self, report: Report) -> bool:
        """Leave ``report`` to an open queueing transaction; False if none is open."""
        with self._lock:
            if not self._open:
                return False
            self._parked.append(report)
            return True

    def queueing(self, opened: bool) -> None:
        """The engine's ``on_queueing`` listener: this thread's queueing transaction opened, or ended."""
        thread = self._thread
        thread.open = opened
        if opened:
            with self._lock:
                self._open += 1
            return
        applied, thread.applied = getattr(thread, "applied", None), None
        if applied is not None:  # applied in a transaction that did not commit
            self._leases.end_report()
            self._hand_over(applied)
        with self._lock:
            self._open -= 1
            left, self._parked = (self._parked, []) if not self._open else ([], self._parked)
        self._hand_over(left)

    def apply(self) -> None:
        """Inside this thread's queueing transaction, before its claim: apply the parked outcomes in a savepoint.

        Not while the heartbeat renews leases or waits to (it would wait for the write turn this transaction
        holds): the outcomes stay parked, for the reporter."""
        if not self._parked or not getattr(self._thread, "open", False):
            return
        if not self._leases.try_report():
            return
        with self._lock:  # the rest wait for the next queueing transaction, or the reporter
            parked, self._parked = self._parked[:MOST_APPLIED], self._parked[MOST_APPLIED:]
        if not parked:  # another queueing thread took them meanwhile
            self._leases.end_report()
            return
        try:
            with self._engine.batch(savepoint=True):
                # copies: a transaction undone must not leave moved records
                self._engine.complete_all([(record.copy(), state, outcome) for record, state, outcome in parked])
        except Exception:
            self._leases.end_report()
            log.warning("applying %d outcome(s) in a queueing transaction failed; the reporter applies them",
                        len(parked), exc_info=True)  # fmt: skip
            self._hand_over(parked)
            return
        self._thread.applied = parked
        self._engine.after_commit(self._committed)

    def flush(self) -> None:
        """Hand whatever is parked to the reporter (the pool stops)."""
        with self._lock:
            left, self._parked = self._parked, []
        self._hand_over(left)

    def _committed(self) -> None:
        applied, self._thread.applied = self._thread.applied, None
        self._forget(r for r, _, _ in applied)  # before the report ends: a renewal must not find them held, unrenewable
        self._leases.end_report()

    def _hand_over(self, reports: list[Report]) -> None:
        for report in reports:
            self._to_reporter(report)
