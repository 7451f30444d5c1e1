"""Task specs written without their default options: what is read back equals what was stored, on every store."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.helpers.tasks import add
from unified.store.base import Store
from unified.store.records import TaskRecord, WorkflowRecord
from unified.store.schema import tasks, versions
from unified.store.spec_packing import MARK, pack, spec_template, unpack
from unified.store.sql import SqlStore
from unified.task import Task

SPECS = {
    "defaults": Task(task_id="a", func=add, dependencies=["x", "y"]).spec(),
    "options": Task(
        task_id="b",
        func=add,
        args=[1, 2],
        kwargs={"k": 0},
        max_retries=3,
        retry_delay_seconds=0.5,
        timeout=2,
        priority=4,
        metadata={"m": None},
        queue="q",
        sla_seconds=9,
        retry_on=[KeyError],
        jitter=True,
    ).spec(),
    "command": Task(task_id="c", command=["echo", "hi"]).spec(),
    "float where the default is an int": {**Task(task_id="d", func=add).spec(), "retry_delay_seconds": 0.0},
    "an extra key": {**Task(task_id="e", func=add).spec(), "ref": "inproc:f@1"},
}


def stored_and_read(spec: dict) -> dict:
    return unpack(json.loads(json.dumps(pack(spec))))


@pytest.mark.parametrize("name", list(SPECS))
def test_a_full_spec_reads_back_equal_in_its_key_order(name: str) -> None:
    spec = SPECS[name]
    again = stored_and_read(spec)
    assert again == spec
    assert list(again) == list(spec)
    assert type(again["retry_delay_seconds"]) is type(spec["retry_delay_seconds"])


def test_only_options_left_at_their_default_are_left_out() -> None:
    packed = pack(SPECS["defaults"])
    assert packed == {
        "task_id": "a",
        "name": "a",
        "func": "tests.helpers.tasks:add",
        "dependencies": ["x", "y"],
        MARK: 1,
    }
    given = {"args", "kwargs", "max_retries", "retry_delay_seconds", "timeout", "priority", "metadata", "queue"}
    assert set(pack(SPECS["options"])) >= given | {"sla_seconds", "retry_on", "jitter"}


def test_the_template_holds_a_default_tasks_options() -> None:
    spec = Task(task_id="t", func=add).spec()
    template = spec_template()
    assert list(template) == list(spec)
    placeholders = {"task_id", "name", "func", "dependencies"}
    assert {k: v for k, v in spec.items() if k not in placeholders} == {
        k: v for k, v in template.items() if k not in placeholders
    }


def test_filled_lists_and_dicts_are_each_specs_own() -> None:
    first, second = stored_and_read(SPECS["defaults"]), stored_and_read(SPECS["defaults"])
    first["args"].append(1)
    first["metadata"]["k"] = 1
    assert second["args"] == [] and second["metadata"] == {} and spec_template()["args"] == []


def test_a_spec_that_is_not_full_or_not_marked_is_kept_as_it_is() -> None:
    partial = {"func": "tests.helpers.tasks:noop", "args": []}
    assert pack(partial) is partial
    assert unpack(json.loads(json.dumps(SPECS["defaults"]))) == SPECS["defaults"]


def test_every_store_returns_the_spec_it_was_given(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    for name, spec in SPECS.items():
        store.insert_tasks([make_task(spec["task_id"], spec=spec)])
        assert store.get_task(spec["task_id"]).spec == spec, name
    store.insert_tasks([make_task("partial", spec={"func": "tests.helpers.tasks:noop", "args": []})])
    assert store.get_task("partial").spec == {"func": "tests.helpers.tasks:noop", "args": []}


def test_sql_stores_write_the_short_form_and_read_rows_written_whole(
    durable_url: str, make_task: Callable[..., TaskRecord]
) -> None:
    spec = SPECS["defaults"]
    with SqlStore(durable_url) as store:
        store.insert_tasks([make_task("a", spec=spec), make_task("old", spec=spec)])
        with store._tx() as conn:
            text = conn.execute(sa.select(tasks.c.spec).where(tasks.c.id == "a")).scalar_one()
            # a row written before specs were packed: the whole spec, no mark
            conn.execute(sa.update(tasks).where(tasks.c.id == "old").values(spec=json.dumps(spec)))
        assert "max_retries" not in text and MARK in text
        assert store.get_task("a").spec == spec
        assert store.get_task("old").spec == spec


def test_sql_stores_write_workflow_versions_short_and_read_them_whole(durable_url: str) -> None:
    specs = [SPECS["defaults"], SPECS["options"]]
    with SqlStore(durable_url) as store:
        store.put_workflow(WorkflowRecord("w", "wf", tasks=specs, created_at=1.0))
        version = store.freeze_draft("w", 2.0)
        assert version.tasks == specs
        assert store.get_version("w", version.number).tasks == specs
        assert store.get_workflow("w").tasks == specs
        with store._tx() as conn:
            text = conn.execute(sa.select(versions.c.tasks)).scalar_one()
        assert text.count(MARK) == 2 and "isolation" not in text
