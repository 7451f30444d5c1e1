"""How fast this machine is right now, measured beside the benchmarks so their figures can be compared across machines.

The virtual machines these benchmarks run on change speed from one day (or hour) to the next: the same code has
measured 2-3x apart. Three probes say which resource moved, each taking well under a second:

- ``python_loop_ns``: one iteration of a plain Python ``for`` loop adding integers (the CPU, as CPython sees it);
- ``fsync_ms``: an ``os.write`` of 4 KiB plus ``os.fsync`` in the benchmark's temporary directory (the disk's sync,
  which every durable SQLite commit waits for);
- ``postgres_round_trip_us``: ``SELECT 1`` on an open autocommit connection (the network and server turn-around that
  every PostgreSQL statement pays), when a PostgreSQL URL is given.

Each probe reports the median of several runs.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

LOOP = 1_000_000


def python_loop_ns(repeat: int = 5) -> float:
    """Nanoseconds per iteration of ``for i in range(n): total += i``."""
    runs = []
    for _ in range(repeat):
        total, start = 0, time.perf_counter()
        for i in range(LOOP):
            total += i
        runs.append((time.perf_counter() - start) / LOOP * 1e9)
    return statistics.median(runs)


def fsync_ms(directory: str, repeat: int = 50) -> float:
    """Milliseconds for one 4 KiB write plus fsync of a file in ``directory``."""
    path = Path(directory) / f"calibrate-{os.getpid()}.bin"
    block = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            runs.append((time.perf_counter() - start) * 1e3)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(runs)


def postgres_round_trip_us(url: str, repeat: int = 200) -> float:
    """Microseconds for ``SELECT 1`` on an open autocommit psycopg connection to ``url``."""
    import psycopg  # only when PostgreSQL is benchmarked

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            conn.execute("SELECT 1")
            runs.append((time.perf_counter() - start) * 1e6)
    return statistics.median(runs)


def machine_speed(directory: str, postgres_url: str | None) -> dict[str, float]:
    """All the probes that apply, by name."""
    speed = {"python_loop_ns": python_loop_ns(), "fsync_ms": fsync_ms(directory)}
    if postgres_url:
        speed["postgres_round_trip_us"] = postgres_round_trip_us(postgres_url)
    return speed


def describe(speed: dict[str, float]) -> str:
    """One line for the benchmark's header."""
    parts = [f"Python loop {speed['python_loop_ns']:.0f} ns/iteration", f"fsync {speed['fsync_ms']:.2f} ms"]
    if "postgres_round_trip_us" in speed:
        parts.append(f"PostgreSQL SELECT 1 {speed['postgres_round_trip_us']:.0f} us")
    return "machine speed now: " + ", ".join(parts)
