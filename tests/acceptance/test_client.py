"""``unified.client.Client`` against a real ``unified server`` process: every resource, errors as unified errors."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import RunningServer, running_server
from unified.client import Client
from unified.errors import (
    AuthenticationError,
    ConflictError,
    CycleError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttempts,
    UnifiedError,
    ValidationError,
)

FLOWS = """
import unified


@unified.task(name="c_add")
def add(a: int, b: int) -> int:
    return a + b


@unified.task(name="c_fail")
def fail() -> None:
    raise ValueError("fails on purpose")


@unified.task(name="c_log")
def log(text: str, ctx) -> str:
    ctx.logger.info("said %s", text)
    return text
"""
WAIT = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module, with a workflows folder registering c_add, c_fail and c_log."""
    folder = tmp_path_factory.mktemp("client")
    flows = folder / "flows"
    flows.mkdir()
    (flows / "client_flows.py").write_text(textwrap.dedent(FLOWS))
    with running_server(folder, flows) as running:
        yield running


@pytest.fixture
def api(server: RunningServer) -> Iterator[Client]:
    """A client with the admin key."""
    with Client(server.url, server.admin_key) as client:
        yield client


def test_health_needs_no_key(server: RunningServer) -> None:
    with Client(server.url) as anonymous:
        assert anonymous.health()["status"] == "ok"
        with pytest.raises(AuthenticationError, match="no API key") as caught:
            anonymous.list_workflows()
    assert caught.value.status_code == 401  # type: ignore[attr-defined]


def test_workflows_versions_and_runs(api: Client, tmp_path: Path) -> None:
    tasks = [{"task_id": "one", "task": "c_add", "args": [1, 2]}]
    workflow_id = api.create_workflow("client-wf", "made by the client", tasks)
    assert api.add_task(workflow_id, "c_log", "two", args=["hi"], dependencies=["one"], max_retries=1) == "two"
    assert api.add_task(workflow_id, "c_add", "extra", args=[0, 0]) == "extra"
    api.remove_task(workflow_id, "extra")
    assert [t["task_id"] for t in api.get_workflow(workflow_id)["tasks"]] == ["one", "two"]
    assert "client-wf" in [w["name"] for w in api.list_workflows()]

    run = api.wait_run(api.start_run(workflow_id, params={"day": "2026-01-01"}), timeout=WAIT)
    assert (run["state"], run["results"]) == ("success", {"one": 3, "two": "hi"})
    assert [v["number"] for v in api.list_versions(workflow_id)] == [1]
    assert api.get_version(workflow_id, 1)["tasks"][0]["task_id"] == "one"
    assert [r["run_id"] for r in api.list_workflow_runs(workflow_id)] == [run["run_id"]]
    assert api.list_runs(workflow_id=workflow_id, state="success")[0]["params"] == {"day": "2026-01-01"}
    assert api.get_run(run["run_id"])["tasks"]["two"]["state"] == "success"

    assert "client_flows" in api.workflows_folder()["modules"]
    assert "c_add" in api.reload_workflows()["registered_tasks"]
    with pytest.raises(ConflictError, match="exists"):
        api.create_workflow("client-wf")
    api.delete_workflow(workflow_id)
    with pytest.raises(NotFoundError):
        api.get_workflow(workflow_id)


def test_tasks_logs_cancel_retry(api: Client) -> None:
    said = api.wait_task(api.queue_task("c_log", args=["hello"], priority=3), timeout=WAIT)
    assert (said["state"], said["result"], said["priority"]) == ("success", "hello", 3)
    assert [line["message"] for line in api.get_task_logs(said["id"])] == ["said hello"]
    failed = api.wait_task(api.queue_task("c_fail"), timeout=WAIT)
    assert failed["error"]["type"] == "ValueError"
    assert api.retry_task(failed["id"])["state"] in ("queued", "running", "failure")
    with pytest.raises(ConflictError, match="already ended success"):
        api.cancel_task(said["id"])
    for _ in range(3):
        api.queue_task("c_add", args=[1, 1])
    assert len(api.list_tasks(limit=2)) == 2
    every = api.list_tasks()
    assert len(every) >= 5 and len({t["id"] for t in every}) == len(every)
    assert api.get_task(said["id"])["history"][0]["state"] == "success"


def test_run_cancel_and_retry(api: Client) -> None:
    workflow_id = api.create_workflow("client-failing", tasks=[
        {"task_id": "bad", "task": "c_fail"},
        {"task_id": "after", "task": "c_add", "args": [1, 1], "dependencies": ["bad"]},
    ])  # fmt: skip
    run = api.wait_run(api.start_run(workflow_id), timeout=WAIT)
    assert {k: t["state"] for k, t in run["tasks"].items()} == {"bad": "failure", "after": "skipped"}
    retried = api.retry_run(run["run_id"])
    assert retried["count"] == 2
    assert api.wait_run(run["run_id"], timeout=WAIT)["state"] == "failure"
    with pytest.raises(ConflictError, match="already ended failure; only running runs can be canceled"):
        api.cancel_run(run["run_id"])


def test_errors_come_back_as_the_unified_hierarchy(api: Client, server: RunningServer) -> None:
    cyclic = [
        {"task_id": "a", "task": "c_add", "args": [1, 1], "dependencies": ["b"]},
        {"task_id": "b", "task": "c_add", "args": [1, 1], "dependencies": ["a"]},
    ]
    with pytest.raises(CycleError) as cycle:
        api.create_workflow("client-cycle", tasks=cyclic)
    assert sorted(cycle.value.cycle) == ["a", "b"]
    with pytest.raises(ValidationError) as invalid:
        api.queue_task("c_add", priority="high")
    assert invalid.value.status_code == 422 and invalid.value.details  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="no registered task"):
        api.queue_task("no_such_task")
    with pytest.raises(NotFoundError):
        api.get_run("no-such-run")
    viewer = api.create_api_key("client-viewer", "viewer")
    with Client(server.url, viewer["key"]) as limited:
        assert limited.list_runs(limit=1) is not None
        with pytest.raises(PermissionDeniedError, match="operator"):
            limited.queue_task("c_add", args=[1, 2])
    with Client(server.url, "unified_000000000000_" + "x" * 43) as wrong, pytest.raises(AuthenticationError):
        wrong.list_tasks(limit=1)
    with Client("http://127.0.0.1:9", "k", timeout_seconds=2) as nowhere, pytest.raises(UnifiedError, match="reach"):
        nowhere.health()


def test_schedules(api: Client) -> None:
    workflow_id = api.create_workflow("client-scheduled", tasks=[{"task_id": "one", "task": "c_add", "args": [2, 2]}])
    schedule = api.create_schedule(workflow_id=workflow_id, cron="0 2 * * *", timezone="Europe/Berlin",
                                   params={"mode": "full"}, name="client-nightly")  # fmt: skip
    schedule_id = schedule["schedule_id"]
    assert len(schedule["next_fire_times"]) == 5
    every = api.create_schedule(task={"task": "c_add", "args": [1, 1]}, interval_seconds=3600)
    assert {s["schedule_id"] for s in api.list_schedules()} >= {schedule_id, every["schedule_id"]}
    assert api.pause_schedule(schedule_id)["paused"] is True
    assert api.resume_schedule(schedule_id)["paused"] is False
    fires = api.backfill_schedule(schedule_id, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    assert [f["fire_time"] for f in fires] == ["2026-01-01T01:00:00Z"]
    assert api.get_schedule(schedule_id)["name"] == "client-nightly"
    with pytest.raises(ValidationError, match="cron"):
        api.create_schedule(workflow_id=workflow_id, cron="every day")
    api.delete_schedule(schedule_id)
    api.delete_schedule(every["schedule_id"])
    with pytest.raises(NotFoundError):
        api.get_schedule(schedule_id)


def test_alerts_keys_audit_metrics(api: Client, server: RunningServer) -> None:
    rule = api.create_alert_rule(["task_failed"], {"type": "log"}, task_name="c_fail")
    assert rule["rule_id"] in [r["rule_id"] for r in api.list_alert_rules()]
    api.wait_task(api.queue_task("c_fail"), timeout=WAIT)
    assert isinstance(api.list_alerts(limit=10), list)
    api.delete_alert_rule(rule["rule_id"])

    created = api.create_api_key("client-key", "operator", owner="tests", expires_at="2100-01-01T00:00:00Z")
    assert api.get_api_key(created["key_id"])["owner"] == "tests"
    assert created["key_id"] in [k["key_id"] for k in api.list_api_keys()]
    assert api.revoke_api_key(created["key_id"])["revoked_at"]
    with Client(server.url, created["key"]) as revoked, pytest.raises(AuthenticationError, match="revoked"):
        revoked.list_runs(limit=1)

    assert any(entry["path"] == "/api-keys" for entry in api.list_audit(limit=50))
    assert "unified_tasks" in api.metrics()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (413, {"error": {"code": "payload_too_large", "message": "too big"}}, ValidationError),
        (409, {"error": {"code": "invalid_transition", "message": "no"}}, ConflictError),
        (503, {"error": {"code": "store_error", "message": "down"}}, UnifiedError),
        (502, "<html>bad gateway</html>", UnifiedError),
    ],
)
def test_error_mapping_without_a_server(status: int, body: object, expected: type[UnifiedError]) -> None:
    import httpx

    from unified.client import error_from_response

    response = httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=str(body))
    error = error_from_response(response)
    assert isinstance(error, expected) and error.status_code == status  # type: ignore[attr-defined]
    assert str(error)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"error": {"code": "too_many_attempts", "message": "wait", "details": {"retry_after_seconds": 7}}}, {}),
        ({"error": {"code": "too_many_attempts", "message": "wait"}}, {"Retry-After": "7"}),
        (None, {"Retry-After": "7"}),  # a proxy's own 429, in no JSON of ours
    ],
)
def test_a_throttled_request_raises_too_many_attempts_saying_when(body: object, headers: dict[str, str]) -> None:
    import httpx

    from unified.client import error_from_response

    response = httpx.Response(429, json=body, headers=headers) if body else httpx.Response(429, headers=headers)
    error = error_from_response(response)
    assert isinstance(error, TooManyAttempts) and error.status_code == 429  # type: ignore[attr-defined]
    assert error.retry_after_seconds == 7


def test_ids_go_into_paths_escaped_and_redirects_are_errors() -> None:
    import httpx

    from unified.client import Client

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode().partition("?")[0])
        if request.url.path == "/tasks/moved":
            return httpx.Response(307, headers={"location": "/tasks"})
        return httpx.Response(200, json={"id": "x", "items": [], "next_cursor": None})

    with Client("http://unified.test", "key", transport=httpx.MockTransport(answer)) as client:
        client.get_task("run.extract/orders")
        client.get_task("..")
        client.get_task_logs("a b?c")
        with pytest.raises(ValidationError, match="non-empty string"):
            client.get_run("")
        with pytest.raises(UnifiedError, match="HTTP 307"):
            client.get_task("moved")
    assert seen[:3] == ["/tasks/run.extract%2Forders", "/tasks/%2E%2E", "/tasks/a%20b%3Fc/logs"]


def api_md_example(phrase: str) -> str:
    """The Python block of docs/api.md that contains ``phrase``."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if phrase in b]
    return textwrap.dedent(block)


def test_the_client_example_of_api_md_runs_as_written_on_a_fresh_server(tmp_path: Path) -> None:
    flows = tmp_path / "flows"  # the code the example names: load_orders as api.md registers it, flows:report
    flows.mkdir()
    registered = api_md_example('@unified.task(name="load_orders"')
    (flows / "flows.py").write_text(f"{registered}\n\ndef report(ctx):\n    return sorted(ctx.upstream)\n")
    example = api_md_example("from unified.client import Client")
    with running_server(tmp_path, flows) as server:
        printed = io.StringIO()
        namespace = {"KEY": server.admin_key}
        with contextlib.redirect_stdout(printed):  # no task has failed yet on this server: nothing to retry
            exec(compile(example.replace("http://127.0.0.1:8000", server.url), "api.md", "exec"), namespace)
    assert printed.getvalue() == "success {'extract': None, 'report': ['extract']}\n"
