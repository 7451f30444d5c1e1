"""`make bench-compare`: a workload with this checkout's code against a git ref's, each side in its own processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to take the base from")
def test_compare_runs_both_sides_in_turns_and_leaves_no_worktree_behind() -> None:
    before = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    args = ["HEAD", "--workload", "W2", "--store", "memory", "--runs", "2", "--scale", "0.02"]
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "W2 on memory, 20 tasks, 2 runs per side, alternated" in out
    rows = [line for line in out.splitlines() if line.startswith(("| base ", "| this checkout"))]
    assert rows[0].startswith(f"| base {head.strip()} |") and rows[1].startswith(f"| this checkout ({head.strip()}")
    assert all(len(row.split(" | ")) == 6 and float(row.split(" | ")[3]) > 0 for row in rows), rows
    assert "median time, this checkout / base:" in out
    cpu = [line for line in out.splitlines() if line.startswith("median process CPU, this checkout / base: ")]
    assert len(cpu) == 1 and float(cpu[0].rsplit(" ", 1)[1]) > 0, out
    after = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert after == before, "the base's worktree is removed"
