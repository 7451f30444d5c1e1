"""Priority and FIFO ordering, in the queue classes and in the engine's claims."""

from __future__ import annotations

import threading
import time

import pytest

from unified.queue import Empty, FifoQueue, PriorityQueue
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.worker import MAX_PREFETCH, PREFETCH_SECONDS


def test_priority_queue_orders_by_priority_then_fifo() -> None:
    q: PriorityQueue[str] = PriorityQueue()
    for item, priority in [("a", 1), ("b", 10), ("c", 5), ("d", 10), ("e", 1)]:
        q.put(item, priority)
    assert [q.get_nowait() for _ in range(5)] == ["b", "d", "c", "a", "e"]
    with pytest.raises(Empty):
        q.get_nowait()


def test_priority_queue_honours_not_before(clock: FakeClock) -> None:
    q: PriorityQueue[str] = PriorityQueue(clock)
    q.put("later", priority=100, not_before=clock.now() + 30)
    q.put("now", priority=0)
    assert q.get_nowait() == "now"
    with pytest.raises(Empty):
        q.get_nowait()
    assert q.next_due() == clock.now() + 30
    clock.advance(30)
    assert q.get_nowait() == "later"


def test_priority_queue_get_wakes_when_the_clock_advances(clock: FakeClock) -> None:
    q: PriorityQueue[str] = PriorityQueue(clock)
    q.put("x", not_before=clock.now() + 60)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(q.get(timeout=5)))
    waiter.start()
    clock.advance(60)
    waiter.join(5)
    assert got == ["x"]


def test_priority_queue_is_thread_safe() -> None:
    q: PriorityQueue[int] = PriorityQueue()
    producers = [
        threading.Thread(target=lambda b=b: [q.put(b * 1000 + i, i % 7) for i in range(1000)]) for b in range(4)
    ]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    taken: list[int] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            try:
                item = q.get(timeout=0.05)
            except Empty:
                return
            with lock:
                taken.append(item)

    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for t in consumers:
        t.start()
    for t in consumers:
        t.join(10)
    assert sorted(taken) == sorted(b * 1000 + i for b in range(4) for i in range(1000))


def test_fifo_queue() -> None:
    q: FifoQueue[int] = FifoQueue()
    for i in range(3):
        q.put(i, priority=100 - i)
    assert [q.get(timeout=1) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(Empty):
        q.get(timeout=0.01)


def test_one_busy_worker_then_runs_priorities_10_5_1() -> None:
    order: list[int] = []
    gate = threading.Event()
    started = threading.Event()

    def blocker() -> None:
        started.set()
        gate.wait(10)

    with TaskManager(max_workers=1) as tm:
        first = tm.queue_task(blocker)
        assert started.wait(5)
        ids = [tm.queue_task(lambda p=p: order.append(p), priority=p) for p in (1, 10, 5)]
        gate.set()
        for task_id in [first, *ids]:
            tm.wait(task_id, timeout=5)
    assert order == [10, 5, 1]


def test_a_long_attempt_stops_the_pool_claiming_ahead_so_a_later_high_priority_task_runs_next(tmp_path) -> None:
    order: list[int] = []
    gate, started = threading.Event(), threading.Event()

    def blocker() -> None:
        started.set()
        gate.wait(10)

    with TaskManager(store=f"sqlite:///{tmp_path}/p.db", max_workers=1) as tm:
        tm.wait_all([tm.queue_task(int) for _ in range(20)], timeout=10)  # fast attempts: the pool claims ahead
        first = tm.queue_task(blocker)
        assert started.wait(5)
        time.sleep(PREFETCH_SECONDS * 2)  # the running attempt has now run far longer than the measured ones
        ids = [tm.queue_task(lambda: order.append(1), priority=1) for _ in range(MAX_PREFETCH + 40)]
        ids.append(tm.queue_task(lambda: order.append(10), priority=10))
        gate.set()
        tm.wait_all([first, *ids], timeout=10)
    assert order[0] == 10, "the low-priority tasks queued first were claimed ahead and ran before it"


def test_equal_priorities_run_first_in_first_out(drained: TaskManager) -> None:
    order: list[int] = []
    for i in range(20):
        drained.queue_task(lambda i=i: order.append(i), priority=3)
    drained.run_until_idle()
    assert order == list(range(20))
