"""Settings read once from the environment, at the edges (managers, CLI, server)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from unified.errors import StoreError, ValidationError

DEFAULT_STORE_URL = "memory://"
SERVICE_STORE_URL = "sqlite:///.unified/unified.db"  # the server's and the CLI's default: history survives restarts


def database_url(explicit: str | None = None) -> str:
    """The store URL: ``explicit``, else ``UNIFIED_DATABASE_URL``, else the in-memory store."""
    return explicit or os.environ.get("UNIFIED_DATABASE_URL") or DEFAULT_STORE_URL


def default_max_workers() -> int:
    """Worker threads when none is asked for: enough for I/O-bound tasks, like the standard thread pool."""
    return min(32, (os.cpu_count() or 1) + 4)


def service_database_url(explicit: str | None = None) -> str:
    """The store URL of the server and the CLI: ``explicit``, else ``UNIFIED_DATABASE_URL``, else the SQLite file."""
    return explicit or os.environ.get("UNIFIED_DATABASE_URL") or SERVICE_STORE_URL


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for other stores and in-memory SQLite)."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    path = unquote(url.removeprefix("sqlite:///").split("?", 1)[0])  # `%20` is a space, as SQLAlchemy reads it
    return Path(path) if path else None


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file so the first start works on a fresh checkout."""
    path = sqlite_file(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create the folder of the SQLite file {path} ({exc}): choose a writable path"
        raise StoreError(message) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"the SQLite file {path} is not writable here: choose a writable path")


def gc_threshold() -> int:
    """The garbage collector's young-generation threshold while worker pools run (see ``unified.gc_pace``):
    ``UNIFIED_GC_THRESHOLD``, else 10,000; 0 leaves the collector as the program set it."""
    raw = os.environ.get("UNIFIED_GC_THRESHOLD", "").strip()
    try:
        return max(0, int(raw)) if raw else 10_000
    except ValueError:
        raise ValidationError(
            f"UNIFIED_GC_THRESHOLD must be a whole number (0 leaves the collector alone), not {raw!r}"
        ) from None
