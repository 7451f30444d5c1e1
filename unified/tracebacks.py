"""The text a failed attempt's error record keeps: an exception's message, and its traceback as
``traceback.format_exception`` writes it without the ``^^^`` markers, at a fraction of that module's cost (a failed
attempt formats one, and W4's tasks fail twice each).
"""

from __future__ import annotations

import linecache
import traceback
import types

SIMPLE_TRACEBACK_FRAMES = 40  # deeper ones (recursion) go through the traceback module, which folds repeats
TEXT_CACHE = 1024  # frames' and exception classes' texts kept; cleared whole when full

# (id of a code object, line) -> (that code object, its two lines of traceback text): a retried task fails at the same
# lines again and again. Keyed by id and checked by identity, not by the code object itself: code objects compare
# equal across files (their filename is not compared), and a reference kept here keeps the id from being reused.
_FRAME_TEXT: dict[tuple[int, int], tuple[types.CodeType, str]] = {}
# exception class -> its name as the last line writes it, or None: written by the traceback module (a SyntaxError,
# an exception group, a class whose __module__ is not a string)
_CLASS_NAME: dict[type[BaseException], str | None] = {}


def message_of(exc: BaseException) -> str:
    """``str(exc)``, or what the traceback module writes when that fails (a user's ``__str__`` may raise)."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def traceback_text(exc: BaseException, tb: types.TracebackType | None, message: str | None = None) -> str:
    """``traceback.format_exception`` of ``exc`` from ``tb`` on, without the ``^^^`` markers under each line: Python
    3.11+ parses every frame's source to place them, which costs more than the rest of a failed attempt's
    bookkeeping together. ``message``: ``message_of(exc)``, if the caller has it already.

    A lone exception (no cause, context or notes) with a short stack is written directly from its frames: the same
    text for a fraction of the cost (the traceback module also stats every source file per exception). Each frame's
    lines are kept per code object and line, as first read from ``linecache``.
    """
    frames = []
    while tb is not None and len(frames) <= SIMPLE_TRACEBACK_FRAMES:
        frames.append(tb)
        tb = tb.tb_next
    kind = type(exc)
    name = _CLASS_NAME.get(kind, kind)  # a retried task's class is known: no call (None is a kept answer)
    if name is kind:
        name = _class_name(kind)
    lone = exc.__cause__ is None and exc.__context__ is None and getattr(exc, "__notes__", None) is None
    if name is not None and tb is None and lone:
        text = message_of(exc) if message is None else message
        last = f"{name}: {text}\n" if text else f"{name}\n"
        if not frames:
            return last
        parts = ["Traceback (most recent call last):\n"]
        for entry in frames:  # the kept text looked up here: a retried task fails at the same lines again
            code = entry.tb_frame.f_code
            known = _FRAME_TEXT.get((id(code), entry.tb_lineno))
            parts.append(known[1] if known is not None and known[0] is code else _frame_text(entry, code))
        parts.append(last)
        return "".join(parts)
    summary = traceback.TracebackException(type(exc), exc, frames[0] if frames else None, compact=True)
    seen: set[int] = set()
    todo = [summary]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for frame in current.stack:
            frame.colno = None
        todo += [c for c in (current.__cause__, current.__context__) if c is not None]
        todo += getattr(current, "exceptions", None) or []  # the members of an ExceptionGroup
    return "".join(summary.format())


def _frame_text(tb: types.TracebackType, code: types.CodeType) -> str:
    """One frame's lines (``code`` its code object), not kept yet: where it is, and its source line when there is
    one; kept for the next time."""
    frame, line = tb.tb_frame, tb.tb_lineno
    text = f'  File "{code.co_filename}", line {line}, in {code.co_name}\n'
    if source := linecache.getline(code.co_filename, line, frame.f_globals).strip():
        text += f"    {source}\n"
    if len(_FRAME_TEXT) >= TEXT_CACHE:
        _FRAME_TEXT.clear()
    _FRAME_TEXT[(id(code), line)] = (code, text)
    return text


def _class_name(kind: type[BaseException]) -> str | None:
    """How the last line of a traceback names ``kind`` (``module.Class``, builtins bare), or None where the traceback
    module writes that line itself; kept for the next time."""
    module = kind.__module__
    name: str | None = None
    if not issubclass(kind, (SyntaxError, BaseExceptionGroup)) and isinstance(module, str):
        name = kind.__qualname__ if module in ("__main__", "builtins") else f"{module}.{kind.__qualname__}"
    if len(_CLASS_NAME) >= TEXT_CACHE:
        _CLASS_NAME.clear()
    _CLASS_NAME[kind] = name
    return name
