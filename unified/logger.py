"""Logging for unified: the console/file configuration of the ``unified`` loggers and per-attempt log capture.

Capture works per thread: one handler, attached once to the root logger, appends each record to the buffer that
the emitting thread activated with :class:`capture`, and ignores records of threads that capture nothing. Task
code logs through ``ctx.logger`` (a ``unified.task.<name>`` logger, enabled at DEBUG so its lines are always
captured) or through any standard logger, which its own level governs; what it prints is captured too (and printed).
"""

from __future__ import annotations

import builtins
import json
import logging
import sys
import threading
import time
from typing import Any

from unified.errors import ValidationError
from unified.utils import iso, readable_text

LogLine = tuple[float, str, str]  # (epoch seconds, level name, formatted message)

TASK_LOGGER = "unified.task"

_local = threading.local()
_install_lock = threading.Lock()
_CAPTURED = "_unified_captured"  # set on a record once buffered, so a second capture handler on its path skips it


class CaptureHandler(logging.Handler):
    """Appends records to the emitting thread's active capture buffer; does nothing for other threads."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(message)s"))

    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: list.append is atomic
        """Buffer ``record`` if its thread is capturing; stand in for ``logging.lastResort`` as if absent."""
        buffer = getattr(_local, "buffer", None)
        captured = False
        if buffer is not None and not getattr(record, _CAPTURED, False):
            setattr(record, _CAPTURED, True)
            buffer.append((record.created, record.levelname, readable_text(self.format(record))))
            captured = True
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level and not _other_handlers(record):
            # Python prints warnings to stderr when no handler exists; this handler must not hide that
            last_resort.handle(record)
        return captured

    def emit(self, record: logging.LogRecord) -> None:
        """Not used: :meth:`handle` does the work."""


def _other_handlers(record: logging.LogRecord) -> bool:
    """True if a handler other than a CaptureHandler sits on the record's logger path."""
    logger: logging.Logger | None = logging.root if record.name == "root" else logging.getLogger(record.name)
    while logger is not None:
        if any(not isinstance(h, CaptureHandler) for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


_HANDLER = CaptureHandler()


def install_capture() -> None:
    """Attach the capture handler to the root logger (once), enable ``unified.task.*`` loggers at DEBUG, and let
    ``print`` in a capturing thread reach its attempt's log too."""
    if _HANDLER in logging.root.handlers:
        return
    with _install_lock:
        if _HANDLER not in logging.root.handlers:
            logging.root.addHandler(_HANDLER)
            logging.getLogger(TASK_LOGGER).setLevel(logging.DEBUG)
        if builtins.print is not _print_and_capture:
            builtins.print = _print_and_capture


_print = builtins.print
_HANDLE_ERROR = logging.Handler.handleError.__code__


def _from_logging() -> bool:
    """Whether ``print`` was called by a logging handler reporting its own failure, directly or through the
    ``traceback`` module (not what the task printed)."""
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None or frame.f_code is _HANDLE_ERROR:
            return frame is not None
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _print_and_capture(
    *values: object, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """``print``, and in a thread that captures an attempt's log, each printed line there too (INFO, or WARNING for
    stderr), as a child process's output is: task code prints rather than logs as often as not."""
    buffer = getattr(_local, "buffer", None)
    if buffer is not None and (file is None or file is sys.stdout or file is sys.stderr) and not _from_logging():
        level = "WARNING" if file is sys.stderr else "INFO"
        now = time.time()
        text = (" " if sep is None else sep).join(map(str, values))
        buffer.extend((now, level, readable_text(line)) for line in text.splitlines() or [""])
    _print(*values, sep=sep, end=end, file=file, flush=flush)


def task_logger(name: str) -> logging.Logger:
    """The logger a task named ``name`` writes to through ``ctx.logger``."""
    return logging.getLogger(f"{TASK_LOGGER}.{name}")


class capture:
    """Context manager: records emitted by this thread go to ``buffer`` until it exits (nests)."""

    __slots__ = ("_buffer", "_previous")

    def __init__(self, buffer: list[LogLine]) -> None:
        self._buffer = buffer
        self._previous: list[LogLine] | None = None

    def __enter__(self) -> list[LogLine]:
        self._previous = getattr(_local, "buffer", None)
        _local.buffer = self._buffer
        return self._buffer

    def __exit__(self, *exc_info: object) -> None:
        _local.buffer = self._previous


def current_buffer() -> list[LogLine] | None:
    """The capture buffer active in this thread, or None."""
    return getattr(_local, "buffer", None)


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, exception text, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str | int = "INFO", fmt: str = "text", file: str | None = None) -> logging.Handler:
    """Send the ``unified`` loggers to stderr (or ``file``) as text or JSON lines at ``level``; returns the handler.

    Calling it again replaces the handler it added before. The ``unified`` logger stops propagating to the root
    logger (no duplicate lines when the application configures the root logger too), so the capture handler is
    attached to it as well.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValidationError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if fmt not in ("text", "json"):
        raise ValidationError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler: logging.Handler = logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.setLevel(numeric)
    handler._unified_configured = True  # type: ignore[attr-defined]
    install_capture()
    root = logging.getLogger("unified")
    for old in [h for h in root.handlers if getattr(h, "_unified_configured", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    root.setLevel(numeric)
    root.propagate = False
    return handler
