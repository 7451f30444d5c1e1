"""The ``unified`` command line (also ``python -m unified.ui.ui``).

One command per process kind (``server``, ``worker``, ``scheduler``), ``run``, and one command group per noun
(``workflows``, ``runs``, ``tasks``, ``schedules``, ``keys``, ``queues``, ``db``), each a module of
:mod:`unified.ui.commands` added to :data:`app` with ``app.add_typer``. Settings come from options first, then
``UNIFIED_*`` environment variables; shared options, output (tables or ``--json``) and exit codes are in
:mod:`unified.ui.commands.common`.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer

from unified import __version__, config
from unified.errors import UnifiedError
from unified.ui.commands import db, keys, queues, run, runs, schedules, tasks, workflows
from unified.ui.commands.common import Db, exit_code, fail, import_from_cwd

app = typer.Typer(
    name="unified",
    help="A workflow orchestrator: run the server, and inspect and steer workflows, runs and tasks.",
    no_args_is_help=True,
    add_completion=False,
)


def version_callback(value: bool) -> None:
    """Print the version and stop."""
    if value:
        typer.echo(f"unified {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """unified: workflows as code, with a REST API, a scheduler and workers."""


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(
            help="Store URL (sqlite:///path.db, postgresql://...); default UNIFIED_DATABASE_URL, "
            "else sqlite:///.unified/unified.db."
        ),
    ] = None,
    workflows: Annotated[
        Path | None,
        typer.Option(help="Folder of Python files defining Workflow objects, loaded at start and on reload."),
    ] = None,
    allow_shell: Annotated[bool, typer.Option("--allow-shell", help="Let admins queue shell commands.")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no tasks in this process.")] = False,
    workers: Annotated[int | None, typer.Option(min=0, help="Worker threads (default: CPUs + 4, up to 32).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Start the REST API, the scheduler and a worker pool in one process."""
    # the start makes well over 100,000 objects that live as long as the process (modules, classes, routes, schema
    # objects); the cyclic collector went through them again and again before the server answered, all of them once
    # while the app started: 0.1-0.15 s, a seventh of the start. So it waits, and they are frozen (never looked at
    # again; the few hundred kB of garbage made meanwhile stays with them)
    gc.disable()
    try:
        # imported here so that `unified --help` and the light commands do not load the web stack
        from unified.api import create_app
        from unified.logger import configure_logging
        from unified.server import ServerSettings, preflight, serve

        if workflows is not None and not workflows.is_dir():
            raise fail(f"--workflows {workflows} is not a folder: give the folder that holds your workflow files")
        try:
            configure_logging(log_level)
            settings = ServerSettings.from_env(
                host=host,
                port=port,
                database_url=db,
                workflows_dir=str(workflows) if workflows else None,
                allow_shell=allow_shell or None,
                workers=0 if no_worker else workers,
            )
            preflight(settings)
        except UnifiedError as exc:
            raise fail(str(exc), exit_code(exc)) from None
        app = create_app(settings)
        gc.freeze()
    finally:
        gc.enable()
    serve(app, settings, log_level=log_level.lower())


@app.command()
def worker(
    db: Db = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues to serve (default: all).")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Runner threads (default: CPUs + 4, max 32).")] = None,
    isolation: Annotated[
        str | None, typer.Option(help="Run every function task in a 'thread' or a child 'process' (default: its own).")
    ] = None,
    lease_seconds: Annotated[float, typer.Option(min=0.1, help="How long a claim holds without a heartbeat.")] = 30.0,
    heartbeat_seconds: Annotated[float, typer.Option(min=0.05, help="How often held leases are renewed.")] = 10.0,
    grace_seconds: Annotated[float, typer.Option(min=0, help="On SIGTERM, how long running tasks may finish.")] = 30.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run tasks from the database until SIGTERM or Ctrl-C, then finish or hand back what this worker holds."""
    from unified.logger import configure_logging
    from unified.service import run_worker

    served = None if queues is None else [q.strip() for q in queues.split(",") if q.strip()]
    import_from_cwd()  # tasks name their functions by import path from the project folder, as `unified run` does
    try:
        configure_logging(log_level)
        run_worker(
            config.service_database_url(db), queues=served, concurrency=concurrency, isolation=isolation,
            lease_seconds=lease_seconds, heartbeat_seconds=heartbeat_seconds, grace_seconds=grace_seconds,
        )  # fmt: skip
    except (UnifiedError, ValueError) as exc:
        raise fail(str(exc)) from None


@app.command()
def scheduler(
    db: Db = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Fire the database's schedules until SIGTERM or Ctrl-C; any number may run, each fire happens once."""
    from unified.logger import configure_logging
    from unified.service import run_scheduler

    try:
        configure_logging(log_level)
        run_scheduler(config.service_database_url(db))
    except UnifiedError as exc:
        raise fail(str(exc)) from None


app.command()(run.run)
for group, module in [
    ("workflows", workflows),
    ("runs", runs),
    ("tasks", tasks),
    ("schedules", schedules),
    ("keys", keys),
    ("queues", queues),
    ("db", db),
]:
    app.add_typer(module.app, name=group)


def main() -> None:
    """The console script's entry point."""
    app()


if __name__ == "__main__":
    main()
