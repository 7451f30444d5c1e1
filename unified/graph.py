"""Task graphs: validation (duplicates, unknown dependencies, cycles), topological order and the version hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from unified.errors import CycleError, DuplicateTaskError, UnknownDependencyError


def validate_graph(
    dependencies: Mapping[str, Iterable[str]], existing: Iterable[str] = (), scope: str = "the workflow"
) -> list[str]:
    """Check a graph of task id -> dependency ids and return its ids in topological order.

    ``existing`` names tasks already in the scope that new tasks may depend on (they are not re-checked).
    Raises UnknownDependencyError for a dependency that names nothing, CycleError naming the cycle.
    """
    known = existing if isinstance(existing, AbstractSet) else set(existing)
    graph = {task_id: tuple(deps) for task_id, deps in dependencies.items()}
    # Kahn's algorithm: a task joins the order once every dependency it has inside the graph has joined it
    waiting: dict[str, int] = {}
    dependants: dict[str, list[str]] = {}
    order: list[str] = []
    for task_id, deps in graph.items():
        inside = 0
        for dep in deps:
            if dep in graph:
                inside += 1
                dependants.setdefault(dep, []).append(task_id)
            elif dep not in known:
                raise UnknownDependencyError(
                    f"task {task_id!r} depends on {dep!r}, which is not in {scope}: add {dep!r} first or fix the name"
                )
        if inside:
            waiting[task_id] = inside
        else:
            order.append(task_id)
    for task_id in order:  # grows while it is read: each released task is appended
        for child in dependants.get(task_id, ()):
            waiting[child] -= 1
            if not waiting[child]:
                order.append(child)
    if len(order) < len(graph):
        raise CycleError(_a_cycle(graph, graph.keys() - set(order)))
    return order


def _a_cycle(graph: Mapping[str, tuple[str, ...]], stuck: set[str]) -> list[str]:
    """One cycle among ``stuck``, the tasks a topological order could not reach, each listed before its dependency.

    Every stuck task waits on another stuck one, so following those dependencies from any of them must come back
    to a task already passed: the tasks from there on are the cycle.
    """
    path: list[str] = []
    seen: dict[str, int] = {}
    node = next(t for t in graph if t in stuck)  # the first in the caller's order, so the message is stable
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in graph[node] if d in stuck)
    return path[seen[node] :]


def check_new_tasks(new: Mapping[str, Iterable[str]], existing: AbstractSet[str], scope: str) -> list[str]:
    """Validate adding ``new`` tasks (ids -> dependencies) to a scope that already holds the ids ``existing``;
    returns the new ids in topological order.

    The existing tasks were checked when they were added (each depends only on tasks added before it), so none of
    them can depend on a new task and a cycle must run through new tasks only: those are all that is walked, which
    keeps building a workflow task by task linear instead of quadratic.
    """
    for task_id in new:
        if task_id in existing:
            raise DuplicateTaskError(f"task id {task_id!r} is already used in {scope}: choose another task_id")
    return validate_graph(new, existing=existing, scope=scope)


_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)  # json.dumps(sort_keys=True, default=str), built once


def graph_hash(specs: Iterable[Mapping[str, Any]]) -> str:
    """A content hash of task specs that ignores their order: equal graphs hash equal."""
    # "ref" names a callable object of this process only; the content identity is in "func"
    encode = _CANONICAL.encode
    canonical = sorted(encode({k: v for k, v in spec.items() if k != "ref"}) for spec in specs)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()
