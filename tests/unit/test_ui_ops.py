"""The Metrics page's numbers (computed in the database, same answers on SQLite and
PostgreSQL) and the Workers page's rows, on real databases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reviewflow.server.ui_ops import metrics_doc, workers_doc
from reviewflow.server.ui_timeline import task_events, timeline
from reviewflow.store import MemoryStore, RunRecord, SQLiteStore, TaskRecord

NOW = 1_800_000_030.0  # 30 s into the last bucket of "1h"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SQLiteStore(tmp_path / "rf.db")
    else:
        from reviewflow.store import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"))
    yield s
    s.close()


def _task(run_id: str, name: str, state: str, ready: float, start: float, end: float, att: int):
    return TaskRecord(run_id, name, state, att, ready, start, end)


def _fill(store: Any) -> None:
    # run a (workflow build): 10 tasks finishing in the bucket [NOW-120, NOW-60): durations
    # 1..10 s, queue waits 0.5 s; 2 failed, 3 retried
    tasks = []
    for i in range(10):
        state = "failed" if i < 2 else "succeeded"
        end = NOW - 100 + i
        tasks.append(
            _task("a", f"t{i}", state, end - (i + 1) - 0.5, end - (i + 1), end, 2 if i < 3 else 1)
        )
    store.create_run(RunRecord("a", "build", "failed", "{}", {}, NOW - 300), tasks, [])
    # run b (workflow lint): 1 task in the last bucket
    t = [_task("b", "only", "succeeded", NOW - 40, NOW - 30, NOW - 20, 1)]
    store.create_run(RunRecord("b", "lint", "succeeded", "{}", {}, NOW - 50), t, [])
    # run c: created long before the window (outside the runs scanned), a task inside it
    t = [_task("c", "old", "succeeded", NOW - 40, NOW - 30, NOW - 20, 1)]
    store.create_run(RunRecord("c", "old", "succeeded", "{}", {}, NOW - 5 * 86400), t, [])


def test_metrics_are_bucketed_percentiles_and_rates(store: Any) -> None:
    _fill(store)
    doc = metrics_doc(store, "1h", now=NOW)
    assert doc["supported"] and len(doc["buckets"]) == 60
    assert doc["buckets"][-1] == NOW - 30
    b = 57  # [NOW-150, NOW-90)
    assert doc["finished"][b] == 10 and doc["failed"][b] == 2 and doc["succeeded"][b] == 8
    assert doc["duration_p50"][b] == pytest.approx(5.0)  # nearest rank: 5th of 1..10
    assert doc["duration_p95"][b] == pytest.approx(10.0)
    assert doc["duration_max"][b] == pytest.approx(10.0)
    assert doc["success_rate"][b] == 80.0 and doc["failure_rate"][b] == 20.0
    assert doc["retry_rate"][b] == 30.0
    assert doc["finished"][59] == 1 and doc["duration_p50"][59] == pytest.approx(10.0)
    assert doc["duration_p50"][0] is None and doc["finished"][0] == 0
    assert doc["wait_p50"][b] == pytest.approx(0.5)
    assert doc["wait_p95"][59] == pytest.approx(10.0)
    assert doc["per_workflow"] == {"build": [0] * 57 + [10, 0, 0], "lint": [0] * 59 + [1]}
    assert doc["workflows"] == ["build", "lint"]
    assert sum(doc["finished"]) == 11  # run c was created before the runs scanned
    only = metrics_doc(store, "1h", "lint", now=NOW)
    assert sum(only["finished"]) == 1 and list(only["per_workflow"]) == ["lint"]
    week = metrics_doc(store, "7d", now=NOW)
    assert len(week["buckets"]) == 42 and sum(week["finished"]) == 12


def test_workers_page_data(store: Any) -> None:
    doc = workers_doc(store)
    if isinstance(store, SQLiteStore):
        assert doc == {"supported": False, "database": "sqlite", "workers": []}
        return
    assert doc["supported"] and doc["workers"] == []
    from reviewflow.cluster.queue import Cluster

    cluster = Cluster(store)
    cluster.heartbeat("w-one", concurrency=4, running=0)
    doc = workers_doc(store)
    assert [w["name"] for w in doc["workers"]] == ["w-one"]
    w = doc["workers"][0]
    assert w["state"] == "running" and w["concurrency"] == 4 and w["running"] == 0
    assert w["heartbeat_age"] < 60


def test_memory_store_has_no_metrics() -> None:
    store = MemoryStore()
    assert metrics_doc(store) == {"supported": False}
    assert workers_doc(store)["supported"] is False
    store.create_run(
        RunRecord("m", "w", "running", "{}", {}, time.time()),
        [TaskRecord("m", "a", "running")],
        [("m", "a", "ready", "running", 1, 1.0, None)],
    )
    assert timeline(store, "m")["bars"] == [["a", 1, 1.0, None, "running"]]
    assert [e.to_state for e in task_events(store, "m", "a")] == ["running"]


def test_timeline_on_both_databases(store: Any) -> None:
    events = [
        ("r", "a", "ready", "running", 1, 1.0, None),
        ("r", "a", "running", "retry_wait", 1, 2.0, "boom"),
        ("r", "a", "retry_wait", "ready", 1, 3.0, None),
        ("r", "a", "ready", "running", 2, 4.0, None),
        ("r", "a", "running", "succeeded", 2, 6.0, None),
    ]
    store.create_run(
        RunRecord("r", "w", "succeeded", "{}", {}, 0.0), [TaskRecord("r", "a", "succeeded")], events
    )
    assert timeline(store, "r")["bars"] == [
        ["a", 1, 1.0, 2.0, "retry_wait"],
        ["a", 2, 4.0, 6.0, "succeeded"],
    ]


def test_a_big_runs_timeline_is_bounded_on_both_databases(store: Any) -> None:
    """Beyond the limit, the tasks table picks the bars and only their events are read; with
    more attempts than room, each picked task's latest attempt is kept first."""
    n = 400
    tasks, events = [], []
    for i in range(n):
        end = float(i) + (i % 5)
        attempts = 2 if i == n - 1 else 1
        tasks.append(TaskRecord("b", f"t{i:03d}", "succeeded", attempts, float(i), float(i), end))
        if attempts == 2:
            events.append(("b", f"t{i:03d}", "ready", "running", 1, float(i) - 0.5, None))
            events.append(("b", f"t{i:03d}", "running", "retry_wait", 1, float(i) - 0.2, "x"))
        events.append(("b", f"t{i:03d}", "ready", "running", attempts, float(i), None))
        events.append(("b", f"t{i:03d}", "running", "succeeded", attempts, end, None))
    store.create_run(RunRecord("b", "w", "succeeded", "{}", {}, 0.0), tasks, events)
    doc = timeline(store, "b", limit=40)
    assert doc["total"] == n + 1
    bars = doc["bars"]
    assert len(bars) <= 40 and [b[2] for b in bars] == sorted(b[2] for b in bars)
    slow = [b for b in bars if b[3] - b[2] == 4]
    assert len(slow) >= 15  # the slowest (4 s) ones
    last = [b for b in bars if b[0] == f"t{n - 1:03d}"]
    assert [(b[1], b[4]) for b in last] == [(2, "succeeded")]  # 41 attempts, room for 40
    roomy = timeline(store, "b", limit=60)["bars"]  # 30 slowest + 30 latest tasks: 61 > 60
    assert [(b[1], b[4]) for b in roomy if b[0] == f"t{n - 1:03d}"] == [(2, "succeeded")]
