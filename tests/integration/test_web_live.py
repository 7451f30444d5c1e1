"""The live parts of the web pages without a browser: what htmx and run.js are answered as a run goes on and when
the session ends."""

from __future__ import annotations

import html
import json
import re

import pytest

from tests.helpers.api_tasks import fail, log_value
from tests.integration.conftest import Api
from tests.integration.test_web import csrf_of, pipeline_id, sign_in
from unified.task import Task
from unified.ui.pages import runs
from unified.workflow.workflow import Workflow


def test_a_page_script_of_an_ended_session_is_sent_to_sign_in_and_back(api: Api) -> None:
    run_id = api.services.workflow_manager.start_workflow(pipeline_id(api))
    task = api.services.store.run_tasks(run_id)[0].id
    client = sign_in(api, "operator")
    key = next(k for k in api.services.keys.list() if k.name == "operator-web")
    api.services.keys.revoke(key.key_id)
    base = str(api.client.base_url)
    scripts = [
        ("/", {"HX-Request": "true", "Referer": f"{base}/"}, "/login?next=%2F"),
        (f"/ui/task-logs/{task}?follow=1", {"HX-Request": "true", "Referer": f"{base}/ui/tasks/{task}?level=INFO"},
         f"/login?next=%2Fui%2Ftasks%2F{task}%3Flevel%3DINFO"),
        (f"/ui/runs/{run_id}/data", {"Accept": "application/json", "Referer": f"{base}/ui/runs/{run_id}"},
         f"/login?next=%2Fui%2Fruns%2F{run_id}"),
    ]  # fmt: skip
    for path, headers, target in scripts:
        answer = client.get(path, headers=headers, follow_redirects=False)
        assert answer.status_code == 401 and answer.headers["hx-redirect"] == target, path
    elsewhere = client.get("/", headers={"HX-Request": "true", "Referer": "https://evil.example/x"})
    assert elsewhere.headers["hx-redirect"] == "/login?next=%2F", "never a way off the site"
    visit = client.get(f"/ui/runs/{run_id}", follow_redirects=False)
    assert visit.status_code == 303 and visit.headers["location"] == f"/login?next=%2Fui%2Fruns%2F{run_id}"


def test_the_task_page_head_refreshes_until_the_task_finishes(api: Api) -> None:
    task = api.call("POST", "/tasks", json={"task": "add", "args": [1, 2]}).json()["task_id"]
    client = sign_in(api, "operator")
    page = client.get(f"/ui/tasks/{task}").text
    polled = re.search(r'id="task-live" hx-get="([^"]+)" hx-trigger="every 2s"', page)
    assert polled and "Cancel task" in page
    url = html.unescape(polled.group(1))
    assert client.get(url).status_code == 204, "nothing moved: htmx keeps what it shows"
    api.drain()
    head = client.get(url)
    assert head.status_code == 200 and 'id="task-live"' in head.text
    assert "state-success" in head.text and "Cancel task" not in head.text and '<pre class="result">3' in head.text
    assert "hx-trigger" not in head.text, "finished: the polling stops"
    assert 'hx-trigger="every 2s"' not in client.get(f"/ui/tasks/{task}").text.split('id="logs"')[0]


def test_the_run_graph_links_every_task_page_whatever_its_id(api: Api) -> None:
    odd = "a?b#c/d e%"
    flow = Workflow("odd ids", tasks=[Task(task_id=odd, func=log_value, args=["x"])])
    run_id = api.services.workflow_manager.start_workflow(api.services.workflow_manager.register(flow))
    client = sign_in(api, "viewer")
    found = re.search(
        r'<script type="application/json" id="graph-data">(.*?)</script>', client.get(f"/ui/runs/{run_id}").text
    )
    assert found
    (node,) = json.loads(html.unescape(found.group(1)))["nodes"]
    opened = client.get(node["href"])
    assert opened.status_code == 200 and f"<h1>{html.escape(odd)} " in opened.text


def test_a_run_too_large_for_a_timeline_says_so_and_live_updates_send_the_rows_asked_for(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = api.services.workflow_manager.start_workflow(pipeline_id(api))
    client = sign_in(api, "viewer")
    assert 'id="timeline"' in client.get(f"/ui/runs/{run_id}").text
    assert client.get(f"/ui/runs/{run_id}/data").json()["items"] is not None
    monkeypatch.setattr(runs, "MAX_TIMELINE_TASKS", 2)
    page = client.get(f"/ui/runs/{run_id}").text
    assert 'id="timeline"' not in page and "drawn for runs of up to 2 tasks; this one has 3" in page
    assert client.get(f"/ui/runs/{run_id}/data").json()["items"] is None, "no attempts read for a timeline"
    stamps = re.findall(r'data-row="(\d+)" data-stamp="([a-z]+\.\d)"', page)
    assert stamps == [("0", "queued.0"), ("1", "queued.0"), ("2", "pending.0")]
    api.drain()
    live = client.get(f"/ui/runs/{run_id}/live?rows=2,x,1").text
    assert 'id="run-live" data-run-state="success"' in live
    assert re.findall(r'data-task="(\w+)" data-row="(\d+)" data-stamp="success.1"', live) == [("b", "1"), ("sum", "2")]
    assert len(re.findall(r"data-row=", client.get(f"/ui/runs/{run_id}/live").text)) == 3, "no rows named: all"


def test_a_schedule_past_its_end_shows_as_ended_without_pause(api: Api) -> None:
    manager = api.services.workflow_manager
    now = api.clock.now()
    manager.schedule_workflow(pipeline_id(api), interval_seconds=60, start_at=now - 7200, end_at=now - 3600, name="old")
    manager.schedule_workflow(pipeline_id(api), interval_seconds=60, name="live")
    page = sign_in(api, "operator").get("/ui/schedules").text
    old, live = (page.split(f'data-schedule="{name}"')[1].split("</section>")[0] for name in ("old", "live"))
    assert "state-ended" in old and "state-active" not in old and "Pause" not in old and "Resume" not in old
    assert "none: the schedule ended" in old
    assert "state-active" in live and "Pause" in live


def test_a_schedule_past_its_end_with_fire_times_left_to_catch_up_keeps_its_pause(api: Api) -> None:
    manager = api.services.workflow_manager
    now = api.clock.now()
    manager.schedule_workflow(
        pipeline_id(api), interval_seconds=60, start_at=now + 60, end_at=now + 180, catchup=True, name="late"
    )
    api.clock.set(now + 3600)  # the end passed while no scheduler ran: its fire times before it are still due
    assert manager.list_schedules()[0]["next_fire_time"] is not None
    page = sign_in(api, "operator").get("/ui/schedules").text
    late = page.split('data-schedule="late"')[1].split("</section>")[0]
    assert "state-ended" not in late and "Pause" in late


def test_no_retry_button_on_a_task_whose_upstream_must_be_retried_first(api: Api) -> None:
    flow = Workflow("fails early", tasks=[
        Task(task_id="bad", func=fail, args=["no"], max_retries=0),
        Task(task_id="after", func=log_value, args=["x"], dependencies=["bad"]),
    ])  # fmt: skip
    run_id = api.services.workflow_manager.start_workflow(api.services.workflow_manager.register(flow))
    api.drain()
    bad, after = api.services.store.run_tasks(run_id)
    assert (bad.state, after.state) == ("failure", "skipped")
    client = sign_in(api, "operator")
    run_page = client.get(f"/ui/runs/{run_id}").text
    assert f"/ui/task-actions/retry/{bad.id}" in run_page and f"/ui/task-actions/retry/{after.id}" not in run_page
    task_page = client.get(f"/ui/tasks/{after.id}").text
    assert "Retry task" not in task_page and "retries after bad (failure)" in task_page
    assert "Retry task" in client.get(f"/ui/tasks/{bad.id}").text
    token = csrf_of(client, "/")
    assert client.post(f"/ui/task-actions/retry/{after.id}", data={"csrf": token}).status_code == 409, "as offered"
    client.post(f"/ui/task-actions/retry/{bad.id}", data={"csrf": token})
    assert api.services.store.get_task(after.id).state == "pending", "retrying the upstream task brings it back"


def test_the_run_page_shows_the_full_run_id_and_the_task_filter_takes_the_part_tables_show(api: Api) -> None:
    manager = api.services.workflow_manager
    runs_started = [manager.start_workflow(pipeline_id(api)) for _ in range(17)]  # two share a first character
    run_id = runs_started[0]
    client = sign_in(api, "viewer")
    assert f'<code class="mono copyable" id="run-id">{run_id}</code>' in client.get(f"/ui/runs/{run_id}").text
    shown = client.get("/ui/runs").text
    assert f">{run_id[:12]}</a>" in shown  # what the tables show
    page = client.get("/ui/tasks", params={"run": f" {run_id[:12]} "}).text
    assert page.count(f'href="/ui/runs/{run_id}"') == 3 and f'value="{run_id}"' in page
    assert client.get("/ui/tasks", params={"run": run_id}).text.count(f'href="/ui/runs/{run_id}"') == 3
    shared = next(c for c in "0123456789abcdef" if sum(r.startswith(c) for r in runs_started) > 1)
    ambiguous = client.get("/ui/tasks", params={"run": shared})
    assert ambiguous.status_code == 422 and "more than one run id starts with" in ambiguous.text
    assert "No tasks match" in client.get("/ui/tasks", params={"run": "no-such-run"}).text


def test_a_retrying_task_shows_when_its_next_attempt_is_due(api: Api) -> None:
    task = api.call("POST", "/tasks", json={"task": "fail", "retry_delay_seconds": 90}).json()["task_id"]
    api.drain()
    meta = api.call("GET", f"/tasks/{task}").json()
    assert meta["state"] == "retrying" and meta["next_attempt_at"] is not None
    page = sign_in(api, "viewer").get(f"/ui/tasks/{task}").text
    assert "Next attempt" in page
