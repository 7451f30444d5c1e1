"""copy_data: the memory store's copy of workflow and version specs."""

from __future__ import annotations

from collections import OrderedDict

from unified.utils import copy_at, copy_data, copy_plan


def test_nested_containers_are_copied_and_other_values_shared() -> None:
    marker = object()
    value = {"args": [1, {"seen": {1, 2}}], "pair": (1, [2]), "other": marker}
    copied = copy_data(value)
    assert copied == value
    copied["args"][1]["seen"].add(3)
    copied["pair"][1].append(9)
    copied["args"].append("x")
    assert value == {"args": [1, {"seen": {1, 2}}], "pair": (1, [2]), "other": marker}
    assert copied["other"] is marker, "objects other than containers are shared, as their owner gave them"


def test_subclasses_of_the_containers_are_copied_too() -> None:
    class Items(list):  # type: ignore[type-arg]
        pass

    value = {"ordered": OrderedDict(a=[1]), "items": Items([[2]])}
    copied = copy_data(value)
    copied["ordered"]["a"].append(9)
    copied["items"][0].append(9)
    assert value == {"ordered": OrderedDict(a=[1]), "items": Items([[2]])}


def test_a_copy_by_its_plan_is_the_deep_copy() -> None:
    marker = object()
    value = {"args": [[1]], "kwargs": {"k": 1}, "deps": ["a"], "n": 1, "name": "x", "none": None, "other": marker}
    before = copy_data(value)
    plan = copy_plan(value)
    assert plan == (("kwargs", "deps"), ("args", "other")), "scalars left out, containers of scalars apart"
    copied = copy_at(value, plan)
    assert copied == copy_data(value) == value
    copied["args"][0].append(2)
    copied["kwargs"]["k"] = 2
    copied["deps"].append("b")
    assert value == before
    assert copied["other"] is marker
