"""`unified server` start-up order: the workflows folder is imported before the workers claim anything."""

from __future__ import annotations

import sys
from pathlib import Path

from unified.server import Server, ServerSettings
from unified.task_manager import TaskManager


def test_tasks_queued_before_a_restart_find_the_folders_code_when_the_workers_start(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "start_order_flow.py").write_text("def job() -> str:\n    return 'ran'\n")
    url = f"sqlite:///{tmp_path / 'start.db'}"
    sys.path.insert(0, str(folder))
    try:  # queued by an earlier server process that had the folder loaded
        with TaskManager(store=url, max_workers=0, run_scheduler=False) as before:
            task_ids = [before.queue_task("start_order_flow:job") for _ in range(3)]
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("start_order_flow", None)
    server = Server(ServerSettings(database_url=url, workflows_dir=str(folder), workers=2, announce=False))
    services = server.start()
    try:
        done = services.task_manager.wait_all(task_ids, timeout=20)
        assert [(m["state"], m["result"]) for m in done] == [("success", "ran")] * 3
    finally:
        server.stop()
        sys.path.remove(str(folder))
        sys.modules.pop("start_order_flow", None)
