"""The processes of a deployment besides the server: ``unified worker`` and ``unified scheduler``.

Each opens the store at a URL (PostgreSQL for many machines, a SQLite file for several processes on one), builds an
engine and its service (a :class:`~unified.worker.WorkerPool`, or the :class:`~unified.scheduler.Scheduler`), and
runs until SIGTERM or SIGINT (or until ``stop`` is set, for embedding and tests). Then it shuts down gracefully: a
worker lets running attempts finish for ``grace_seconds`` and hands back the rest (they return to the queue at once,
without costing a retry), a scheduler finishes its pass. If the database cannot be reached at start they retry with
backoff; once running, the pool and the scheduler ride out connection loss themselves.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from unified import config
from unified.alerts import AlertService
from unified.engine import Engine
from unified.errors import StoreError, ValidationError
from unified.executor import Executor
from unified.scheduler import Scheduler
from unified.store import Store, open_store
from unified.task import ISOLATIONS
from unified.worker import WorkerPool
from unified.worker_attempt import backoff

log = logging.getLogger("unified.service")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WAKE_SECONDS = 1.0  # how often a waiting main thread looks at its stop event


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGTERM or SIGINT while inside; outside the main thread signals cannot be caught, so the
    caller sets ``stop`` itself."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: Any) -> None:
        log.warning("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def connect(db_url: str, stop: threading.Event) -> Store | None:
    """Open the store at ``db_url``, retrying with backoff while the database is unreachable; None if stopped first."""
    failures = 0
    while not stop.is_set():
        try:
            return open_store(db_url)
        except StoreError as exc:
            failures += 1
            log.error("cannot open the store (%s); retrying in %.1f s", exc, backoff(failures))
            stop.wait(backoff(failures))
    return None


@contextmanager
def serving(db_url: str, stop: threading.Event) -> Iterator[Store | None]:
    """Inside, SIGTERM/SIGINT set ``stop`` and the store at ``db_url`` is open (None if ``stop`` came first)."""
    with stop_on_signals(stop):
        store = connect(db_url, stop)
        try:
            yield store
        finally:
            if store is not None:
                store.close()


def wait_for(stop: threading.Event) -> None:
    """Block until ``stop`` is set, looking often enough for signal handlers to run."""
    while not stop.wait(WAKE_SECONDS):
        pass


def run_worker(
    db_url: str,
    *,
    queues: Iterable[str] | None = None,
    concurrency: int | None = None,
    isolation: str | None = None,
    lease_seconds: float = 30.0,
    heartbeat_seconds: float = 10.0,
    poll_seconds: float = 5.0,
    grace_seconds: float = 30.0,
    worker_id: str | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run a worker pool on the store at ``db_url`` until SIGTERM/SIGINT (or ``stop``), then stop it gracefully.

    ``queues``: the queues served (all when None); ``concurrency``: runner threads (default CPUs + 4, up to 32);
    ``isolation``: run every function task in a ``thread`` or a child ``process`` (None: as each task asks).
    A lease lasts ``lease_seconds`` and is renewed every ``heartbeat_seconds``; new work another process queues
    wakes the pool at once (PostgreSQL's LISTEN/NOTIFY; on SQLite within 10-100 ms, a watcher of the file), and it
    also polls every ``poll_seconds``.
    """
    if isolation is not None and isolation not in ISOLATIONS:
        raise ValidationError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
    if concurrency is not None and concurrency < 1:
        raise ValidationError(f"concurrency must be at least 1, not {concurrency}: it is the number of runner threads")
    served = None if queues is None else [q for q in queues if q]
    stop = stop or threading.Event()
    with serving(db_url, stop) as store:
        if store is None:
            return
        engine = Engine(store)
        alerts = AlertService(engine)  # events happen here, so stored alert rules are matched here
        pool = WorkerPool(
            engine, Executor(engine.clock), concurrency or config.default_max_workers(), served, lease_seconds,
            heartbeat_seconds, poll_seconds, worker_id, isolation,
        )  # fmt: skip
        pool.start()
        log.info("worker %s serves %s on %s with %d runner(s); lease %.1f s, heartbeat %.1f s",
                 pool.worker_id, ", ".join(served) if served is not None else "every queue", store,
                 pool.max_workers, lease_seconds, heartbeat_seconds)  # fmt: skip
        wait_for(stop)
        log.info("worker %s stopping: running attempts get %.1f s to finish", pool.worker_id, grace_seconds)
        pool.stop(wait=True, timeout=grace_seconds)
        alerts.close()


def run_scheduler(db_url: str, *, max_wait_seconds: float = 5.0, stop: threading.Event | None = None) -> None:
    """Fire the schedules of the store at ``db_url`` until SIGTERM/SIGINT (or ``stop``).

    Any number of schedulers may share one database: each fire time is recorded once, so it starts once, and the
    others carry on if one dies. ``max_wait_seconds`` bounds how long a schedule added elsewhere goes unseen.
    """
    stop = stop or threading.Event()
    with serving(db_url, stop) as store:
        if store is None:
            return
        engine = Engine(store)
        alerts = AlertService(engine)  # schedule_missed and SLA alerts of the runs it starts
        scheduler = Scheduler(engine, max_wait_seconds=max_wait_seconds)
        scheduler.start()
        log.info("scheduler running on %s", store)
        wait_for(stop)
        scheduler.stop()
        alerts.close()
