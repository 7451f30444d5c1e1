"""The Python examples of README.md and docs/scheduling.md run as written and print what their comments say.

Each example is taken from its Markdown file by a phrase it contains, so editing an example changes what is tested.
A line ``print(...)  # text`` promises that it prints ``text``. A document reads as one session: an example may use
what an earlier one imported (``Task``, ``TaskManager``), and the functions it calls "yours" are given to it.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from unified.task import Task
from unified.task_manager import TaskManager
from unified.testing import FakeClock, run_until_idle

ROOT = Path(__file__).resolve().parents[2]


def example(document: str, phrase: str) -> str:
    """The one Python block of ``document`` that contains ``phrase``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / document).read_text(), re.S)
    [found] = [block for block in blocks if phrase in block]
    return found


def promised_output(code: str) -> list[str]:
    """What the example's ``print(...)  # text`` lines say they print, in order."""
    return [m.group(1).strip() for m in re.finditer(r"^print\(.*\)\s+#\s*(.*)$", code, re.M)]


def run_example(code: str, namespace: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Execute ``code``; returns its namespace and the lines it printed."""
    namespace = {"Task": Task, "TaskManager": TaskManager, **(namespace or {})}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "example", "exec"), namespace)
    return namespace, printed.getvalue().splitlines()


def test_the_first_readme_example_prints_what_its_comments_say() -> None:
    code = example("README.md", "Hello, World!")
    namespace, printed = run_example(code)
    try:
        assert printed == promised_output(code) == ["Hello, World!", "success {'task1': 'Step 1', 'task2': 'Step 2'}"]
    finally:
        namespace["task_manager"].shutdown()
        namespace["workflow_manager"].shutdown()


def test_the_readme_fake_clock_example_retries_after_the_clock_moves() -> None:
    namespace, _ = run_example(example("README.md", "FakeClock("))
    meta = namespace["tm"].get_task_metadata(namespace["task_id"])
    assert (meta["state"], meta["attempts"]) == ("success", 2)


def test_the_readme_fan_out_example_grows_its_run() -> None:
    def process(i: int) -> int:
        return i * 2

    def combine(ctx: Any) -> int:
        return sum(ctx.upstream.values())

    namespace, _ = run_example(example("README.md", "def fan_out"), {"process": process, "combine": combine})
    with TaskManager(max_workers=0, clock=FakeClock()) as tm:
        tm.queue_task(namespace["fan_out"])
        run_until_idle(tm)
        assert tm.get_result("combine") == sum(i * 2 for i in range(100))


def test_the_readme_batch_example_queues_in_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes runs.db where it runs
    code = example("README.md", "tm.batch()").replace("range(10_000)", "range(50)")  # the same code, fewer tasks
    namespace, _ = run_example(code, {"process": lambda i: i + 1})
    try:
        assert namespace["results"] == list(range(1, 51))
        assert (tmp_path / "runs.db").exists()
    finally:
        namespace["tm"].shutdown()


def test_the_scheduling_example_of_a_fake_clock_fires_once_per_five_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mypipelines"  # the user's module the example schedules by import path
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "extract.py").write_text("def pull_orders():\n    return 'orders'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        namespace, _ = run_example(example("docs/scheduling.md", "for _ in range(288)"))  # asserts the 288 fires
        tm, schedule_id = namespace["tm"], namespace["schedule_id"]
        assert {t["result"] for t in tm.list_tasks(schedule_id=schedule_id, limit=1000)} == {"orders"}
        tm.shutdown()
    finally:
        for name in ("mypipelines", "mypipelines.extract"):
            sys.modules.pop(name, None)
