"""A worker pool's leases: the heartbeat that renews what the pool holds, stops attempts whose lease was taken away,
hands back leases the pool never learned it holds and tasks it claimed ahead of an attempt that runs long, and takes
back expired leases of dead workers. It also renews its engine's proof of life as the holder of in-process functions
and cancels what dead holders held (``Engine.renew_holder``, ``Engine.expire_holders``); a process without a pool
renews that proof with a :class:`HolderHeartbeat`.

A mixin of :class:`unified.worker.WorkerPool`, using its engine, held attempts and lease guard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from unified.engine import Engine
from unified.errors import UnifiedError
from unified.interventions import HOLDER_SECONDS
from unified.lease_guard import LeaseGuard
from unified.store.records import TaskRecord

log = logging.getLogger("unified.worker")

UNKNOWN_LEASE = "a claim of this worker committed but its answer was lost with the connection; back to the queue"
CLAIMED_AHEAD = "claimed ahead by a worker whose runners are all busy with attempts that run long; back to the queue"
HOARD_SECONDS = 1.0  # an attempt running this long: the tasks claimed ahead of it are handed back


class LeaseKeeping:
    """The heartbeat of a pool (mixed in: see the module docstring for what it uses)."""

    engine: Engine
    worker_id: str
    lease_seconds: float
    heartbeat_seconds: float
    _held: dict[str, int]  # task id -> attempt number: what the heartbeat renews
    _leases: LeaseGuard
    _stopping: threading.Event
    _replace_runner_of: Callable[[str], None]
    _lock: threading.Lock
    _buffer: list[tuple[int, int, TaskRecord]]  # claimed tasks waiting for a runner
    _running: dict[int, float]  # runner -> when its attempt began (perf_counter)
    _busy: int
    max_workers: int
    prefetch: int | None  # None: measured (see WorkerPool._prefetch)

    def heartbeat(self) -> None:
        """Renew held leases and the engine's proof of life, stop attempts whose lease was lost, take back expired
        leases of others and cancel what dead holders held."""
        with self._leases.renewing():  # no report under way: one would make its task look lost (see LeaseGuard)
            held = dict(self._held)
            kept = set(self.engine.extend_leases(self.worker_id, held, self.lease_seconds)) if held else set()
            lost = [task_id for task_id in held.keys() - kept if task_id in self._held]
            unknown = self._unknown_leases()
        for task_id in lost:
            log.warning("worker %s lost the lease of task %s; stopping its attempt", self.worker_id, task_id)
            self.engine.cancel_event(task_id).set()
            # canceled or taken over elsewhere: code running in a runner's own thread may never return, and its slot
            # is free at once, as for a cancel made in this process
            self._replace_runner_of(task_id)
        for task_id, attempt in unknown.items():
            if self.engine.hand_back(task_id, attempt, why=UNKNOWN_LEASE):
                log.warning("worker %s handed back task %s (attempt %d): %s", self.worker_id, task_id, attempt,
                            UNKNOWN_LEASE)  # fmt: skip
        self._hand_back_claimed_ahead()
        # before the sweep, which must never find this process's own proof lapsed; longer leases, a longer margin
        self.engine.renew_holder(max(HOLDER_SECONDS, 4 * self.lease_seconds))
        self.engine.expire_leases()  # first: a dead holder's attempts lost now are retrying, which the sweep cancels
        self.engine.expire_holders()

    def _hand_back_claimed_ahead(self) -> None:
        """Hand back the tasks waiting in the buffer while every runner has been busy for HOARD_SECONDS or more.

        The pool claims ahead about PREFETCH_SECONDS of work as measured so far: after a run of instant tasks that is
        up to MAX_PREFETCH tasks, which, if they run long, one worker would hold while the others idle. Handed back
        (the attempt costs no retry), any worker takes them, this one too once a runner is free."""
        with self._lock:
            running = self._running.values()
            if not self._buffer or len(running) < self.max_workers or self.prefetch is not None:  # set: as asked
                return
            if time.perf_counter() - max(running) < HOARD_SECONDS:  # the attempt begun last
                return
            ahead = [record for _, _, record in self._buffer]
            self._buffer.clear()
            self._busy -= len(ahead)
            for record in ahead:
                self._held.pop(record.id, None)
        for record in ahead:
            self.engine.forget_attempt(record.id, record.attempts)
            try:
                self.engine.hand_back(record.id, record.attempts, why=CLAIMED_AHEAD)
            except UnifiedError as exc:
                log.error("worker %s could not hand back task %s (%s); its lease will expire",
                          self.worker_id, record.id, exc)  # fmt: skip
        log.info("worker %s handed back %d tasks claimed ahead of long attempts", self.worker_id, len(ahead))

    def _unknown_leases(self) -> dict[str, int]:
        """Tasks leased to this pool that it does not hold (while renewing, after the held ones were renewed).

        A claim can commit while its answer is lost with the connection (killed between the COMMIT and its reply);
        the pool then retries and never learns that it holds those tasks, and their leases would lapse into lost
        attempts. Leases claimed two beats ago or more and not renewed since are such tasks: a claim is taken into
        ``_held`` within moments of its commit.
        """
        cutoff = self.engine.clock.now() + self.lease_seconds - 2 * self.heartbeat_seconds
        leased = self.engine.store.leases_of(self.worker_id, cutoff)
        return {task_id: attempt for task_id, attempt in leased.items() if task_id not in self._held}

    def _heartbeat_loop(self) -> None:
        next_beat = last_renewed = time.monotonic()
        while not self._stopping.wait(max(0.0, next_beat - time.monotonic())):
            next_beat += self.heartbeat_seconds
            try:
                self.heartbeat()
                last_renewed = time.monotonic()
            except UnifiedError as exc:
                log.error("worker %s heartbeat failed (%s); retrying", self.worker_id, exc)
                if time.monotonic() - last_renewed >= self.lease_seconds:
                    self._abandon_held("its leases could not be renewed for a whole lease period")

    def _abandon_held(self, why: str) -> None:
        """Stop every attempt this pool holds: another worker may already be running them."""
        for task_id in list(self._held):
            log.error("worker %s stops task %s: %s", self.worker_id, task_id, why)
            self.engine.cancel_event(task_id).set()


class HolderHeartbeat:
    """Renews an engine's proof of life as a holder (``Engine.renew_holder``) every ``seconds`` from a thread of its
    own, for a process without a worker pool (whose heartbeat would): its held tasks wait for ``run_until_idle``."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(engine, seconds), name="unified-holder", daemon=True)
        self._thread.start()

    def _loop(self, engine: Engine, seconds: float) -> None:
        while not self._stopping.wait(seconds):
            try:
                engine.renew_holder()
            except UnifiedError as exc:  # the store is away: the next beat tries again, well within the margin
                log.error("could not renew this process's proof of life as a holder (%s); retrying", exc)

    def stop(self) -> None:
        """Stop renewing (the engine let go of what it held, or its process ends)."""
        self._stopping.set()
        self._thread.join(5.0)
