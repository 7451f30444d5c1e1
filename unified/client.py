"""A small typed Python client for the REST API of ``unified server`` (httpx), for notebooks, scripts and services.

    from unified.client import Client

    with Client("http://127.0.0.1:8000", api_key="unified_...") as api:
        workflow_id = api.create_workflow("etl", tasks=[{"task_id": "load", "task": "load_orders", "args": ["x"]}])
        run = api.wait_run(api.start_run(workflow_id, params={"day": "2026-01-01"}), timeout=60)

Every error the server answers is raised as the same :mod:`unified.errors` class the server raised (its
``code`` first, else the HTTP status: 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
409 ConflictError, 400/413/422 ValidationError, 429 TooManyAttempts with ``retry_after_seconds``, 503 StoreError),
with ``status_code`` and ``details`` attached.
Lists follow ``next_cursor`` to the end unless ``limit`` caps them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from unified import errors
from unified.errors import CycleError, TaskFailedError, TimeoutExpired, TooManyAttempts, UnifiedError, ValidationError

Json = dict[str, Any]
PAGE = 1000  # the API's largest page


def _subclasses(cls: type[UnifiedError]) -> Iterator[type[UnifiedError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


ERRORS_BY_CODE: dict[str, type[UnifiedError]] = {c.code: c for c in _subclasses(UnifiedError)}
ERRORS_BY_STATUS: dict[int, type[UnifiedError]] = {
    400: errors.ValidationError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.ValidationError,
    422: errors.ValidationError,
    429: errors.TooManyAttempts,
    503: errors.StoreError,
    504: TimeoutExpired,
}


def _retry_after(response: httpx.Response, details: Any) -> int:
    """The seconds a 429 asks to wait: its ``Retry-After`` header (a proxy's 429 has only that), else its details'
    ``retry_after_seconds``, else 1."""
    header = response.headers.get("retry-after", "")
    if header.isdigit():
        return int(header)
    found = details.get("retry_after_seconds") if isinstance(details, dict) else None
    return found if isinstance(found, int) and found >= 0 else 1


def error_from_response(response: httpx.Response) -> UnifiedError:
    """The unified error an error response stands for, with ``status_code`` and ``details`` set on it."""
    try:
        body = response.json().get("error") or {}
    except (ValueError, AttributeError):
        body = {}
    code, details = body.get("code"), body.get("details")
    message = body.get("message") or f"HTTP {response.status_code}: {response.text[:200]}"
    cls = ERRORS_BY_CODE.get(code or "") or ERRORS_BY_STATUS.get(response.status_code, UnifiedError)
    if cls is CycleError and isinstance(details, dict) and details.get("cycle"):
        error: UnifiedError = CycleError(list(details["cycle"]))
    elif issubclass(cls, TaskFailedError):
        error = TaskFailedError(message, task_id="", state="")
    elif issubclass(cls, TooManyAttempts):
        error = TooManyAttempts(message, retry_after_seconds=_retry_after(response, details))
    else:
        error = cls(message)
    error.status_code = response.status_code  # type: ignore[attr-defined]
    error.details = details  # type: ignore[attr-defined]
    return error


def _part(value: str) -> str:
    """An id as one segment of a URL path: every character but letters, digits and ``-_.~`` escaped (a slash too),
    and an id of dots alone escaped whole, so that no URL normalisation turns it into ``..``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"an id must be a non-empty string, not {value!r}")
    return quote(value, safe="") if value.strip(".") else "%2E" * len(value)


def _query(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; datetimes as ISO-8601."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items() if v is not None}


class Client:
    """The REST API as methods; ``api_key`` defaults to ``UNIFIED_API_KEY``. Close it, or use it as a context."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_seconds: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = api_key or os.environ.get("UNIFIED_API_KEY")
        headers = {"X-API-Key": key} if key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_seconds, transport=transport)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one request; the decoded JSON body (None for 204, text for non-JSON), or the unified error."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise TimeoutExpired(f"{method} {path} timed out ({exc}); raise timeout_seconds or retry") from exc
        except httpx.TransportError as exc:
            raise UnifiedError(f"cannot reach {self._http.base_url} ({exc}); is the server running?") from exc
        if response.is_error or response.is_redirect:  # a redirect: a path this client should not have built
            raise error_from_response(response)
        if response.status_code == 204:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def pages(self, path: str, limit: int | None = None, **params: Any) -> list[Json]:
        """Every item of a paginated list (at most ``limit``), following ``next_cursor``."""
        items: list[Json] = []
        cursor = None
        while limit is None or len(items) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(items))
            page = self.request("GET", path, params=_query(**params, limit=size, cursor=cursor))
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return items

    def _wait(self, path: str, done: Iterable[str] | None, timeout: float | None, poll_seconds: float) -> Json:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found: Json = self.request("GET", path)
            if (found["state"] != "running") if done is None else (found["state"] in done):
                return found
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutExpired(f"{path} did not finish within {timeout} s (it is {found['state']}); wait longer")
            time.sleep(poll_seconds)

    # -- health ------------------------------------------------------------------------------------------------
    def health(self) -> Json:
        """Is the server up: version, store kind, workers, scheduler."""
        return self.request("GET", "/health")  # type: ignore[no-any-return]

    # -- workflows ---------------------------------------------------------------------------------------------
    def list_workflows(self, limit: int | None = None) -> list[Json]:
        """Workflows, oldest first."""
        return self.pages("/workflows", limit)

    def create_workflow(self, name: str, description: str = "", tasks: Iterable[Json] = ()) -> str:
        """Create a workflow (tasks as in ``add_task``); returns its id."""
        body = {"name": name, "description": description, "tasks": list(tasks)}
        return self.request("POST", "/workflows", json=body)["workflow_id"]  # type: ignore[no-any-return]

    def get_workflow(self, workflow_id: str) -> Json:
        """A workflow with its draft task specs."""
        return self.request("GET", f"/workflows/{_part(workflow_id)}")  # type: ignore[no-any-return]

    def delete_workflow(self, workflow_id: str) -> None:
        """Delete a workflow and its versions; its runs stay as history."""
        self.request("DELETE", f"/workflows/{_part(workflow_id)}")

    def add_task(
        self,
        workflow_id: str,
        task: str,
        task_id: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Json | None = None,
        dependencies: Iterable[str] = (),
        **options: Any,
    ) -> str:
        """Add a registered task (or a folder import path) to the workflow's draft; returns its task id.

        ``options``: ``timeout``, ``max_retries``, ``retry_delay_seconds``, ``priority``, ``queue``, ... as in the API.
        """
        body = _query(task=task, task_id=task_id, args=list(args), kwargs=kwargs or {},
                      dependencies=list(dependencies), **options)  # fmt: skip
        return self.request("POST", f"/workflows/{_part(workflow_id)}/tasks", json=body)["task_id"]  # type: ignore[no-any-return]

    def remove_task(self, workflow_id: str, task_id: str) -> None:
        """Remove a task from the draft (ConflictError while others depend on it)."""
        self.request("DELETE", f"/workflows/{_part(workflow_id)}/tasks/{_part(task_id)}")

    def list_versions(self, workflow_id: str) -> list[Json]:
        """The frozen versions of a workflow."""
        return self.request("GET", f"/workflows/{_part(workflow_id)}/versions")  # type: ignore[no-any-return]

    def get_version(self, workflow_id: str, number: int) -> Json:
        """One frozen version."""
        return self.request("GET", f"/workflows/{_part(workflow_id)}/versions/{number}")  # type: ignore[no-any-return]

    def start_run(self, workflow_id: str, params: Json | None = None, version: int | None = None) -> str:
        """Start a run (of the draft, or an earlier ``version``); returns its run id at once."""
        body = _query(params=params or {}, version=version)
        return self.request("POST", f"/workflows/{_part(workflow_id)}/runs", json=body)["run_id"]  # type: ignore[no-any-return]

    def list_workflow_runs(self, workflow_id: str, state: str | None = None, limit: int | None = None) -> list[Json]:
        """The runs of one workflow, newest first."""
        return self.pages(f"/workflows/{_part(workflow_id)}/runs", limit, state=state)

    def workflows_folder(self) -> Json:
        """The last load of the server's workflows folder: modules, workflows, import errors with tracebacks."""
        return self.request("GET", "/workflows/folder")  # type: ignore[no-any-return]

    def reload_workflows(self) -> Json:
        """Import the workflows folder again (admin); returns the new report."""
        return self.request("POST", "/workflows/reload")  # type: ignore[no-any-return]

    # -- runs --------------------------------------------------------------------------------------------------
    def list_runs(
        self,
        workflow_id: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        """Runs, newest first, filtered by workflow, state and creation time."""
        return self.pages("/runs", limit, workflow_id=workflow_id, state=state, since=since)

    def get_run(self, run_id: str) -> Json:
        """A run with every task's state, attempts and result."""
        return self.request("GET", f"/runs/{_part(run_id)}")  # type: ignore[no-any-return]

    def wait_run(self, run_id: str, timeout: float | None = None, poll_seconds: float = 0.2) -> Json:
        """Poll until the run ends (TimeoutExpired after ``timeout`` seconds); returns it."""
        return self._wait(f"/runs/{_part(run_id)}", None, timeout, poll_seconds)

    def cancel_run(self, run_id: str) -> Json:
        """Cancel every unfinished task of a run: ``{run_id, state, count}``."""
        return self.request("POST", f"/runs/{_part(run_id)}/cancel")  # type: ignore[no-any-return]

    def retry_run(self, run_id: str) -> Json:
        """Re-run the failed tasks of a run and what they skipped: ``{run_id, state, count}``."""
        return self.request("POST", f"/runs/{_part(run_id)}/retry")  # type: ignore[no-any-return]

    # -- tasks -------------------------------------------------------------------------------------------------
    def queue_task(self, task: str, args: Iterable[Any] = (), kwargs: Json | None = None, **options: Any) -> str:
        """Queue a registered task (or a folder import path) on its own; returns its id."""
        body = _query(task=task, args=list(args), kwargs=kwargs or {}, **options)
        return self.request("POST", "/tasks", json=body)["task_id"]  # type: ignore[no-any-return]

    def list_tasks(self, state: str | None = None, run_id: str | None = None, limit: int | None = None) -> list[Json]:
        """Tasks, newest first."""
        return self.pages("/tasks", limit, state=state, run_id=run_id)

    def get_task(self, task_id: str) -> Json:
        """A task's metadata: state, attempts, timings, result, error and attempt history."""
        return self.request("GET", f"/tasks/{_part(task_id)}")  # type: ignore[no-any-return]

    def wait_task(self, task_id: str, timeout: float | None = None, poll_seconds: float = 0.2) -> Json:
        """Poll until the task finishes (TimeoutExpired after ``timeout`` seconds); returns its metadata."""
        finished = ("success", "failure", "timeout", "canceled", "skipped")
        return self._wait(f"/tasks/{_part(task_id)}", finished, timeout, poll_seconds)

    def cancel_task(self, task_id: str) -> Json:
        """Cancel an unfinished task (ConflictError if it has finished): ``{task_id, state}``."""
        return self.request("POST", f"/tasks/{_part(task_id)}/cancel")  # type: ignore[no-any-return]

    def retry_task(self, task_id: str) -> Json:
        """Run a failed, timed-out, canceled or skipped task again: ``{task_id, state}``."""
        return self.request("POST", f"/tasks/{_part(task_id)}/retry")  # type: ignore[no-any-return]

    def get_task_logs(self, task_id: str) -> list[Json]:
        """The captured log lines of every attempt, oldest first."""
        return self.pages(f"/tasks/{_part(task_id)}/logs")

    # -- schedules ---------------------------------------------------------------------------------------------
    def create_schedule(
        self,
        *,
        workflow_id: str | None = None,
        task: Json | None = None,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str = "UTC",
        params: Json | None = None,
        name: str | None = None,
        **options: Any,
    ) -> Json:
        """Schedule a workflow or a task (``{"task": name, "args": [...]}``) on cron or an interval (admin).

        ``options``: ``start_at``, ``end_at``, ``catchup``, ``max_active_runs``. Returns the schedule.
        """
        body = _query(workflow_id=workflow_id, task=task, cron=cron, interval_seconds=interval_seconds,
                      timezone=timezone, params=params or {}, name=name, **options)  # fmt: skip
        return self.request("POST", "/schedules", json=body)  # type: ignore[no-any-return]

    def list_schedules(self, limit: int | None = None) -> list[Json]:
        """Schedules, oldest first, with their next fire times."""
        return self.pages("/schedules", limit)

    def get_schedule(self, schedule_id: str) -> Json:
        """A schedule with its next five fire times."""
        return self.request("GET", f"/schedules/{_part(schedule_id)}")  # type: ignore[no-any-return]

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule."""
        self.request("DELETE", f"/schedules/{_part(schedule_id)}")

    def pause_schedule(self, schedule_id: str) -> Json:
        """Stop firing a schedule until resumed."""
        return self.request("POST", f"/schedules/{_part(schedule_id)}/pause")  # type: ignore[no-any-return]

    def resume_schedule(self, schedule_id: str) -> Json:
        """Fire a paused schedule again."""
        return self.request("POST", f"/schedules/{_part(schedule_id)}/resume")  # type: ignore[no-any-return]

    def backfill_schedule(self, schedule_id: str, start: datetime | str, end: datetime | str) -> list[Json]:
        """Run the fire times in ``[start, end]`` that never fired; one entry per fire."""
        body = _query(start=start, end=end)
        return self.request("POST", f"/schedules/{_part(schedule_id)}/backfill", json=body)  # type: ignore[no-any-return]

    # -- alerts ------------------------------------------------------------------------------------------------
    def create_alert_rule(
        self, events: Iterable[str], channel: Json, workflow: str | None = None, task_name: str | None = None
    ) -> Json:
        """Send the named events to a channel (``{"type": "webhook", "url": ...}``); returns the rule (admin)."""
        body = _query(events=list(events), channel=channel, workflow=workflow, task_name=task_name)
        return self.request("POST", "/alert-rules", json=body)  # type: ignore[no-any-return]

    def list_alert_rules(self) -> list[Json]:
        """Every alert rule, secrets masked."""
        return self.request("GET", "/alert-rules")  # type: ignore[no-any-return]

    def delete_alert_rule(self, rule_id: str) -> None:
        """Delete an alert rule."""
        self.request("DELETE", f"/alert-rules/{_part(rule_id)}")

    def list_alerts(self, limit: int | None = 100, status: str | None = None) -> list[Json]:
        """Alerts raised, newest first, with delivery outcomes; only those of ``status`` (sent, failed, pending)."""
        return self.pages("/alerts", limit, status=status)

    # -- API keys and audit ------------------------------------------------------------------------------------
    def create_api_key(
        self, name: str, role: str, owner: str | None = None, expires_at: datetime | str | None = None
    ) -> Json:
        """Create a key (admin); the result's ``key`` is the secret, shown this once."""
        body = _query(name=name, role=role, owner=owner, expires_at=expires_at)
        return self.request("POST", "/api-keys", json=body)  # type: ignore[no-any-return]

    def list_api_keys(self) -> list[Json]:
        """Every key's public fields."""
        return self.request("GET", "/api-keys")  # type: ignore[no-any-return]

    def get_api_key(self, key_id: str) -> Json:
        """One key's public fields."""
        return self.request("GET", f"/api-keys/{_part(key_id)}")  # type: ignore[no-any-return]

    def revoke_api_key(self, key_id: str) -> Json:
        """Revoke a key at once."""
        return self.request("DELETE", f"/api-keys/{_part(key_id)}")  # type: ignore[no-any-return]

    def list_audit(self, limit: int | None = 100) -> list[Json]:
        """The audit log of mutating requests, newest first (admin)."""
        return self.pages("/audit", limit)

    def metrics(self) -> str:
        """The Prometheus text of ``/metrics``."""
        return self.request("GET", "/metrics")  # type: ignore[no-any-return]
