"""Workers: a pool that claims ready tasks, runs each attempt with the executor and reports to the engine.

Inside a pool, one dispatcher thread claims work when a runner thread is idle: enough for the idle runners plus a
prefetch of about ``PREFETCH_SECONDS`` of work, judged from how long this pool's attempts take (one store
transaction for the lot; none when attempts are long, or while one runs far longer than that, so tasks are not
hoarded from other workers nor from a task of higher priority queued next). Runners
take claimed tasks in priority order and execute attempts; finished attempts are applied in batches (one
transaction for all outcomes that arrived meanwhile: group commit), claiming for the free runners in that same
transaction. On a database store a reporter thread applies them, so the runners go on running while a commit waits
for its sync or its round trips (on SQLite, while this process is queueing tasks, the queueing transaction does:
see unified.worker_parking); on the memory store, where applying is Python work under the GIL, whichever
runner finds no other one applying does it (a reporter thread there only added hand-offs), and a runner with a
claimed task waiting may run it first, so that several outcomes are applied at once (up to ``REPORT_DELAY``; the
dispatcher applies them if that task runs long). A heartbeat thread renews the leases of everything the pool holds
and takes back expired leases of dead workers; a task whose lease is taken away is told to stop.
``run_once`` and ``run_until_idle`` drain the queue in the calling thread instead.

The dispatcher sleeps when nothing is claimable. It wakes when this process makes work ready (``Engine.on_ready``),
when the store's listener (``store.listen``: PostgreSQL's LISTEN/NOTIFY, a watcher of the file on SQLite) says another
process did, and otherwise every ``poll_seconds``, or sooner when a retry delay ends.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import operator
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable

from unified import gc_pace
from unified.engine import Engine
from unified.errors import StoreConflict, StoreError, UnifiedError
from unified.executor import Executor
from unified.lease_guard import LeaseGuard
from unified.store.records import TaskRecord
from unified.task import ISOLATIONS
from unified.utils import new_id
from unified.worker_attempt import AttemptRunning, backoff
from unified.worker_leases import LeaseKeeping
from unified.worker_parking import ParkedOutcomes, Report

log = logging.getLogger("unified.worker")

REPORT_BATCH = 256
PREFETCH_SECONDS = 0.05  # claim ahead only as much work as the runners get through in this time
MAX_PREFETCH = 256
CHILD_STOP_SECONDS = 2.0  # how long a stopping pool waits for its runners to kill the child processes it handed back
REPORT_DELAY = 0.001  # seconds a runner with claimed work waiting may run it before its outcomes are applied
BUSY_LOOK_SECONDS = 0.05  # how often the dispatcher of a busy pool looks for overdue held-back outcomes
_RECORD = operator.itemgetter(0)  # a report's record


def default_worker_id() -> str:
    """``host:pid:random``: unique per pool, readable in attempt records."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"


class WorkerPool(AttemptRunning, LeaseKeeping):
    """``max_workers`` runner threads serving ``queues`` (all when None) of one engine."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor | None = None,
        max_workers: int = 4,
        queues: Iterable[str] | None = None,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 10.0,
        poll_seconds: float = 1.0,
        worker_id: str | None = None,
        isolation: str | None = None,
        prefetch: int | None = None,
    ) -> None:
        if max_workers < 0:
            raise ValueError("max_workers must be 0 or more")
        if heartbeat_seconds >= lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds, or leases lapse between beats")
        if prefetch is not None and prefetch < 0:
            raise ValueError("prefetch must be 0 or more (None: about PREFETCH_SECONDS of measured work)")
        if isolation is not None and isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)} (or None: each task's own)")
        self.engine = engine
        self.executor = executor or Executor(engine.clock)
        self.max_workers = max_workers
        self.queues = list(queues) if queues is not None else None
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or default_worker_id()
        self.isolation = isolation  # run every function task in a thread or a child process, whatever it asked
        self.prefetch = prefetch  # tasks claimed beyond the idle runners; None: adapt to how long attempts take
        self._unlisten: Callable[[], None] | None = None
        self._held: dict[str, int] = {}  # task id -> attempt number: what the heartbeat renews
        self._lock = threading.Lock()
        self._leases = LeaseGuard()  # reporting and renewing leases take turns
        self._ready = threading.Condition(self._lock)  # work may be claimable
        self._freed = threading.Condition(self._lock)  # a runner became idle
        self._awaiting_room = False  # the dispatcher waits on _freed (so a runner that ends an attempt notifies)
        self._has_work = threading.Condition(self._lock)  # a claimed task waits in the buffer
        self._signals = 0
        self._busy = 0  # claimed and not yet finished: buffered or running
        self._buffer: list[tuple[int, int, TaskRecord]] = []  # heap of claimed tasks: highest priority, oldest first
        self._mean_attempt = 0.0  # seconds, a moving average over this pool's attempts (0: none yet)
        self._running: dict[int, float] = {}  # runner thread ident -> when its current attempt began (perf_counter)
        self._reports: queue.SimpleQueue[Report | None] = queue.SimpleQueue()
        # a commit that waits on I/O (a sync, round trips) is better waited for by a thread of its own (W3 on SQLite
        # 9% faster than with runners taking turns); the memory store has none: runners taking turns, W4 55% faster
        self._reporter = not engine.store.keeps_objects
        self._reporting = threading.Lock()  # held by whoever applies outcomes: the reporter, or a runner alone
        # the memory store neither rolls back nor fails a commit (no StoreError): there the engine moves the reported
        # records themselves, not copies (a copy per attempt was about 2% of W4's work)
        self._copy = not engine.store.keeps_objects
        self._held_back_since: float | None = None  # when a runner first held queued outcomes back (see _hold_back)
        self._stopping = threading.Event()  # waited on; read through _stopped
        self._stopped = False  # set with it: an attribute read, where Event.is_set is a Python call (twice a task)
        self._runners: list[threading.Thread] = []
        self._services: list[threading.Thread] = []
        self._inline: dict[str, int] = {}  # task id -> the ident of the runner thread calling its code itself
        self._retired: set[int] = set()  # runners replaced as their task's code was canceled: they end once it returns
        self._runner_names = itertools.count()
        engine.on_ready(self.wake)
        engine.on_canceled(self._replace_runner_of)
        self._parking: ParkedOutcomes | None = None
        if getattr(engine.store, "serial_writes", False):
            engine.on_claimable(self._claim_submitted)
            self._parking = ParkedOutcomes(engine, self._leases, self._reports.put, self._forget)
            engine.on_queueing(self._parking.queueing)
        engine.clock.on_advance(lambda: self.wake(1))

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the runners, the dispatcher, the reporter (database stores) and the heartbeat."""
        if self._runners or self.max_workers == 0:
            return
        gc_pace.hold()
        self._runners = [self._new_runner() for _ in range(self.max_workers)]
        self._services = [
            self._thread(self._dispatch_loop, "unified-dispatcher"),
            *([self._thread(self._report_loop, "unified-reporter")] if self._reporter else []),
            self._thread(self._heartbeat_loop, "unified-heartbeat"),
        ]
        listen = getattr(self.engine.store, "listen", None)
        if listen is not None:
            self._unlisten = listen(self._heard)

    def _heard(self, queue_name: str) -> None:
        """A notification from another process: work of ``queue_name`` ("" for any) may be claimable."""
        if not queue_name or self.queues is None or queue_name in self.queues:
            self.wake(1)

    def _thread(self, loop: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=self._guarded, args=(loop,), name=name, daemon=True)
        thread.start()
        return thread

    def _guarded(self, loop: Callable[[], None]) -> None:
        """Run one of the pool's thread loops until it returns (the pool stops). An error no loop expects (a bug, or a
        library's error the store does not translate) is logged and the loop runs again after a backoff: a pool whose
        dispatcher or reporter had ended would hold its tasks and run nothing more, while its process looked alive."""
        failures = 0
        while True:
            try:
                loop()
                return
            except Exception:
                failures += 1
                delay = backoff(failures)
                log.critical("worker %s: %s failed; starting it again in %.1f s", self.worker_id,
                             threading.current_thread().name, delay, exc_info=True)  # fmt: skip
                if self._stopping.wait(delay):
                    return

    def stop(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Stop taking work. With ``wait``, let running attempts finish for up to ``timeout`` seconds; what is still
        running then is handed back (it returns to the queue for another worker) and told to stop."""
        self._stopped = True
        self._stopping.set()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        with self._lock:
            self._ready.notify_all()
            self._freed.notify_all()
            self._has_work.notify_all()  # runners finish their attempt; what is still buffered is handed back
        deadline = None if timeout is None else time.monotonic() + (timeout if wait else 0.0)
        for thread in self._runners:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._reporter:
            if self._parking is not None:
                self._parking.flush()
            self._reports.put(None)
        else:  # outcomes the runners held back: applied before anything is handed back
            self._lead_reports(by_runner=False)
        for thread in self._services:
            thread.join(5.0)
        self._hand_back_held()
        self._await_stopped_children()
        if self._runners:
            gc_pace.release()
        self._runners, self._services = [], []

    def _await_stopped_children(self) -> None:
        """After a hand-back told the attempts still running to stop: give the runners that supervise a child process
        or a shell command the moment they need to kill it (they look every few ms), so that it does not outlive this
        worker and run beside the attempt another worker makes. Runners calling a function in their own thread are
        not waited for: nothing can stop that code."""
        inline = set(self._inline.values())
        deadline = time.monotonic() + CHILD_STOP_SECONDS
        for thread in self._runners:
            if thread.is_alive() and thread.ident not in inline:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _hand_back_held(self) -> None:
        with self._lock:
            self._busy -= len(self._buffer)
            self._buffer.clear()
        for task_id, attempt in list(self._held.items()):
            try:
                if self.engine.hand_back(task_id, attempt):
                    log.warning("worker %s handed back task %s (attempt %d)", self.worker_id, task_id, attempt)
            except UnifiedError as exc:
                log.error("worker %s could not hand back task %s (%s); its lease will expire",
                          self.worker_id, task_id, exc)  # fmt: skip
            self.engine.cancel_event(task_id).set()
            self._held.pop(task_id, None)

    def wake(self, count: int = 1) -> None:
        """Tell the dispatcher that ``count`` tasks may have become claimable."""
        with self._lock:
            self._signals += count
            self._ready.notify()

    # -- draining in the calling thread ------------------------------------------------------------------
    def run_once(self, limit: int = 1) -> int:
        """Claim up to ``limit`` ready tasks and run them in this thread; returns how many ran."""
        claimed = self.engine.claim(self.worker_id, limit, self.queues, self.lease_seconds)
        for record in claimed:
            self._held[record.id] = record.attempts
            if (report := self._attempt(record)) is not None:
                self._apply([report], claim_next=False)
        return len(claimed)

    def run_until_idle(self, max_tasks: int | None = None) -> int:
        """Run ready tasks in this thread until none is ready now; returns how many ran."""
        total = 0
        while max_tasks is None or total < max_tasks:
            if not self.run_once():
                break
            total += 1
        return total

    # -- the threads -------------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        failures = 0
        while not self._stopped:
            with self._lock:
                while self._busy >= self.max_workers and not self._stopped and not self._overdue():
                    self._awaiting_room = True
                    self._freed.wait(self._until_overdue())
                    self._awaiting_room = False
                overdue = self._overdue()
                wanted = self.max_workers - self._busy + self._prefetch()
            if self._stopped:
                return
            if overdue:  # the runners are still busy with what they ran before applying these
                self._lead_reports(by_runner=False)
                with self._lock:  # looked at again later if another thread was applying: a wait, not a spin
                    self._held_back_since = None if self._reports.empty() else time.perf_counter()
                continue
            try:
                claimed = self.engine.claim(self.worker_id, wanted, self.queues, self.lease_seconds)
                failures = 0
            except StoreError as exc:
                failures += 1
                log.error("worker %s cannot reach the store (%s); retrying in %.1f s",
                          self.worker_id, exc, backoff(failures))  # fmt: skip
                self._stopping.wait(backoff(failures))
                continue
            if not claimed:
                self._idle_wait()
                continue
            self._accept(claimed)

    def _accept(self, claimed: list[TaskRecord], by_runner: bool = False, done: Iterable[TaskRecord] = ()) -> None:
        """Hold the leases of ``claimed`` (the heartbeat renews them) and hand the tasks to the runners. ``by_runner``:
        a runner claimed them and takes the first itself next (waking another would only move the work), unless
        outcomes wait (it applies them first) or it was replaced meanwhile (_replace_runner_of: it ends instead).
        ``done``: attempts whose leases are no longer renewed (see :meth:`_forget`), in the same hold of the lock."""
        by_runner = by_runner and self._reports.empty() and threading.get_ident() not in self._retired
        with self._lock:
            held = self._held
            for record in done:  # not a later attempt's claimed here since (canceled elsewhere)
                if held.get(record.id) == record.attempts:
                    del held[record.id]
            self._busy += len(claimed)
            for record in claimed:
                held[record.id] = record.attempts
                heapq.heappush(self._buffer, (-record.priority, record.seq, record))
            if (others := len(claimed) - by_runner) > 0:  # notify(0) still walks Condition's Python code
                self._has_work.notify(others)

    def _prefetch(self) -> int:
        """How many tasks to claim beyond the idle runners: about PREFETCH_SECONDS of work, none until measured."""
        if self.prefetch is not None:
            return self.prefetch
        if not self._mean_attempt:
            return 0
        if self._running and time.perf_counter() - min(self._running.values()) > PREFETCH_SECONDS:
            return 0  # an attempt runs far longer than those measured: tasks claimed ahead would wait behind it
        return min(MAX_PREFETCH, int(PREFETCH_SECONDS * self.max_workers / self._mean_attempt))

    def _idle_wait(self) -> None:
        timeout = self.poll_seconds
        with self._lock:
            until_overdue = self._until_overdue()
        if until_overdue is not None:
            timeout = min(timeout, until_overdue)
        try:
            due = self.engine.store.next_not_before()
        except StoreError:
            due = None  # the next claim reports it and backs off
        if due is not None:
            timeout = max(0.0, min(timeout, due - self.engine.clock.now()))
        with self._lock:
            if self._signals <= 0 and timeout > 0 and not self._stopped:
                self._ready.wait(timeout)
            self._signals = 0

    def _new_runner(self) -> threading.Thread:
        return self._thread(self._run_loop, f"unified-runner-{next(self._runner_names)}")

    def _run_loop(self) -> None:
        runner = threading.get_ident()
        record = self._next_claimed()
        while record is not None:
            started = self._running[runner] = time.perf_counter()
            try:
                if (report := self._attempt(record)) is not None:
                    self._report(report)
            except BaseException:  # the task leaves the pool's count even if reporting it failed (see _guarded)
                self._attempt_ended(runner, started, take_next=False)
                raise
            record = self._attempt_ended(runner, started, take_next=True)

    def _attempt_ended(self, runner: int, started: float, take_next: bool) -> TaskRecord | None:
        """The runner's attempt (begun at ``started``) left the pool's count; with ``take_next``, the best buffered
        task next, in the same hold of the lock (None once the pool stops or this runner was replaced)."""
        took = time.perf_counter() - started  # applying included: the time per task sizes the prefetch
        with self._lock:
            self._running.pop(runner, None)
            # canceled while running inline: it left the count then, and this thread ends here
            if runner in self._retired:
                self._retired.discard(runner)
                return None
            self._mean_attempt = took if not self._mean_attempt else 0.9 * self._mean_attempt + 0.1 * took
            self._busy -= 1
            # only a dispatcher waiting for room needs it (notify() costs even with nobody to wake)
            if self._awaiting_room and self._busy < self.max_workers:
                self._freed.notify()
            return self._take_claimed() if take_next else None

    def _replace_runner_of(self, task_id: str) -> None:
        """A task canceled while its code runs in a runner's own thread: that code cannot be stopped, only left to
        return, so a new runner takes the old one's place and the pool keeps ``max_workers`` runners working."""
        with self._lock:
            ident = self._inline.pop(task_id, None)
            runner = next((t for t in self._runners if t.ident == ident), None) if ident is not None else None
            if runner is None or self._stopped:
                return  # not running inline here, or drained in the caller's thread (run_until_idle)
            self._runners.remove(runner)
            self._runners.append(self._new_runner())
            self._retired.add(ident)
            self._held.pop(task_id, None)  # its lease went with the cancel: the heartbeat would call it lost
            self._busy -= 1
            self._freed.notify()
        log.warning("worker %s: task %s was canceled while running; its code is left to return in thread %s and a new "
                    "runner takes its place", self.worker_id, task_id, runner.name)  # fmt: skip

    def _report(self, report: Report) -> None:
        """A runner's outcome: applied by this runner when its task is the pool's only one and no outcome waits (a
        reporter or the queue would only add hand-overs); else queued for the reporter, or on the memory store for the
        runner that leads the applying. On SQLite, while this process queues tasks, left to ParkedOutcomes."""
        if self._parking is not None and self._parking.park(report):
            return
        # alone: this runner's task is the only one the pool has claimed and no outcome waits (read without the lock:
        # a hint, as stale once a lock is let go as before)
        if self._busy == 1 and self._reports.empty() and self._reporting.acquire(blocking=False):
            try:
                self._apply([report], gather=True, by_runner=True)
            finally:
                self._reporting.release()
        else:
            self._reports.put(report)
            if self._reporter or self._hold_back():
                return
        # and what runners that found the lead taken queued meanwhile (see _lead_reports; a look first)
        if not self._reporter and not self._reports.empty():
            self._lead_reports()

    def _next_claimed(self) -> TaskRecord | None:
        """The best buffered task, waiting for one; None once the pool stops."""
        with self._lock:
            return self._take_claimed()

    def _take_claimed(self) -> TaskRecord | None:
        """As :meth:`_next_claimed`, under ``_lock``."""
        while not self._buffer and not self._stopped:
            self._has_work.wait()
        if self._stopped:
            return None
        return heapq.heappop(self._buffer)[2]

    def _report_loop(self) -> None:
        while (first := self._reports.get()) is not None:
            with self._reporting:
                self._apply([first], gather=True)

    def _hold_back(self) -> bool:
        """Whether the runner that just queued an outcome may run its next claimed task before the queue is applied.

        Applied together, several outcomes take the store's lock once. A runner applying each outcome on its own met
        the thread queueing tasks at that lock on every task, and the two fell into a convoy of hand-overs (W1 with
        one runner, 2-3x slower than with two). Held back only while a claimed task waits in the buffer, and for
        REPORT_DELAY at most: a runner finding them older applies them, and if the next task runs long, the
        dispatcher does (within BUSY_LOOK_SECONDS).
        """
        with self._lock:
            if not self._buffer:
                return False
            if self._held_back_since is None:
                self._held_back_since = time.perf_counter()
                return True
            return time.perf_counter() - self._held_back_since < REPORT_DELAY

    def _until_overdue(self) -> float | None:
        """How long the dispatcher may wait before it looks for overdue held-back outcomes (None: no limit); under
        ``_lock``. While tasks are claimed, runners may hold outcomes back at any moment: it looks every
        BUSY_LOOK_SECONDS then, rather than be woken each time one starts to."""
        if self._held_back_since is not None:
            return max(0.0, self._held_back_since + REPORT_DELAY - time.perf_counter())
        return BUSY_LOOK_SECONDS if self._busy and not self._reporter else None

    def _overdue(self) -> bool:
        """Whether held-back outcomes waited REPORT_DELAY; under ``_lock``."""
        since = self._held_back_since
        return since is not None and time.perf_counter() - since >= REPORT_DELAY

    def _lead_reports(self, by_runner: bool = True) -> None:
        """Apply queued outcomes in batches until the queue is empty, unless another thread already leads: a runner
        that finds the lead taken leaves its outcome to the leader and goes on to its next task, and the leader looks
        at the queue again after letting go, so no outcome is left behind. ``by_runner``: False for the dispatcher
        (and ``stop``), which runs no task next."""
        while not self._reports.empty() and self._reporting.acquire(blocking=False):
            try:
                if self._held_back_since is not None:  # set under _lock by a runner that queued behind us
                    with self._lock:
                        self._held_back_since = None  # what is queued now is applied below
                while not self._reports.empty():  # a look first: an exception per empty queue costs more
                    try:
                        first = self._reports.get_nowait()
                    except queue.Empty:  # another thread took it meanwhile
                        break
                    self._apply([first], gather=True, by_runner=by_runner)
            finally:
                self._reporting.release()

    def _gather(self, batch: list[Report]) -> None:
        """Add the outcomes that arrived meanwhile to ``batch`` (up to REPORT_BATCH); a stop sentinel goes back."""
        reports = self._reports
        while len(batch) < REPORT_BATCH and not reports.empty():
            try:
                item = reports.get_nowait()
            except queue.Empty:
                return
            if item is None:
                reports.put(None)  # the report loop ends after this batch
                return
            batch.append(item)

    # -- applying outcomes --------------------------------------------------------------
    def _apply(
        self, batch: list[Report], claim_next: bool = True, by_runner: bool = False, gather: bool = False
    ) -> None:
        """Apply outcomes in one transaction, retrying while the store is unreachable so no result is lost.

        With ``gather`` (the reporter, or the leading runner), the batch takes in every outcome that arrived while
        the transaction waited for its turn to write: the commit the others waited for is shared by all of them
        (group commit).

        With ``claim_next``, the same transaction claims what the outcomes made ready (the next step of a chain, a
        retry) for this pool's free runners: no wake-up of the dispatcher and no transaction of its own.
        If a lease lapses meanwhile, another worker may take the task over; the fencing token then makes the
        engine refuse the late report, so a result is never written twice.
        """
        failures = 0
        while True:
            try:
                with self._leases.reporting():  # not renewed while they are reported (see heartbeat)
                    with self.engine.batch():
                        if gather and not self._reports.empty():  # a look first: a lone runner's usual case
                            self._gather(batch)
                        gather = False  # a retry applies the same batch
                        # copies where a failed commit rolls back: the same batch is applied again, unmoved
                        reports = [(r.copy(), state, outcome) for r, state, outcome in batch] if self._copy else batch
                        self.engine.complete_all(reports)
                        claimed = self._claim_more() if claim_next else []
                    self._accept(claimed, by_runner, done=map(_RECORD, batch))
                if not claim_next:
                    self.wake(1)  # a finished task may have made room in a limited queue
                return
            except StoreError as exc:
                if len(batch) > 1:  # one bad outcome must not hold the others back: apply them one by one
                    for report in batch:
                        self._apply([report], claim_next, by_runner)
                    return
                failures += 1
                if isinstance(exc, StoreConflict) and failures == 1:  # aborted to break a deadlock: again, at once
                    log.info("worker %s: the report of task %s met a deadlock; applying it again",
                             self.worker_id, batch[0][0].id)  # fmt: skip
                    continue
                log.error("worker %s cannot report task %s (%s); retrying in %.1f s",
                          self.worker_id, batch[0][0].id, exc, backoff(failures))  # fmt: skip
                if self._stopping.wait(backoff(failures)) and failures > 3:
                    log.error("worker %s gives up reporting task %s; its lease will expire",
                              self.worker_id, batch[0][0].id)  # fmt: skip
                    self._give_up([record for record, _, _ in batch])
                    return
            except Exception:
                # not the store being away, so trying again would not help: left unrenewed, these tasks' leases
                # lapse and they run again
                self._give_up([record for record, _, _ in batch])
                raise

    def _claim_more(self) -> list[TaskRecord]:
        """Inside the reporting transaction: claim up to the pool's free room (what the outcomes made ready, the room
        they freed in a limited queue), so the dispatcher is not woken for either."""
        with self._lock:
            room = 0 if self._stopped else self.max_workers + self._prefetch() - self._busy
        if room <= 0:
            return []
        return self.engine.claim(self.worker_id, room, self.queues, self.lease_seconds)

    def _claim_submitted(self, _count: int) -> None:
        """Inside the transaction that queues work in this process: claim it for free runners in that transaction
        (no wake-up of the dispatcher, and no claim transaction of its own). Only where writers take turns and each
        commit waits for a sync (SQLite); on PostgreSQL the dispatcher's own claim runs beside the next insert."""
        if not self._runners:
            return  # not started: run_once / run_until_idle drain in the caller's thread
        if self._parking is not None:
            self._parking.apply()
        claimed = self._claim_more()
        if claimed:
            self.engine.after_commit(lambda: self._accept(claimed))

    def _forget(self, records: Iterable[TaskRecord]) -> None:
        """Stop renewing these attempts' leases, not a later attempt's claimed here since (canceled elsewhere)."""
        self._accept([], done=records)

    def _give_up(self, records: list[TaskRecord]) -> None:
        """Let go of attempts that will not be reported from here: their leases lapse unrenewed."""
        self._forget(records)
        for record in records:
            self.engine.forget_attempt(record.id, record.attempts)
