"""A 2,000-task layered DAG on SQLite: everything succeeds once, in dependency order."""

from __future__ import annotations

from collections import Counter

from reviewflow.states import RunState
from rfhelpers import arun, py, workflow

LAYERS, WIDTH = 20, 100


def _name(layer: int, i: int) -> str:
    return f"l{layer:02d}_{i:03d}"


def _layered_dag() -> dict[str, dict]:
    tasks: dict[str, dict] = {}
    for layer in range(LAYERS):
        for i in range(WIDTH):
            needs = [_name(layer - 1, i), _name(layer - 1, (i * 7 + 3) % WIDTH)] if layer else []
            if len(set(needs)) < len(needs):
                needs = [needs[0], _name(layer - 1, (i + 1) % WIDTH)]
            tasks[_name(layer, i)] = py("anoop", needs=needs)
    return tasks


def test_two_thousand_tasks_on_sqlite(sqlite_stores, make_engine) -> None:
    tasks = _layered_dag()
    assert len(tasks) == LAYERS * WIDTH
    store = sqlite_stores()
    engine = make_engine(store)
    run_id, _ = engine.submit(workflow(tasks, name="load"))
    assert arun(engine.execute(run_id), timeout=100) is RunState.SUCCEEDED

    rows = {t.name: t for t in store.get_tasks(run_id)}
    assert len(rows) == LAYERS * WIDTH
    assert Counter((r.state, r.attempts) for r in rows.values()) == {
        ("succeeded", 1): LAYERS * WIDTH
    }
    for name, body in tasks.items():
        row = rows[name]
        assert row.started_at <= row.finished_at
        for dep in body["needs"]:
            assert row.started_at >= rows[dep].finished_at, f"{name} started before {dep} ended"

    evs = store.get_events(run_id)
    assert Counter(e.to_state for e in evs if e.task) == {
        "ready": 2000,
        "running": 2000,
        "succeeded": 2000,
    }
    assert store.get_run(run_id).state == "succeeded"
