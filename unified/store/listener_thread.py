"""The thread behind a store's ``listen``: a connection of its own that hears of other processes' work, calls back
from that thread, and reconnects with backoff when the connection fails (the workers poll meanwhile)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("unified.store.listener")

MAX_BACKOFF_SECONDS = 30.0


class ListenerThread:
    """Runs :meth:`_serve` in a daemon thread until :meth:`stop`; ``_serve`` raises one of ``errors`` when its
    connection fails, and calls :meth:`_connected` once a new one works."""

    def __init__(
        self,
        callback: Callable[[str], None],
        where: str,
        errors: tuple[type[Exception], ...],
        stop_seconds: float,
        name: str,
    ) -> None:
        self._callback = callback
        self._where = where  # the database, for log messages
        self._errors = errors
        self._stop_seconds = stop_seconds
        self._failures = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within ``stop_seconds``) and close the connection."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self._stop_seconds)

    def _serve(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._serve()
            except self._errors as exc:
                self._failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (self._failures - 1))
                log.error("lost the notification connection to %s (%s); reconnecting in %.1f s; workers poll meanwhile",
                          self._where, str(exc).strip(), delay)  # fmt: skip
                self._stopping.wait(delay)

    def _connected(self) -> None:
        """The connection listens now: call back once, since what was said before went unheard (before the first
        connection too: the pool's dispatcher may have looked for work before this thread began to listen)."""
        if self._failures:
            log.warning("listening on %s again after %d failed attempt(s)", self._where, self._failures)
            self._failures = 0
        self._call("")

    def _call(self, queue: str) -> None:
        try:
            self._callback(queue)
        except Exception:
            log.exception("a notification callback failed; listening goes on")
