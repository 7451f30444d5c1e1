"""Draw W1 tasks/s against N from the newest ``make bench`` result into docs/images/w1-linearity.png.

    .peers-venv/bin/python benchmarks/plot.py [benchmarks/results/bench-....json]

matplotlib is a dev tool here (the scratch venv of ``make bench-peers`` has it), not a dependency of unified.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Plot one line per store: tasks/s (log scale) against N (log scale)."""
    results = sorted((ROOT / "benchmarks" / "results").glob("bench-*.json"))
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else next(p for p in reversed(results)
                                                            if "linearity" in json.loads(p.read_text()))  # fmt: skip
    data = json.loads(path.read_text())
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for store in ("memory", "sqlite", "postgres"):
        points = [(p["tasks"], p["tasks_per_s"]) for p in data["linearity"] if p["store"] == store]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=store)
            for x, y in points:
                ax.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (no-op tasks queued with queue_task, then awaited)")
    ax.set_ylabel("tasks/s")
    meta = data["meta"]
    ax.set_title(f"W1 throughput against N ({meta['cpus']} CPUs, Python {meta['python']}, {meta['date']})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = ROOT / "docs" / "images" / "w1-linearity.png"
    fig.savefig(out)
    print(f"written {out.relative_to(ROOT)} from {path}")


if __name__ == "__main__":
    main()
