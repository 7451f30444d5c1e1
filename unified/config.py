"""Settings read once from the environment, at the edges (managers, CLI, server)."""

from __future__ import annotations

import os

DEFAULT_STORE_URL = "memory://"


def database_url(explicit: str | None = None) -> str:
    """The store URL: ``explicit``, else ``UNIFIED_DATABASE_URL``, else the in-memory store."""
    return explicit or os.environ.get("UNIFIED_DATABASE_URL") or DEFAULT_STORE_URL


def default_max_workers() -> int:
    """Worker threads when none is asked for: enough for I/O-bound tasks, like the standard thread pool."""
    return min(32, (os.cpu_count() or 1) + 4)
