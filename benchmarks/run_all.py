"""`make bench`: W1-W5 on the memory and SQLite stores (and PostgreSQL when UNIFIED_BENCH_POSTGRES_URL is set), each
run in a fresh process, medians of ``--repeat`` runs; then start-up, queue-to-start latency and W1 at 1,000 / 10,000 /
100,000 tasks. Prints tables and writes JSON to benchmarks/results/.

    python benchmarks/run_all.py [--repeat 3] [--only W1,W1b,W1c,W2,W3,W4,W5,W5b,extra] [--stores memory,sqlite]
        [--scale 1.0]

W1b and W5b are W1 and W5 with the bulk APIs: the producer queues inside ``TaskManager.batch()`` (one commit per
batch) and W1b waits with ``wait_all``. W1c is W1 queued by 8 threads at once, as concurrent API requests would,
each ``queue_task`` acknowledged after its own commit.

Every figure is timed from the first queue call to the moment the last result is known: process start, imports and
store creation are excluded (W5 starts its worker processes before the clock).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import calibrate, startup  # noqa: E402
from benchmarks.postgres_workers import fresh_schema  # noqa: E402

WORKLOADS = {  # name: (function, tasks at scale 1, unit)
    "W1": ("w1_fan_out", 10_000, "tasks/s"),
    "W1b": ("w1_batched", 10_000, "tasks/s"),  # W1 queued in one TaskManager.batch() and awaited with wait_all
    "W1c": ("w1_concurrent", 10_000, "tasks/s"),  # W1 queued by 8 threads at once, each call its own commit
    "W2": ("w2_chain", 1_000, "ms/step"),
    "W3": ("w3_layered", 2_000, "tasks/s"),
    "W4": ("w4_retries", 1_000, "tasks/s"),
    "W5": ("", 10_000, "tasks/s"),
    "W5b": ("", 10_000, "tasks/s"),  # W5 with the producer queueing 500 tasks per TaskManager.batch()
}
LINEARITY = {"memory": (1_000, 10_000, 100_000), "sqlite": (1_000, 10_000)}  # W1 sizes (SQLite 100,000: --full)


def peak_rss_mb() -> float:
    """This process's peak resident set in MB. Linux's ``VmHWM`` starts afresh at exec, where ``ru_maxrss`` keeps the
    forking parent's peak: a benchmark's child would report run_all.py's own size whenever that was the larger."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# run with the code of any checkout (compare.py runs its base's too), so it brings its own peak_rss_mb
CHILD = (
    "import json, resource, sys, time\n"
    + inspect.getsource(peak_rss_mb)
    + """
sys.path.insert(0, {root!r})
from benchmarks import workloads
cpu = time.process_time()
value = getattr(workloads, {fn!r})({url!r}, **{kwargs!r})
cpu = time.process_time() - cpu
print(json.dumps({{"value": value, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}}))
"""
)


def store_url(store: str, workdir: str) -> str | None:
    """A fresh store URL of the given kind, or None when it is not configured."""
    if store == "memory":
        return "memory://"
    if store == "sqlite":
        return f"sqlite:///{workdir}/bench-{time.monotonic_ns()}.db"
    return os.environ.get("UNIFIED_BENCH_POSTGRES_URL")


def child(fn: str, url: str, kwargs: dict, root: Path = ROOT) -> dict:
    """Call ``benchmarks.workloads.<fn>(url, **kwargs)`` in a fresh interpreter, with the code of the checkout at
    ``root``; its value, the process's CPU seconds during the call (setup and every thread included) and peak RSS."""
    code = CHILD.format(root=str(root), fn=fn, kwargs=kwargs, url=url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, store: str, n: int, workdir: str, root: Path = ROOT) -> dict:
    """Run one workload once in a fresh process (the code of the checkout at ``root``); returns seconds, tasks, peak
    RSS and, except for W5 (several processes), the process's CPU seconds."""
    url = store_url(store, workdir)
    if name in ("W5", "W5b"):
        cmd = [sys.executable, str(root / "benchmarks" / "w5_workers.py"), "--url", url, "--tasks", str(n)]
        cmd += ["--batch", "500"] if name == "W5b" else []
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    layers = max(2, n // 100)
    kwargs = {"layers": layers, "width": 100} if name == "W3" else {"n": n}
    if store == "postgres":  # an empty schema per run, like SQLite's new file (rows of earlier runs slow it down)
        with fresh_schema(url) as schema_url:
            result = child(WORKLOADS[name][0], schema_url, kwargs, root)
    else:
        result = child(WORKLOADS[name][0], url, kwargs, root)
    tasks = layers * 100 if name == "W3" else n
    return {"seconds": result["value"], "tasks": tasks, "peak_rss_mb": result["peak_rss_mb"],
            "cpu_seconds": result["cpu_seconds"]}  # fmt: skip


def row(name: str, store: str, n: int, repeat: int, workdir: str) -> dict:
    """The median of ``repeat`` runs of one workload on one store, printed as a table line. Its last column is the
    Python loop probe taken just before the runs: these hosts change speed within minutes, so each row says how fast
    the host was when it ran (see calibrate.py)."""
    loop_ns = calibrate.python_loop_ns(repeat=3)
    runs = [measure(name, store, n, workdir) for _ in range(repeat)]
    seconds = statistics.median(r["seconds"] for r in runs)
    tasks = runs[0]["tasks"]
    unit = WORKLOADS[name][2]
    value = seconds / tasks * 1000 if unit == "ms/step" else tasks / seconds
    rss = max(r["peak_rss_mb"] for r in runs)
    print(f"| {name} | {store} | {tasks:,} | {value:,.{2 if unit == 'ms/step' else 0}f} {unit} | "
          f"{seconds / tasks * 1000:.3f} | {rss:.0f} | {loop_ns:.0f} |", flush=True)  # fmt: skip
    return {"workload": name, "store": store, "tasks": tasks, "median_seconds": seconds, "value": value, "unit": unit,
            "ms_per_task": seconds / tasks * 1000, "peak_rss_mb": rss, "loop_ns": loop_ns,
            "runs": [r["seconds"] for r in runs]}  # fmt: skip


def extras(stores: list[str], repeat: int, full: bool, workdir: str) -> dict:
    """Start-up times, queue-to-start latency p50 and W1 at growing sizes (linearity)."""
    found: dict = {}
    startup.warm_up()
    imports = statistics.median(startup.import_seconds() for _ in range(repeat))
    health = statistics.median(startup.server_health_seconds() for _ in range(repeat))
    print(f"\n`import unified.task_manager`: {imports * 1000:.0f} ms; `unified server` answers /health after "
          f"{health:.2f} s (medians of {repeat})")  # fmt: skip
    found.update(import_seconds=imports, server_health_seconds=health)
    for store in [s for s in stores if s in ("memory", "sqlite")]:
        samples = child("queue_to_start", store_url(store, workdir), {"samples": 200})["value"]
        p50 = statistics.median(samples)
        p99 = sorted(samples)[int(len(samples) * 0.99) - 1]
        print(f"queue-to-start latency, {store}, one task at a time on an idle engine (200 samples): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")  # fmt: skip
        found[f"latency_{store}_ms"] = {"p50": p50, "p99": p99}
    print("\nW1 against N (linearity):\n\n| store | N | tasks/s | ms/task | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    found["linearity"] = []
    for store, sizes in LINEARITY.items():
        if store not in stores:
            continue
        for n in sizes + ((100_000,) if full and store == "sqlite" else ()):
            runs = [measure("W1", store, n, workdir) for _ in range(repeat if n <= 10_000 else 1)]
            seconds = statistics.median(r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            print(f"| {store} | {n:,} | {n / seconds:,.0f} | {seconds / n * 1000:.3f} | {rss:.0f} |", flush=True)
            found["linearity"].append({"store": store, "tasks": n, "tasks_per_s": n / seconds, "peak_rss_mb": rss,
                                       "runs": len(runs)})  # fmt: skip
    return found


def main() -> int:
    """Run the chosen workloads and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join([*WORKLOADS, "extra"]))
    postgres = ",postgres" if os.environ.get("UNIFIED_BENCH_POSTGRES_URL") else ""
    parser.add_argument("--stores", default="memory,sqlite" + postgres)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every workload's size")
    parser.add_argument("--full", action="store_true", help="also W1 at 100,000 tasks on SQLite (several minutes)")
    args = parser.parse_args()
    stores = args.stores.split(",")
    print(
        f"{platform.python_version()}, {os.cpu_count()} CPUs; medians of {args.repeat} runs, each in a fresh "
        "process; timed from the first queue call to the last result (process start and imports excluded)\n"
    )
    rows, found = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        postgres_url = os.environ.get("UNIFIED_BENCH_POSTGRES_URL") if "postgres" in stores else None
        speed = calibrate.machine_speed(workdir, postgres_url)
        print(calibrate.describe(speed) + "\n")
        print("| workload | store | tasks | median | ms/task | peak RSS MB | loop ns |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for name in [w for w in args.only.split(",") if w in WORKLOADS]:
            for store in stores:
                if name in ("W5", "W5b") and store == "memory":
                    continue  # a memory store cannot be shared by processes
                rows.append(row(name, store, max(1, int(WORKLOADS[name][1] * args.scale)), args.repeat, workdir))
        if "extra" in args.only.split(","):
            found = extras(stores, args.repeat, args.full, workdir)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "repeat": args.repeat, "speed": speed}  # fmt: skip
    path = results / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows, **found}, indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
