"""Task options are validated, states are exactly the documented ones, and transitions are checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unified.errors import ImportPathError, InvalidTransitionError, UnifiedError, ValidationError
from unified.task import ALLOWED_TRANSITIONS, RetryPolicy, Task, TaskState, callable_identity, check_transition


def test_states_are_exactly_the_documented_strings() -> None:
    assert [s.value for s in TaskState] == [
        "pending", "queued", "running", "success", "failure", "timeout", "canceled", "retrying", "skipped",
    ]  # fmt: skip
    assert TaskState.SUCCESS == "success" and isinstance(TaskState.SUCCESS, str)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "exactly one of func"),
        ({"func": print, "command": "echo"}, "exactly one of func"),
        ({"func": print, "timeout": -1}, "timeout must be a positive"),
        ({"func": print, "timeout": 0}, "timeout must be a positive"),
        ({"func": print, "max_retries": -1}, "max_retries must be a whole number of 0 or more, not -1"),
        ({"func": print, "max_retries": "3"}, "max_retries must be a whole number of 0 or more, not str '3'"),
        ({"func": print, "max_retries": 1.5}, "max_retries must be a whole number"),
        ({"func": print, "timeout": "10"}, "timeout must be a positive finite number, not str"),
        ({"func": print, "timeout": True}, "timeout must be a positive finite number, not bool"),
        ({"func": print, "priority": "high"}, "priority must be a whole number"),
        ({"func": print, "queue": None}, "queue must be a non-empty name"),
        ({"func": print, "queue": " "}, "queue must be a non-empty name"),
        ({"func": print, "retry_delay_seconds": -2}, "retry_delay_seconds"),
        ({"func": print, "backoff_factor": 0.5}, "backoff_factor"),
        ({"func": print, "isolation": "gpu"}, "isolation must be one of"),
        ({"func": lambda: 1, "isolation": "process"}, "not a lambda"),
        ({"func": print, "task_id": "  "}, "task_id must be a non-empty"),
        ({"func": 42}, "must be callable"),
        ({"func": print, "retry_on": (int,)}, "exception classes"),
        ({"func": print, "timeout": float("inf")}, "timeout must be a positive finite number, not inf"),
        ({"func": print, "retry_delay_seconds": float("inf")}, "retry_delay_seconds must be a finite number"),
        ({"func": print, "max_retry_delay_seconds": float("inf")}, "max_retry_delay_seconds must be a finite"),
        ({"func": print, "timeout": float("nan")}, "timeout must be a positive finite number, not nan"),
        ({"func": print, "args": "abc"}, r"args must be a list or tuple, not str: for one, args=\(x,\)"),
        ({"func": print, "args": b"abc"}, "args must be a list or tuple, not bytes"),
        ({"func": print, "args": {"a": 1}}, "args must be a list or tuple, not dict"),
        ({"func": print, "args": {1, 2}}, "args must be a list or tuple, not set"),
        ({"func": print, "args": 5}, "args must be a list or tuple, not int"),
        ({"func": print, "kwargs": [1]}, r"kwargs must be a dict of argument names \(strings\) to values, not list"),
        ({"func": print, "kwargs": {1: 2}}, "kwargs must be a dict .* not one with a key that is not a string"),
        ({"func": print, "metadata": [1]}, "metadata must be a dict of names"),
    ],
)
def test_bad_options_raise_validation_errors_that_say_what_to_do(kwargs: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as info:
        Task(**kwargs)
    assert isinstance(info.value, UnifiedError)


@pytest.mark.parametrize("path", ["nodots", "no_such_module_xyz:f", "tests.helpers.tasks:missing", "os.path:"])
def test_import_paths_that_do_not_resolve_are_refused(path: str) -> None:
    with pytest.raises(ImportPathError):
        Task(func=path)


def test_import_path_task_resolves_and_names_itself() -> None:
    task = Task(func="tests.helpers.tasks:add", args=(1, 2))
    assert task.resolve()(1, 2) == 3
    assert task.name == "add"
    assert task.spec()["func"] == "tests.helpers.tasks:add"


def test_spec_round_trip_keeps_every_option() -> None:
    task = Task(
        task_id="t", func="tests.helpers.tasks:add", args=(1,), kwargs={"b": 2}, dependencies=["a"], timeout=3,
        max_retries=2, retry_delay_seconds=1.5, backoff_factor=3, max_retry_delay_seconds=10, jitter=True,
        retry_on=(ValueError,), priority=7, metadata={"k": "v"}, isolation="process", queue="etl",
    )  # fmt: skip
    again = Task.from_spec(task.spec())
    assert again.spec() == task.spec()
    assert again.retry_on == (ValueError,)


def test_lambda_spec_cannot_be_rebuilt_elsewhere_and_says_why() -> None:
    spec = Task(task_id="t", func=lambda: 1).spec()
    assert spec["func"].startswith("inproc:")
    with pytest.raises(ValidationError, match="module level"):
        Task.from_spec(spec)


class _NoRepr:
    """A value whose repr must not be asked for: it raises (as a user's may) and counts the calls."""

    calls = 0

    def __repr__(self) -> str:
        _NoRepr.calls += 1
        raise RuntimeError("no repr")


def _closure_over(value: object, default: object) -> object:
    def job(x=default, *, y=default):
        return value, x, y

    return job


def test_a_closure_is_identified_by_the_objects_it_holds_without_their_repr() -> None:
    held, other = _NoRepr(), _NoRepr()
    first = callable_identity(_closure_over(held, held))
    assert first.startswith("inproc:_closure_over.<locals>.job#")
    assert callable_identity(_closure_over(held, held)) == first  # the same code over the same objects
    assert callable_identity(_closure_over(other, held)) != first  # another object in a cell
    assert callable_identity(_closure_over(held, other)) != first  # another default
    assert callable_identity(lambda: [0] * 5) != callable_identity(lambda: [0] * 6)  # other code
    assert Task(task_id="t", func=_closure_over(held, held)).spec()["func"] == first
    assert _NoRepr.calls == 0


def test_illegal_transition_raises() -> None:
    with pytest.raises(InvalidTransitionError, match="cannot go from success to running"):
        check_transition("success", "running")
    assert check_transition("queued", "running") is TaskState.RUNNING
    with pytest.raises(ValueError, match="'done' is not a valid TaskState"):  # not a state at all
        check_transition("running", "done")


@given(st.sampled_from(list(TaskState)), st.sampled_from(list(TaskState)))
def test_transition_check_matches_the_table(current: TaskState, new: TaskState) -> None:
    if new in ALLOWED_TRANSITIONS[current]:
        assert check_transition(current, new) is new
    else:
        with pytest.raises(InvalidTransitionError):
            check_transition(current, new)


def test_finished_states_have_no_way_out_but_a_manual_retry() -> None:
    for state in (TaskState.FAILURE, TaskState.TIMEOUT, TaskState.CANCELED, TaskState.SKIPPED):
        assert ALLOWED_TRANSITIONS[state] == {TaskState.PENDING, TaskState.QUEUED}
    assert ALLOWED_TRANSITIONS[TaskState.SUCCESS] == frozenset()


def test_the_retry_policy_of_a_spec_is_shared_by_equal_specs_and_rebuilt_tasks() -> None:
    spec = Task(task_id="t", func=print, max_retries=3, retry_delay_seconds=0.5, backoff_factor=3).spec()
    policy = RetryPolicy.of_spec(spec)
    assert policy == RetryPolicy(3, 0.5, 3.0, None, False)
    assert RetryPolicy.of_spec(dict(spec)) is policy and Task.from_spec(spec, print).retry is policy
    assert RetryPolicy.of_spec({}) == RetryPolicy()  # a spec stored without its defaults
    with pytest.raises(ValidationError, match="max_retries"):  # a bad policy is refused every time, not kept
        RetryPolicy.of_spec({"max_retries": -1})
    with pytest.raises(ValidationError, match="max_retries"):
        RetryPolicy.of_spec({"max_retries": -1})


def test_queue_task_refuses_options_beside_a_ready_task_instead_of_ignoring_them() -> None:
    from unified.task_manager import TaskManager

    with TaskManager(max_workers=0) as tm:
        with pytest.raises(ValidationError, match="got a Task and also jitter, priority: set those on the Task"):
            tm.queue_task(Task(task_id="t", func=print), priority=5, jitter=True)
        assert tm.queue_task(Task(task_id="t", func=print, priority=5)) == "t"


def test_a_function_of_the_script_being_run_is_refused_for_process_isolation_saying_why() -> None:
    def job() -> int:
        return 1

    job.__module__, job.__qualname__ = "__main__", "job"  # as if defined at the top of `python script.py`
    with pytest.raises(ValidationError, match=r"not in the script being run \(__main__\)"):
        Task(func=job, isolation="process")
