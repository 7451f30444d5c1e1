"""`make bench`: run W1-W4 on the memory and SQLite stores (and PostgreSQL when UNIFIED_BENCH_POSTGRES_URL is
set), each in a fresh process, and print a table of medians; JSON goes to benchmarks/results/.

    python benchmarks/run_all.py [--repeat 3] [--only W1,W2] [--stores memory,sqlite] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # name: (function, tasks at scale 1, unit)
    "W1": ("w1_fan_out", 10_000, "tasks/s"),
    "W2": ("w2_chain", 1_000, "ms/step"),
    "W3": ("w3_layered", 2_000, "tasks/s"),
    "W4": ("w4_retries", 1_000, "tasks/s"),
}

CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
from benchmarks import workloads
fn = getattr(workloads, {fn!r})
kwargs = {kwargs!r}
seconds = fn({url!r}, **kwargs)
print(json.dumps({{"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def store_url(store: str, workdir: str, n: int) -> str | None:
    """A fresh store URL of the given kind, or None when it is not configured."""
    if store == "memory":
        return "memory://"
    if store == "sqlite":
        return f"sqlite:///{workdir}/bench-{n}-{time.monotonic_ns()}.db"
    return os.environ.get("UNIFIED_BENCH_POSTGRES_URL")


def measure(name: str, store: str, scale: float, workdir: str) -> dict:
    """Run one workload once in a fresh interpreter; returns seconds and peak RSS."""
    fn, size, _ = WORKLOADS[name]
    n = max(1, int(size * scale))
    kwargs = {"n": n} if name != "W3" else {"layers": max(2, int(20 * scale)), "width": 100}
    url = store_url(store, workdir, n)
    code = CHILD.format(root=str(ROOT), fn=fn, kwargs=kwargs, url=url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "tasks": n if name != "W3" else kwargs["layers"] * 100}


def main() -> int:
    """Run the chosen workloads and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument(
        "--stores", default="memory,sqlite" + (",postgres" if os.environ.get("UNIFIED_BENCH_POSTGRES_URL") else "")
    )
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.only.split(","):
            for store in args.stores.split(","):
                runs = [measure(name, store, args.scale, workdir) for _ in range(args.repeat)]
                seconds = statistics.median(r["seconds"] for r in runs)
                tasks = runs[0]["tasks"]
                unit = WORKLOADS[name][2]
                value = seconds / tasks * 1000 if unit == "ms/step" else tasks / seconds
                rows.append({
                    "workload": name, "store": store, "tasks": tasks, "median_seconds": seconds,
                    "value": value, "unit": unit, "ms_per_task": seconds / tasks * 1000,
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": [r["seconds"] for r in runs],
                })  # fmt: skip
                per_task = seconds / tasks * 1000
                rss = rows[-1]["peak_rss_mb"]
                line = f"{name:<4} {store:<8} {tasks:>7} tasks  {value:>10.1f} {unit:<8} {per_task:>8.3f} ms/task"
                print(f"{line}  peak RSS {rss:.0f} MB", flush=True)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "repeat": args.repeat}  # fmt: skip
    path = results / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"written {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
