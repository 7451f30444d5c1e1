"""The web pages without a browser: sessions, CSRF, roles, escaping, actions and server-side pagination."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers.api_tasks import log_value
from tests.integration.conftest import Api, start_api
from unified.server import ServerSettings
from unified.store.records import AlertRecord, TaskRecord
from unified.task import Task
from unified.ui.pages.base import COOKIE, Session, decode_session, encode_session
from unified.workflow.workflow import Workflow

XSS = "<script>alert(1)</script>"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(client: TestClient, path: str = "/login") -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(client.get(path).text)
    assert found, f"{path} has no form with a CSRF token"
    return found.group(1)


def sign_in(api: Api, role: str = "admin") -> TestClient:
    """The app's test client, signed in with a key of ``role``."""
    key = api.admin_key if role == "admin" else api.services.keys.create(f"{role}-web", role)[1]
    api.client.cookies.clear()
    response = api.client.post("/login", data={"api_key": key, "csrf": csrf_of(api.client), "next": "/"})
    assert response.status_code == 200, response.text
    return api.client


def pipeline_id(api: Api) -> str:
    """The id of the ``pipeline`` workflow of the test workflows folder."""
    return next(w["workflow_id"] for w in api.services.workflow_manager.list_workflows() if w["name"] == "pipeline")


def test_pages_send_visitors_to_sign_in(api: Api) -> None:
    for path in ("/", "/ui/workflows", "/ui/runs", "/ui/tasks", "/ui/schedules", "/ui/keys"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert api.client.get("/login").status_code == 200


def test_sign_in_sets_a_signed_httponly_strict_cookie_and_sign_out_ends_it(api: Api) -> None:
    client = api.client
    token = csrf_of(client)
    wrong = client.post("/login", data={"api_key": "not-a-key", "csrf": token})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    response = client.post("/login", data={"api_key": api.admin_key, "csrf": token}, follow_redirects=False)
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and api.admin_key not in cookie
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf": csrf_of(client, "/")})
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_forged_or_expired_session_is_a_visitor(api: Api) -> None:
    secret = api.app.state.ui_secret
    key_id = api.services.keys.list()[0].key_id
    forged = encode_session(Session(key_id, "x", time.time()), b"another secret")
    assert decode_session(forged, secret, time.time()) is None
    old = encode_session(Session(key_id, "x", time.time() - 13 * 3600), secret)
    assert decode_session(old, secret, time.time()) is None
    for value in (forged, old, "garbage", "a.b.c"):
        api.client.cookies.set(COOKIE, value)
        assert api.client.get("/", follow_redirects=False).status_code == 303


def test_every_post_needs_the_session_csrf_token(api: Api) -> None:
    client = sign_in(api)
    workflow = pipeline_id(api)
    before = len(api.services.store.list_runs())
    assert client.post(f"/ui/workflows/{workflow}/run", data={"params": ""}).status_code == 403
    assert client.post(f"/ui/workflows/{workflow}/run", data={"params": "", "csrf": "wrong"}).status_code == 403
    assert client.post("/login", data={"api_key": api.admin_key}).status_code == 403
    assert len(api.services.store.list_runs()) == before, "a refused form changes nothing"
    token = csrf_of(client, f"/ui/workflows/{workflow}")
    by_header = client.post(f"/ui/workflows/{workflow}/run", data={"params": "{}"}, headers={"X-CSRF-Token": token})
    assert by_header.status_code == 200 and "/ui/runs/" in str(by_header.url)


def test_a_viewer_sees_no_operator_controls_and_the_server_refuses_them(api: Api) -> None:
    workflow = pipeline_id(api)
    run_id = api.services.workflow_manager.start_workflow(workflow)
    client = sign_in(api, "viewer")
    page = client.get(f"/ui/workflows/{workflow}").text
    assert "Run workflow" not in page and "needs the operator role" in page
    run_page = client.get(f"/ui/runs/{run_id}").text
    assert "Cancel" not in run_page and "/ui/task-actions/" not in run_page
    assert "API keys" not in client.get("/").text
    token = csrf_of(client, "/")
    for path in (f"/ui/workflows/{workflow}/run", f"/ui/runs/{run_id}/cancel", "/ui/keys"):
        refused = client.post(path, data={"csrf": token, "name": "x", "role": "admin"})
        assert refused.status_code == 403, path
        assert "needs the operator role" in refused.text or "needs the admin role" in refused.text
    assert client.get("/ui/keys").status_code == 403
    assert client.get("/ui/audit").status_code == 403
    assert api.services.store.get_run(run_id).state == "running"


def test_the_run_form_refuses_a_workflow_holding_a_shell_command_while_shell_tasks_are_off(api: Api) -> None:
    api.services.allow_shell = True
    workflow = {"name": "sh", "tasks": [{"task_id": "echo", "command": "echo a"}]}
    workflow_id = api.call("POST", "/workflows", json=workflow).json()["workflow_id"]
    api.services.allow_shell = False
    client = sign_in(api, "operator")
    token = csrf_of(client, f"/ui/workflows/{workflow_id}")
    refused = client.post(f"/ui/workflows/{workflow_id}/run", data={"csrf": token, "params": ""})
    assert refused.status_code == 403 and "is a shell command and shell tasks are off" in refused.text
    assert api.call("GET", "/runs").json()["items"] == []


def test_an_operator_runs_cancels_and_retries_and_the_audit_log_names_the_key(api: Api) -> None:
    client = sign_in(api, "operator")
    workflow = pipeline_id(api)
    token = csrf_of(client, f"/ui/workflows/{workflow}")
    started = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": token, "params": '{"day": "2026-01-31"}'})
    run_id = str(started.url).rsplit("/", 1)[1]
    run = api.services.store.get_run(run_id)
    assert run.params == {"day": "2026-01-31"} and "run started" in started.text
    bad = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": token, "params": "[1, 2"})
    assert bad.status_code == 422 and "not valid JSON" in bad.text
    form_page = f"{api.client.base_url}/ui/workflows/{workflow}"
    refused = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": token, "params": "[1, 2"},
                          headers={"referer": form_page})  # fmt: skip
    assert f'href="/ui/workflows/{workflow}" data-history-back' in refused.text  # back to the form, input kept
    elsewhere = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": token, "params": "[1, 2"},
                            headers={"referer": "https://evil.example/ui/x"})  # fmt: skip
    assert "data-history-back" not in elsewhere.text
    client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": token})
    assert api.services.store.get_run(run_id).state == "canceled"
    retried = client.post(f"/ui/runs/{run_id}/retry", data={"csrf": token})
    assert "retrying 3 task(s)" in retried.text
    api.drain()
    assert api.services.store.get_run(run_id).state == "success"
    task = api.call("POST", "/tasks", json={"task": "fail", "args": ["nope"], "max_retries": 0}).json()["task_id"]
    api.drain()
    client.post(f"/ui/task-actions/retry/{task}", data={"csrf": token, "next": f"/ui/tasks/{task}"})
    assert api.services.store.get_task(task).state == "queued"
    client.post(f"/ui/task-actions/cancel/{task}", data={"csrf": token})
    assert api.services.store.get_task(task).state == "canceled"
    again = client.post(f"/ui/task-actions/cancel/{task}", data={"csrf": token})
    assert again.status_code == 409 and "already ended canceled" in again.text
    assert client.get("/ui/keys").status_code == 403
    entries = api.services.store.list_audit(100)
    mine = [e for e in entries if e.path.startswith("/ui/") and e.key_name == "operator-web"]
    assert {e.target for e in mine} >= {run_id, task}


def test_user_strings_are_escaped_everywhere(api: Api) -> None:
    store = api.services.store
    manager = api.services.task_manager  # the REST API refuses such ids; code may use them
    task_id = manager.queue_task(log_value, task_id=XSS, args=["<img src=x onerror=alert(2)>"])
    failing = api.call("POST", "/tasks", json={"task": "fail", "args": [XSS], "max_retries": 0}).json()["task_id"]
    api.drain()
    client = sign_in(api)
    pages = [
        client.get("/ui/tasks").text,
        client.get(f"/ui/tasks/{task_id.replace('/', '%2F')}").text,
        client.get(f"/ui/task-logs/{task_id}").text,
        client.get(f"/ui/tasks/{failing}").text,
        client.get("/").text,
    ]
    for page in pages:
        assert XSS not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages[2]
    assert "ValueError: &lt;script&gt;" in pages[3]
    assert store.get_task(task_id).state == "success"
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_long_lists_paginate_on_the_server(api: Api) -> None:
    for n in range(120):
        api.call("POST", "/tasks", json={"task_id": f"job-{n:03d}", "task": "add", "args": [n, 1]})
    client = sign_in(api)
    first = client.get("/ui/tasks").text
    assert first.count('href="/ui/tasks/job-') == 50 and "job-119" in first and "job-069" not in first
    cursor = re.search(r'cursor=([^"&]+)"', first)
    assert cursor
    second = client.get(f"/ui/tasks?cursor={cursor.group(1)}").text
    assert "job-069" in second and "job-119" not in second and "Newest" in second
    assert client.get("/ui/tasks?state=success").text.count('href="/ui/tasks/job-') == 0
    assert client.get("/ui/tasks?state=queued").text.count('href="/ui/tasks/job-') == 50
    assert client.get("/ui/tasks?cursor=not-a-cursor").status_code == 422


def test_the_runs_pages_go_on_after_the_last_run_shown_while_runs_arrive(api: Api) -> None:
    manager = api.services.workflow_manager
    started = [manager.start_workflow(pipeline_id(api)) for _ in range(55)]
    client = sign_in(api, "viewer")
    first = client.get("/ui/runs").text
    assert all(f"/ui/runs/{r}" in first for r in started[5:]) and f"/ui/runs/{started[4]}" not in first
    after = re.search(r'after=([^"&]+)"', first)
    assert after and "Newest" not in first
    late = manager.start_workflow(pipeline_id(api))  # arrives before the next page is asked for
    second = client.get(f"/ui/runs?after={after.group(1)}").text
    assert all(f"/ui/runs/{r}" in second for r in started[:5]) and f"/ui/runs/{started[5]}" not in second
    assert f"/ui/runs/{late}" not in second and "Newest" in second
    workflow_page = client.get(f"/ui/workflows/{pipeline_id(api)}").text
    assert f"/ui/runs/{late}" in workflow_page and "after=" in workflow_page
    assert client.get("/ui/runs?after=not-a-cursor").status_code == 422


def test_workflows_are_filtered_and_paged_by_name_and_every_one_is_in_the_runs_menu(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = api.services.workflow_manager
    ids = [manager.register_workflow(f"bulk-{n:02d}") for n in range(60)]
    client = sign_in(api)
    first = client.get("/ui/workflows?q=BULK").text
    assert first.count('href="/ui/workflows/') == 50 and "bulk-00" in first and "bulk-50" not in first
    assert "1\N{EN DASH}50 of 60" in first and "pipeline" not in first
    rest = client.get("/ui/workflows?q=bulk&offset=50").text
    assert rest.count('href="/ui/workflows/') == 10 and "bulk-59" in rest and "51\N{EN DASH}60 of 60" in rest
    names = api.services.store.workflow_names()
    manager.delete_workflow(ids[55])  # deleted after its name was read: the page leaves it out
    monkeypatch.setattr(api.services.store, "workflow_names", lambda: names)
    assert client.get("/ui/workflows?q=bulk&offset=50").text.count('href="/ui/workflows/') == 9
    monkeypatch.undo()
    menu = client.get("/ui/runs").text
    options = [f'<option value="{workflow_id}" >bulk-{n:02d}</option>' for n, workflow_id in enumerate(ids[:55])]
    assert all(option in menu for option in options)
    assert f'value="{pipeline_id(api)}"' in menu


def test_keys_are_shown_once_and_the_last_admin_key_stays(api: Api) -> None:
    client = sign_in(api)
    token = csrf_of(client, "/ui/keys")
    created = client.post("/ui/keys", data={"csrf": token, "name": "ci <pipeline>", "role": "operator"})
    assert created.status_code == 200 and created.history[0].status_code == 303  # reloading it creates nothing
    secret = re.search(r'id="new-key">([^<]+)<', created.text)
    assert secret and api.services.keys.identify(secret.group(1)) is not None
    assert "ci &lt;pipeline&gt;" in created.text
    assert secret.group(1) not in client.get("/ui/keys").text, "the secret is shown once"
    admin = api.services.keys.list()[0]
    refused = client.post(f"/ui/keys/{admin.key_id}/revoke", data={"csrf": token})
    assert refused.status_code == 409 and "last working admin key" in refused.text
    record = api.services.keys.identify(secret.group(1))
    assert record is not None
    client.post(f"/ui/keys/{record.key_id}/revoke", data={"csrf": token})
    assert api.services.keys.identify(secret.group(1)) is not None  # identify ignores revocation; authenticate not
    assert api.call("GET", "/workflows", headers={"X-API-Key": secret.group(1)}).status_code == 401


def test_a_key_named_in_any_script_signs_in_and_is_revoked_with_its_message(api: Api) -> None:
    record, secret = api.services.keys.create("Zürich ☃ 日本チーム", "viewer")
    api.client.cookies.clear()
    form = {"api_key": secret, "csrf": csrf_of(api.client), "next": "/"}
    signed_in = api.client.post("/login", data=form)
    assert signed_in.status_code == 200 and "signed in as Zürich ☃ 日本チーム (viewer)" in signed_in.text
    admin = sign_in(api)
    revoked = admin.post(f"/ui/keys/{record.key_id}/revoke", data={"csrf": csrf_of(admin, "/ui/keys")})
    assert revoked.status_code == 200 and "Zürich ☃ 日本チーム" in revoked.text


def test_run_params_read_as_written_in_any_script_and_stay_escaped(api: Api) -> None:
    params = {"städte": ["Zürich", "東京"], "note": "<b>hi</b>"}
    run_id = api.services.workflow_manager.start_workflow(pipeline_id(api), params=params)
    page = sign_in(api, "viewer").get(f"/ui/runs/{run_id}").text
    assert '"städte": ["Zürich", "東京"]' in page.replace("&#34;", '"') and "&lt;b&gt;hi&lt;/b&gt;" in page
    assert "<b>hi</b>" not in page and "\\u00fc" not in page


def test_the_workflows_page_names_the_folder_files_that_did_not_load(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from unified.workflows_folder import LoadError

    client = sign_in(api, "viewer")
    assert "did not load" not in client.get("/ui/workflows").text
    broken = LoadError("/flows/broken<x>.py", "SyntaxError: invalid syntax", "Traceback (most recent call last): ...")
    monkeypatch.setattr(api.services.folder.report, "errors", [broken])
    page = client.get("/ui/workflows").text
    assert "1 file of the workflows folder did not load" in page
    assert "/flows/broken&lt;x&gt;.py" in page and "SyntaxError: invalid syntax" in page


def test_unknown_pages_answer_with_the_html_error_page_and_the_icon_is_served(api: Api) -> None:
    client = sign_in(api, "viewer")
    missing = client.get("/ui/doesnotexist")
    assert missing.status_code == 404 and "there is no page /ui/doesnotexist" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    icon = client.get("/ui/static/favicon.svg")
    assert icon.status_code == 200 and icon.text.startswith("<svg")
    assert api.call("GET", "/nope").json()["error"]["code"] == "not_found"  # the API's paths keep their JSON


def test_a_revoked_key_ends_its_sessions(api: Api) -> None:
    client = sign_in(api, "operator")
    assert client.get("/").status_code == 200
    key = next(k for k in api.services.keys.list() if k.name == "operator-web")
    api.services.keys.revoke(key.key_id)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session_on_the_server_so_a_copied_cookie_stops_working(api: Api) -> None:
    client = sign_in(api, "operator")
    copied = client.cookies.get(COOKIE)
    other_browser = TestClient(api.app, cookies={COOKIE: copied})
    assert other_browser.get("/", follow_redirects=False).status_code == 200
    client.post("/logout", data={"csrf": csrf_of(client, "/")})
    assert other_browser.get("/", follow_redirects=False).status_code == 303
    token = csrf_of(other_browser, "/login")
    workflow = pipeline_id(api)
    refused = other_browser.post(f"/ui/workflows/{workflow}/run", data={"csrf": token}, follow_redirects=False)
    assert refused.status_code == 303 and not api.services.store.list_runs()
    assert sign_in(api, "operator").get("/").status_code == 200, "signing in again makes a new session"


def test_a_change_of_role_or_a_deleted_key_ends_its_sessions(api: Api) -> None:
    client = sign_in(api, "admin")
    admin = api.services.store.get_api_key(api.services.keys.list()[0].key_id)
    api.services.store.update_api_key(admin.key_id, role="viewer")
    assert client.get("/", follow_redirects=False).status_code == 303
    api.services.store.update_api_key(admin.key_id, role="admin")
    client = sign_in(api, "viewer")
    viewer = next(k for k in api.services.keys.list() if k.name == "viewer-web")
    api.services.store.put_api_key(replace(viewer, key_hash="0" * 64))  # deleted and made again with the same id
    assert client.get("/", follow_redirects=False).status_code == 303


def test_schedules_read_in_words_and_pause(api: Api) -> None:
    manager = api.services.workflow_manager
    schedule = manager.schedule_workflow(pipeline_id(api), cron="*/5 * * * *", timezone="Europe/Paris", name="five")
    interval = manager.schedule_workflow(pipeline_id(api), interval_seconds=7200, name="two hours")
    client = sign_in(api, "operator")
    page = client.get("/ui/schedules").text
    assert "Every 5 minutes" in page and "every 2 hours" in page and "Europe/Paris" in page
    assert page.count("<li><time") == 10
    client.post(f"/ui/schedules/{schedule}/pause", data={"csrf": csrf_of(client, "/ui/schedules")})
    assert manager.get_schedule(schedule)["paused"] is True
    assert manager.get_schedule(interval)["paused"] is False
    assert "paused" in client.get("/ui/workflows").text


def test_the_run_page_feeds_its_graph_and_timeline(api: Api) -> None:
    run_id = api.services.workflow_manager.start_workflow(pipeline_id(api))
    api.drain()
    client = sign_in(api)
    data = client.get(f"/ui/runs/{run_id}/data").json()
    assert data["run"]["state"] == "success"
    assert {t["id"] for t in data["tasks"]} == {"a", "b", "sum"}
    assert {i["state"] for i in data["items"]} >= {"success"}
    page = client.get(f"/ui/runs/{run_id}").text
    assert 'id="graph-data"' in page and "vis-timeline-graph2d.min.js" in page
    workflow_page = client.get(f"/ui/workflows/{pipeline_id(api)}").text
    assert '"state": "success"' in workflow_page  # the graph is coloured by the latest run


def test_pages_and_lists_of_many_tasks_read_their_attempts_at_once(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = sqlite_api.services.workflow_manager.start_workflow(pipeline_id(sqlite_api))
    sqlite_api.drain()

    def one_at_a_time(task_id: str) -> None:
        raise AssertionError(f"the attempts of {task_id} were read on their own")

    monkeypatch.setattr(sqlite_api.services.store, "list_attempts", one_at_a_time)  # a query per task, per row
    client = sign_in(sqlite_api)
    data = client.get(f"/ui/runs/{run_id}/data").json()
    assert {i["state"] for i in data["items"]} == {"success"} and len(data["items"]) == 3, "one attempt per task"
    run = sqlite_api.call("GET", f"/runs/{run_id}").json()
    assert {name: len(task["history"]) for name, task in run["tasks"].items()} == {"a": 1, "b": 1, "sum": 1}
    listed = sqlite_api.call("GET", "/tasks", params={"run_id": run_id}).json()["items"]
    assert sorted((t["task_id"], [h["state"] for h in t["history"]]) for t in listed) == [
        ("a", ["success"]), ("b", ["success"]), ("sum", ["success"])]  # fmt: skip


def test_the_workflows_list_counts_tasks_without_reading_their_specs(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = [Task(task_id=f"t{n}", func=log_value, args=(n,)) for n in range(300)]
    sqlite_api.services.workflow_manager.register(Workflow("big", tasks=big))

    def decoded(workflow_ids: list[str]) -> None:
        raise AssertionError(f"the specs of {workflow_ids} were decoded for a list")

    monkeypatch.setattr(sqlite_api.services.store, "get_workflows", decoded)  # large drafts made the page slow
    page = sign_in(sqlite_api).get("/ui/workflows").text
    cells = re.findall(r">(big|pipeline)</a>.*?</td>\s*<td>([^<]*)</td>\s*<td>(\d+)</td>", page, re.S)
    assert sorted((name, tasks) for name, _, tasks in cells) == [("big", "300"), ("pipeline", "3")]


def test_the_workflows_list_shows_each_newest_run_read_with_the_page(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = sqlite_api.services.workflow_manager
    manager.register(Workflow("idle", tasks=[Task(task_id="t", func=log_value, args=(1,))]))
    workflow = pipeline_id(sqlite_api)
    first = manager.start_workflow(workflow, params={"day": "2026-01-01"})
    sqlite_api.drain()
    newest = manager.start_workflow(workflow, params={"day": "2026-01-02"})

    def one_query_per_workflow(*args: object, **kwargs: object) -> None:
        raise AssertionError("the page read a workflow's runs on its own")

    client = sign_in(sqlite_api)
    monkeypatch.setattr(sqlite_api.services.store, "list_runs", one_query_per_workflow)
    page = client.get("/ui/workflows").text
    assert f"/ui/runs/{newest}" in page and f"/ui/runs/{first}" not in page
    row = re.search(r">idle</a>.*?</tr>", page, re.S)
    assert row is not None and "never run" in row.group(0)


def test_static_files_are_served_from_the_package(api: Api) -> None:
    for name in ("app.css", "app.js", "graph.js", "run.js", "vendor/htmx.min.js", "vendor/dagre.min.js"):
        assert api.client.get(f"/ui/static/{name}").status_code == 200, name


def test_the_ui_stays_out_of_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith(("/ui", "/login", "/logout"))]


@pytest.mark.slow
def test_a_page_loads_in_under_a_second_with_100000_tasks(flows_folder: Path, tmp_path: Path) -> None:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'big.db'}", workers=0, announce=False, workflows_dir=str(flows_folder)
    )
    for api in start_api(settings):
        store = api.services.store
        now = api.clock.now()
        spec = {"func": "json:dumps", "args": [], "kwargs": {}}
        for start in range(0, 100_000, 10_000):
            states = ("success", "failure", "queued", "running")
            store.insert_tasks(
                TaskRecord(f"t{n}", f"t{n}", None, "job", spec, states[n % 4], created_at=now, queued_at=now,
                           error={"type": "ValueError", "message": "bad row"} if n % 4 == 1 else None)
                for n in range(start, start + 10_000)
            )  # fmt: skip
        client = sign_in(api)
        for path in ("/ui/tasks", "/ui/tasks?state=failure", "/", "/ui/runs", "/ui/tasks/t99999"):
            client.get(path)  # warm
            began = time.perf_counter()
            response = client.get(path)
            took = time.perf_counter() - began
            assert response.status_code == 200, path
            assert took < 1.0, f"{path} took {took:.2f} s with 100,000 tasks"


def test_alerts_show_rules_and_delivery_outcomes(api: Api) -> None:
    store = api.services.store
    api.services.workflow_manager.add_alert_rule(["task_failed"], {"type": "log"}, workflow="pipeline")
    now = api.clock.now()
    store.insert_alert(
        AlertRecord("a1", "task_failed", {"task_id": XSS}, now, "webhook", "failed", "HTTP 500 <b>", None, 3)
    )
    store.insert_alert(AlertRecord("a2", "task_failed", {"task_id": "ok"}, now, "log", "sent", None, None, 1))
    client = sign_in(api, "viewer")
    page = client.get("/ui/alerts").text
    assert "task_failed" in page and "pipeline" in page
    assert "HTTP 500 &lt;b&gt;" in page and XSS not in page
    failed_only = client.get("/ui/alerts?status=failed").text
    assert "HTTP 500" in failed_only and "task ok" not in failed_only
    for n in range(150):  # the failed one is older than a page of newer ones: the filter is the store's
        store.insert_alert(
            AlertRecord(f"s{n}", "task_failed", {"task_id": "ok"}, now + 1 + n, "log", "sent", None, None, 1)
        )
    assert "HTTP 500" in client.get("/ui/alerts?status=failed").text
    listed = api.call("GET", "/alerts?status=failed", role="viewer").json()["items"]
    assert [a["alert_id"] for a in listed] == ["a1"]
    assert api.call("GET", "/alerts?status=lost", role="viewer").status_code == 422


def test_two_versions_are_compared_side_by_side(api: Api) -> None:
    manager = api.services.workflow_manager
    workflow = pipeline_id(api)
    manager.start_workflow(workflow)
    manager.add_task_to_workflow(workflow, Task(task_id="extra", func=log_value, args=["v2"], dependencies=["sum"]))
    manager.start_workflow(workflow)
    api.drain()
    client = sign_in(api)
    page = client.get(f"/ui/workflows/{workflow}?a=1&b=2").text
    assert "v1 ↔ v2" in page and "diff-insert" in page and '"extra"' in page.replace("&#34;", '"')
    assert "diff-row" not in client.get(f"/ui/workflows/{workflow}?a=2&b=2").text


def test_sign_in_never_redirects_off_the_site(api: Api) -> None:
    for target in ("https://evil.example", "//evil.example", "/\\evil.example"):
        token = csrf_of(api.client)
        response = api.client.post(
            "/login", data={"api_key": api.admin_key, "csrf": token, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/", target
        api.client.cookies.clear()


def test_backfill_a_range_and_read_the_audit_log(api: Api) -> None:
    manager = api.services.workflow_manager
    schedule = manager.schedule_workflow(pipeline_id(api), cron="0 * * * *", name="hourly", max_active_runs=3)
    now = datetime.fromtimestamp(api.clock.now(), UTC)
    start = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    client = sign_in(api)
    token = csrf_of(client, "/ui/schedules")
    done = client.post(
        f"/ui/schedules/{schedule}/backfill",
        data={"csrf": token, "start": start, "end": now.strftime("%Y-%m-%dT%H:%M")},
    )
    # 21:00, 22:00, 23:00 and 00:00: three at once (max_active_runs), the fourth when one finishes
    assert "backfill started 3 fire(s), 1 queued for max_active_runs" in done.text
    assert len(api.services.store.list_runs(pipeline_id(api))) == 3
    assert "Last fire" in done.text and "never" not in done.text.split("Last fire")[1][:200]
    audit = client.get("/ui/audit").text
    assert f"/ui/schedules/{schedule}/backfill" in audit and "admin" in audit


def test_a_new_key_s_secret_is_held_on_the_server_and_shown_once_to_its_creator(api: Api) -> None:
    client = sign_in(api)
    token = csrf_of(client, "/ui/keys")
    created = client.post("/ui/keys", data={"csrf": token, "name": "once", "role": "viewer"}, follow_redirects=False)
    reveal = created.cookies.get("unified_new_key")
    record = next(k for k in api.services.keys.list() if k.name == "once")
    assert reveal and record.key_id not in reveal, "the cookie holds a random token, not the key"
    other_admin = TestClient(api.app, cookies={"unified_new_key": reveal})
    other_key = api.services.keys.create("other-admin", "admin")[1]
    other_admin.post("/login", data={"api_key": other_key, "csrf": csrf_of(other_admin)})
    assert 'id="new-key"' not in other_admin.get("/ui/keys").text, "only the admin who created it sees it"
    shown = client.get("/ui/keys")
    secret = re.search(r'id="new-key">([^<]+)<', shown.text)
    assert secret and api.services.keys.identify(secret.group(1)).key_id == record.key_id
    client.cookies.set("unified_new_key", reveal, path="/ui/keys")  # the same token again: gone
    again = client.get("/ui/keys")
    assert secret.group(1) not in again.text and "cannot be shown" in again.text
    client.post("/ui/keys", data={"csrf": token, "name": "late", "role": "viewer"}, follow_redirects=False)
    api.clock.advance(61)
    assert 'id="new-key"' not in client.get("/ui/keys").text, "a secret not fetched within a minute is dropped"
