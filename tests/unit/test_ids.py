"""Task and run ids: unique per process, whatever the user does with the random module, and again after a fork."""

from __future__ import annotations

import os
import random
import re

from unified.utils import new_id


def test_ids_are_32_hex_characters_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_seeding_the_random_module_does_not_repeat_ids() -> None:
    random.seed(0)
    first = new_id()
    random.seed(0)
    assert new_id() != first


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running the parent's cleanup
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child) and child != new_id()
