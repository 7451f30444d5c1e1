"""Prometheus metrics of one server: tasks and runs by state, queue depth, attempt durations, scheduler lag.

Gauges are read from the store at scrape time (so they are right whichever process did the work); attempt
durations and finished runs are counted from the engine events of this process. Each app has its own registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from unified import events as ev
from unified.events import EventBus
from unified.store.base import Store
from unified.task import TaskState
from unified.utils import Clock

log = logging.getLogger("unified.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACTIVE_RUNS_CAP = 10_000  # counting active runs stops here, so a scrape stays cheap
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
ATTEMPT_EVENTS = (ev.TASK_SUCCEEDED, ev.TASK_FAILED, ev.TASK_TIMEOUT, ev.TASK_RETRYING, ev.TASK_CANCELED)
RUN_EVENTS = {ev.WORKFLOW_SUCCEEDED: "success", ev.WORKFLOW_FAILED: "failure", ev.WORKFLOW_CANCELED: "canceled"}


class StoreCollector(Collector):
    """Gauges read from the store on each scrape."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Tasks by state, queue depth, active runs and scheduler lag; a store error skips the gauge."""
        try:
            counts = self.store.count_tasks_by_state()
        except Exception:
            log.exception("metrics: cannot count tasks by state")
        else:
            tasks = GaugeMetricFamily("unified_tasks", "Task instances in the store by state", labels=["state"])
            for state in TaskState:
                tasks.add_metric([state.value], counts.get(state.value, 0))
            yield tasks
            depth = counts.get("queued", 0)
            yield GaugeMetricFamily("unified_queue_depth", "Tasks queued and waiting for a worker", value=depth)
        try:
            active = len(self.store.list_runs(state="running", limit=ACTIVE_RUNS_CAP))
        except Exception:
            log.exception("metrics: cannot count active runs")
        else:
            runs = GaugeMetricFamily("unified_runs_active", f"Runs still running (counted up to {ACTIVE_RUNS_CAP})")
            runs.add_metric([], active)
            yield runs
        try:
            next_fire = self.store.next_schedule_fire()
        except Exception:
            log.exception("metrics: cannot read the next schedule fire")
        else:
            lag = max(0.0, self.clock.now() - next_fire) if next_fire is not None else 0.0
            yield GaugeMetricFamily(
                "unified_scheduler_lag_seconds", "How late the most overdue schedule fire is (0: none due)", value=lag
            )


class Metrics:
    """The registry of one app: store gauges plus counters fed by engine events."""

    def __init__(self, store: Store, clock: Clock, bus: EventBus | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store, clock))
        self.attempt_seconds = Histogram(
            "unified_attempt_duration_seconds",
            "Duration of finished task attempts run by this process",
            ["outcome"],
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.runs_finished = Counter(
            "unified_runs_finished", "Runs finished in this process, by final state", ["state"], registry=self.registry
        )
        if bus is not None:
            bus.subscribe(self.on_event, [*ATTEMPT_EVENTS, *RUN_EVENTS])

    def on_event(self, event: dict[str, Any]) -> None:
        """Count a finished run, or observe the duration of the attempt an event ends (the event carries it: no
        read of the store per task)."""
        name = event["event"]
        if name in RUN_EVENTS:
            self.runs_finished.labels(RUN_EVENTS[name]).inc()
        elif (seconds := event.get("attempt_seconds")) is not None:
            self.attempt_seconds.labels(event["attempt_state"]).observe(seconds)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
