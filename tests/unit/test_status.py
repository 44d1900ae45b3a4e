"""The status document of a run and its metrics (reviewflow.status), from what the store holds:
counts that mean what they say (rates over the tasks that ended, skipped ones aside; an attempt
lost with its process is not a retry), wait and run times from the events, and each task's
duration, errors and what it waits for. On a real SQLite file, with the times written down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reviewflow import status
from reviewflow.errors import RunNotFound
from reviewflow.status import list_status, run_status
from reviewflow.store import RunRecord, SQLiteStore, TaskRecord
from reviewflow.store.base import TASK_COLUMNS, Batch

OWNER = "host:1:token"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "db.sqlite")
    yield opened
    opened.close()


def _stored(
    store: SQLiteStore,
    run_id: str,
    tasks: list[TaskRecord],
    events: list[tuple[str | None, str | None, str, int | None, float, str | None]],
    run: tuple[str, float | None, float | None, str | None] = ("running", 100.0, None, None),
    created_at: float = 99.0,
) -> None:
    """A run whose rows and events are exactly these (as an engine would have written them)."""
    blocked = [TaskRecord(run_id, t.name, "blocked") for t in tasks]
    record = RunRecord(run_id, "wf", "pending", "{}", {"pr": "7"}, created_at)
    store.create_run(record, blocked, [])
    assert store.claim_run(run_id, OWNER, 1e12, None)
    rows = [(*t.row(), t.name) for t in tasks]
    assert len(rows[0]) == len(TASK_COLUMNS) + 1
    batch = Batch(run_id, OWNER, 1e12, run=run, tasks=rows, events=[(run_id, *e) for e in events])
    assert store.write(batch) is None


def test_metrics_count_what_ended_and_keep_lost_attempts_apart_from_retries(
    store: SQLiteStore,
) -> None:
    tasks = [
        # two attempts, the first lost with its process: no retry
        TaskRecord("r", "lost", "succeeded", 2, 100.0, 106.0, 107.0),
        # two attempts, the first failed: a retry
        TaskRecord("r", "flaky", "succeeded", 2, 100.0, 103.0, 105.0),
        TaskRecord("r", "bad", "failed", 1, 100.0, 101.0, 102.0, error="exit 3"),
        TaskRecord("r", "stopped", "cancelled"),
        TaskRecord("r", "unneeded", "skipped"),
    ]
    events = [
        ("lost", "blocked", "ready", 0, 100.0, None),
        ("lost", "ready", "running", 1, 101.0, None),  # waited 1 s
        ("lost", "running", "ready", 1, 104.0, "lost: owner gone"),
        ("lost", "ready", "running", 2, 106.0, None),  # waited 2 s
        ("lost", "running", "succeeded", 2, 107.0, None),  # ran 1 s
        ("flaky", "blocked", "ready", 0, 100.0, None),
        ("flaky", "ready", "running", 1, 100.5, None),  # waited 0.5 s
        ("flaky", "running", "retry_wait", 1, 101.5, "exit 1"),  # ran 1 s
        ("flaky", "retry_wait", "ready", 1, 102.0, None),
        ("flaky", "ready", "running", 2, 103.0, None),  # waited 1 s
        ("flaky", "running", "succeeded", 2, 105.0, None),  # ran 2 s
        ("bad", "blocked", "ready", 0, 100.0, None),
        ("bad", "ready", "running", 1, 101.0, None),  # waited 1 s
        ("bad", "running", "failed", 1, 102.0, "exit 3"),  # ran 1 s
    ]
    _stored(store, "r", tasks, events, run=("failed", 100.0, 108.0, "bad failed"))
    m = run_status(store, "r")["metrics"]
    assert m["tasks"] == 5 and m["duration_s"] == 8.0
    assert m["tasks_by_state"] == {
        "cancelled": 1,
        "failed": 1,
        "skipped": 1,
        "succeeded": 2,
    }
    assert (m["attempts"], m["retries"], m["lost_attempts"]) == (5, 1, 1)
    # rates over the 4 tasks that ended (not the skipped one); 1 of 3 started tasks retried
    rates = (m["success_rate"], m["failure_rate"], m["cancel_rate"], m["retry_rate"])
    assert rates == (0.5, 0.25, 0.25, 0.3333)
    assert m["wait_time_s"] == {"mean": 1.1, "max": 2.0}
    # the lost attempt's run time is unknown (its process died, nobody saw it end): not counted
    assert m["run_time_s"] == {"mean": 1.25, "max": 2.0}
    assert m["throughput_tasks_per_s"] == 0.25
    assert m["task_cpu_s"] is None and m["task_max_rss_kib"] is None


def test_metrics_are_the_same_when_the_events_are_read_a_page_at_a_time(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1M-task run's ~3M events are read in pages, not held at once: a page boundary
    between a task's `ready` and `running` (or a lost attempt) changes no number."""
    tasks = [
        TaskRecord("r", f"t{i}", "succeeded", 1, 100.0, 101.0 + i, 102.0 + 2 * i) for i in range(5)
    ]
    events: list[tuple[str | None, str | None, str, int | None, float, str | None]] = []
    for i in range(5):
        events += [
            (f"t{i}", "blocked", "ready", 0, 100.0, None),
            (f"t{i}", "ready", "running", 1, 101.0 + i, None),
            (f"t{i}", "running", "succeeded", 1, 102.0 + 2 * i, None),
        ]
    _stored(store, "r", tasks, events, run=("succeeded", 100.0, 110.0, None))
    whole = run_status(store, "r")
    for page in (1, 2, 4):
        monkeypatch.setattr(status, "EVENTS_PAGE", page)
        assert run_status(store, "r") == whole
    assert whole["metrics"]["wait_time_s"] == {"mean": 3.0, "max": 5.0}
    assert whole["metrics"]["run_time_s"] == {"mean": 3.0, "max": 5.0}


def test_a_run_that_started_nothing_has_no_rates(store: SQLiteStore) -> None:
    _stored(
        store, "idle", [TaskRecord("idle", "a", "blocked")], [], run=("running", 5.0, None, None)
    )
    m = run_status(store, "idle")["metrics"]
    assert (m["attempts"], m["retries"]) == (0, 0)
    assert (m["success_rate"], m["retry_rate"], m["throughput_tasks_per_s"]) == (None, None, 0.0)
    assert m["wait_time_s"] == {"mean": None, "max": None}
    assert m["duration_s"] > 0  # still running: up to now


def test_task_documents_decode_results_and_say_what_a_task_waits_for(store: SQLiteStore) -> None:
    shell = {"exit_code": 0, "cpu_s": 1.25, "max_rss_kib": 2048}
    tasks = [
        TaskRecord(
            "t",
            "sh",
            "succeeded",
            2,
            1.0,
            2.0,
            4.5,
            result=json.dumps(shell),
            errors=json.dumps([{"attempt": 1, "error": "exit 1"}]),
        ),
        TaskRecord("t", "py", "succeeded", 1, 1.0, 2.0, 3.0, result=json.dumps({"cpu_s": 0.5})),
        TaskRecord("t", "queued", "ready", 0, 1.0, wait_reason="limit: db (1 running)"),
        TaskRecord("t", "skewed", "failed", 1, 1.0, 9.0, 8.0, wait_reason="stale", error="boom"),
    ]
    _stored(store, "t", tasks, [])
    doc = run_status(store, "t")
    assert (doc["run_id"], doc["workflow"], doc["state"], doc["meta"]) == (
        "t",
        "wf",
        "running",
        {"pr": "7"},
    )
    sh, py, queued, skewed = doc["tasks"]
    assert sh["result"] == shell and sh["duration_s"] == 2.5
    assert sh["errors"] == [{"attempt": 1, "error": "exit 1"}] and py["errors"] == []
    assert "waiting" not in sh
    assert queued["waiting"] == "limit: db (1 running)"
    # a clock stepped back gives no negative duration; a failed task waits for nothing
    assert skewed["duration_s"] is None and "waiting" not in skewed and skewed["error"] == "boom"
    m = doc["metrics"]
    assert m["task_cpu_s"] == {"total": 1.75, "max": 1.25} and m["task_max_rss_kib"] == 2048
    assert "workers" not in doc  # executed by one process, not by workers


def test_an_unknown_run_and_the_list_of_recent_runs(store: SQLiteStore) -> None:
    with pytest.raises(RunNotFound):
        run_status(store, "nope")
    assert list_status(store) == []
    for i, run_id in enumerate(["old", "mid", "new"]):
        _stored(store, run_id, [TaskRecord(run_id, "a", "blocked")], [], created_at=float(i))
    recent = list_status(store, limit=2)
    assert [r["run_id"] for r in recent] == ["new", "mid"]
    assert recent[0] == {
        "run_id": "new",
        "workflow": "wf",
        "state": "running",
        "meta": {"pr": "7"},
        "created_at": 2.0,
        "finished_at": None,
        "error": None,
    }
