"""Start-up figures: ``import unified.task_manager`` in a fresh interpreter, and ``unified server`` answering
``/health`` after its process starts. Each prints seconds; ``python benchmarks/startup.py`` prints both (median of 3).

Both are measured as an installed package runs: with its bytecode cached (``pip install`` compiles it). Where the
environment sets ``PYTHONDONTWRITEBYTECODE`` (some sandboxes and containers do), an editable checkout would compile
every module on every start instead (``import unified.task_manager`` took 190 ms so on the eighth session's host);
the children run without it, after one warm-up import has written the caches.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = "import time; t = time.perf_counter(); import unified.task_manager; print(time.perf_counter() - t)"
WARM_UP = "import unified.task_manager, unified.api, unified.server, unified.ui.ui"  # what the two figures load
CACHED = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
# the server runs from a temporary folder: this checkout goes first on its path, not the installed package (the
# ``unified`` console script of a venv imports whichever tree was installed into it); the code is the console script's
CHECKOUT = {**CACHED, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), CACHED.get("PYTHONPATH")]))}
SERVER = "from unified.ui.ui import main; main()"


def import_seconds() -> float:
    """Seconds ``import unified.task_manager`` takes in a fresh interpreter (the interpreter's own start excluded)."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT], capture_output=True, text=True, check=True, cwd=ROOT, env=CACHED
    )
    return float(out.stdout.strip())


def warm_up() -> None:
    """Write the bytecode caches of unified's modules, as installing the package does."""
    subprocess.run([sys.executable, "-c", WARM_UP], check=True, cwd=ROOT, env=CACHED)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_health_seconds(timeout: float = 30.0) -> float:
    """Seconds from starting ``unified server`` on a new SQLite file until ``GET /health`` answers 200."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [sys.executable, "-c", SERVER, "server", "--port", str(port),
               "--db", f"sqlite:///{workdir}/server.db", "--log-level", "warning"]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**CHECKOUT, "UNIFIED_ADMIN_KEY": secrets.token_urlsafe(32)})  # fmt: skip
        try:
            while time.perf_counter() - started < timeout:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except OSError:
                    time.sleep(0.01)
            raise SystemExit(f"unified server did not answer /health within {timeout} s")
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    """Print the median of three of each figure as JSON."""
    warm_up()
    imports = statistics.median(import_seconds() for _ in range(3))
    health = statistics.median(server_health_seconds() for _ in range(3))
    print(json.dumps({"import_seconds": imports, "server_health_seconds": health}))


if __name__ == "__main__":
    main()
