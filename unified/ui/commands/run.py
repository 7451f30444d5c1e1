"""``unified run FILE_OR_NAME [--param k=v] [--wait]``: start a run of a workflow from a file or the database.

A FILE is a Python file defining a module-level :class:`Workflow`; it is stored (a workflow of the same name gets it
as its new draft) and run. A NAME (or id) is a workflow already in the database. Without ``--wait`` the run is
queued for whatever works on this database (``unified server``, ``unified worker``); with ``--wait`` this process
runs its tasks too (unless ``--workers 0``) and shows them live, and the exit code says whether the run succeeded.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from unified.errors import NotFoundError, TimeoutExpired
from unified.logger import configure_logging
from unified.store.records import RunRecord, TaskRecord
from unified.task import FINISHED_STATES
from unified.ui.commands.common import (
    EXIT_FAILED,
    Db,
    Json,
    Params,
    Session,
    console,
    done,
    fail,
    find_workflow,
    import_from_cwd,
    parse_params,
    print_json,
    session,
    show,
)
from unified.workflow.workflow import Workflow

if TYPE_CHECKING:
    from rich.console import Group

STATE_STYLES = {
    "success": "green",
    "failure": "bold red",
    "timeout": "red",
    "canceled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "retrying": "magenta",
}
REFRESH_SECONDS = 0.2


def load_file(path: Path, name: str | None) -> Workflow:
    """The module-level Workflow of a Python file (the one named ``name`` if it defines several).

    The file is imported with its folder on ``sys.path`` (or, inside packages, the folder above the top package), so
    its functions have import paths (``file_stem:function``, ``pkg.file:function``) other processes can resolve.
    """
    folder, module_name = path.resolve().parent, path.stem
    while (folder / "__init__.py").exists():  # a file inside packages imports as pkg.sub.file, like the server's folder
        module_name, folder = f"{folder.name}.{module_name}", folder.parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    sys.modules.pop(module_name, None)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a file's sys.exit() would end the CLI with the file's own code, silently
        console(stderr=True).print("".join(traceback.format_exception(exc)), markup=False)
        raise fail(f"{path} failed to import ({type(exc).__name__}: {exc}); fix the file and run it again") from None
    found: dict[str, Workflow] = {}
    for value in vars(module).values():
        if isinstance(value, Workflow):
            found.setdefault(value.name, value)
    if name is not None:
        if name not in found:
            raise fail(f"{path} defines no workflow named {name!r}; it defines {sorted(found) or 'none'}", 3)
        return found[name]
    if len(found) != 1:
        what = f"workflows {sorted(found)}: choose one with --workflow NAME" if found else "no module-level Workflow"
        raise fail(f"{path} defines {what}")
    return next(iter(found.values()))


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Inside, SIGTERM (a canceled CI job, ``timeout``, a stopped container) stops the command as Ctrl-C does, so what
    runs here is handed back at once rather than held as ``running`` until its lease expires and a worker reaps it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def render(run: RunRecord, tasks: list[TaskRecord], now: float) -> Group:
    """The live view: a header, a progress bar of finished tasks, and one row per task."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    finished = sum(1 for t in tasks if t.state in FINISHED_STATES)
    header = Text.assemble(
        (f"run {run.run_id} ", "bold"),
        (run.state, STATE_STYLES.get(run.state, "")),
        f"  {finished}/{len(tasks)} tasks finished  {(run.finished_at or now) - run.started_at:.1f} s",
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("task", "state", "attempts", "seconds", "error / reason"):
        table.add_column(column, overflow="fold")
    for t in tasks:
        seconds = f"{t.finished_at - t.started_at:.2f}" if t.finished_at and t.started_at is not None else ""
        problem = f"{t.error.get('type')}: {t.error.get('message')}" if t.error else (t.reason or "")
        table.add_row(t.task_id, Text(t.state, STATE_STYLES.get(t.state, "")), str(t.attempts), seconds, problem)
    top = Table.grid()
    top.add_row(header)
    top.add_row(ProgressBar(total=max(len(tasks), 1), completed=finished, width=40))
    return Group(top, table)


def watch(s: Session, run_id: str, timeout: float | None, live: bool) -> RunRecord:
    """Follow a run until it ends (showing it live if ``live``); TimeoutExpired after ``timeout`` seconds."""
    from rich.live import Live

    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    run, tasks = s.store.get_run(run_id), s.store.run_tasks(run_id)
    view = Live(render(run, tasks, s.tasks.clock.now()), console=console(), auto_refresh=False) if live else None
    with view or nullcontext():
        while run.state == "running":
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutExpired(
                    f"run {run_id} did not finish within {timeout:g} s; it goes on: `unified runs show {run_id}`"
                )
            s.tasks.engine.wait_for_change(s.tasks.engine.finished_generation, REFRESH_SECONDS)
            run, tasks = s.store.get_run(run_id), s.store.run_tasks(run_id)
            if view is not None:
                view.update(render(run, tasks, s.tasks.clock.now()), refresh=True)
    return run


def run(
    target: Annotated[
        str,
        typer.Argument(
            metavar="FILE_OR_NAME", help="A .py file defining a Workflow, or a workflow's name or id in the database."
        ),
    ],
    param: Params = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Run the tasks here too, show them live, exit 0 only on success.")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=0, help="With --wait: runner threads in this process (0: others run it).")
    ] = 4,
    workflow: Annotated[str | None, typer.Option(help="The workflow to run when FILE defines several.")] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="Run this frozen version of a stored workflow instead of its draft.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.001, help="With --wait: stop waiting after this many seconds.")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Start a run of a workflow from a Python file or the database; with --wait, follow it to the end."""
    params = parse_params(param)
    path = Path(target)
    from_file = target.endswith(".py") or path.is_file()
    if from_file and not path.is_file():
        raise fail(f"no file {target}: give a Python file that defines a Workflow, or a workflow name")
    if from_file and version is not None:
        raise fail("--version runs a stored workflow's version: give its name or id, not a file")
    # the code first: this session's workers may claim queued tasks of the same project at once
    defined = load_file(path, workflow) if from_file else None
    if defined is None:
        import_from_cwd()  # stored import paths are relative to the project folder, as for `python -m`
    with (
        sigterm_as_ctrl_c() if wait else nullcontext(),
        session(db, create=from_file, workers=workers if wait else 0) as s,
    ):
        if defined is not None:
            workflow_id = s.workflows.register(defined)
            if not (wait and workers):  # no runner here: a function only this process holds could run nowhere
                functions = s.tasks.engine.functions
                if held := [
                    spec["task_id"] for spec in s.store.get_workflow(workflow_id).tasks if functions.holder_of(spec)
                ]:
                    raise fail(
                        f"task {held[0]!r} runs a lambda, a closure or a function defined in __main__, which only this "
                        "process holds: run it here with --wait, or define the function at module level"
                    )
        else:
            workflow_id = find_workflow(s.workflows, target)["workflow_id"]
        try:
            run_id = s.workflows.start_workflow(workflow_id, params, version=version, metadata={"started_by": "cli"})
        except NotFoundError:
            if version is None:
                raise
            hint = f"`unified workflows versions {target}`"
            raise fail(f"workflow {target!r} has no version {version}: {hint}", 3) from None
        if not wait:
            record = {"run_id": run_id, "workflow_id": workflow_id, "state": "running"}
            done(f"run {run_id} queued; a server or worker on this database runs it: `unified runs show {run_id}`",
                 record, as_json)  # fmt: skip
            return
        live = not as_json and console().is_terminal
        # task log lines are captured per attempt (`unified tasks logs`); printed bare, without their task, they would
        # tear the live view and clutter a log or a pipe
        configure_logging("error")
        try:
            final = watch(s, run_id, timeout, live)
        finally:  # ended or not (--timeout): a pipe reading the JSON gets the run as it is
            if as_json:
                print_json(asdict(s.workflows.get_run(run_id)))
        if not as_json and not console().is_terminal:  # a log or a pipe gets the final view once
            show(render(final, s.store.run_tasks(run_id), s.tasks.clock.now()))
    if final.state != "success":
        if not as_json:
            console(stderr=True).print(
                f"run {run_id} ended {final.state}: `unified runs show {run_id}` has the details"
            )
        raise typer.Exit(EXIT_FAILED)
