"""/metrics' store gauges (runs, tasks, queue depth) counted by the database: the same numbers
as counting the stored records one by one, without reading the runs' specs at every scrape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from reviewflow.server.metrics import Metrics
from reviewflow.store import RunRecord, SQLiteStore, TaskRecord

STATES = ["ready", "ready", "ready", "running", "blocked", "succeeded", "retry_wait"]
PRIORITIES = ["high", "low", None, "high", None, "low", 7]


def _fill(store: Any) -> None:
    """Finished and live runs; the live ones' ready tasks have high, low and default priority."""
    now = time.time()
    for i, run_state in enumerate(["succeeded", "failed", "running", "cancelled", "running"]):
        tasks: dict[str, Any] = {}
        for j, priority in enumerate(PRIORITIES):
            body: dict[str, Any] = {"type": "shell", "run": ["true"]}
            if priority is not None:
                body["priority"] = priority
            tasks[f"t{j}"] = body
        spec = json.dumps({"name": f"w{i}", "tasks": tasks})
        done = run_state != "running"
        states = ["succeeded"] * len(STATES) if done else STATES[i % 4 :] + STATES[: i % 4]
        rows = [TaskRecord(f"run-{i}", f"t{j}", s) for j, s in enumerate(states)]
        record = RunRecord(f"run-{i}", f"w{i}", run_state, spec, {}, now + i, now + i, None)
        store.create_run(record, rows, [])


class Counting(SQLiteStore):
    """A SQLite store that counts the reads that return specs."""

    spec_reads = 0

    def get_run(self, run_id: str) -> RunRecord | None:
        self.spec_reads += 1
        return super().get_run(run_id)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        self.spec_reads += limit
        return super().list_runs(limit)


def _gauges(metrics: Metrics) -> list[str]:
    text = generate_latest(metrics.registry).decode()
    names = ("reviewflow_runs{", "reviewflow_tasks{", "reviewflow_queue_depth{")
    return sorted(line for line in text.splitlines() if line.startswith(names))


def _by_records(store: Any) -> list[str]:
    """The gauges counted record by record (what the stores without SQL do)."""
    metrics = Metrics(store)
    metrics.collector._scan = metrics.collector._scan_records  # type: ignore[method-assign]
    return _gauges(metrics)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        opened: Any = Counting(tmp_path / "rf.db")
    else:
        from reviewflow.store.postgres import PostgresStore

        opened = PostgresStore(request.getfixturevalue("pg_url"))
    yield opened
    opened.close()


def test_the_database_counts_what_the_records_say(store: Any) -> None:
    _fill(store)
    gauges = _gauges(Metrics(store))
    assert gauges == _by_records(store)
    assert 'reviewflow_runs{state="running"} 2.0' in gauges
    assert 'reviewflow_tasks{state="ready"} 6.0' in gauges
    assert 'reviewflow_tasks{state="skipped"} 0.0' in gauges  # every task state is reported
    assert 'reviewflow_queue_depth{priority="3"} 2.0' in gauges
    assert 'reviewflow_queue_depth{priority="1"} 2.0' in gauges
    assert 'reviewflow_queue_depth{priority="2"} 1.0' in gauges  # no priority given
    assert 'reviewflow_queue_depth{priority="7"} 1.0' in gauges


def test_a_scrape_reads_a_live_runs_spec_once_and_finished_ones_never(tmp_path: Path) -> None:
    store = Counting(tmp_path / "rf.db")
    try:
        _fill(store)
        metrics = Metrics(store)
        first = _gauges(metrics)
        assert store.spec_reads == 2  # the two running runs with ready tasks, for priorities
        for _ in range(3):
            assert _gauges(metrics) == first
        assert store.spec_reads == 2
    finally:
        store.close()
