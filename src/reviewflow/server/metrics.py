"""Prometheus metrics of one server: a registry per app (tests build many apps).

Two sources:

- at scrape time, from the store (so they are right whatever process executes the runs): tasks
  by state and ready tasks by priority, over the runs that have not ended among the most recent
  SCAN_RUNS runs; runs by state over those same recent runs — counted by the database
  (SQLite, PostgreSQL), so a scrape reads no spec but, once, that of a run with ready tasks
  (the priorities are in the spec only); workers alive (1 when this server
  executes runs, else 0, until separate workers report themselves); whether the store answered;
- from the observer of this server's engine (empty with `--no-execute`): task duration and
  claim latency (ready → running) histograms, retries, lost leases (a task found running in a
  run whose process died), and transitions by state.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import ReviewflowError
from ..spec import parse_priority
from ..states import RUN_TERMINAL, TaskState
from ..store import Store

SCAN_RUNS = 1000
"""How many recent runs a scrape looks at."""
PRIORITIES_KEPT = 256
"""Runs whose task priorities a collector keeps (runs with ready tasks, for the queue depth)."""
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LOST = "lost"


class StoreCollector(Collector):
    """Gauges computed from the store at each scrape."""

    def __init__(self, store: Store, workers_alive: Callable[[], int]) -> None:
        self.store = store
        self.workers_alive = workers_alive
        self._priorities: OrderedDict[tuple[str, float], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        workers = GaugeMetricFamily(
            "reviewflow_workers_alive", "Processes executing runs (this server's engine)."
        )
        workers.add_metric([], self.workers_alive())
        yield workers
        up = GaugeMetricFamily("reviewflow_store_up", "1 if the store answered this scrape.")
        try:
            runs, tasks, queue = self._scan()
        except ReviewflowError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _family("reviewflow_runs", "Runs by state (most recent runs).", "state", runs)
        yield _family(
            "reviewflow_tasks", "Tasks by state, in runs that have not ended.", "state", tasks
        )
        yield _family(
            "reviewflow_queue_depth",
            "Ready tasks waiting for a slot, by priority (3 high, 2 medium, 1 low).",
            "priority",
            queue,
        )

    def _scan(self) -> tuple[Counter[str], Counter[str], Counter[str]]:
        select = getattr(self.store, "select", None)
        if select is None:  # the memory store: its records are at hand
            return self._scan_records()
        ended = {str(s) for s in RUN_TERMINAL}
        marks = {f"e{i}": s for i, s in enumerate(sorted(ended))}
        args: dict[str, Any] = {"n": SCAN_RUNS, **marks}
        recent = "SELECT run_id, state, created_at FROM runs ORDER BY created_at DESC LIMIT :n"
        live = f"r.state NOT IN ({', '.join(':' + k for k in marks)})"
        runs = Counter(
            {
                str(k): int(n)
                for k, n in select(f"SELECT state, count(*) FROM ({recent}) r GROUP BY state", args)
            }
        )
        tasks: Counter[str] = Counter({s.value: 0 for s in TaskState})
        for state, n in select(
            f"SELECT t.state, count(*) FROM tasks t JOIN ({recent}) r ON t.run_id = r.run_id"
            f" WHERE {live} GROUP BY t.state",
            args,
        ):
            tasks[str(state)] += int(n)
        queue: Counter[str] = Counter()
        for run_id, created_at, name in select(
            f"SELECT t.run_id, r.created_at, t.name FROM tasks t JOIN ({recent}) r"
            f" ON t.run_id = r.run_id WHERE {live} AND t.state = 'ready'",
            args,
        ):
            priorities = self._run_priorities(run_id, created_at)
            queue[str(priorities.get(name, 2))] += 1
        return runs, tasks, queue

    def _run_priorities(self, run_id: str, created_at: float) -> dict[str, Any]:
        """The tasks' priorities of a run with ready tasks: its spec is read once, not at
        every scrape (a run's spec never changes), and only the non-default ones are kept."""
        key = (run_id, created_at)
        with self._lock:  # scrapes run on worker threads, maybe two at once
            found = self._priorities.get(key)
            if found is not None:
                self._priorities.move_to_end(key)
                return found
        record = self.store.get_run(run_id)
        parsed = _priorities(record.spec) if record is not None else {}
        found = {name: p for name, p in parsed.items() if p != 2}
        with self._lock:
            self._priorities[key] = found
            while len(self._priorities) > PRIORITIES_KEPT:
                self._priorities.popitem(last=False)
        return found

    def _scan_records(self) -> tuple[Counter[str], Counter[str], Counter[str]]:
        runs: Counter[str] = Counter()
        tasks: Counter[str] = Counter({s.value: 0 for s in TaskState})
        queue: Counter[str] = Counter()
        for record in self.store.list_runs(SCAN_RUNS):
            runs[record.state] += 1
            if record.state in RUN_TERMINAL:
                continue
            rows = self.store.get_tasks(record.run_id)
            priorities: dict[str, Any] | None = None
            for row in rows:
                tasks[row.state] += 1
                if row.state == TaskState.READY:
                    if priorities is None:
                        priorities = _priorities(record.spec)
                    queue[str(priorities.get(row.name, 2))] += 1
        return runs, tasks, queue


def _priorities(spec_json: str) -> dict[str, Any]:
    try:
        spec = json.loads(spec_json)
        bodies = {**spec.get("tasks", {}), **spec.get("on_failure", {})}
        return {name: parse_priority(body.get("priority", 2)) for name, body in bodies.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def _family(name: str, doc: str, label: str, counts: Counter[str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key in sorted(counts):
        family.add_metric([key], counts[key])
    return family


class Metrics:
    """The registry of one app and the engine observer that feeds its histograms."""

    def __init__(self, store: Store, workers_alive: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        self.collector = StoreCollector(store, workers_alive)
        self.registry.register(self.collector)
        reg = self.registry
        self.task_duration = Histogram(
            "reviewflow_task_duration_seconds",
            "Duration of task attempts, by how they ended.",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.claim_latency = Histogram(
            "reviewflow_claim_latency_seconds",
            "Time a task waited ready before it started.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.retries = PromCounter(
            "reviewflow_task_retries",
            "Failed attempts that were scheduled for a retry.",
            registry=reg,
        )
        self.lost = PromCounter(
            "reviewflow_lost_leases",
            "Tasks found running in a run whose process had died.",
            registry=reg,
        )
        self.transitions = PromCounter(
            "reviewflow_task_transitions",
            "Task state transitions, by new state.",
            ["to"],
            registry=reg,
        )
        self.webhooks = PromCounter(
            "reviewflow_webhook_deliveries",
            "GitHub webhook deliveries, by outcome.",
            ["outcome"],
            registry=reg,
        )
        self._ready: dict[str, dict[str, float]] = {}
        self._running: dict[str, dict[str, float]] = {}

    def observe(
        self,
        run_id: str,
        task: str | None,
        frm: str | None,
        to: str,
        attempt: int | None,
        detail: str | None,
        at: float | None = None,
    ) -> None:
        """Engine observer: (run_id, task, from, to, attempt, detail) of every transition;
        `at` is the event's time when it comes from the store (workers), else now."""
        if task is None:
            if to in RUN_TERMINAL:
                self._ready.pop(run_id, None)
                self._running.pop(run_id, None)
            return
        if frm == to:  # a note (approval waiting, escalation): no state change
            return
        now = time.monotonic() if at is None else at
        to = str(to)
        self.transitions.labels(to).inc()
        if detail and detail.startswith(LOST):
            self.lost.inc()
        if frm == TaskState.RUNNING:
            started = self._running.get(run_id, {}).pop(task, None)
            if started is not None:
                self.task_duration.labels(to).observe(now - started)
        if to == TaskState.READY:
            self._ready.setdefault(run_id, {})[task] = now
        elif to == TaskState.RUNNING:
            ready = self._ready.get(run_id, {}).pop(task, None)
            if ready is not None:
                self.claim_latency.observe(now - ready)
            self._running.setdefault(run_id, {})[task] = now
        elif to == TaskState.RETRY_WAIT:
            self.retries.inc()


class EventFollower:
    """Feeds `Metrics` from the events table when `reviewflow worker`s execute the runs (the
    server's own engine sees nothing then). Ids of different runs commit out of order, so each
    poll reads again the last WINDOW ids below the highest seen and skips those counted."""

    WINDOW = 5000
    LIMIT = 20000

    def __init__(self, store: Any, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.start = self.high = int(store.max_event_id())  # history is not replayed
        self.seen: set[int] = set()

    def poll(self) -> int:
        """Observe the events not seen yet; returns how many."""
        fed = 0
        for e in self.store.events_window(max(self.high - self.WINDOW, self.start), self.LIMIT):
            if e.id in self.seen:
                continue
            self.seen.add(e.id)
            self.high = max(self.high, e.id)
            self.metrics.observe(
                e.run_id, e.task, e.from_state, e.to_state, e.attempt, e.detail, at=e.at
            )
            fed += 1
        floor = self.high - self.WINDOW
        self.seen = {i for i in self.seen if i > floor}
        return fed
