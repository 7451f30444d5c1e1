"""Wake-ups across processes on SQLite, which has no NOTIFY: a thread that notices the commits of other connections.

``PRAGMA data_version`` on a connection changes whenever another connection, of this process or another, committed
to the file; in WAL mode reading it costs no I/O (the WAL index is shared memory). A :class:`Watcher` reads it every
``interval`` on a connection of its own. When it changed, one read of the claim index asks whether a task is
claimable now, and only then the watcher calls back with ``""`` (any queue): a pool woken for nothing would take the
write lock for an empty claim, and make the writers of the other processes wait for it. ``unified worker`` processes
sharing a SQLite file so take up work another process queued within milliseconds instead of their poll interval,
and a quiet database costs one PRAGMA a tick.

The watcher cannot tell its own process's commits from others'; the engine already woke the pool for those, so a
second wake-up only makes an idle dispatcher look once more. Due times are judged by the wall clock: the pool's own
timers, on the engine's clock, still wake it when a retry delay ends.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from unified.store.schema import CLAIMABLE_SQL

log = logging.getLogger("unified.store.sqlite_watch")

WATCH_SECONDS = 0.01
MAX_BACKOFF_SECONDS = 30.0
DATA_VERSION = "PRAGMA data_version"
ANY_CLAIMABLE = (
    f"SELECT 1 FROM tasks INDEXED BY ix_tasks_claim WHERE {CLAIMABLE_SQL} "
    "AND (state = 'queued' OR not_before IS NULL OR not_before <= ?) LIMIT 1"
)


class Watcher:
    """A thread that calls ``callback("")`` when another connection's commit left a task claimable in ``path``."""

    def __init__(self, path: Path, callback: Callable[[str], None], interval: float = WATCH_SECONDS) -> None:
        self._path = path
        self._callback = callback
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="unified-sqlite-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (within one interval) and close the connection."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(max(1.0, 10 * self._interval))

    def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._watch(recovered=failures > 0)
            except sqlite3.Error as exc:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
                log.error("cannot watch %s for other processes' work (%s); retrying in %.1f s; workers poll meanwhile",
                          self._path, exc, delay)  # fmt: skip
                self._stopping.wait(delay)

    def _watch(self, recovered: bool) -> None:
        # autocommit: each read is a transaction of its own, so no snapshot is held between ticks
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            seen = conn.execute(DATA_VERSION).fetchone()[0]
            if recovered:
                log.warning("watching %s again", self._path)
                self._call()  # commits made while we were away were not seen: look once
            while not self._stopping.wait(self._interval):
                version = conn.execute(DATA_VERSION).fetchone()[0]
                if version != seen:
                    seen = version
                    if conn.execute(ANY_CLAIMABLE, (time.time(),)).fetchone() is not None:
                        self._call()
        finally:
            conn.close()

    def _call(self) -> None:
        try:
            self._callback("")
        except Exception:
            log.exception("the callback of the SQLite watcher of %s failed", self._path)
