"""The CLI through Typer's CliRunner on a temp SQLite file: every command group, --json output, exit codes."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from unified.task_manager import TaskManager
from unified.ui.ui import app

FLOWS = """
from unified.task import Task
from unified.workflow.workflow import Workflow


def hello(ctx) -> str:
    ctx.logger.info("hello to %s", ctx.params.get("who"))
    return f"hello {ctx.params.get('who')}"


def boom() -> None:
    raise ValueError("boom on purpose")


good = Workflow("good", "says hello twice", [
    Task(task_id="first", func=hello),
    Task(task_id="second", func=hello, dependencies=["first"]),
])
def until_canceled(ctx) -> None:
    while not ctx.cancelled:  # bounded: a run that is never handed back ends after 30 s
        ctx._cancel_event.wait(0.05)


stuck = Workflow("stuck", "runs until it is told to stop", [Task(task_id="wait", func=until_canceled, timeout=30)])
lam = Workflow("lam", "a lambda: only the process that loads this file holds it", [Task(task_id="l", func=lambda: 1)])
bad = Workflow("bad", "fails in the middle", [
    Task(task_id="first", func=hello),
    Task(task_id="boom", func=boom, dependencies=["first"]),
    Task(task_id="never", func=hello, dependencies=["boom"]),
])
"""


class Cli:
    """Runs the CLI in-process against one database."""

    def __init__(self, db: str, folder: Path) -> None:
        self.db = db
        self.folder = folder
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        """Run ``unified ARGS --db DB`` and check its exit code; returns the result."""
        result = self.runner.invoke(app, [*args, "--db", self.db])
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        """Run a command with --json and parse its output."""
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI on a fresh SQLite file, with ``cli_flows.py`` (workflows good and bad) next to it."""
    (tmp_path / "cli_flows.py").write_text(textwrap.dedent(FLOWS))
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)


def run_file(cli: Cli, name: str, *extra: str, code: int = 0) -> dict[str, Any]:
    """``unified run cli_flows.py --workflow NAME --wait --json``; returns the finished run."""
    return cli.json("run", str(cli.folder / "cli_flows.py"), "--workflow", name, "--wait", *extra, code=code)


def test_run_wait_exits_0_on_success_and_passes_params(cli: Cli) -> None:
    run = run_file(cli, "good", "--param", "who=world")
    assert run["state"] == "success"
    assert run["results"] == {"first": "hello world", "second": "hello world"}
    assert run["params"] == {"who": "world"}


def test_a_file_of_lambdas_runs_only_here_with_wait(cli: Cli) -> None:
    flows = str(cli.folder / "cli_flows.py")
    for extra in ((), ("--wait", "--workers", "0")):  # nobody here to run it: it would wait for good
        refused = cli("run", flows, "--workflow", "lam", *extra, code=2).stderr
        assert "task 'l' runs a lambda" in refused and "--wait" in refused
    assert run_file(cli, "lam")["state"] == "success"
    assert cli.json("run", flows, "--workflow", "good")["state"] == "running"  # its functions are importable


def test_run_a_stored_version_and_refuse_a_param_given_twice(cli: Cli) -> None:
    run_file(cli, "good", "--param", "who=one")
    run = cli.json("run", "good", "--version", "1", "--wait", "--param", "who=two")
    assert (run["version"], run["state"], run["results"]["second"]) == (1, "success", "hello two")
    assert "has no version 7: `unified workflows versions good`" in cli("run", "good", "--version", "7", code=3).stderr
    assert "is given twice" in cli("run", "good", "--param", "a=1", "--param", "a=2", code=2).stderr
    assert "not a file" in cli("run", str(cli.folder / "cli_flows.py"), "--version", "1", code=2).stderr


def test_run_wait_past_its_timeout_exits_1_at_once_and_hands_the_running_task_back(cli: Cli) -> None:
    started = time.monotonic()
    result = cli("run", str(cli.folder / "cli_flows.py"), "--workflow", "stuck", "--wait", "--timeout", "0.3", code=1)
    assert "did not finish within 0.3 s; it goes on" in result.stderr
    assert time.monotonic() - started < 8  # not the 10 s a shutdown waits for running attempts
    (run,) = cli.json("runs", "list")
    assert run["state"] == "running"  # another worker takes it up: its task is back in the queue
    timed_out = cli("run", "stuck", "--wait", "--timeout", "0.2", "--json", code=1)
    assert json.loads(timed_out.stdout)["state"] == "running", "a pipe reading the JSON gets the run as it is"
    assert cli.json("runs", "show", run["run_id"])["tasks"]["wait"]["state"] == "queued"


def test_run_wait_returns_when_its_run_ends_and_hands_back_the_other_tasks_it_took(cli: Cli) -> None:
    run_file(cli, "good")  # stores the workflow
    with TaskManager(store=cli.db, max_workers=0) as other:  # another team's task, queued before
        foreign = other.queue_task("tests.helpers.tasks:sleep_for", args=(5,))
    started = time.monotonic()
    run = cli.json("run", "good", "--wait", "--workers", "2")
    assert run["state"] == "success" and time.monotonic() - started < 4, "it waited for a task of another run"
    with TaskManager(store=cli.db, max_workers=0) as other:
        assert other.get_task_metadata(foreign)["state"] in ("queued", "success")  # handed back, if it was taken


def test_run_wait_exits_1_when_the_run_fails_and_shows_why(cli: Cli) -> None:
    run = run_file(cli, "bad", code=1)
    states = {k: t["state"] for k, t in run["tasks"].items()}
    assert states == {"first": "success", "boom": "failure", "never": "skipped"}
    table = cli("run", "bad", "--wait", code=1)  # by name from the database, this time as a table
    assert "ValueError: boom on purpose" in table.stdout
    assert "ended failure" in table.stderr


def test_workflows_list_show_versions_graph(cli: Cli) -> None:
    run_file(cli, "bad", code=1)
    [listed] = cli.json("workflows", "list")
    assert (listed["name"], listed["current_version"], listed["task_count"]) == ("bad", 1, 3)
    shown = cli.json("workflows", "show", "bad")
    assert [t["task_id"] for t in shown["tasks"]] == ["first", "boom", "never"]
    assert cli.json("workflows", "show", listed["workflow_id"])["name"] == "bad"
    assert [v["number"] for v in cli.json("workflows", "versions", "bad")] == [1]
    graph = cli.json("workflows", "graph", "bad", "--version", "1")
    assert graph["levels"] == [["first"], ["boom"], ["never"]]
    assert graph["edges"] == [["first", "boom"], ["boom", "never"]]
    text = cli("workflows", "graph", "bad").stdout
    assert "└─ never  <- boom" in text
    assert "bad" in cli("workflows", "list").stdout
    missing = cli("workflows", "show", "nope", code=3)
    assert "no workflow with id or name 'nope'" in missing.stderr
    assert "has no version 7" in cli("workflows", "graph", "bad", "--version", "7", code=3).stderr


def test_runs_list_show_cancel_retry(cli: Cli) -> None:
    queued = cli.json("run", str(cli.folder / "cli_flows.py"), "--workflow", "good")  # no --wait: only queued
    run_id = queued["run_id"]
    [listed] = cli.json("runs", "list", "--workflow", "good", "--state", "running")
    assert (listed["run_id"], listed["tasks_done"]) == (run_id, "0/2")
    assert cli.json("runs", "show", run_id)["tasks"]["first"]["state"] == "queued"
    canceled = cli.json("runs", "cancel", run_id)
    assert (canceled["state"], canceled["count"]) == ("canceled", 2)
    retried = cli.json("runs", "retry", run_id)
    assert (retried["state"], retried["count"]) == ("running", 2)
    assert run_id in cli("runs", "show", run_id).stdout
    assert cli.json("runs", "list", "--state", "success") == []
    assert "not allowed here" in cli("runs", "list", "--state", "done", code=2).stderr
    assert "no run" in cli("runs", "show", "nope", code=3).stderr


def test_tasks_list_show_logs_cancel_retry(cli: Cli) -> None:
    run = run_file(cli, "bad", "--param", "who=logs", code=1)
    first = run["tasks"]["first"]["id"]
    boom = run["tasks"]["boom"]["id"]
    failed = cli.json("tasks", "list", "--state", "failure")
    assert [t["id"] for t in failed] == [boom]
    assert {t["task_id"] for t in cli.json("tasks", "list", "--run", run["run_id"])} == {"first", "boom", "never"}
    shown = cli.json("tasks", "show", boom)
    assert shown["error"]["type"] == "ValueError"
    assert shown["history"][0]["traceback"]
    lines = [json.loads(line) for line in cli("tasks", "logs", first, "--json").stdout.splitlines()]
    assert [line["message"] for line in lines] == ["hello to logs"]
    assert "hello to logs" in cli("tasks", "logs", first, "--follow").stdout  # a finished task: follow ends at once
    assert "already ended success" in cli("tasks", "cancel", first, code=4).stderr
    assert cli.json("tasks", "retry", boom)["state"] == "queued"
    assert cli.json("tasks", "cancel", boom)["state"] == "canceled"
    assert "ValueError" in cli("tasks", "show", boom).stdout
    assert "no task 'nope'" in cli("tasks", "logs", "nope", code=3).stderr


def test_schedules_add_list_pause_resume_backfill_remove(cli: Cli) -> None:
    run_file(cli, "good")
    added = cli.json("schedules", "add", "--workflow", "good", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin",
                     "-p", "who=cron", "--name", "nightly", "--max-active-runs", "2")  # fmt: skip
    schedule_id = added["schedule_id"]
    assert len(added["next_fire_times"]) == 5
    assert added["target"]["params"] == {"who": "cron"}
    every = cli.json("schedules", "add", "--task", "json:dumps", "--arg", "[1, 2]", "--every", "60")
    assert every["target"]["task"]["args"] == [[1, 2]]
    assert [s["name"] for s in cli.json("schedules", "list")] == ["nightly", "dumps"]
    assert "0 2 * * *" in cli("schedules", "list").stdout
    cli("schedules", "pause", schedule_id)
    assert cli.json("schedules", "list")[0]["paused"] is True
    cli("schedules", "resume", schedule_id)
    assert cli.json("schedules", "list")[0]["paused"] is False
    fires = cli.json("schedules", "backfill", schedule_id, "--start", "2026-01-01T00:00:00Z",
                     "--end", "2026-01-03T00:00:00Z")  # fmt: skip
    assert [f["fire_time"] for f in fires] == ["2026-01-01T01:00:00Z", "2026-01-02T01:00:00Z"]  # 02:00 in Berlin
    assert all(f["run_id"] for f in fires)
    cli("schedules", "remove", schedule_id)
    assert [s["name"] for s in cli.json("schedules", "list")] == ["dumps"]
    assert "no schedule" in cli("schedules", "remove", schedule_id, code=3).stderr
    bad_cron = cli("schedules", "add", "--workflow", "good", "--cron", "not a cron", code=2)
    assert "cron" in bad_cron.stderr
    assert "exactly one of --workflow" in cli("schedules", "add", "--cron", "@daily", code=2).stderr


def test_keys_create_list_revoke(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # a machine far from UTC: a time without a zone is still UTC
    time.tzset()

    created = cli.json("keys", "create", "ci", "--role", "operator", "--owner", "data team")
    assert created["key"].startswith("unified_") and created["role"] == "operator"
    [listed] = cli.json("keys", "list")
    assert listed["key_id"] == created["key_id"] and "key" not in listed
    assert cli.json("keys", "revoke", created["key_id"])["revoked_at"]
    assert "unknown role" in cli("keys", "create", "x", "--role", "root", code=2).stderr
    assert "past" in cli("keys", "create", "x", "--expires", "2000-01-01T00:00:00Z", code=2).stderr
    assert "shown once" in cli("keys", "create", "y", "--role", "admin").stdout
    naive = cli.json("keys", "create", "z", "--expires", "2999-01-01T00:00:00")
    monkeypatch.undo()
    time.tzset()
    assert naive["expires_at"] == "2999-01-01T00:00:00Z", "a time without a zone is UTC, as the API reads it"


def test_db_upgrade_and_bad_input(cli: Cli, tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'sub' / 'fresh.db'}"
    upgraded = json.loads(CliRunner().invoke(app, ["db", "upgrade", "--db", fresh, "--json"]).stdout)
    assert upgraded["revision"]
    assert (tmp_path / "sub" / "fresh.db").exists()
    missing = CliRunner().invoke(app, ["runs", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 2 and "no database at" in missing.stderr and "db upgrade" in missing.stderr
    other = tmp_path / "other.db"  # another program's database: a reading command leaves it as it is
    sqlite3.connect(other).execute("CREATE TABLE theirs (x)").connection.close()
    refused = CliRunner().invoke(app, ["runs", "list", "--db", f"sqlite:///{other}"])
    assert refused.exit_code == 2 and "holds no unified tables" in refused.stderr
    assert sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall() == [("theirs",)]
    (tmp_path / "text.db").write_text("not a database\n")
    text = CliRunner().invoke(app, ["runs", "list", "--db", f"sqlite:///{tmp_path / 'text.db'}"])
    assert text.exit_code == 5 and "could not be used (file is not a database)" in text.stderr
    unparsable = CliRunner().invoke(app, ["runs", "list", "--db", "sqlite:"])
    assert unparsable.exit_code == 2 and "is not a database URL" in unparsable.stderr
    (tmp_path / "sp ace").mkdir()
    spaced = f"sqlite:///{tmp_path / 'sp%20ace' / 'x.db'}"  # percent-encoded, as SQLAlchemy reads it
    assert CliRunner().invoke(app, ["db", "upgrade", "--db", spaced]).exit_code == 0
    assert CliRunner().invoke(app, ["runs", "list", "--db", spaced]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "ace" in p.name) == ["sp ace"]
    huge = CliRunner().invoke(app, ["queues", "limit", "gpu", "99999999999999999999999", "--db", spaced])
    assert huge.exit_code == 2 and "a whole number from 0 to 2**31 - 1" in huge.stderr
    assert "is not key=value" in cli("run", "good", "--param", "oops", code=2).stderr
    assert "no file" in cli("run", "missing.py", code=2).stderr
    assert "choose one with --workflow" in cli("run", str(cli.folder / "cli_flows.py"), code=2).stderr
    (cli.folder / "cli_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    broken = cli("run", str(cli.folder / "cli_broken.py"), code=2)
    assert "failed to import (RuntimeError: broken on purpose)" in broken.stderr


def test_database_from_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    run_file(cli, "good")
    monkeypatch.setenv("UNIFIED_DATABASE_URL", cli.db)
    result = CliRunner().invoke(app, ["workflows", "list", "--json"])
    assert [w["name"] for w in json.loads(result.stdout)] == ["good"]


def test_a_file_inside_a_package_imports_as_the_package_module(cli: Cli) -> None:
    package = cli.folder / "cli_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(textwrap.dedent(FLOWS))
    assert cli.json("run", str(package / "flows.py"), "--workflow", "good", "--wait")["state"] == "success"
    [task] = cli.json("workflows", "show", "good")["tasks"][:1]
    assert task["func"] == "cli_pkg.flows:hello"


def test_the_cli_cannot_revoke_the_last_working_admin_key(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path}/keys.db"
    created = runner.invoke(app, ["keys", "create", "only-admin", "--role", "admin", "--db", db, "--json"])
    assert created.exit_code == 0, created.output
    key_id = json.loads(created.output)["key_id"]
    refused = runner.invoke(app, ["keys", "revoke", key_id, "--db", db])
    assert refused.exit_code == 4 and "last working admin key" in refused.output


def test_queue_limits_from_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path}/queues.db"
    assert runner.invoke(app, ["db", "upgrade", "--db", db]).exit_code == 0
    limited = runner.invoke(app, ["queues", "limit", "gpu", "2", "--db", db, "--json"])
    assert limited.exit_code == 0, limited.output
    assert json.loads(limited.output) == {"queue": "gpu", "max_running": 2}
    listed = json.loads(runner.invoke(app, ["queues", "list", "--db", db, "--json"]).output)
    assert listed == [{"queue": "gpu", "max_running": 2, "running": 0, "waiting": 0}]
    assert runner.invoke(app, ["queues", "limit", "gpu", "none", "--db", db]).exit_code == 0
    assert json.loads(runner.invoke(app, ["queues", "list", "--db", db, "--json"]).output) == []
    bad = runner.invoke(app, ["queues", "limit", "gpu", "lots", "--db", db])
    assert bad.exit_code == 2 and "whole number" in bad.output


def test_a_file_that_calls_sys_exit_while_importing_is_a_file_that_failed_to_import(cli: Cli) -> None:
    (cli.folder / "cli_exits.py").write_text("import sys\nsys.exit(3)\n")
    exits = cli("run", str(cli.folder / "cli_exits.py"), code=2)  # not 3, which says "not found"
    assert "failed to import (SystemExit: 3)" in exits.stderr
