"""`make bench-peers`: Dask, huey and Celery run their versions of the workloads beside unified's, with ratios.

    python benchmarks/peers.py --peers-python .peers-venv/bin/python [--repeat 1] [--scale 1.0]

Pairs (same workload, the closest setting of each): Dask's threaded scheduler (2 threads, in memory) against unified's
memory store for W1-W3; huey on SQLite and Celery on Redis, each with 2 worker processes, against unified on SQLite
(W5: 2 ``unified worker`` processes) for W5 and W4 (unified's W4 runs in one process with 2 runner threads). Every
figure is timed from the first queue call to the last result; worker start-up is excluded. A ratio above 1 means
unified is faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run_all import WORKLOADS, measure  # noqa: E402

PAIRS = [  # (workload, peer, unified's store)
    ("W1", "dask", "memory"),
    ("W2", "dask", "memory"),
    ("W3", "dask", "memory"),
    ("W5", "huey", "sqlite"),
    ("W4", "huey", "sqlite"),
    ("W5", "celery", "sqlite"),
    ("W4", "celery", "sqlite"),
]
PEER = "from benchmarks.peer_workloads import main; main()"


def peer_seconds(python: str, system: str, workload: str, n: int) -> float:
    """One run of ``workload`` on ``system`` in the scratch venv's interpreter."""
    out = subprocess.run([python, "-c", PEER, system, workload, str(n)], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, check=True)  # fmt: skip
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def figure(workload: str, seconds: float, tasks: int) -> tuple[float, str]:
    """The workload's headline figure: ms/step for W2, tasks/s otherwise."""
    return (seconds / tasks * 1000, "ms/step") if workload == "W2" else (tasks / seconds, "tasks/s")


def main() -> None:
    """Run each pair and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers-python", required=True, help="python of a venv with dask, huey and celery[redis]")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    code = "import dask, huey, celery; print(dask.__version__, huey.__version__, celery.__version__)"
    versions = subprocess.run([args.peers_python, "-c", code], capture_output=True, text=True, check=True)
    dask_v, huey_v, celery_v = versions.stdout.split()
    print(f"Dask {dask_v}, huey {huey_v}, Celery {celery_v}; medians of {args.repeat}\n")
    print("| workload | peer | peer figure | unified (store) | unified figure | unified / peer |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as workdir:
        for workload, system, store in PAIRS:
            n = max(100, int(WORKLOADS[workload][1] * args.scale))
            peer = statistics.median(peer_seconds(args.peers_python, system, workload, n) for _ in range(args.repeat))
            ours = [measure(workload, store, n, workdir) for _ in range(args.repeat)]
            mine = statistics.median(r["seconds"] for r in ours)
            peer_value, unit = figure(workload, peer, n)
            our_value, _ = figure(workload, mine, ours[0]["tasks"])
            ratio = peer_value / our_value if unit == "ms/step" else our_value / peer_value
            print(f"| {workload} | {system} | {peer_value:,.2f} {unit} | {store} | {our_value:,.2f} {unit} | "
                  f"{ratio:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
