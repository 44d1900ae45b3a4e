"""The run page's reads beyond the graph (reviewflow.server.ui_timeline): one task's events and
row, the run's head, and the timeline of attempts (bounded for big runs). SQLite answers with
queries, the memory store from its records: the page must read the same either way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reviewflow.server.http import ApiError
from reviewflow.server.ui_timeline import (
    last_event_id,
    run_head,
    task_events,
    task_row,
    task_states,
    timeline,
)
from reviewflow.store import MemoryStore, RunRecord, SQLiteStore, Store, TaskRecord


def _events(store: SQLiteStore, run_id: str, n: int) -> None:
    tasks = [
        TaskRecord(run_id, f"t{i}", "succeeded", 1, float(i), float(i), float(i + i % 7))
        for i in range(n)
    ]
    events = []
    for i in range(n):
        start = float(i)
        events.append((run_id, f"t{i}", "ready", "running", 1, start, None))
        events.append((run_id, f"t{i}", "running", "succeeded", 1, start + (i % 7), None))
    store.create_run(RunRecord(run_id, "w", "succeeded", "{}", {}, 0.0), tasks, events)


def test_timeline_is_bounded_to_the_slowest_and_the_latest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "rf.db")
    _events(store, "big", 1000)
    doc = timeline(store, "big", limit=100)
    assert doc["total"] == 1000 and len(doc["bars"]) == 100
    starts = [b[2] for b in doc["bars"]]
    assert starts == sorted(starts)
    assert sum(1 for b in doc["bars"] if b[3] - b[2] == 6) >= 50  # the slowest
    assert doc["bars"][-1][0] == "t999"  # the latest
    small = timeline(store, "big", limit=5000)
    assert len(small["bars"]) == 1000
    assert small["bars"][0] == ["t0", 1, 0.0, 0.0, "succeeded"]
    assert [e.to_state for e in task_events(store, "big", "t3")] == ["running", "succeeded"]
    row = task_row(store, "big", "t3")
    assert row is not None and row.state == "succeeded" and row.name == "t3"
    assert task_row(store, "big", "nope") is None
    store.close()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "db")
    yield opened
    opened.close()


def _retried_run(store: Store) -> None:
    """`a` failed once and succeeded on its second attempt, `b` is still running."""
    tasks = [
        TaskRecord("r", "a", "succeeded", 2, 0.5, 3.0, 4.0),
        TaskRecord("r", "b", "running", 1, 0.5, 3.5),
        TaskRecord("r", "c", "blocked"),
    ]
    events = [
        ("r", None, "pending", "running", None, 0.0, None),
        ("r", "a", "ready", "running", 1, 1.0, None),
        ("r", "a", "running", "retry_wait", 1, 2.0, "exit 1"),
        ("r", "a", "retry_wait", "ready", 1, 2.5, None),
        ("r", "a", "ready", "running", 2, 3.0, None),
        ("r", "b", "ready", "running", 1, 3.5, None),
        ("r", "a", "running", "succeeded", 2, 4.0, None),
    ]
    store.create_run(RunRecord("r", "w", "running", "{}", {"k": "v"}, 7.0), tasks, events)


def test_a_retried_and_a_running_task_read_the_same_on_every_store(store: Store) -> None:
    _retried_run(store)
    doc = timeline(store, "r")
    assert doc["total"] == 3
    assert doc["bars"] == [
        ["a", 1, 1.0, 2.0, "retry_wait"],
        ["a", 2, 3.0, 4.0, "succeeded"],
        ["b", 1, 3.5, None, "running"],  # no end yet: the page draws it up to `now`
    ]
    a_events = [(e.to_state, e.attempt, e.detail) for e in task_events(store, "r", "a")]
    assert a_events == [
        ("running", 1, None),
        ("retry_wait", 1, "exit 1"),
        ("ready", 1, None),
        ("running", 2, None),
        ("succeeded", 2, None),
    ]  # that task's only, in order
    row = task_row(store, "r", "a")
    assert row is not None and (row.state, row.attempts, row.finished_at) == ("succeeded", 2, 4.0)
    assert [(t.name, t.state) for t in task_states(store, "r")] == [
        ("a", "succeeded"),
        ("b", "running"),
        ("c", "blocked"),
    ]
    assert last_event_id(store, "r") == store.get_events("r")[-1].id
    head = run_head(store, "r")
    assert (head.workflow, head.state, head.meta, head.created_at) == (
        "w",
        "running",
        {"k": "v"},
        7.0,
    )


def test_an_unknown_run_is_a_404_and_a_run_without_events_is_empty(store: Store) -> None:
    with pytest.raises(ApiError) as info:
        run_head(store, "nope")
    assert info.value.status_code == 404 and info.value.field == "run_id"
    store.create_run(
        RunRecord("q", "w", "pending", "{}", {}, 0.0), [TaskRecord("q", "a", "blocked")], []
    )
    assert last_event_id(store, "q") == 0
    assert timeline(store, "q")["bars"] == [] and task_events(store, "q", "a") == []
    assert task_row(store, "q", "nope") is None
