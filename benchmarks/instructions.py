"""`make bench-instructions BASE=<git ref>`: the CPU instructions one task (or chain step) of a workload costs, with
this checkout's code and BASE's, counted by valgrind.

Wall and CPU times of the same code spread 25-70% within minutes on these hosts (docs/performance.md), so a change
of a few percent cannot be seen in them. The number of instructions the interpreter executes hardly moves: each run
counts a whole process under valgrind's callgrind (``--fair-sched=yes``: its threads take turns fairly), at two sizes
of the workload, and one unit's cost is the difference divided by the difference in size, which leaves out start-up,
imports and store creation. Seen here: 1-3% between runs of the same code on the memory store (scheduling still
changes how outcomes batch), against 25-70% for wall times. Instructions are not time: a change that trades
instructions for waiting (locks, syncs, thread hand-overs) must still be timed with `make bench-compare`. About
50 times slower than a plain run; needs ``valgrind`` on the PATH.

    python benchmarks/instructions.py [BASE] [--workload W1] [--store memory] [--sizes 500,2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.compare import checked_out, describe_checkout, git  # noqa: E402
from benchmarks.run_all import CHILD, WORKLOADS, store_url  # noqa: E402

VALGRIND = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--callgrind-out-file=/dev/null"]
COLLECTED = re.compile(r"Collected : (\d+)")
DEFAULT_SIZES = {"W1": (500, 2_000), "W2": (300, 800), "W3": (300, 800), "W4": (200, 700)}


def instructions(root: Path, workload: str, store: str, n: int, workdir: str) -> int:
    """Instructions of one whole process that runs ``workload`` with ``n`` tasks on the code at ``root``."""
    kwargs = {"layers": n // 100, "width": 100} if workload == "W3" else {"n": n}
    code = CHILD.format(root=str(root), fn=WORKLOADS[workload][0], kwargs=kwargs, url=store_url(store, workdir))
    done = subprocess.run([*VALGRIND, sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"the run under valgrind failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_unit(root: Path, workload: str, store: str, sizes: tuple[int, int], workdir: str) -> float:
    """One task's (or step's) instructions: the two sizes' difference over their difference in tasks."""
    small, big = (instructions(root, workload, store, n, workdir) for n in sizes)
    return (big - small) / (sizes[1] - sizes[0])


def main() -> int:
    """Count instructions per unit of the chosen workload for this checkout, and for BASE when given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", help="a git ref to compare this checkout's code against")
    parser.add_argument("--workload", default="W1", choices=sorted(DEFAULT_SIZES))
    parser.add_argument("--store", default="memory", choices=["memory", "sqlite"])
    parser.add_argument("--sizes", help="the two sizes run, in tasks (W3: a multiple of 100), e.g. 500,2000")
    parser.add_argument("--runs", type=int, default=3, help="pairs of sizes per side")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else DEFAULT_SIZES[args.workload]
    if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
        parser.error("--sizes takes two sizes, the smaller first, e.g. 500,2000")
    unit = "step" if args.workload == "W2" else "task"
    print(f"{args.workload} on {args.store}: instructions per {unit}, from runs of {sizes[0]:,} and {sizes[1]:,}")
    with tempfile.TemporaryDirectory() as workdir:
        sides = {f"this checkout ({describe_checkout()})": ROOT}
        if args.base is None:
            counts = {label: [per_unit(root, args.workload, args.store, sizes, workdir) for _ in range(args.runs)]
                      for label, root in sides.items()}  # fmt: skip
        else:
            with checked_out(git("rev-parse", "--short", args.base), workdir) as tree:
                sides = {f"base {git('rev-parse', '--short', args.base)}": tree, **sides}
                counts = {label: [] for label in sides}
                for turn in range(args.runs):  # taking turns, as compare.py does
                    for label in list(sides) if turn % 2 == 0 else list(sides)[::-1]:
                        counts[label].append(per_unit(sides[label], args.workload, args.store, sizes, workdir))
    for label, values in counts.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{label}: median {statistics.median(values):,.0f} ({shown})")
    if len(counts) == 2:
        (_, old), (_, new) = counts.items()
        print(f"median instructions, this checkout / base: {statistics.median(new) / statistics.median(old):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
