"""Stores: one protocol (``base.Store``), three implementations chosen by URL with :func:`open_store`."""

from __future__ import annotations

from unified.errors import ValidationError
from unified.store.base import Store


def open_store(url: str | Store | None, *, create: bool = True) -> Store:
    """A store for ``memory://``, ``sqlite:///path.db`` or ``postgresql://...``, or ``url`` itself if a store;
    ``create=False``: a database without unified's tables is refused instead of given them."""
    if url is None or url == "memory://" or url == "memory":
        from unified.store.memory import MemoryStore

        return MemoryStore()
    if not isinstance(url, str):
        return url
    if url.startswith("sqlite:"):
        from unified.store.sqlite import SqliteStore

        return SqliteStore(url, create=create)
    if url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
        from unified.store.sql import SqlStore

        return SqlStore(url, create=create)
    raise ValidationError(
        f"unknown store URL {url!r}: use memory://, sqlite:///path/to/file.db or postgresql://user@host/db"
    )


__all__ = ["Store", "open_store"]
