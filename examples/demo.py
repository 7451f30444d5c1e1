"""`make run`: run the demo workflow on the SQLite store and print its run: task states, attempts, durations."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.etl import demo_etl
from unified.logger import configure_logging
from unified.workflow.workflow import WorkflowManager


def main() -> int:
    """Run the demo once and print a table of its tasks."""
    configure_logging("WARNING")
    db = Path(os.environ.get("UNIFIED_DEMO_DB", ".unified/demo.db")).resolve()
    url = f"sqlite:///{db}"
    with WorkflowManager(store=url) as manager:
        workflow_id = manager.register(demo_etl)
        run = manager.run_workflow(workflow_id, params={"requested_by": "make run"}, timeout=60)
        runs = manager.list_runs(workflow_id)
    print(f"store      {url}")
    print(f"workflow   {demo_etl.name} (version {run.version}); run {run.run_id}: {run.state.upper()}")
    print()
    print(f"{'task':<20} {'state':<9} {'attempts':>8} {'duration':>10}  result / error")
    for task_id, meta in run.tasks.items():
        duration = f"{meta['duration_seconds'] * 1000:.1f} ms" if meta["duration_seconds"] is not None else "-"
        outcome = meta["error"]["message"] if meta["error"] and meta["state"] != "success" else meta["result"]
        print(f"{task_id:<20} {meta['state']:<9} {meta['attempts']:>8} {duration:>10}  {outcome}")
        for attempt in meta["history"]:
            if attempt["state"] != "success":
                print(f"{'':<20} attempt {attempt['attempt']}: {attempt['state']} ({attempt['error']['message']})")
    print()
    print(f"{len(runs)} run(s) of this workflow are stored in {db}; run again to add one.")
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
