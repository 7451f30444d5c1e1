"""Task graphs: validation (duplicates, unknown dependencies, cycles), topological order and the version hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, KeysView, Mapping
from typing import Any

from unified.errors import CycleError, DuplicateTaskError, UnknownDependencyError


def validate_graph(
    dependencies: Mapping[str, Iterable[str]], existing: Iterable[str] = (), scope: str = "the workflow"
) -> list[str]:
    """Check a graph of task id -> dependency ids and return its ids in topological order.

    ``existing`` names tasks already in the scope that new tasks may depend on (they are not re-checked).
    Raises UnknownDependencyError for a dependency that names nothing, CycleError naming the cycle.
    """
    known = existing if isinstance(existing, (set, frozenset, KeysView)) else set(existing)
    graph = {task_id: list(deps) for task_id, deps in dependencies.items()}
    for task_id, deps in graph.items():
        for dep in deps:
            if dep not in graph and dep not in known:
                raise UnknownDependencyError(
                    f"task {task_id!r} depends on {dep!r}, which is not in {scope}: add {dep!r} first or fix the name"
                )
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            deps = [d for d in graph[node] if d in graph]
            if index < len(deps):
                stack.append((node, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    raise CycleError(path[path.index(dep) :])
                if not state.get(dep):
                    stack.append((dep, 0))
                continue
            state[node] = 2
            path.pop()
            order.append(node)
    return order


def check_new_tasks(new: Mapping[str, Iterable[str]], existing: Mapping[str, Iterable[str]], scope: str) -> None:
    """Validate adding ``new`` tasks to a scope that already holds ``existing`` (ids -> dependencies).

    ``existing`` was checked when its tasks were added (each depends only on tasks added before it), so none of
    them can depend on a new task and a cycle must run through new tasks only: those are all that is walked, which
    keeps building a workflow task by task linear instead of quadratic.
    """
    for task_id in new:
        if task_id in existing:
            raise DuplicateTaskError(f"task id {task_id!r} is already used in {scope}: choose another task_id")
    validate_graph(new, existing=existing.keys(), scope=scope)


_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)  # json.dumps(sort_keys=True, default=str), built once


def graph_hash(specs: Iterable[Mapping[str, Any]]) -> str:
    """A content hash of task specs that ignores their order: equal graphs hash equal."""
    # "ref" names a callable object of this process only; the content identity is in "func"
    encode = _CANONICAL.encode
    canonical = sorted(encode({k: v for k, v in spec.items() if k != "ref"}) for spec in specs)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()
