"""The REST API resource by resource, through FastAPI's TestClient on the memory store and on SQLite."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.integration.conftest import Api

SEED = {"name": "My Workflow", "description": "Sample workflow"}


def pipeline_id(api: Api) -> str:
    """The id of the ``pipeline`` workflow loaded from the test workflows folder."""
    items = api.call("GET", "/workflows", params={"limit": 1000}).json()["items"]
    return next(w["workflow_id"] for w in items if w["name"] == "pipeline")


def run_pipeline(api: Api, **body: object) -> dict:
    """Start the pipeline, drain the queue, return the run as the API shows it."""
    response = api.call("POST", f"/workflows/{pipeline_id(api)}/runs", json=body)
    assert response.status_code == 202, response.text
    api.drain()
    return api.call("GET", f"/runs/{response.json()['run_id']}").json()


def test_health_needs_no_key(api: Api) -> None:
    body = api.client.get("/health").json()
    assert body["status"] == "ok" and body["store"] == "memory" and body["workers"] == 0


def test_workflows_create_as_in_the_seed_get_list_delete(api: Api) -> None:
    created = api.call("POST", "/workflows", json=SEED)
    assert created.status_code == 201, created.text
    workflow = created.json()
    assert workflow["name"] == "My Workflow" and workflow["tasks"] == [] and workflow["current_version"] is None
    wid = workflow["workflow_id"]
    assert api.call("GET", f"/workflows/{wid}").json()["description"] == "Sample workflow"
    names = [w["name"] for w in api.call("GET", "/workflows").json()["items"]]
    assert names == ["pipeline", "My Workflow"]
    again = api.call("POST", "/workflows", json=SEED)
    assert again.status_code == 409 and wid in again.json()["error"]["message"]
    assert api.call("DELETE", f"/workflows/{wid}").status_code == 204
    assert api.call("GET", f"/workflows/{wid}").status_code == 404


def test_workflow_list_paginates_with_a_cursor(api: Api) -> None:
    for n in range(4):
        api.call("POST", "/workflows", json={"name": f"w{n}"})
    first = api.call("GET", "/workflows", params={"limit": 2}).json()
    second = api.call("GET", "/workflows", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = api.call("GET", "/workflows", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    names = [w["name"] for page in (first, second, third) for w in page["items"]]
    assert names == ["pipeline", "w0", "w1", "w2", "w3"] and third["next_cursor"] is None


def test_tasks_are_added_and_removed_and_a_run_uses_them(api: Api) -> None:
    wid = api.call("POST", "/workflows", json=SEED).json()["workflow_id"]
    added = api.call("POST", f"/workflows/{wid}/tasks", json={"task_id": "one", "task": "add", "args": [1, 2]})
    assert added.status_code == 201 and added.json() == {"workflow_id": wid, "task_id": "one"}
    two = {"task_id": "two", "task": "add", "args": [3, 4], "dependencies": ["one"]}
    api.call("POST", f"/workflows/{wid}/tasks", json=two)
    assert api.call("DELETE", f"/workflows/{wid}/tasks/one").status_code == 409, "two depends on one"
    duplicate = api.call("POST", f"/workflows/{wid}/tasks", json={"task_id": "one", "task": "add", "args": [0, 0]})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "duplicate"
    api.call("POST", f"/workflows/{wid}/tasks", json={"task_id": "three", "task": "add", "args": [5, 6]})
    assert api.call("DELETE", f"/workflows/{wid}/tasks/three").status_code == 204
    assert api.call("DELETE", f"/workflows/{wid}/tasks/three").status_code == 404
    run_id = api.call("POST", f"/workflows/{wid}/runs", json={}).json()["run_id"]
    api.drain()
    run = api.call("GET", f"/runs/{run_id}").json()
    assert run["state"] == "success" and run["results"] == {"one": 3, "two": 7}


def test_a_run_starts_with_202_and_shows_every_task(api: Api) -> None:
    run = run_pipeline(api, params={"requested_by": "test"})
    assert run["state"] == "success" and run["trigger"] == "api" and run["params"] == {"requested_by": "test"}
    assert run["results"] == {"a": 2, "b": 4, "sum": 6}
    assert {k: t["state"] for k, t in run["tasks"].items()} == {"a": "success", "b": "success", "sum": "success"}
    assert run["tasks"]["sum"]["history"][0]["state"] == "success"
    assert run["metadata"]["started_by"] == "admin"


def test_versions_are_listed_and_an_earlier_one_runs(api: Api) -> None:
    wid = pipeline_id(api)
    run_pipeline(api)
    api.call("POST", f"/workflows/{wid}/tasks", json={"task_id": "extra", "task": "add", "args": [1, 1]})
    assert run_pipeline(api)["version"] == 2
    versions = api.call("GET", f"/workflows/{wid}/versions").json()
    assert [v["number"] for v in versions] == [1, 2] and len(versions[0]["hash"]) == 64
    assert [t["task_id"] for t in api.call("GET", f"/workflows/{wid}/versions/1").json()["tasks"]] == ["a", "b", "sum"]
    assert api.call("GET", f"/workflows/{wid}/versions/9").status_code == 404
    old = run_pipeline(api, version=1)
    assert old["version"] == 1 and set(old["results"]) == {"a", "b", "sum"}
    assert api.call("POST", f"/workflows/{wid}/runs", json={"version": 7}).status_code == 404


def test_runs_list_filters_and_paginates(api: Api) -> None:
    wid = pipeline_id(api)
    runs = [run_pipeline(api)["run_id"] for _ in range(3)]
    other = api.call("POST", "/workflows", json={"name": "other", "tasks": [{"task": "fail"}]}).json()["workflow_id"]
    failed = api.call("POST", f"/workflows/{other}/runs", json={}).json()["run_id"]
    api.drain()
    assert [r["run_id"] for r in api.call("GET", "/runs", params={"state": "failure"}).json()["items"]] == [failed]
    page = api.call("GET", "/runs", params={"workflow_id": wid, "limit": 2}).json()
    run_pipeline(api)  # a run started between two pages pushes nothing of the first onto the second
    rest = api.call("GET", "/runs", params={"workflow_id": wid, "limit": 2, "cursor": page["next_cursor"]}).json()
    assert [r["run_id"] for r in page["items"] + rest["items"]] == runs[::-1] and rest["next_cursor"] is None
    assert [r["run_id"] for r in api.call("GET", f"/workflows/{wid}/runs").json()["items"]][1:] == runs[::-1]
    api.clock.advance(60)
    assert api.call("GET", "/runs", params={"since": "2030-01-01T00:00:00Z"}).json()["items"] == []
    assert len(api.call("GET", "/runs", params={"since": "2020-01-01T00:00:00Z"}).json()["items"]) == 5


def test_a_failed_run_is_retried_and_a_running_one_canceled(api: Api) -> None:
    tasks = [
        {"task_id": "bad", "task": "fail", "max_retries": 0},
        {"task_id": "after", "task": "add", "args": [1, 1], "dependencies": ["bad"]},
    ]
    wid = api.call("POST", "/workflows", json={"name": "flaky", "tasks": tasks}).json()["workflow_id"]
    run_id = api.call("POST", f"/workflows/{wid}/runs", json={}).json()["run_id"]
    api.drain()
    run = api.call("GET", f"/runs/{run_id}").json()
    assert run["state"] == "failure" and run["tasks"]["after"]["state"] == "skipped"
    assert run["tasks"]["bad"]["error"]["message"] == "boom"
    retried = api.call("POST", f"/runs/{run_id}/retry")
    assert retried.status_code == 200 and retried.json() == {"run_id": run_id, "state": "running", "count": 2}
    canceled = api.call("POST", f"/runs/{run_id}/cancel").json()
    assert canceled == {"run_id": run_id, "state": "canceled", "count": 2}
    done = run_pipeline(api)["run_id"]
    nothing = api.call("POST", f"/runs/{done}/retry")
    assert nothing.status_code == 409 and "nothing to retry" in nothing.json()["error"]["message"]
    assert api.call("POST", "/runs/missing/cancel").status_code == 404


def test_ad_hoc_tasks_queue_run_list_and_log(api: Api) -> None:
    queued = api.call("POST", "/tasks", role="operator", json={"task": "log_value", "args": ["hello"]})
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    task_id = queued.json()["task_id"]
    api.drain()
    task = api.call("GET", f"/tasks/{task_id}").json()
    assert task["state"] == "success" and task["result"] == "hello" and task["timeout"] == 30
    logs = api.call("GET", f"/tasks/{task_id}/logs").json()["items"]
    assert any(line["message"].endswith("value is hello") and line["attempt"] == 1 for line in logs)
    assert api.call("GET", "/tasks/nope").status_code == 404 and api.call("GET", "/tasks/nope/logs").status_code == 404


def test_registered_options_apply_and_requests_override_them(api: Api) -> None:
    retried = api.call("POST", "/tasks", json={"task": "fail"}).json()["task_id"]
    once = api.call("POST", "/tasks", json={"task": "fail", "max_retries": 0, "priority": 5}).json()["task_id"]
    api.drain()
    assert api.call("GET", f"/tasks/{retried}").json()["attempts"] == 2, "registered with max_retries=1"
    meta = api.call("GET", f"/tasks/{once}").json()
    assert (meta["attempts"], meta["priority"], meta["state"]) == (1, 5, "failure")


def test_an_import_path_of_the_workflows_folder_runs(api: Api) -> None:
    task_id = api.call("POST", "/tasks", json={"task": "api_flows:double", "args": [21]}).json()["task_id"]
    cached = api.call("POST", "/tasks", json={"task": "api_flows:cached_square", "args": [7]}).json()["task_id"]
    api.drain()
    assert api.call("GET", f"/tasks/{task_id}").json()["result"] == 42
    assert api.call("GET", f"/tasks/{cached}").json()["result"] == 49, "a decorated function of the folder runs"


@pytest.mark.parametrize(
    "path",
    [
        "api_flows:unified.task_manager.os.system",
        "api_flows:Task.__init__.__globals__",
        "api_flows:Task",
        "api_flows:nothing",
    ],
)
def test_only_functions_defined_in_the_workflows_folder_run(api: Api, path: str) -> None:
    refused = api.call("POST", "/tasks", json={"task": path, "args": ["echo pwned"]})
    assert refused.status_code == 422 and "defined in the workflows folder" in refused.json()["error"]["message"]
    assert api.call("GET", "/tasks").json()["items"] == []


def test_a_task_whose_id_holds_a_slash_is_reached_by_every_task_route(api: Api) -> None:
    task_id = "extract/orders"  # the library takes any id; the API's own input takes none with a slash
    api.services.task_manager.queue_task("tests.helpers.tasks:add", args=(1, 1), task_id=task_id)
    for path in (task_id, quote(task_id, safe="")):
        assert api.call("GET", f"/tasks/{path}").json()["id"] == task_id
        assert api.call("GET", f"/tasks/{path}/logs").status_code == 200
    assert api.call("POST", f"/tasks/{task_id}/cancel").json() == {"task_id": task_id, "state": "canceled"}
    assert api.call("POST", f"/tasks/{task_id}/retry").json()["state"] == "queued"


def test_task_ids_ending_in_an_action_name_are_reached_with_their_slashes_escaped(api: Api) -> None:
    manager = api.services.task_manager
    manager.queue_task("tests.helpers.tasks:add", args=(1, 1), task_id="a")
    for action in ("logs", "cancel", "retry"):
        manager.queue_task("tests.helpers.tasks:add", args=(1, 1), task_id=f"a/{action}")
    assert api.call("GET", "/tasks/a%2Flogs").json()["id"] == "a/logs"
    assert api.call("GET", "/tasks/a%2flogs").json()["id"] == "a/logs"
    assert api.call("GET", "/tasks/a/logs").json() == {"items": [], "next_cursor": None}, "the documented URL"
    assert api.call("GET", "/tasks/a%2Flogs/logs").json()["items"] == []
    for action in ("cancel", "retry"):
        assert api.call("GET", f"/tasks/a%2F{action}").json()["id"] == f"a/{action}"
        refused = api.call("POST", f"/tasks/a%2F{action}")
        assert refused.status_code == 404 and f"POST /tasks/<the id, quoted>/{action}" in refused.text
    assert api.services.store.get_task("a").state == "queued", "no action on the id before the escaped slash"
    canceled = api.call("POST", "/tasks/a%2Fcancel/cancel").json()
    assert canceled == {"task_id": "a/cancel", "state": "canceled"}


def test_task_list_filters_and_paginates_newest_first(api: Api) -> None:
    ids = [api.call("POST", "/tasks", json={"task": "add", "args": [n, n]}).json()["task_id"] for n in range(5)]
    api.drain()
    api.call("POST", "/tasks", json={"task": "add", "args": [9, 9]})
    first = api.call("GET", "/tasks", params={"state": "success", "limit": 3}).json()
    second = api.call("GET", "/tasks", params={"state": "success", "limit": 3, "cursor": first["next_cursor"]}).json()
    assert [t["id"] for t in first["items"] + second["items"]] == ids[::-1] and second["next_cursor"] is None
    assert [t["state"] for t in api.call("GET", "/tasks", params={"state": "queued"}).json()["items"]] == ["queued"]


def test_tasks_cancel_and_retry_with_conflicts_for_illegal_changes(api: Api) -> None:
    task_id = api.call("POST", "/tasks", json={"task": "add", "args": [1, 2]}).json()["task_id"]
    assert api.call("POST", f"/tasks/{task_id}/cancel").json() == {"task_id": task_id, "state": "canceled"}
    again = api.call("POST", f"/tasks/{task_id}/cancel")
    assert again.status_code == 409 and "already ended canceled" in again.json()["error"]["message"]
    assert api.call("POST", f"/tasks/{task_id}/retry").json() == {"task_id": task_id, "state": "queued"}
    api.drain()
    refused = api.call("POST", f"/tasks/{task_id}/retry")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"


def shell_switch(api: Api, on: bool) -> None:
    """Start the server over with shell tasks on or off, as far as requests and its workers can tell."""
    api.services.allow_shell = api.services.task_manager.allow_shell = on


def test_shell_tasks_need_allow_shell_and_the_admin_role(api: Api) -> None:
    body = {"command": "echo hi"}
    assert api.call("POST", "/tasks", json=body).status_code == 403, "off unless --allow-shell"
    shell_switch(api, on=True)
    assert api.call("POST", "/tasks", role="operator", json=body).status_code == 403
    task_id = api.call("POST", "/tasks", json=body).json()["task_id"]
    api.drain()
    assert api.call("GET", f"/tasks/{task_id}").json()["state"] == "success"


def test_shell_tasks_stored_while_shell_was_on_do_not_run_once_it_is_off(api: Api) -> None:
    shell_switch(api, on=True)
    workflow = {"name": "sh", "tasks": [{"task_id": "echo", "command": "echo a"}]}
    workflow_id = api.call("POST", "/workflows", json=workflow).json()["workflow_id"]
    queued = api.call("POST", "/tasks", json={"command": "echo b"}).json()["task_id"]
    shell_switch(api, on=False)
    refused = api.call("POST", f"/workflows/{workflow_id}/runs")  # no body: the current version, no params
    assert refused.status_code == 403 and "task 'echo' of this workflow is a shell command" in refused.text
    api.drain()
    task = api.call("GET", f"/tasks/{queued}").json()
    assert task["state"] == "failure" and task["error"]["type"] == "PermissionDeniedError"
    assert task["attempts"] == 1  # refused for good, not retried
    shell_switch(api, on=True)
    assert api.call("POST", f"/workflows/{workflow_id}/runs").status_code == 202


def test_metrics_report_tasks_queue_durations_and_scheduler_lag(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def one_at_a_time(task_id: str) -> None:
        raise AssertionError(f"the attempts of {task_id} were read for the metrics")

    monkeypatch.setattr(api.services.store, "list_attempts", one_at_a_time)  # durations come with the events
    run_pipeline(api)
    api.call("POST", "/tasks", json={"task": "add", "args": [1, 2]})
    text = api.call("GET", "/metrics", role="viewer").text
    assert 'unified_tasks{state="success"} 3.0' in text
    assert "unified_queue_depth 1.0" in text
    assert 'unified_attempt_duration_seconds_count{outcome="success"} 3.0' in text
    assert 'unified_runs_finished_total{state="success"} 1.0' in text
    assert "unified_runs_active 0.0" in text and "unified_scheduler_lag_seconds 0.0" in text


def test_every_mutating_request_is_audited(api: Api) -> None:
    operator = api.headers("operator")
    api.client.post("/workflows", json=SEED, headers=operator)
    created = api.call("POST", "/workflows", json=SEED).json()["workflow_id"]
    api.client.post("/workflows", json=SEED)
    api.call("GET", "/workflows")
    entries = api.call("GET", "/audit").json()["items"]
    seen = [(e["key_name"], e["role"], e["method"], e["path"], e["target"], e["outcome"]) for e in entries]
    assert seen == [
        (None, None, "POST", "/workflows", None, 401),
        ("admin", "admin", "POST", "/workflows", created, 201),
        ("operator-key", "operator", "POST", "/workflows", None, 403),
    ]


def test_the_api_works_the_same_on_sqlite(sqlite_api: Api) -> None:
    assert sqlite_api.client.get("/health").json()["store"] == "sqlite"
    run = run_pipeline(sqlite_api)
    assert run["state"] == "success" and run["results"] == {"a": 2, "b": 4, "sum": 6}
    task_id = sqlite_api.call("POST", "/tasks", json={"task": "add", "args": [2, 3]}).json()["task_id"]
    sqlite_api.drain()
    assert sqlite_api.call("GET", f"/tasks/{task_id}").json()["result"] == 5
    assert [e["outcome"] for e in sqlite_api.call("GET", "/audit").json()["items"]] == [202, 202]
