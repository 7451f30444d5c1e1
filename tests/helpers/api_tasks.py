"""Task functions registered with ``@task`` for the REST API tests (importing this module registers them)."""

from __future__ import annotations

import unified
from unified.task import TaskContext


@unified.task(name="add")
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@unified.task(name="fail", max_retries=1)
def fail(message: str = "boom") -> None:
    """Raise ValueError(message); registered with one retry."""
    raise ValueError(message)


@unified.task(name="log_value", timeout=30)
def log_value(value: str, ctx: TaskContext) -> str:
    """Log ``value`` through the task logger and return it."""
    ctx.logger.info("value is %s", value)
    return value
