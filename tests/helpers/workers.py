"""Worker processes for the multi-process tests: start them on a store URL, kill them, stop them, read their logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import json, sys
from unified.logger import configure_logging
from unified.service import run_worker
configure_logging("info")  # start and stop lines (Fleet.wait_ready reads them); per-task lines are DEBUG
run_worker(sys.argv[1], **json.loads(sys.argv[2]))
"""
FAST_LEASES = {"lease_seconds": 1.0, "heartbeat_seconds": 0.2}


def wait_until(done: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``done()`` until it returns something truthy (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if value := done():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(every)


class Fleet:
    """Worker processes (``unified.service.run_worker``) on one store URL; their stderr goes to files in ``logs``."""

    def __init__(self, url: str, logs: Path, **options: Any) -> None:
        self.url = url
        self.logs = logs
        self.options = options
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, **options: Any) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` more workers with the fleet's options updated by ``options``."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = []
        for _ in range(count):
            log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 - the child owns it
            args = [sys.executable, "-c", WORKER, self.url, json.dumps({**self.options, **options})]
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            self.procs.append(proc)
            started.append(proc)
        return started

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every worker started so far has opened the store and serves its queues."""
        logs = [self.logs / f"worker-{n}.log" for n in range(len(self.procs))]
        wait_until(lambda: all("serves" in path.read_text(errors="replace") for path in logs), timeout, "workers ready")

    def alive(self) -> list[subprocess.Popen[bytes]]:
        """The workers still running."""
        return [p for p in self.procs if p.poll() is None]

    def kill(self, pid: int) -> None:
        """kill -9 the worker with this pid and reap it."""
        proc = next(p for p in self.procs if p.pid == pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self, timeout: float = 15.0) -> list[int | None]:
        """SIGTERM every live worker and wait for it; returns the exit codes (None: had to be killed)."""
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                codes.append(None)
        return codes

    def output(self) -> str:
        """Everything the workers wrote, for failure messages."""
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("worker-*.log")))
