"""Prometheus metrics, on a registry of the app's own so tests can create many apps.

Counters count what this server did; gauges read the store and the projections when scraped.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plait.eventstore import EventStore
from plait.projections import ReadModels

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(
        self,
        store: EventStore,
        read: ReadModels,
        projected: Callable[[], int],
        takeover_checks: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs_started = Counter(
            "plait_runs_started",
            "Runs started through this server.",
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "plait_sse_clients", "Open server-sent event streams.", registry=self.registry
        )
        self.registry.register(_StoreCollector(store, read, projected, takeover_checks))

    def render(self) -> bytes:
        """The text exposition format. Reads the database: call it off the event loop."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(
        self,
        store: EventStore,
        read: ReadModels,
        projected: Callable[[], int],
        takeover_checks: Callable[[], int],
    ) -> None:
        self.store = store
        self.read = read
        self.projected = projected
        self.takeover_checks = takeover_checks

    def describe(self) -> list[Metric]:
        return []  # collected on each scrape only

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "plait_store_position",
            "Global position of the last stored event.",
            value=self.store.last_position(),
        )
        yield GaugeMetricFamily(
            "plait_projection_position",
            "Position up to which every projection has applied events.",
            value=self.projected(),
        )
        tasks = GaugeMetricFamily(
            "plait_tasks",
            "Tasks of each project's active (else last) run, by status.",
            labels=["status"],
        )
        for status, count in sorted(self.task_statuses().items()):
            tasks.add_metric([status], count)
        yield tasks
        yield GaugeMetricFamily(
            "plait_takeover_checks",
            "Passes this server's takeover watch made over runs whose lease may have lapsed.",
            value=self.takeover_checks(),
        )
        active = sum(1 for p in self.read.projects() if p.get("active_run_id"))
        yield GaugeMetricFamily("plait_active_runs", "Runs in progress.", value=active)

    def task_statuses(self) -> Tally[str]:
        counts: Tally[str] = Tally()
        for project in self.read.projects():
            run_id = project.get("active_run_id") or project.get("last_run_id")
            status: dict[str, Any] | None = self.read.run_status(run_id) if run_id else None
            for task in (status or {}).get("tasks", []):
                counts[str(task.get("status"))] += 1
        return counts
