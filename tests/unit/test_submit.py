"""Storing a new run without the engine (`submit.py`): what `reviewflow review` and
`Engine.submit` rely on — every task stored blocked, the run pending with its first event, an
idempotent run id, a bad id refused naming the field — on real SQLite files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reviewflow.config import validate_spec
from reviewflow.errors import SpecError
from reviewflow.store import SQLiteStore
from reviewflow.submit import BlockedTasks, new_run_id, run_id_for, submit_run

SPEC = validate_spec(
    {
        "name": "pr",
        "tasks": {
            "lint": {"run": ["true"]},
            "tests": {"run": ["true"], "needs": ["lint"]},
        },
        "on_failure": {"notify": {"run": ["true"]}},
    }
)


def test_a_new_run_is_pending_with_every_task_blocked_and_one_event(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    run_id, created = submit_run(store, SPEC, meta={"pr": "7"})
    assert created is True
    run = store.get_run(run_id)
    assert run is not None and run.state == "pending" and run.meta == {"pr": "7"}
    tasks = {t.name: t.state for t in store.get_tasks(run_id)}
    assert tasks == {"lint": "blocked", "tests": "blocked", "notify": "blocked"}  # hooks too
    [event] = store.get_events(run_id)
    assert (event.task, event.from_state, event.to_state) == (None, None, "pending")
    # The stored spec reads back as the workflow that was submitted.
    assert validate_spec(json.loads(run.spec)).model_dump() == SPEC.model_dump()


def test_the_same_run_id_twice_leaves_the_first_run_untouched(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    assert submit_run(store, SPEC, run_id="pr-42", meta={"try": "1"}) == ("pr-42", True)
    assert submit_run(store, SPEC, run_id="pr-42", meta={"try": "2"}) == ("pr-42", False)
    run = store.get_run("pr-42")
    assert run is not None and run.meta == {"try": "1"}
    assert len(store.get_events("pr-42")) == 1


@pytest.mark.parametrize("bad", ["", "-leading-dash", "has space", "a/b", "x" * 201, "é"])
def test_a_bad_run_id_is_refused_naming_the_field_and_nothing_is_stored(
    tmp_path: Path, bad: str
) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    with pytest.raises(SpecError, match="bad run id") as caught:
        submit_run(store, SPEC, run_id=bad)
    assert caught.value.field == "run_id"
    assert store.list_runs() == []


def test_generated_ids_name_the_workflow_sort_by_time_and_differ() -> None:
    ids = {new_run_id("pr") for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"pr-\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
    assert run_id_for(SPEC, None).startswith("pr-")
    assert run_id_for(SPEC, "mine_1.2") == "mine_1.2"


def test_the_blocked_rows_are_made_on_demand_in_order() -> None:
    rows = BlockedTasks("r", ["a", "b", "c"])
    assert len(rows) == 3
    assert [t.name for t in rows] == ["a", "b", "c"]
    assert rows[1].name == "b" and rows[1].state == "blocked" and rows[1].run_id == "r"
    assert [t.name for t in rows[1:]] == ["b", "c"]
