"""A run's live state (reviewflow.runtime) and the store: what the engine drains in a batch is
what a restarted engine loads back, and a batch the store refused is written again, ahead of
what changed since, so no event or state change is lost. On a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reviewflow.runtime import LiveRun
from reviewflow.spec import WorkflowSpec
from reviewflow.states import RunState, TaskState
from reviewflow.store import RunRecord, SQLiteStore, TaskRecord
from rfhelpers import sh, workflow

OWNER = "host:1:token"
SPEC = workflow(
    {"a": sh("true"), "b": sh("true", needs=["a"]), "c": sh("true", needs=["a", "b"])},
    on_failure={"h": sh("true")},
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A run `r` of SPEC as `submit` stores it (every task blocked), claimed by OWNER."""
    opened = SQLiteStore(tmp_path / "db.sqlite")
    names = [*SPEC.tasks, *SPEC.on_failure]
    record = RunRecord("r", SPEC.name, "pending", SPEC.model_dump_json(), {"k": "v"}, 5.0)
    opened.create_run(record, [TaskRecord("r", n, "blocked") for n in names], [])
    assert opened.claim_run("r", OWNER, 1e12, None)
    yield opened
    opened.close()


def _load(store: SQLiteStore, spec: WorkflowSpec = SPEC) -> LiveRun:
    record = store.get_run("r")
    assert record is not None
    return LiveRun.load(record, spec, store.get_tasks("r"), Path("runs/r"))


def test_a_loaded_run_knows_its_tasks_hooks_and_who_waits_for_whom(store: SQLiteStore) -> None:
    run = _load(store)
    assert (run.state, run.created_at, run.meta) == (RunState.PENDING, 5.0, {"k": "v"})
    assert list(run.tasks) == ["a", "b", "c", "h"]
    assert [t.hook for t in run.tasks.values()] == [False, False, False, True]
    assert [d.name for d in run.tasks["a"].dependents] == ["b", "c"]
    assert [d.name for d in run.tasks["b"].dependents] == ["c"]
    assert run.tasks["c"].dependents == () and run.tasks["h"].dependents == ()
    assert all(t.state is TaskState.BLOCKED for t in run.tasks.values())


def test_what_is_drained_and_written_is_what_a_restart_loads(store: SQLiteStore) -> None:
    run = _load(store)
    run.state, run.started_at, run.run_dirty = RunState.RUNNING, 6.0, True
    a, b = run.tasks["a"], run.tasks["b"]
    a.state, a.attempts, a.started_at, a.finished_at = TaskState.SUCCEEDED, 2, 6.0, 7.0
    a.result = {"out": [1, "x"]}
    a.errors = [{"attempt": 1, "error": "exit 1"}]
    b.state, b.attempts, b.pid, b.wait_reason = TaskState.RUNNING, 1, 4242, None
    run.dirty = dict.fromkeys([a, b])
    run.events.append(("r", "a", "running", "succeeded", 2, 7.0, None))
    batch = run.drain(OWNER, 1e12)
    assert (run.dirty, run.events, run.run_dirty) == ({}, [], False)  # taken, not copied
    assert store.write(batch) is None
    again = _load(store)
    assert (again.state, again.started_at) == (RunState.RUNNING, 6.0)
    a2, b2 = again.tasks["a"], again.tasks["b"]
    assert (a2.state, a2.attempts, a2.started_at, a2.finished_at) == (
        TaskState.SUCCEEDED,
        2,
        6.0,
        7.0,
    )
    assert a2.result == {"out": [1, "x"]} and a2.errors == [{"attempt": 1, "error": "exit 1"}]
    assert (b2.state, b2.pid) == (TaskState.RUNNING, 4242)
    assert again.tasks["c"].state is TaskState.BLOCKED and again.tasks["c"].result is None
    assert [(e.task, e.to_state) for e in store.get_events("r")] == [("a", "succeeded")]
    nothing = again.drain(OWNER, 1e12)
    assert (nothing.run, nothing.tasks, nothing.events) == (None, [], [])


def test_a_refused_batch_is_written_again_ahead_of_later_changes(store: SQLiteStore) -> None:
    run = _load(store)
    a, b = run.tasks["a"], run.tasks["b"]
    run.state, run.run_dirty = RunState.RUNNING, True
    a.state = TaskState.RUNNING
    run.dirty = {a: None}
    run.events.append(("r", "a", "ready", "running", 1, 1.0, None))
    refused = run.drain(OWNER, 1e12)
    a.state, b.state = TaskState.SUCCEEDED, TaskState.READY  # meanwhile
    run.dirty = {b: None}
    run.events.append(("r", "a", "running", "succeeded", 1, 2.0, None))
    run.undrain(refused)
    batch = run.drain(OWNER, 1e12)
    assert [(e[2], e[3]) for e in batch.events] == [("ready", "running"), ("running", "succeeded")]
    assert sorted(row[-1] for row in batch.tasks) == ["a", "b"]
    assert batch.run is not None  # the refused batch's run row is not forgotten
    assert store.write(batch) is None
    assert {t.name: t.state for t in store.get_tasks("r")}["a"] == "succeeded"  # current state


def test_rows_of_tasks_the_spec_no_longer_has_are_ignored(store: SQLiteStore) -> None:
    smaller = workflow({"a": sh("true")})
    run = _load(store, smaller)
    assert list(run.tasks) == ["a"]
