"""Wake-ups across processes on SQLite, which has no NOTIFY: a thread that notices the commits of other connections.

``PRAGMA data_version`` on a connection changes whenever another connection, of this process or another, committed
to the file; in WAL mode reading it costs no I/O (the WAL index is shared memory). A :class:`Watcher` reads it on a
connection of its own, every ``WATCH_SECONDS`` while the file changes, and less often (doubling up to
``QUIET_WATCH_SECONDS``) while it is quiet, so an idle process wakes ten times a second, not a hundred. When it
changed, one read of two indexes asks whether a task is claimable now, and only then the watcher calls back with
``""`` (any queue): a pool woken for nothing would take the write lock for an empty claim, and make the writers of
the other processes wait for it. ``unified worker`` processes sharing a SQLite file so take up work another process
queued within milliseconds (at most ``QUIET_WATCH_SECONDS`` after a quiet spell) instead of their poll interval.

The watcher cannot tell its own process's commits from others'; the engine already woke the pool for those, so a
second wake-up only makes an idle dispatcher look once more. Due times are judged by the wall clock: the pool's own
timers, on the engine's clock, still wake it when a retry delay ends.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from unified.store.listener_thread import ListenerThread
from unified.store.schema import RETRYING_SQL

WATCH_SECONDS = 0.01
QUIET_WATCH_SECONDS = 0.1
DATA_VERSION = "PRAGMA data_version"
# whether a task is claimable now, from the first entry of two indexes: a queued task, or the retry due first (a
# backlog of retries not yet due is never walked)
ANY_CLAIMABLE = (
    "SELECT EXISTS (SELECT 1 FROM tasks INDEXED BY ix_tasks_state WHERE state = 'queued') "
    "OR coalesce((SELECT not_before IS NULL OR not_before <= ? FROM tasks INDEXED BY ix_tasks_not_before "
    f"WHERE {RETRYING_SQL} ORDER BY not_before LIMIT 1), 0)"
)


class Watcher(ListenerThread):
    """A thread that calls ``callback("")`` when another connection's commit left a task claimable in ``path``."""

    def __init__(
        self,
        path: Path,
        callback: Callable[[str], None],
        interval: float = WATCH_SECONDS,
        quiet: float = QUIET_WATCH_SECONDS,
    ) -> None:
        self._path = path
        self._interval = interval
        self._quiet = max(interval, quiet)
        self.every = interval  # how long it waits before it looks again, now
        super().__init__(callback, str(path), (sqlite3.Error,), max(1.0, 10 * self._quiet), "unified-sqlite-watcher")

    def _serve(self) -> None:
        # autocommit: each read is a transaction of its own, so no snapshot is held between ticks; read-write but
        # never creating the file: a database moved away is an error to log, not an empty file to watch
        conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        try:
            seen = conn.execute(DATA_VERSION).fetchone()[0]
            self._connected()
            self.every = self._interval
            while not self._stopping.wait(self.every):
                version = conn.execute(DATA_VERSION).fetchone()[0]
                if version == seen:
                    self.every = min(self._quiet, 2 * self.every)
                    continue
                seen, self.every = version, self._interval
                if conn.execute(ANY_CLAIMABLE, (time.time(),)).fetchone()[0]:
                    self._call("")
        finally:
            conn.close()
