"""Small pure helpers every layer uses: the injected clock, ids, backoff math, import paths, JSON."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from unified.errors import ImportPathError, SerializationError


class Clock(Protocol):
    """Where unified reads the time. Tests inject a :class:`FakeClock` instead of sleeping."""

    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever time jumps (only fake clocks jump)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Seconds since the epoch, from ``time.time()``."""
        return time.time()

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Real time never jumps, so nothing is ever called."""


class FakeClock:
    """A clock that moves only when told, for tests of retries, schedules and leases."""

    def __init__(self, start: float | datetime | str = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        """``start``: epoch seconds, a datetime, or ISO-8601 text as schedules take it (naive means UTC)."""
        if isinstance(start, str):
            parsed = datetime.fromisoformat(start)
            start = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def now(self) -> float:
        """The current fake time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake whoever waits on it."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += seconds
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def set(self, when: float | datetime) -> None:
        """Jump to ``when`` (not earlier than now)."""
        target = when.timestamp() if isinstance(when, datetime) else float(when)
        self.advance(target - self.now())

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Register ``callback`` to run after each advance."""
        with self._lock:
            self._callbacks.append(callback)


def copy_data(value: Any) -> Any:
    """A deep copy of nested dicts, lists, tuples and sets; anything else inside is shared, not copied (JSON values
    are immutable). About twice as fast as ``copy.deepcopy``, which memoises every object it meets: a 2,000-task
    workflow's specs took it 18 ms per copy, this 9."""
    if isinstance(value, dict):
        return _copy_dict(value)
    if isinstance(value, list):
        return _copy_list(value)
    if isinstance(value, tuple):
        return tuple(item if type(item) in _SCALARS else copy_data(item) for item in value)
    if isinstance(value, set):
        return set(value)  # its members are hashable: immutable in practice
    return value


def _copy_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    copied = dict(value)  # copied whole in C, then what is not a scalar copied in turn (a spec: 5 of 19)
    for key, item in copied.items():  # a value replaced, no key added: the iteration goes on
        kind = type(item)
        if kind in _SCALARS:
            continue
        # a spec's containers are mostly empty, or lists of strings: told apart here without a call
        if kind is list:
            copied[key] = _copy_list(item) if item else []
        elif kind is dict:
            copied[key] = _copy_dict(item) if item else {}
        else:
            copied[key] = copy_data(item)
    return copied


CopyPlan = tuple[tuple[Any, ...], tuple[Any, ...]]


def copy_plan(value: dict[Any, Any]) -> CopyPlan:
    """How :func:`copy_at` copies ``value``: the keys of its lists and dicts that hold scalars only (a spec's
    arguments, dependencies, metadata: copied in one step each), then those of its other values that are not
    scalars (copied by :func:`copy_data`)."""
    flat, other = [], []
    for key, item in value.items():
        kind = type(item)
        if kind in _SCALARS:
            continue
        inside = item if kind is list else item.values() if kind is dict else None
        if inside is not None and all(type(each) in _SCALARS for each in inside):
            flat.append(key)
        else:
            other.append(key)
    return tuple(flat), tuple(other)


def copy_at(value: dict[Any, Any], plan: CopyPlan) -> dict[Any, Any]:
    """``copy_data(value)`` for a dict unchanged since ``plan = copy_plan(value)``: only the values the plan names
    are looked at (a spec's 5 of 19), and its containers of scalars are copied without a look inside."""
    copied = dict(value)
    flat, other = plan
    for key in flat:
        copied[key] = copied[key].copy()
    for key in other:
        copied[key] = copy_data(copied[key])
    return copied


def _copy_list(value: list[Any]) -> list[Any]:
    for item in value:
        if type(item) not in _SCALARS:  # a container inside: each item copied as it needs
            return [item if type(item) in _SCALARS else copy_data(item) for item in value]
    return list(value)  # scalars only (a spec's dependencies): copied whole in C


# most values inside task specs: returned as they are without a call, which costs more than this check (about 30% of
# a copy of W3's specs)
_SCALARS = frozenset({str, int, float, bool, type(None)})


# Ids come from a generator of this module's own, seeded from os.urandom (again in a forked child). Not os.urandom
# per id: it lets go of the GIL for its system call, and a thread queueing tasks while runners were busy waited up
# to a switch interval (5 ms) to get it back, a seventh of a SQLite queue_task. Not the random module's shared
# generator either: a user's random.seed(0) would make every process draw the same ids. Ids are not secrets.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_id() -> str:
    """A fresh random id: 32 hex characters (128 random bits)."""
    return f"{_ids.getrandbits(128):032x}"


_ISO_SECONDS: dict[int, str] = {}  # whole seconds already formatted: task timestamps cluster in few seconds
# timestamps recently formatted, by value: a task's metadata repeats half of its six (queued as created, its attempt
# started and finished as the task did)
_ISO_RECENT: dict[float, str] = {}
ISO_CACHE = 4096


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC text (``2026-01-01T00:00:00.250000Z``), or None.

    The same text as ``datetime.fromtimestamp(ts, UTC).isoformat()`` with ``Z``, rounding included, in half the
    time: every task's metadata formats four to six of them.
    """
    if ts is None:
        return None
    text = _ISO_RECENT.get(ts)
    if text is None:
        if len(_ISO_RECENT) >= ISO_CACHE:
            _ISO_RECENT.clear()
        text = _ISO_RECENT[ts] = _format_iso(ts)
    return text


def _format_iso(ts: float) -> str:
    fraction, whole = math.modf(ts)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    text = _ISO_SECONDS.get(seconds)
    if text is None:
        if len(_ISO_SECONDS) >= ISO_CACHE:
            _ISO_SECONDS.clear()
        text = _ISO_SECONDS[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def backoff_delay(
    retry_number: int,
    base_seconds: float,
    factor: float,
    max_seconds: float | None = None,
    jitter: bool = False,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry ``retry_number`` (1-based): base * factor**(n-1), capped, full jitter."""
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    if not base_seconds:  # none, however many retries (factor ** n overflows to inf past a thousand or so)
        return 0.0
    try:
        delay = base_seconds * factor ** (retry_number - 1)
    except OverflowError:
        delay = float("inf")
    if max_seconds is not None:
        delay = min(delay, max_seconds)
    if jitter:
        delay = (rng or random).uniform(0, delay)
    return delay


def resolve_import_path(path: str) -> Any:
    """The object named by ``"package.module:attribute"`` (dots allowed after the colon)."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ImportPathError(f"import path {path!r} must look like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportPathError(
            f"cannot import module {module_name!r} of {path!r} ({exc}): the process that runs it needs the module on "
            "its path (the server's --workflows folder, the folder a worker starts in, or PYTHONPATH)"
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportPathError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return obj


_PATHS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def import_path_of(obj: Any) -> str | None:
    """The import path that finds ``obj`` again in another process, or None (lambdas, closures)."""
    try:
        return _PATHS[obj]
    except (KeyError, TypeError):  # not seen yet, or not weakly referenceable
        pass
    path = _find_import_path(obj)
    if path is not None:  # a miss may be a function not yet bound to its name (a decorator validating it)
        with contextlib.suppress(TypeError):
            _PATHS[obj] = path
    return path


def _find_import_path(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    path = f"{module}:{qualname}"
    try:
        found = resolve_import_path(path)
    except ImportPathError:
        return None
    # a decorator may wrap the function; the found object must lead back to the same code
    if found is obj or getattr(found, "__wrapped__", None) is obj or getattr(found, "func", None) is obj:
        return path
    return None


def callable_identity(func: Callable[..., Any]) -> str:
    """A stable name for ``func``: its import path, or for lambdas and closures a hash of their code and of what they
    hold (defaults, closure cells, a bound method's instance), those by type and id."""
    path = import_path_of(func)
    if path:
        return path
    code = getattr(func, "__code__", None)
    if code is None:  # a callable object (a partial, an instance with __call__): the object itself
        material = _held(func)
    else:
        cells = [_held(_cell_contents(cell)) for cell in getattr(func, "__closure__", None) or ()]
        defaults = [_held(value) for value in getattr(func, "__defaults__", None) or ()]
        kwdefaults = {name: _held(value) for name, value in (getattr(func, "__kwdefaults__", None) or {}).items()}
        held = (_held(getattr(func, "__self__", None)), defaults, kwdefaults, cells)
        material = repr((code.co_code, code.co_consts, code.co_names, held))
    digest = hashlib.sha256(material.encode()).hexdigest()[:16]
    return f"inproc:{getattr(func, '__qualname__', type(func).__name__)}#{digest}"


def _held(value: Any) -> str:
    """An object a function holds: a plain scalar by value (the same in every process: a lambda registered again by
    a new process is the same version), anything else by type and id, never by ``repr`` (a user's may raise, or
    take seconds for a list of millions). What matters is that a function holding other objects is another
    callable: its workflow hashes as a new version. Equal ids are the same object: the function of a stored version,
    kept by the engine, keeps the objects it was hashed with alive."""
    kind = type(value)
    if kind is str or kind is bytes:
        data = value.encode("utf-8", "surrogatepass") if kind is str else value
        return f"{kind.__name__}:{hashlib.sha256(data).hexdigest()}"
    if kind in (type(None), bool, float) or (kind is int and value.bit_length() < 4096):
        return repr(value)
    return f"{kind.__module__}.{kind.__qualname__}@{id(value):x}"


_EMPTY_CELL = object()


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable not assigned yet)
        return _EMPTY_CELL


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # built once: json.dumps builds one per call
_DECODE = json.JSONDecoder().decode


def to_json(value: Any, what: str = "value") -> str:
    """``value`` as JSON text, or a SerializationError that says what could not be stored."""
    # the empty values most fields hold skip the encoder (a store writes several JSON fields per task)
    if value is None:
        return "null"
    if not value and type(value) in (dict, list):
        return "{}" if type(value) is dict else "[]"
    if type(value) is int:  # a common result; the encoder would build a C encoder for it
        return int.__repr__(value)
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} of type {type(value).__name__} is not JSON-serialisable ({exc}); "
            "use plain dicts, lists, strings, numbers, booleans or None"
        ) from exc


def readable_text(text: str) -> str:
    """``text`` with half a surrogate pair (from bytes decoded with surrogateescape) and NUL characters written as
    their escapes, so that it can be stored (PostgreSQL's text takes no NUL) and shown as UTF-8."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()


def _json_nodes(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value inside ``value`` (dict keys too) with how deeply lists and dicts hold it, without recursion."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        yield item, depth
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):  # a tuple is stored as a JSON array
            stack.extend((child, depth + 1) for child in item)


MAX_STORED_DEPTH = 200  # lists and dicts nested in a stored value: responses fail at some 250 (pydantic's limit)


def stored_json(value: Any, what: str) -> str:
    """``to_json(value)``, refusing a value nested deeper than MAX_STORED_DEPTH (a SerializationError): stored, it
    could not be shown again. Only text with that many brackets is walked."""
    text = to_json(value, what)
    if text.count("[") + text.count("{") > MAX_STORED_DEPTH and json_depth(value) > MAX_STORED_DEPTH:
        raise SerializationError(f"{what} nests lists and dicts more than {MAX_STORED_DEPTH} deep: return flatter data")
    return text


def check_params(params: dict[str, Any] | None, what: str) -> None:
    """Raise SerializationError unless a run's ``params`` can be stored and shown again: JSON, nested at most
    MAX_STORED_DEPTH deep, no half of a surrogate pair (each task gets a deep copy, and every page shows them)."""
    text = stored_json(params or {}, what)
    if "\\ud" in text and has_lone_surrogate(params):
        raise SerializationError(f"{what} hold half of a UTF-16 surrogate pair, which no UTF-8 text can: fix the text")


def json_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (0 for a scalar, 1 for ``[1]``)."""
    return max(depth + isinstance(item, dict | list | tuple) for item, depth in _json_nodes(value))


def has_lone_surrogate(value: Any) -> bool:
    """True if a string in ``value`` (JSON-like: dicts, lists, strings) holds half of a UTF-16 surrogate pair, which
    JSON escapes (``"\\ud800"``) can carry but no UTF-8 text can: a database or a JSON response would fail on it."""
    for item, _ in _json_nodes(value):
        if isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
    return False


def from_json(text: str | None) -> Any:
    """The value of JSON text (None stays None)."""
    if text is None or text == "null":
        return None
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return _DECODE(text)


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def split_lines(pending: list[bytes], data: bytes) -> list[bytes]:
    """The lines that ``data`` (read from a pipe) ends, without their newlines. ``pending`` holds what was read since
    the last newline and keeps what ``data`` leaves after its last one: a line read in many chunks is joined once
    (adding each chunk to the ones before copied a 40 MB line 640 times: 23 s)."""
    if b"\n" not in data:
        pending.append(data)
        return []
    first, *lines, rest = data.split(b"\n")
    pending.append(first)
    lines.insert(0, b"".join(pending))
    pending[:] = [rest] if rest else []
    return lines
