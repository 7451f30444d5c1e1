"""A real ``unified server`` process for acceptance tests: a free port, a temp SQLite file, the admin key it prints."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
KEY_LINE = re.compile(r"admin API key \(shown once, keep it\): (\S+)")
START_SECONDS = 30


@dataclass
class RunningServer:
    """A server process, its base URL and the admin key it printed."""

    process: subprocess.Popen[str]
    url: str
    admin_key: str
    output: list[str]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command() -> list[str]:
    """The `unified` console script next to this Python, else the module form."""
    script = Path(sys.executable).parent / "unified"
    return [str(script)] if script.exists() else [sys.executable, "-m", "unified.ui.ui"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ``UNIFIED_*`` settings, with the checkout importable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIFIED_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _wait_for_key(process: subprocess.Popen[str], output: list[str], deadline: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    while time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        output.append(line)
        if match := KEY_LINE.search(line):
            return match.group(1)
    raise AssertionError("the server printed no admin key in time:\n" + "".join(output))


def _wait_for_health(url: str, output: list[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("/health did not answer in time:\n" + "".join(output))


@contextmanager
def running_server(folder: Path, workflows: Path | None = None, workers: int = 2) -> Iterator[RunningServer]:
    """Start ``unified server`` on a free port with its SQLite file in ``folder``; stop it with SIGINT after."""
    port = free_port()
    args = [*command(), "server", "--port", str(port), "--db", f"sqlite:///{folder / 'unified.db'}"]
    args += ["--workers", str(workers), *(["--workflows", str(workflows)] if workflows else [])]
    process = subprocess.Popen(
        args, cwd=folder, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    deadline = time.monotonic() + START_SECONDS
    try:
        key = _wait_for_key(process, output, deadline)
        url = f"http://127.0.0.1:{port}"
        _wait_for_health(url, output, deadline)
        yield RunningServer(process, url, key, output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()  # type: ignore[union-attr]
