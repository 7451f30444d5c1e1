"""The engine's transaction context: nested blocks join the outermost store transaction, whose commit runs the
engine's before-commit step and then the callbacks gathered meanwhile (none if it rolls back)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


class Batch:
    """Engine.batch's context: one store transaction, with the per-thread state the engine gathers until it commits
    (after-commit callbacks, tasks made ready and claimed, upstream results). A class, not a generator,
    because it is entered several times per task."""

    __slots__ = ("atomic", "before_commit", "depth", "local", "saved", "savepoint")

    def __init__(
        self,
        local: threading.local,
        atomic: AbstractContextManager[Any],
        before_commit: Callable[[], None],
        savepoint: bool = False,
    ) -> None:
        self.local, self.atomic, self.before_commit, self.savepoint = local, atomic, before_commit, savepoint
        self.saved: tuple[Any, ...] | None = None

    def __enter__(self) -> None:
        local = self.local
        self.depth = getattr(local, "depth", 0)
        if self.depth == 0:
            local.after, local.claimable, local.released = [], 0, {}
            local.releasing = []  # released dependants still pending in the store (see Engine._release_dependants)
            local.ready = local.taken = 0
        elif self.savepoint:  # what the transaction gathered so far, put back if this block is undone
            released_at = getattr(local, "released_at", None)
            self.saved = (list(local.after), local.claimable, dict(local.released), list(local.releasing), local.ready,
                          local.taken, released_at)  # fmt: skip
        local.depth = self.depth + 1
        try:
            self.atomic.__enter__()
        except BaseException:
            local.depth = self.depth
            raise

    def __exit__(self, *exc_info: Any) -> None:
        outermost = self.depth == 0
        if outermost and exc_info[0] is None:
            try:
                self.before_commit()
            except BaseException as exc:
                self._close(type(exc), exc, exc.__traceback__)
                raise
        self._close(*exc_info)
        if outermost and exc_info[0] is None:
            callbacks, self.local.after = self.local.after, []
            for callback in callbacks:
                callback()

    def _close(self, *exc_info: Any) -> None:
        try:
            self.atomic.__exit__(*exc_info)
        finally:
            local = self.local
            local.depth = self.depth
            if exc_info[0] is not None and self.saved is not None:
                (local.after, local.claimable, local.released, local.releasing, local.ready, local.taken,
                 local.released_at) = self.saved  # fmt: skip
