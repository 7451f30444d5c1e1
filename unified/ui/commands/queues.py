"""``unified queues list|limit``: how many tasks of a queue may run at once across every worker."""

from __future__ import annotations

from typing import Annotated

import typer

from unified.ui.commands.common import Db, Json, done, emit, fail, session

app = typer.Typer(help="Queues: per-queue concurrency limits shared by all workers.", no_args_is_help=True)

COLUMNS = [("queue", "queue"), ("max_running", "max running"), ("running", "running now"), ("waiting", "waiting")]


@app.command("list")
def list_queues(db: Db = None, as_json: Json = False) -> None:
    """Queues that have a limit or tasks, with the limit and what runs and waits in each."""
    with session(db) as s:
        limits = s.store.queue_limits()
        counts: dict[str, dict[str, int]] = {}
        for state in ("running", "queued", "retrying"):
            for task in s.store.list_tasks(state=state, limit=100_000):
                key = "running" if state == "running" else "waiting"
                counts.setdefault(task.queue, {"running": 0, "waiting": 0})[key] += 1
        names = sorted(set(limits) | set(counts))
        rows = [
            {"queue": q, "max_running": limits.get(q), **counts.get(q, {"running": 0, "waiting": 0})} for q in names
        ]
    emit(rows, COLUMNS, as_json, "queues")


@app.command()
def limit(
    queue: Annotated[str, typer.Argument(help="The queue's name, as given in Task(queue=...).")],
    max_running: Annotated[str, typer.Argument(help="A whole number (0 pauses the queue), or 'none' to lift it.")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Let at most MAX_RUNNING tasks of QUEUE run at once across all workers."""
    value = None if max_running.lower() == "none" else _whole_number(max_running)
    with session(db) as s:
        s.tasks.set_queue_limit(queue, value)
    text = f"queue {queue!r}: " + ("no limit" if value is None else f"at most {value} running at once")
    done(text, {"queue": queue, "max_running": value}, as_json)


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise fail(f"MAX_RUNNING must be a whole number or 'none', not {text!r}") from None
