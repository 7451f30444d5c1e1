"""The web UI in a real browser: Debian's chromium, headless, driven by Playwright, against `unified server`
started on a free port with a temp SQLite file and a workflows folder made here.

One server and one browser serve the whole module; each test opens its own browser context (own cookies).
Every wait is bounded. The last test takes the screenshots shown in the README: `UNIFIED_SCREENSHOTS=1` writes
them to docs/images/ (as does a run where one is missing).
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import running_server

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 20_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "chromium is not installed and could not be (make test runs apt-get install -y chromium); "
        "the browser tests need /usr/bin/chromium",
        allow_module_level=True,
    )

FLOWS = """
import pathlib
import time

from unified.task import Task
from unified.workflow.workflow import Workflow


def step(ctx) -> str:
    ctx.logger.info("working on %s", ctx.task_id)
    time.sleep(float(ctx.params.get("sleep", 0.6)))
    return ctx.task_id


def quick(ctx) -> str:
    time.sleep(0.05 * (hash(ctx.task_id) % 5))
    return ctx.task_id


def broken(ctx) -> None:
    raise ValueError("row 17 has no customer id")


def wait_for_cancel(ctx) -> str:
    for _ in range(600):  # up to a minute; stops as soon as it is canceled
        if ctx.cancelled:
            return "stopped"
        time.sleep(0.1)
    return "done"


def chatty(ctx) -> str:
    ctx.logger.info("attempt %d starting", ctx.attempt)
    if ctx.attempt < 4:
        ctx.logger.warning("attempt %d failed", ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt} failed")
    ctx.logger.info("attempt %d done", ctx.attempt)
    return "done"


def fails_first(ctx) -> str:
    marker = pathlib.Path("fails_first.marker")
    if not marker.exists():
        marker.write_text("tried")
        raise RuntimeError("the first try fails on purpose")
    return "ok"


def flaky_fetch(ctx) -> str:
    time.sleep(0.4)
    if ctx.attempt < 3:
        raise ConnectionError(f"orders API timed out (attempt {ctx.attempt})")
    return "orders"


def spawner(ctx) -> str:
    gate = pathlib.Path(ctx.params["gate"])
    for _ in range(600):  # up to a minute: the test opens the run page, then opens the gate
        if gate.exists():
            break
        time.sleep(0.05)
    ctx.add_task(Task(task_id="child-0", func=quick))
    ctx.add_task(Task(task_id="child-1", func=quick, dependencies=["child-0"]))
    return "spawned"


def hostile(ctx) -> str:
    ctx.logger.warning("<img src=x onerror=alert(2)> and <b>bold</b>")
    return "<script>alert(3)</script>"


demo = Workflow("ui-demo", "three steps in a row", [
    Task(task_id="extract", func=step),
    Task(task_id="transform", func=step, dependencies=["extract"]),
    Task(task_id="load", func=step, dependencies=["transform"]),
])

slow = Workflow("ui-slow", "one task that waits until canceled", [Task(task_id="wait", func=wait_for_cancel)])

talks = Workflow("ui-chatty", "logs on every attempt", [
    Task(task_id="chatty", func=chatty, max_retries=3, retry_delay_seconds=1.2, backoff_factor=1),
])

flaky = Workflow("ui-flaky", "fails once", [
    Task(task_id="fails-first", func=fails_first),
    Task(task_id="report", func=quick, dependencies=["fails-first"]),
])

etl = Workflow("nightly-etl", "orders and customers into the warehouse, with a flaky API", [
    Task(task_id="fetch-orders", func=flaky_fetch, max_retries=2, retry_delay_seconds=0.3),
    Task(task_id="fetch-customers", func=step),
    Task(task_id="fetch-products", func=step),
    Task(task_id="clean-orders", func=step, dependencies=["fetch-orders"]),
    Task(task_id="join", func=step, dependencies=["clean-orders", "fetch-customers", "fetch-products"]),
    Task(task_id="aggregate-daily", func=step, dependencies=["join"]),
    Task(task_id="aggregate-weekly", func=step, dependencies=["join"]),
    Task(task_id="publish", func=step, dependencies=["aggregate-daily", "aggregate-weekly"]),
])

grows = Workflow("ui-grows", "adds two tasks while it runs", [Task(task_id="spawner", func=spawner)])

xss = Workflow("<script>alert(1)</script>", "<b>not bold</b>", [
    Task(task_id="<script>alert(1)</script>", func=hostile),
])

SIZES = [1, 4, 10, 16, 24, 24, 20, 12, 6, 2, 1]
big_tasks, previous = [], []
for stage, size in enumerate(SIZES):
    current = []
    for n in range(size):
        name = f"s{stage}-t{n}"
        first = n * len(previous) // size if previous else 0
        deps = sorted({previous[first], previous[min(first + n % 2, len(previous) - 1)]}) if previous else []
        big_tasks.append(Task(task_id=name, func=broken if name == "s3-t8" else quick, dependencies=deps))
        current.append(name)
    previous = current
big = Workflow("warehouse-rebuild", "120 tasks in eleven stages", big_tasks)
"""


@dataclass
class UiServer:
    """The server under test: its URL, its admin key and an HTTP client that uses it."""

    url: str
    admin_key: str
    api: httpx.Client

    def workflow_id(self, name: str) -> str:
        """The id of the workflow called ``name``."""
        items = self.api.get("/workflows", params={"limit": 100}).json()["items"]
        return next(w["workflow_id"] for w in items if w["name"] == name)

    def wait_run(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        """Poll the REST API until the run is no longer running."""
        deadline = time.monotonic() + timeout
        while (run := self.api.get(f"/runs/{run_id}").json())["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        return run


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """`unified server` on a free port with the UI flows folder, four workers and the admin key it printed."""
    home = tmp_path_factory.mktemp("ui")
    flows = home / "flows"
    flows.mkdir()
    (flows / "ui_flows.py").write_text(textwrap.dedent(FLOWS))
    with running_server(home, flows, workers=4) as running:
        api = httpx.Client(base_url=running.url, headers={"X-API-Key": running.admin_key}, timeout=10)
        try:
            yield UiServer(running.url, running.admin_key, api)
        finally:
            api.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless (never a browser Playwright downloads)."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Every alert() a page opened: an XSS that ran shows up here."""
    return []


def open_page(browser: Any, server: UiServer, key: str, dialogs: list[str], width: int = 1280) -> Any:
    """A new context (own cookies) signed in with ``key``; confirm() dialogs are accepted, alert() recorded."""
    context = browser.new_context(viewport={"width": width, "height": 860}, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "alert":
            dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)
    page.goto("/")
    assert "/login" in page.url, "a visitor is sent to the sign-in page"
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    return page


def start_run(page: Any, server: UiServer, workflow: str) -> str:
    """Open the workflow's page, press Run, and return the id of the run page it lands on."""
    page.goto(f"/ui/workflows/{server.workflow_id(workflow)}")
    page.click("text=Run workflow")
    page.wait_for_url("**/ui/runs/*")
    return page.url.rsplit("/", 1)[1]


def row(page: Any, task_id: str) -> Any:
    """The row of a task in the run page's task table."""
    return page.locator(f'#run-tasks tr[data-task="{task_id}"]')


def test_sign_in_and_watch_a_run_reach_success_live(browser: Any, server: UiServer, dialogs: list[str]) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    cookie = next(c for c in page.context.cookies() if c["name"] == "unified_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    start_run(page, server, "ui-demo")
    page.evaluate("window.__sameDocument = true")
    sync_api.expect(page.locator("#run-state")).to_contain_text("running")
    sync_api.expect(page.locator("#run-state")).to_contain_text("success", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument === true"), "the page updated without a reload"
    sync_api.expect(row(page, "load")).to_contain_text("success")
    sync_api.expect(page.locator("#graph .node-success")).to_have_count(3)
    sync_api.expect(page.locator("#timeline .vis-item.tl-success")).to_have_count(3)
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.goto("/ui/runs")
    assert "/login" in page.url, "signed out: pages need a session again"
    page.context.close()


def test_live_updates_replace_only_the_rows_whose_task_moved(
    browser: Any, server: UiServer, dialogs: list[str]
) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    body = {"params": {"sleep": 2}}  # steps longer than a poll: rows move after the first one is marked
    run_id = server.api.post(f"/workflows/{server.workflow_id('ui-demo')}/runs", json=body).json()["run_id"]
    page.goto(f"/ui/runs/{run_id}")
    sync_api.expect(row(page, "extract")).to_contain_text("success", timeout=WAIT_MS)
    page.evaluate("document.querySelector('#run-tasks tr[data-task=extract]').__kept = true")
    sync_api.expect(page.locator("#run-state")).to_contain_text("success", timeout=WAIT_MS)
    sync_api.expect(row(page, "load")).to_contain_text("success")
    assert page.evaluate("document.querySelector('#run-tasks tr[data-task=extract]').__kept === true"), (
        "a row whose task did not move is left as it is (a run of 1,500 tasks swapped a 1.2 MB table each time)"
    )
    assert page.locator("#run-tasks tbody tr").count() == 3
    page.context.close()


def test_cancel_a_running_task(browser: Any, server: UiServer, dialogs: list[str]) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    run_id = start_run(page, server, "ui-slow")
    sync_api.expect(row(page, "wait")).to_contain_text("running")
    row(page, "wait").locator("button", has_text="Cancel").click()
    sync_api.expect(row(page, "wait")).to_contain_text("canceled")
    sync_api.expect(page.locator("#run-state")).to_contain_text("canceled")
    assert server.wait_run(run_id)["state"] == "canceled"
    page.context.close()


def test_task_logs_follow_and_filter_by_level(browser: Any, server: UiServer, dialogs: list[str]) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    start_run(page, server, "ui-chatty")
    row(page, "chatty").locator("a").click()
    page.wait_for_url("**/ui/tasks/**")
    page.evaluate("window.__sameDocument = true")
    logs = page.locator("#logs")
    assert "attempt 4 done" not in (logs.text_content() or ""), "the task is still going when the page opens"
    sync_api.expect(logs).to_contain_text("attempt 4 done")  # follow mode brought it in
    sync_api.expect(page.locator("#task-live h1")).to_contain_text("success")  # the head follows the task too
    sync_api.expect(page.locator("#task-live")).to_contain_text("4 (retries allowed: 3)")
    sync_api.expect(page.locator("#task-live button", has_text="Cancel task")).to_have_count(0)
    assert page.evaluate("window.__sameDocument === true"), "logs follow without a reload"
    page.select_option("#log-filters select", "WARNING")
    sync_api.expect(page.locator("#logs .log")).to_have_count(3)
    sync_api.expect(page.locator("#logs")).not_to_contain_text("starting")
    page.context.close()


def test_live_pages_go_to_sign_in_and_back_when_the_session_ends(
    browser: Any, server: UiServer, dialogs: list[str]
) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    run_id = start_run(page, server, "ui-slow")
    sync_api.expect(row(page, "wait")).to_contain_text("running")
    page.context.clear_cookies()  # as a revoked key, the 12-hour expiry or a restart with a new secret do
    signed_out = re.compile(re.escape(f"/login?next=%2Fui%2Fruns%2F{run_id}") + "$")
    sync_api.expect(page).to_have_url(signed_out, timeout=WAIT_MS)  # run.js's poll, not retries for ever
    page.fill("#api_key", server.admin_key)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{run_id}")
    page.goto("/")
    sync_api.expect(page.locator("#dash")).to_be_visible()
    page.context.clear_cookies()
    sync_api.expect(page).to_have_url(re.compile(r"/login\?next=%2F$"), timeout=WAIT_MS)  # not a blank dashboard
    server.api.post(f"/runs/{run_id}/cancel")
    page.context.close()


def test_tasks_added_during_a_run_join_its_graph_and_timeline(
    browser: Any, server: UiServer, dialogs: list[str], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    body = {"params": {"gate": str(gate)}}
    run_id = server.api.post(f"/workflows/{server.workflow_id('ui-grows')}/runs", json=body).json()["run_id"]
    page = open_page(browser, server, server.admin_key, dialogs)
    page.goto(f"/ui/runs/{run_id}")
    sync_api.expect(page.locator("#graph .node-running")).to_have_count(1)
    sync_api.expect(page.locator("#timeline .vis-label")).to_have_count(1)
    gate.write_text("go")
    sync_api.expect(row(page, "child-1")).to_contain_text("success", timeout=WAIT_MS)
    sync_api.expect(page.locator("#graph .node-success")).to_have_count(3)
    sync_api.expect(page.locator("#graph .edge")).to_have_count(1)
    sync_api.expect(page.locator("#timeline .vis-label")).to_have_count(3)
    sync_api.expect(page.locator("#timeline .vis-item.tl-success")).to_have_count(3)
    page.locator("#graph a", has_text="child-1").click()
    page.wait_for_url("**/ui/tasks/**")
    sync_api.expect(page.locator("h1")).to_contain_text("child-1")
    page.context.close()


def test_retry_a_failed_task(browser: Any, server: UiServer, dialogs: list[str]) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    start_run(page, server, "ui-flaky")
    sync_api.expect(page.locator("#run-state")).to_contain_text("failure")
    failed = row(page, "fails-first")
    sync_api.expect(failed).to_contain_text("the first try fails on purpose")
    sync_api.expect(row(page, "report")).to_contain_text("skipped")
    page.click("text=Retry failed")
    sync_api.expect(page.locator("#run-state")).to_contain_text("success")
    sync_api.expect(failed).to_contain_text("2 attempts")
    sync_api.expect(row(page, "report")).to_contain_text("success")
    page.context.close()


def test_pause_and_resume_a_schedule(browser: Any, server: UiServer, dialogs: list[str]) -> None:
    body = {"name": "demo every five", "workflow_id": server.workflow_id("ui-demo"), "cron": "*/5 * * * *",
            "timezone": "Europe/Paris"}  # fmt: skip
    assert server.api.post("/schedules", json=body).status_code == 201
    page = open_page(browser, server, server.admin_key, dialogs)
    page.goto("/ui/schedules")
    card = page.locator('[data-schedule="demo every five"]')
    sync_api.expect(card).to_contain_text("Every 5 minutes")
    sync_api.expect(card).to_contain_text("Europe/Paris")
    sync_api.expect(card.locator(".fires li")).to_have_count(5)
    card.locator("button", has_text="Pause").click()
    sync_api.expect(card).to_contain_text("paused")
    sync_api.expect(card.locator("button", has_text="Resume")).to_be_visible()
    card.locator("button", has_text="Resume").click()
    sync_api.expect(card.locator("button", has_text="Pause")).to_be_visible()
    page.context.close()


def test_create_and_revoke_keys_and_a_viewer_sees_no_operator_buttons(
    browser: Any, server: UiServer, dialogs: list[str]
) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    page.goto("/ui/keys")
    for name, role in (("bob (viewer)", "viewer"), ("temporary", "operator")):
        page.fill("#key-name", name)
        page.select_option("#key-role", role)
        page.click("text=Create key")
        sync_api.expect(page.locator(".created-key")).to_contain_text(name)
    temporary_key = page.locator("#new-key").text_content()
    page.goto("/ui/keys")
    assert page.locator("#new-key").count() == 0, "a key is shown once"
    page.locator('tr[data-key="temporary"] button', has_text="Revoke").click()
    sync_api.expect(page.locator('tr[data-key="temporary"]')).to_contain_text("revoked")
    assert server.api.get("/health").status_code == 200
    refused = httpx.get(f"{server.url}/workflows", headers={"X-API-Key": temporary_key or ""}, timeout=5)
    assert refused.status_code == 401, "a revoked key stops working at once"

    page.goto("/ui/keys")
    viewer_name = "bob (viewer)"
    viewer_id = page.locator(f'tr[data-key="{viewer_name}"] .mono').text_content()
    assert viewer_id
    page.context.close()

    viewer_key = server.api.post("/api-keys", json={"name": "viewer-two", "role": "viewer"}).json()["key"]
    viewer = open_page(browser, server, viewer_key, dialogs)
    nav = viewer.locator("nav.nav")
    sync_api.expect(nav).to_contain_text("Workflows")
    sync_api.expect(nav).not_to_contain_text("API keys")
    workflow_id = server.workflow_id("ui-demo")
    viewer.goto(f"/ui/workflows/{workflow_id}")
    sync_api.expect(viewer.locator("#run-form")).to_contain_text("needs the operator role")
    assert viewer.locator("text=Run workflow").count() == 0
    run_id = server.api.get("/runs", params={"workflow_id": server.workflow_id("ui-flaky")}).json()["items"][0]
    viewer.goto(f"/ui/runs/{run_id['run_id']}")
    sync_api.expect(viewer.locator("#run-tasks")).to_be_visible()
    assert viewer.locator("#run-live form button").count() == 0, "no cancel or retry buttons for a viewer"
    csrf = viewer.locator('meta[name="csrf-token"]').get_attribute("content")
    tried = viewer.request.post(f"/ui/workflows/{workflow_id}/run", form={"csrf": csrf or "", "params": ""})
    assert tried.status == 403, "the server refuses what the page does not show"
    assert viewer.request.get("/ui/keys").status == 403
    viewer.context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_role_badges_stay_whole_in_the_keys_table(
    browser: Any, server: UiServer, dialogs: list[str], width: int
) -> None:
    server.api.post("/api-keys", json={"name": f"badge-{width}", "role": "operator", "owner": "x" * 80})
    page = open_page(browser, server, server.admin_key, dialogs, width=width)
    page.goto("/ui/keys")
    badges = page.locator("#keys .role")
    sync_api.expect(badges.first).to_be_visible()
    lines = badges.evaluate_all("els => els.map(e => [e.textContent, e.getClientRects().length])")
    assert lines and all(count == 1 for _, count in lines), f"a badge broke over lines: {lines}"
    page.context.close()


def test_user_strings_show_as_text(browser: Any, server: UiServer, dialogs: list[str]) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    page.goto("/ui/workflows")
    sync_api.expect(page.locator("table")).to_contain_text("<script>alert(1)</script>")
    run_id = start_run(page, server, "<script>alert(1)</script>")
    sync_api.expect(page.locator("#run-state")).to_contain_text("success")
    sync_api.expect(page.locator("#run-tasks")).to_contain_text("<script>alert(1)</script>")
    sync_api.expect(page.locator("#graph")).to_contain_text("<script>alert(1)</script>")
    page.locator("#run-tasks a", has_text="<script>").click()
    page.wait_for_url("**/ui/tasks/**")
    sync_api.expect(page.locator("#logs")).to_contain_text("<img src=x onerror=alert(2)> and <b>bold</b>")
    sync_api.expect(page.locator(".result")).to_contain_text("<script>alert(3)</script>")
    assert page.locator("#logs img, #logs b, main script").count() == 0
    assert run_id
    assert dialogs == [], f"a script from the data ran: {dialogs}"
    page.context.close()


def shot(name: str, scratch: Path) -> str:
    """Where a screenshot goes: docs/images/ when it is missing there or UNIFIED_SCREENSHOTS=1 asks for new ones
    (so a plain test run leaves the committed pictures alone), else a scratch folder."""
    target = IMAGES / name
    if os.environ.get("UNIFIED_SCREENSHOTS") == "1" or not target.exists():
        IMAGES.mkdir(parents=True, exist_ok=True)
        return str(target)
    return str(scratch / name)


def test_the_api_docs_render_from_this_server_alone_within_their_csp(browser: Any, server: UiServer) -> None:
    context = browser.new_context(base_url=server.url)
    context.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
        "e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    requested: list[str] = []
    errors: list[str] = []
    page.on("requestfinished", lambda request: requested.append(request.url))  # a request the CSP refused fails
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/docs")
    sync_api.expect(page.locator(".opblock-summary-path", has_text="/runs/{run_id}/cancel")).to_be_visible()
    page.locator(".opblock-summary-path", has_text="/health").first.click()
    page.click("text=Try it out")
    page.click("text=Execute")
    sync_api.expect(page.locator(".live-responses-table tr.response .response-col_status").first).to_contain_text("200")
    # the document declares the key's header, so "Authorize" takes a key and "Try it out" sends it
    page.click("button.authorize")
    scheme = page.locator(".auth-container", has_text="X-API-Key")
    scheme.locator("input").fill(server.admin_key)
    scheme.locator("button", has_text="Authorize").click()
    page.click("button.btn-done")
    listing = page.locator(".opblock-get").filter(has=page.get_by_text("/workflows", exact=True))
    listing.locator(".opblock-summary").click()
    listing.locator("text=Try it out").click()
    listing.locator("text=Execute").click()
    sync_api.expect(listing.locator(".live-responses-table tr.response .response-col_status").first).to_contain_text(
        "200"
    )
    assert page.evaluate("window.__violations") == [], "Swagger UI did something its CSP refuses"
    page.goto("/redoc")
    sync_api.expect(page.locator("h1", has_text="unified")).to_be_visible()
    page.fill("input[placeholder='Search...']", "backfill")
    sync_api.expect(page.locator("[data-role='search:results'] li").first).to_be_visible()
    # ReDoc's menu shows its maker's logo from their CDN; the CSP refuses it and ReDoc hides the broken image
    logo = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [v for v in page.evaluate("window.__violations") if v != logo] == [], "ReDoc did what its CSP refuses"
    elsewhere = [url for url in requested if not url.startswith((server.url, "data:", "blob:"))]
    assert elsewhere == [], "the docs loaded something from another origin"
    assert [e for e in errors if "cdn.redoc.ly" not in e] == []
    context.close()


def test_phone_width_and_screenshots(browser: Any, server: UiServer, dialogs: list[str], tmp_path: Path) -> None:
    page = open_page(browser, server, server.admin_key, dialogs)
    big = server.workflow_id("warehouse-rebuild")
    run = server.api.post(f"/workflows/{big}/runs", json={"params": {}}).json()
    etl = start_run(page, server, "nightly-etl")
    sync_api.expect(page.locator("#run-state")).to_contain_text("success", timeout=WAIT_MS)
    sync_api.expect(row(page, "fetch-orders")).to_contain_text("3 attempts")
    sync_api.expect(page.locator("#timeline .tl-failure")).to_have_count(2)
    page.wait_for_timeout(300)  # the timeline's last redraw
    page.screenshot(path=shot("ui-run-timeline.png", tmp_path), full_page=True)
    assert server.wait_run(run["run_id"])["state"] == "failure"
    page.goto(f"/ui/workflows/{big}")
    sync_api.expect(page.locator("#graph .node")).to_have_count(120)
    sync_api.expect(page.locator("#graph .node-failure")).to_have_count(1)
    assert page.locator("#graph .node-skipped").count() > 5, "what the failed task fed is skipped"
    page.click("[data-graph-fit]")  # the whole graph: the failed task and what it skipped come into view
    page.locator("#graph").screenshot(path=shot("ui-workflow-graph.png", tmp_path))
    page.goto("/")
    sync_api.expect(page.locator("#dash")).to_contain_text("row 17 has no customer id")
    page.screenshot(path=shot("ui-dashboard.png", tmp_path), full_page=True)
    assert etl
    page.context.close()

    phone = open_page(browser, server, server.admin_key, dialogs, width=390)
    phone.goto(f"/ui/runs/{etl}")
    sync_api.expect(phone.locator("#run-state")).to_contain_text("success")
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the run page is {overflow} px wider than a phone"
    phone.goto("/")
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    phone.context.close()
