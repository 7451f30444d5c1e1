"""What every command group shares: the ``--db`` and ``--json`` options, opening the managers on the configured
store, printing tables or JSON, parsing ``k=v`` values, and turning unified errors into messages and exit codes.

Exit codes: 0 done; 1 a run or task ended badly (``run --wait``); 2 bad input (usage, validation); 3 not found;
4 conflict with the current state; 5 the store could not be used.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from unified import config
from unified.errors import ConflictError, NotFoundError, StoreError, TimeoutExpired, UnifiedError, ValidationError
from unified.store import Store, open_store
from unified.task_manager import TaskManager
from unified.workflow.workflow import WorkflowManager

if TYPE_CHECKING:
    from rich.console import Console

EXIT_FAILED = 1
EXIT_CODES: dict[type[UnifiedError], int] = {
    ValidationError: 2,
    NotFoundError: 3,
    ConflictError: 4,
    StoreError: 5,
    TimeoutExpired: 1,  # `run --wait --timeout`: the run did not finish in time
    UnifiedError: 2,
}

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="UNIFIED_DATABASE_URL",
        show_envvar=True,
        help=f"Store URL (sqlite:///path.db, postgresql://...); default {config.SERVICE_STORE_URL}.",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A run parameter as key=value (value parsed as JSON when it is); repeatable."),
]
Limit = Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")]


@functools.cache
def console(stderr: bool = False) -> Console:
    """The console printing to stdout (or ``stderr``), made on first use: rich is loaded by the commands that print
    with it, not by ``unified server`` (about 50 modules, 4% of what it does to import)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr and return the Exit to raise with ``code``."""
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True)
    return typer.Exit(code)


def exit_code(error: UnifiedError) -> int:
    """The exit code for ``error``: the entry of its nearest class in ``EXIT_CODES``."""
    return next(EXIT_CODES[c] for c in type(error).__mro__ if c in EXIT_CODES)


@contextmanager
def errors_as_exits() -> Iterator[None]:
    """Inside, a UnifiedError becomes its message on stderr and a non-zero exit."""
    try:
        yield
    except UnifiedError as exc:
        raise fail(str(exc), exit_code(exc)) from None


@dataclass
class Session:
    """The store and the managers a command works through."""

    store: Store
    tasks: TaskManager
    workflows: WorkflowManager


@contextmanager
def session(db: str | None, *, create: bool = False, workers: int = 0) -> Iterator[Session]:
    """Open the configured store and managers (no scheduler; ``workers`` runner threads), closing them after.

    A SQLite file that does not exist is an error unless ``create``: reading commands never make an empty database.
    """
    url = config.service_database_url(db)
    path = config.sqlite_file(url)
    if path is not None and not create and not path.exists():
        raise fail(
            f"no database at {path}: start `unified server` here, run `unified db upgrade`, or pass --db URL "
            "(or set UNIFIED_DATABASE_URL)"
        )
    with errors_as_exits():
        config.ensure_sqlite_folder(url)
        store = open_store(url, create=create)
        try:
            tasks = TaskManager(store=store, max_workers=workers, run_scheduler=False)
        except BaseException:
            store.close()
            raise
        try:
            yield Session(store, tasks, WorkflowManager(task_manager=tasks))
        finally:
            # what still runs here belongs to other runs (`run --wait` saw its own end) or to a run this process
            # stopped following (--timeout, Ctrl-C): handed back at once, for the server or another worker
            tasks.shutdown(wait=False)
            store.close()


def import_from_cwd() -> None:
    """Let task functions be found by import path from the current folder, as ``python -m`` would."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


# -- input ---------------------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """``text`` as JSON when it parses (numbers, true, lists, objects), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` as a dict; a pair without ``=`` is bad input."""
    params: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param {pair!r} is not key=value: write e.g. --param day=2026-01-01")
        if key.strip() in params:
            raise fail(f"--param {key.strip()!r} is given twice: give each name once")
        params[key.strip()] = parse_value(value)
    return params


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO-8601 time given on the command line (``2026-01-01`` or ``2026-01-01T02:00:00+01:00``)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r} is not an ISO-8601 time: write e.g. 2026-01-01T00:00:00Z") from None


def check_choice(value: str | None, choices: Sequence[str], option: str) -> None:
    """Refuse an option value that is not one of ``choices``."""
    if value is not None and value not in choices:
        raise fail(f"{option} {value!r} is not allowed here: use one of {', '.join(choices)}")


def find_workflow(workflows: WorkflowManager, id_or_name: str) -> dict[str, Any]:
    """The workflow with this id, else the one with this name; NotFoundError naming both ways."""
    try:
        return workflows.get_workflow(id_or_name)
    except NotFoundError:
        pass
    if (named := workflows.store.find_workflow(id_or_name)) is not None:
        return workflows.get_workflow(named.workflow_id)
    raise NotFoundError(f"no workflow with id or name {id_or_name!r}: `unified workflows list` shows them")


# -- output --------------------------------------------------------------------------------------------------
Columns = Sequence[tuple[str, str]]  # (key in each row, header)
PIPE_WIDTH = 200


ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def cell(value: Any) -> str:
    """A value as a table shows it (times to the second; JSON for structures)."""
    if value is None:
        return "-"
    if isinstance(value, str) and ISO_TIME.match(value):
        return value[:19].replace("T", " ")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def show(renderable: Any) -> None:
    """Print a table or view: terminal-wide on a terminal, wide enough to keep rows on one line in a pipe or log."""
    out = console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    out.print(renderable)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (unknown types as their text)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def emit(rows: Iterable[dict[str, Any]], columns: Columns, as_json: bool, title: str | None = None) -> None:
    """Rows as a table, or (``as_json``) every field of every row as a JSON list."""
    rows = list(rows)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console().print(f"no {title or 'rows'}")
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for n, (_, header) in enumerate(columns):
        table.add_column(header, overflow="fold", no_wrap=n == 0)  # ids stay whole, to copy
    for row in rows:
        table.add_row(*(cell(row.get(key)) for key, _ in columns))
    show(table)


def emit_one(record: dict[str, Any], fields: Columns, as_json: bool) -> None:
    """One record as a two-column table of ``fields``, or (``as_json``) all of it as JSON."""
    if as_json:
        print_json(record)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, label in fields:
        table.add_row(label, cell(record.get(key)))
    show(table)


def done(message: str, record: dict[str, Any], as_json: bool) -> None:
    """Report a change: ``message`` for people, ``record`` for scripts."""
    if as_json:
        print_json(record)
    else:
        console().print(message)
