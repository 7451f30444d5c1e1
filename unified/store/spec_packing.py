"""How the SQL store writes task specs: without the options a task leaves at their defaults.

``Task.spec()`` names every option, and most tasks leave most of them at their defaults: W3's specs are 381 bytes of
JSON whole and 103 without them, and every task's spec is encoded when it is queued, decoded when it is claimed, and
written again into each workflow version. So a spec that names every option is written without those equal to the
default (same value and type) and with a mark, and filled in from :func:`spec_template` when it is
read. A spec missing some option, and every row written before this, carries no mark and is read as it was written;
either way a spec reads back equal to the one stored.
"""

from __future__ import annotations

from typing import Any


def spec_template() -> dict[str, Any]:
    """Every key of :meth:`Task.spec`, in its order, at the value a Task has when the option is not given (``task_id``,
    ``name``, ``func`` and ``dependencies`` as None); new lists and dicts on every call, which a caller may change."""
    return {
        "task_id": None,
        "name": None,
        "func": None,
        "command": None,
        "args": [],
        "kwargs": {},
        "dependencies": None,
        "timeout": None,
        "max_retries": 0,
        "retry_delay_seconds": 0,
        "backoff_factor": 2.0,
        "max_retry_delay_seconds": None,
        "jitter": False,
        "retry_on": ["builtins:Exception"],
        "priority": 0,
        "metadata": {},
        "isolation": "thread",
        "queue": "default",
        "sla_seconds": None,
    }


MARK = "~defaults"  # not a key of Task.spec(); its value (1) names the defaults left out, should they ever change
_TEMPLATE = spec_template()
_KEYS = _TEMPLATE.keys()


def pack(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as it is written: a full spec without its default values, marked; any other as it is."""
    if not spec.keys() >= _KEYS:
        return spec
    template = _TEMPLATE
    packed = {
        key: value
        for key, value in spec.items()
        if key not in template or value != (default := template[key]) or type(value) is not type(default)
    }
    packed[MARK] = 1
    return packed


def unpack(stored: dict[str, Any]) -> dict[str, Any]:
    """The spec that :func:`pack` wrote as ``stored`` (decoded JSON, which this may change)."""
    if stored.pop(MARK, None) is None:
        return stored
    spec = spec_template()
    spec.update(stored)
    return spec


def pack_all(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A workflow's or version's list of specs as it is written."""
    return [pack(spec) for spec in specs]


def unpack_all(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The list of specs that :func:`pack_all` wrote."""
    return [unpack(spec) for spec in stored]
