"""The one module that wires a whole service into one process: store, engine and workers, scheduler, API keys,
the workflows folder and metrics; and runs it under uvicorn (``unified server``).

Settings are read once, here at the edge, from command-line options and environment variables.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import uvicorn

from unified import config
from unified.auth import ApiKeys, check_operator_key
from unified.auth_throttle import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_SECONDS, AuthThrottle
from unified.errors import ConflictError, ValidationError
from unified.metrics import Metrics
from unified.routes.deps import Services
from unified.store import open_store
from unified.task_manager import TaskManager
from unified.utils import Clock
from unified.workflow.workflow import WorkflowManager
from unified.workflows_folder import WorkflowsFolder, register_workflows

log = logging.getLogger("unified.server")

DEFAULT_DB = config.SERVICE_STORE_URL
DEFAULT_MAX_BODY_BYTES = 1_048_576


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(f"{name}={value!r} is not a yes/no value: use 1 or 0")


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise ValidationError(f"{name}={value!r} must be a whole number of at least {minimum}")
    return number


@dataclass(frozen=True)
class ServerSettings:
    """How one server process runs; ``from_env`` fills what the command line left unset."""

    database_url: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: int = 8000
    workflows_dir: str | None = None
    allow_shell: bool = False
    workers: int | None = None  # worker threads; None: a default for the machine; 0: this process runs no tasks
    scheduler: bool = True
    admin_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    announce: bool = True  # print the URL and a created admin key on start
    url_known: bool = True  # False: served by a command of the user's own (`uvicorn unified.api:app --port N`)
    auth_max_failures: int = DEFAULT_MAX_FAILURES  # failed authentications per client within the window; 0: no limit
    auth_window_seconds: float = DEFAULT_WINDOW_SECONDS
    trusted_proxies: str | None = None  # addresses whose X-Forwarded-For uvicorn believes (`serve` only); None: none

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Settings from ``UNIFIED_*`` environment variables; ``overrides`` that are not None win."""
        env = os.environ if env is None else env
        found: dict[str, Any] = {}
        if env.get("UNIFIED_DATABASE_URL"):
            found["database_url"] = env["UNIFIED_DATABASE_URL"]
        if env.get("UNIFIED_WORKFLOWS_DIR"):
            found["workflows_dir"] = env["UNIFIED_WORKFLOWS_DIR"]
        if env.get("UNIFIED_ADMIN_KEY"):
            found["admin_key"] = env["UNIFIED_ADMIN_KEY"]
        if "UNIFIED_ALLOW_SHELL" in env:
            found["allow_shell"] = _flag(env["UNIFIED_ALLOW_SHELL"], "UNIFIED_ALLOW_SHELL")
        if env.get("UNIFIED_WORKERS"):
            found["workers"] = _int(env["UNIFIED_WORKERS"], "UNIFIED_WORKERS")
        if env.get("UNIFIED_AUTH_MAX_FAILURES"):
            found["auth_max_failures"] = _int(env["UNIFIED_AUTH_MAX_FAILURES"], "UNIFIED_AUTH_MAX_FAILURES")
        if env.get("UNIFIED_AUTH_WINDOW_SECONDS"):
            found["auth_window_seconds"] = _int(env["UNIFIED_AUTH_WINDOW_SECONDS"], "UNIFIED_AUTH_WINDOW_SECONDS", 1)
        if env.get("UNIFIED_TRUSTED_PROXIES"):
            found["trusted_proxies"] = env["UNIFIED_TRUSTED_PROXIES"]
        if env.get("UNIFIED_MAX_BODY_BYTES"):
            found["max_body_bytes"] = _int(env["UNIFIED_MAX_BODY_BYTES"], "UNIFIED_MAX_BODY_BYTES", 1024)
        found.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**found)

    def with_changes(self, **changes: Any) -> ServerSettings:
        """A copy with ``changes``."""
        return replace(self, **changes)

    @property
    def url(self) -> str:
        """Where the API answers."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class Server:
    """Starts and stops the parts of one service process, and holds them as :class:`Services`."""

    def __init__(self, settings: ServerSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.services: Services | None = None
        self.created_admin_key: str | None = None  # printed once, never stored

    def start(self) -> Services:
        """Open the store, import the workflows folder, start workers (and the scheduler), ensure an admin key, and
        register the folder's workflows."""
        settings = self.settings
        config.ensure_sqlite_folder(settings.database_url)
        store = open_store(settings.database_url)
        # the folder's code first: the workers start claiming at once, and queued tasks may name its modules
        folder = WorkflowsFolder(settings.workflows_dir)
        loaded = folder.load()
        workers = config.default_max_workers() if settings.workers is None else settings.workers
        task_manager = TaskManager(store=store, max_workers=workers, clock=self.clock, run_scheduler=settings.scheduler,
                                   allow_shell=settings.allow_shell)  # fmt: skip
        clock = task_manager.clock
        throttle = AuthThrottle(clock, settings.auth_max_failures, settings.auth_window_seconds)
        keys = ApiKeys(store, clock, throttle=throttle)
        self.created_admin_key = keys.bootstrap(settings.admin_key)
        workflow_manager = WorkflowManager(task_manager=task_manager)
        report = register_workflows(loaded, workflow_manager)
        if report.folder:
            found, failed = len(report.workflows), len(report.errors)
            log.info("workflows folder %s: %d workflow(s), %d error(s)", report.folder, found, failed)
        self.services = Services(
            store=store,
            task_manager=task_manager,
            workflow_manager=workflow_manager,
            keys=keys,
            folder=folder,
            allow_shell=settings.allow_shell,
            workers=workers,
            metrics=Metrics(store, clock, task_manager.engine.bus),
            scheduler=task_manager.scheduler if settings.scheduler else None,
        )
        return self.services

    def stop(self) -> None:
        """Stop the scheduler and workers (letting running attempts finish) and close the store."""
        if self.services is None:
            return
        self.services.task_manager.shutdown(wait=True)
        self.services.store.close()
        self.services = None

    def banner(self) -> str:
        """What the server prints on start: where it answers and, the first time, the admin key."""
        if self.settings.url_known:
            lines = [f"unified server: {self.settings.url} (API docs at {self.settings.url}/docs)"]
        else:
            lines = ["unified server: on the host and port given to uvicorn (API docs at /docs there)"]
        lines.append(f"store: {self.settings.database_url}")
        if self.created_admin_key:
            lines.append(f"admin API key (shown once, keep it): {self.created_admin_key}")
        elif self.settings.admin_key:
            lines.append("admin API key: the one in UNIFIED_ADMIN_KEY")
        else:
            lines.append("admin API key: created on the first start (create more with POST /api-keys)")
        return "\n".join(lines)


def preflight(settings: ServerSettings) -> None:
    """Refuse settings that would fail the start-up (the port, the workflows folder, the database, the admin key) with
    one error, before anything starts or is shown; the app's own start-up would fail with a traceback."""
    check_port_free(settings.host, settings.port)
    if settings.workflows_dir is not None and not os.path.isdir(settings.workflows_dir):
        raise ValidationError(
            f"the workflows folder {settings.workflows_dir} is not a folder: give the folder that holds your workflow "
            "files (--workflows or UNIFIED_WORKFLOWS_DIR)"
        )
    config.ensure_sqlite_folder(settings.database_url)
    open_store(settings.database_url).close()  # a database it cannot use (unreachable, not one): StoreError here
    if settings.admin_key is not None:
        check_operator_key(settings.admin_key)


def check_port_free(host: str, port: int) -> None:
    """A ConflictError if something already listens on ``host:port`` (before any start-up work is done or shown)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closing socket is no clash
        try:
            probe.bind((host, port))
        except OSError as exc:
            message = f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or pass --port"
            raise ConflictError(message) from None


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """How ``serve`` runs uvicorn. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from
    ``trusted_proxies``: uvicorn's own default believes them from 127.0.0.1, so a local client could pose as any
    address to the authentication throttle."""
    proxies = settings.trusted_proxies
    return {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or "",
    }


def serve(app: Any, settings: ServerSettings, log_level: str = "info") -> None:
    """Run ``app`` under uvicorn until interrupted."""
    uvicorn.run(app, log_level=log_level, **uvicorn_options(settings))
