"""A hypothesis state machine drives the engine through random queue / run / fail / cancel / retry / time steps
and checks, after every step, the invariants a user relies on."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from unified.engine import Engine
from unified.errors import ConflictError
from unified.store.memory import MemoryStore
from unified.task import ALLOWED_TRANSITIONS, BAD_STATES, FINISHED_STATES, Task, TaskState
from unified.utils import FakeClock
from unified.worker import WorkerPool


class Outcomes:
    """Decides, per task id and attempt, whether the task function fails."""

    def __init__(self) -> None:
        self.fail: dict[str, bool] = {}

    def make(self, task_id: str):
        def body() -> str:
            if self.fail.get(task_id, False):
                raise RuntimeError(f"{task_id} fails")
            return task_id

        return body


class EngineMachine(RuleBasedStateMachine):
    """Random operations on one engine over the memory store."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.engine = Engine(MemoryStore(), self.clock)
        self.pool = WorkerPool(self.engine, max_workers=0)
        self.outcomes = Outcomes()
        self.ids: list[str] = []
        self.seen: dict[str, list[str]] = {}
        self.engine.bus.subscribe(lambda e: self.seen.setdefault(e["id"], []).append(e["event"]))

    @rule(
        fails=st.booleans(),
        retries=st.integers(0, 2),
        delay=st.sampled_from([0, 5]),
        deps=st.lists(st.integers(0, 30), max_size=3),
    )
    def queue(self, fails: bool, retries: int, delay: int, deps: list[int]) -> None:
        task_id = f"t{len(self.ids)}"
        upstream = sorted({self.ids[i % len(self.ids)] for i in deps}) if self.ids else []
        self.outcomes.fail[task_id] = fails
        task = Task(
            task_id=task_id,
            func=self.outcomes.make(task_id),
            dependencies=upstream,
            max_retries=retries,
            retry_delay_seconds=delay,
        )
        self.engine.submit([task])
        self.ids.append(task_id)

    @rule()
    def run_ready(self) -> None:
        self.pool.run_until_idle()

    @rule(seconds=st.sampled_from([1, 5, 20]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 100))
    def cancel(self, index: int) -> None:
        task_id = self.ids[index % len(self.ids)]
        before = self.engine.store.get_task(task_id).state
        changed = self.engine.cancel_task(task_id)
        assert changed == (before not in {s.value for s in FINISHED_STATES})

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 100), heal=st.booleans())
    def retry(self, index: int, heal: bool) -> None:
        task_id = self.ids[index % len(self.ids)]
        if heal:
            self.outcomes.fail[task_id] = False
        try:
            self.engine.retry_task(task_id)
        except ConflictError:
            state = self.engine.store.get_task(task_id).state
            upstream_bad = any(
                u.state in BAD_STATES
                for u in self.engine.store.get_tasks(self.engine.store.get_task(task_id).dependencies)
            )
            assert state not in {"failure", "timeout", "canceled", "skipped"} or upstream_bad

    @invariant()
    def states_are_consistent(self) -> None:
        store = self.engine.store
        for task_id in self.ids:
            task = store.get_task(task_id)
            state = TaskState(task.state)
            upstream = store.get_tasks(task.dependencies)
            if state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCESS):
                assert all(u.state == "success" for u in upstream), f"{task_id} {state} before its upstream"
            if state is TaskState.SUCCESS:
                assert task.result == task_id and task.finished_at is not None
            if state is TaskState.SKIPPED:
                assert any(u.state in BAD_STATES for u in upstream) and task.reason
            if state is TaskState.RETRYING:
                assert task.not_before is not None and task.attempts >= 1
            if state is TaskState.PENDING:
                assert any(u.state != "success" for u in upstream)
            attempts = store.list_attempts(task_id)
            assert [a.number for a in attempts] == list(range(1, task.attempts + 1))
            assert state is not TaskState.RUNNING, "nothing runs between steps of a drained pool"

    @invariant()
    def success_is_announced_once(self) -> None:
        for events in self.seen.values():
            assert events.count("task_succeeded") <= 1


EngineMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestEngineMachine = EngineMachine.TestCase


def test_the_table_has_an_entry_for_every_state() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(TaskState)
