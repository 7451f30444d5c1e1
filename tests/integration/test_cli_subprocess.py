"""The `unified` console script as a real process: `run --wait` exit codes, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

from tests.helpers.server import clean_env, command
from unified.task_manager import TaskManager

FLOWS = """
from unified.task import Task
from unified.workflow.workflow import Workflow


def step(ctx) -> int:
    ctx.logger.info("step of %s", ctx.params.get("day"))
    return 1


def crash() -> None:
    raise RuntimeError("crash on purpose")


ok = Workflow("ok", "", [Task(task_id="step", func=step)])
"""

CRASH = """
from sub_flows import crash
from unified.task import Task
from unified.workflow.workflow import Workflow

crashes = Workflow("crashes", "", [Task(task_id="crash", func=crash)])
"""


def unified(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script in ``folder`` with its default database (./.unified/unified.db)."""
    environment = {**clean_env(), **(env or {})}
    return subprocess.run([*command(), *args], cwd=folder, env=environment, capture_output=True, text=True, timeout=60)


def test_the_console_script_runs_lists_and_refuses(tmp_path: Path) -> None:
    (tmp_path / "sub_flows.py").write_text(textwrap.dedent(FLOWS))
    (tmp_path / "sub_crash.py").write_text(textwrap.dedent(CRASH))

    ok = unified(tmp_path, "run", "sub_flows.py", "--wait", "-p", "day=2026-01-01")
    assert ok.returncode == 0, ok.stderr
    assert "success" in ok.stdout and "step" in ok.stdout
    assert (tmp_path / ".unified" / "unified.db").exists()  # the server's default database

    crashed = unified(tmp_path, "run", "sub_crash.py", "--wait")
    assert crashed.returncode == 1
    assert "RuntimeError: crash on purpose" in crashed.stdout
    assert "ended failure" in crashed.stderr

    runs = json.loads(unified(tmp_path, "runs", "list", "--json").stdout)
    assert [(r["workflow"], r["state"]) for r in runs] == [("crashes", "failure"), ("ok", "success")]

    missing = unified(tmp_path, "runs", "show", "no-such-run")
    assert missing.returncode == 3
    assert "no run" in missing.stderr and missing.stdout == ""
    usage = unified(tmp_path, "runs", "list", "--limit", "0")
    assert usage.returncode == 2 and "--limit" in usage.stderr


def test_the_server_refuses_an_unusable_database_path_or_a_taken_port_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with socket.socket() as probe:  # a port free now, so only the database is refused
        probe.bind(("127.0.0.1", 0))
        free = str(probe.getsockname()[1])
    unusable = unified(tmp_path, "server", "--db", f"sqlite:///{tmp_path / 'a-file' / 'x.db'}", "--port", free)
    assert unusable.returncode == 5, unusable.stderr  # the store could not be used
    assert "cannot create the folder of the SQLite file" in unusable.stderr and "Traceback" not in unusable.stderr
    nowhere = unified(tmp_path, "server", "--port", free, env={"UNIFIED_WORKFLOWS_DIR": str(tmp_path / "nowhere")})
    assert nowhere.returncode == 2 and "is not a folder" in nowhere.stderr, nowhere.stderr
    (tmp_path / "text.db").write_text("not a database")
    not_one = unified(tmp_path, "server", "--db", f"sqlite:///{tmp_path / 'text.db'}", "--port", free)
    assert not_one.returncode == 5 and "file is not a database" in not_one.stderr, not_one.stderr
    assert "Traceback" not in not_one.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        clash = unified(tmp_path, "server", "--port", port)
    assert clash.returncode == 4, clash.stderr  # a conflict with what exists
    assert f"cannot listen on 127.0.0.1:{port}" in clash.stderr and "Traceback" not in clash.stderr
    assert not (tmp_path / ".unified").exists()  # refused before anything was created or shown (no admin key)


LINGER = """
import time

from unified.task import Task
from unified.workflow.workflow import Workflow


def linger(ctx) -> None:
    deadline = time.monotonic() + 30  # bounded: a task never handed back ends by itself
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)


lingers = Workflow("lingers", "", [Task(task_id="linger", func=linger)])
"""


def test_sigterm_stops_run_wait_as_ctrl_c_does_and_hands_its_task_back(tmp_path: Path) -> None:
    (tmp_path / "sub_linger.py").write_text(textwrap.dedent(LINGER))
    db = f"sqlite:///{tmp_path / '.unified' / 'unified.db'}"
    waiting = subprocess.Popen(
        [*command(), "run", "sub_linger.py", "--wait"], cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while task_state(db) != "running":  # bounded: the CLI starts, stores the file and runs its task
            assert time.monotonic() < deadline and waiting.poll() is None, waiting.stderr
            time.sleep(0.05)
        waiting.send_signal(signal.SIGTERM)  # what `timeout`, a canceled CI job or `docker stop` sends
        waiting.wait(timeout=15)
    finally:
        waiting.kill()
        waiting.communicate()
    assert waiting.returncode == 130  # as after Ctrl-C
    assert task_state(db) == "queued", "handed back at once, not left running until its lease expires"


def task_state(db: str) -> str | None:
    """The state of the only task on ``db`` (None before the CLI stored it)."""
    if not Path(db.removeprefix("sqlite:///")).exists():
        return None
    with TaskManager(store=db, max_workers=0, run_scheduler=False) as tm:
        tasks = tm.list_tasks()
    return tasks[0]["state"] if tasks else None
