"""`make bench-compare BASE=<git ref>`: one workload with this checkout's code against BASE's, in alternated runs.

The same code measures 15-40% apart within an hour on one of these hosts, and up to 2x apart on different days'
(docs/performance.md), so only runs taken in turns on one host compare code. This checks BASE out into a temporary
git worktree and runs the workload ``--runs`` times for each side, each run in a fresh process with that side's code
(the same interpreter and installed libraries), alternating which side goes first; then it prints each side's
minimum, quartiles and median, the ratio of the medians, and the ratio of the runs' median process CPU (less
disturbed by a busy host than the wall time; it counts the workload's setup and every thread).

    python benchmarks/compare.py BASE [--workload W2] [--store memory] [--runs 8] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import calibrate  # noqa: E402
from benchmarks.run_all import WORKLOADS, measure  # noqa: E402


def git(*args: str) -> str:
    """The output of a git command run in this checkout."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def checked_out(ref: str, workdir: str) -> Iterator[Path]:
    """A temporary git worktree of ``ref`` inside ``workdir``, removed when the block ends."""
    tree = Path(workdir) / "base"
    git("worktree", "add", "--detach", str(tree), ref)
    try:
        yield tree
    finally:
        git("worktree", "remove", "--force", str(tree))


def describe_checkout() -> str:
    """This checkout's short commit, with ``+ uncommitted changes`` when tracked files differ from it."""
    changed = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{git('rev-parse', '--short', 'HEAD')}{changed}"


def alternated(
    sides: dict[str, Path], name: str, store: str, n: int, runs: int, workdir: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds and process CPU seconds (empty for W5) of ``runs`` runs per side, the sides taking turns at going
    first."""
    seconds: dict[str, list[float]] = {label: [] for label in sides}
    cpu: dict[str, list[float]] = {label: [] for label in sides}
    order = list(sides)
    for turn in range(runs):
        for label in order if turn % 2 == 0 else order[::-1]:
            result = measure(name, store, n, workdir, sides[label])
            seconds[label].append(result["seconds"])
            if "cpu_seconds" in result:
                cpu[label].append(result["cpu_seconds"])
            print(".", end="", flush=True)
    print()
    return seconds, cpu


def summary(label: str, seconds: list[float], tasks: int, unit: str) -> str:
    """One table line: the side's minimum, quartiles, median and maximum in the workload's unit."""
    ordered = sorted(seconds)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    points = [ordered[0], quartiles[0], quartiles[1], quartiles[2], ordered[-1]]
    # ms/step grows with the seconds, tasks/s falls: either way the columns read from the best run to the worst
    shown = [f"{s / tasks * 1000:.3f}" if unit == "ms/step" else f"{tasks / s:,.0f}" for s in points]
    return f"| {label} | " + " | ".join(shown) + " |"


def main() -> int:
    """Compare the chosen workload's figures between BASE and this checkout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="a git ref (commit, branch, tag) to compare this checkout's code against")
    parser.add_argument("--workload", default="W2", choices=list(WORKLOADS))
    parser.add_argument("--store", default="memory", choices=["memory", "sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=8, help="runs per side")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the workload's size")
    args = parser.parse_args()
    if args.store == "postgres" and not os.environ.get("UNIFIED_BENCH_POSTGRES_URL"):
        parser.error("--store postgres needs UNIFIED_BENCH_POSTGRES_URL")
    if args.store == "memory" and args.workload in ("W5", "W5b"):
        parser.error(f"{args.workload} needs a store that processes share: --store sqlite or postgres")
    base = git("rev-parse", "--short", args.base)
    here = describe_checkout()
    tasks = max(1, int(WORKLOADS[args.workload][1] * args.scale))
    if args.workload == "W3":
        tasks = max(2, tasks // 100) * 100  # whole layers of 100, as run_all measures it
    unit = WORKLOADS[args.workload][2]
    with tempfile.TemporaryDirectory() as workdir, checked_out(base, workdir) as tree:
        print(calibrate.describe(calibrate.machine_speed(workdir, None)))
        print(f"{args.workload} on {args.store}, {tasks:,} tasks, {args.runs} runs per side, alternated")
        sides = {f"base {base}": tree, f"this checkout ({here})": ROOT}
        seconds, cpu = alternated(sides, args.workload, args.store, tasks, args.runs, workdir)
    print(f"\n| code | best | 25% | median | 75% | worst ({unit}) |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, values in seconds.items():
        print(summary(label, values, tasks, unit))
    (_, old), (_, new) = seconds.items()
    ratio = statistics.median(new) / statistics.median(old)
    spread = max(old) / min(old) - 1
    verdict = f"{abs(1 - ratio) * 100:.1f}% {'faster' if ratio <= 1 else 'slower'}"
    print(
        f"\nmedian time, this checkout / base: {ratio:.3f} ({verdict}); the base's own runs spread {spread * 100:.0f}%:"
    )
    print("a difference well inside that spread is noise")
    (_, old_cpu), (_, new_cpu) = cpu.items()
    if old_cpu and new_cpu:  # less disturbed by a busy host than the wall time, but setup and idle threads count
        cpu_ratio = statistics.median(new_cpu) / statistics.median(old_cpu)
        print(f"median process CPU, this checkout / base: {cpu_ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
