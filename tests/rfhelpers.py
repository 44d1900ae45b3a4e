"""Helpers shared by the test modules (imported as `rfhelpers`; tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from reviewflow.config import load_workflow_text, validate_spec
from reviewflow.errors import SpecError
from reviewflow.spec import WorkflowSpec
from reviewflow.store.base import TASK_COLUMNS, Event, EventRecord, RunRecord, Store, TaskRecord

# Engine timings used by the tests: writes are flushed quickly and requests left in the store by
# other processes are picked up by a heartbeat every HEARTBEAT seconds.
FLUSH = 0.01
HEARTBEAT = 0.1


def arun(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run a coroutine to completion on a fresh event loop, failing (not hanging) after
    `timeout` seconds so that an engine that never finishes a run shows up as a test failure."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def workflow(tasks: dict[str, dict[str, Any]], **run_fields: Any) -> WorkflowSpec:
    """A validated spec named "wf" (or run_fields["name"])."""
    data: dict[str, Any] = {"name": run_fields.pop("name", "wf"), "tasks": tasks, **run_fields}
    return validate_spec(data)


def py(fn: str, **body: Any) -> dict[str, Any]:
    """A python task body calling tasks_for_tests:<fn>."""
    return {"type": "python", "call": f"tasks_for_tests:{fn}", **body}


def sh(script: str, **body: Any) -> dict[str, Any]:
    """A shell task body running `sh -c <script>`."""
    return {"type": "shell", "run": ["sh", "-c", script], **body}


def events(store: Store, run_id: str) -> list[EventRecord]:
    return store.get_events(run_id)


def task_events(store: Store, run_id: str, task: str) -> list[EventRecord]:
    return [e for e in store.get_events(run_id) if e.task == task]


def run_events(store: Store, run_id: str) -> list[EventRecord]:
    return [e for e in store.get_events(run_id) if e.task is None]


def tasks_by_name(store: Store, run_id: str) -> dict[str, TaskRecord]:
    return {t.name: t for t in store.get_tasks(run_id)}


def start_order(store: Store, run_id: str) -> list[str]:
    """Task names in the order of their `running` events (event id order)."""
    return [e.task for e in store.get_events(run_id) if e.task and e.to_state == "running"]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Largest number of [start, end] intervals open at one instant (touching ends do not
    overlap: an end at t is processed before a start at t)."""
    points = [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals]
    points.sort(key=lambda p: (p[0], p[1]))
    best = cur = 0
    for _, step in points:
        cur += step
        best = max(best, cur)
    return best


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs. A zombie (killed, waiting for PID 1 to reap it) counts as
    gone: it executes nothing, and reaping orphans is init's job, not the engine's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01
) -> bool:
    """Poll `predicate` from inside the event loop (so the engine keeps running)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def load_text(text: str, **kwargs: Any) -> WorkflowSpec:
    """A workflow from (indented) YAML text, as the file `wf.yaml`, with no environment."""
    kwargs.setdefault("env", {})
    return load_workflow_text(textwrap.dedent(text), file="wf.yaml", **kwargs)


def load_error(text: str, **kwargs: Any) -> SpecError:
    """The error `load_text` raises (the test fails if it loads)."""
    try:
        load_text(text, **kwargs)
    except SpecError as exc:
        return exc
    raise AssertionError("the workflow loaded")


def write_files(folder: Path, files: dict[str, str]) -> Path:
    """Write (indented) text files under `folder`, folders made as needed; returns `folder`."""
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder


# --------------------------------------------------------------------- store records by hand


def run_record(run_id: str = "r1", created_at: float = 1000.0, **fields: Any) -> RunRecord:
    """A pending run of workflow "wf", meta pr=7, as `submit` would store it."""
    return RunRecord(
        run_id=run_id,
        workflow="wf",
        state="pending",
        spec='{"name": "wf"}',
        meta={"pr": "7"},
        created_at=created_at,
        **fields,
    )


def blocked_tasks(run_id: str = "r1", names: tuple[str, ...] = ("b", "a", "c")) -> list[TaskRecord]:
    return [TaskRecord(run_id, n, "blocked") for n in names]


def event_tuple(run_id: str, to: str, task: str | None = None, at: float = 1000.0) -> Event:
    """An event not yet stored: `to` from nothing, no attempt, no detail."""
    return (run_id, task, None, to, None, at, None)


def create_run_in(store: Store, run_id: str = "r1", **fields: Any) -> None:
    """Store a new run of three blocked tasks (b, a, c) and its "pending" event."""
    record = run_record(run_id, **fields)
    assert store.create_run(record, blocked_tasks(run_id), [event_tuple(run_id, "pending")])


def task_row(name: str, state: str = "running", attempts: int = 1, **cols: Any) -> tuple[Any, ...]:
    """A batch's task update: TASK_COLUMNS values (None unless given) + the task's name."""
    values = dict.fromkeys(TASK_COLUMNS) | {"state": state, "attempts": attempts} | cols
    return (*(values[c] for c in TASK_COLUMNS), name)


def reviewflow_cmd(*args: str) -> list[str]:
    """argv of `reviewflow ARGS` in a child process, with this interpreter."""
    return [sys.executable, "-m", "reviewflow", *args]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> None:
    """Poll `predicate` until it holds (a progress condition; the bound only ends a test
    whose processes never make progress)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ------------------------------------------------------------------------------ schedules


def schedule_workflow(*schedules: dict[str, Any], name: str = "tick") -> WorkflowSpec:
    """A one-task workflow (`noop`: `true`) with these `schedules:` entries."""
    return validate_spec(
        {
            "name": name,
            "tasks": {"noop": {"type": "shell", "run": ["true"]}},
            "schedules": list(schedules),
        }
    )


def engine_submitter(store: Store) -> Callable[[Any, str, dict[str, str]], tuple[str, bool]]:
    """What a Scheduler calls to store a run: an embedded engine's submit."""
    from reviewflow.engine import Engine

    engine = Engine(store)

    def submit(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
        return engine.submit(spec, run_id=run_id, meta=meta)

    return submit


def scheduled_runs(store: Store, schedule: str) -> list[Any]:
    """The runs a schedule fired (their meta names it)."""
    return [r for r in store.list_runs(limit=10_000) if r.meta.get("schedule") == schedule]


def break_schedule(store: Store, schedule_id: str) -> None:
    """Make the stored workflow of a schedule one this version no longer accepts (as after an
    upgrade that dropped a task type): the row stays, its spec fails validation."""
    import dataclasses
    import json

    row = store.get_schedule(schedule_id)
    assert row is not None
    spec = json.loads(row.spec)
    spec["tasks"]["noop"] = {"type": "gone-plugin", "run": ["true"]}
    store.put_schedule(dataclasses.replace(row, spec=json.dumps(spec)))


def pg_task_row(store: Any, run_id: str, name: str) -> tuple[Any, ...]:
    """(state, held, attempts, owner) of a task as PostgreSQL holds it (workers mode)."""
    with store.session() as conn:
        row = conn.execute(
            "SELECT state, held, attempts, owner FROM tasks WHERE run_id = %s AND name = %s",
            (run_id, name),
        ).fetchone()
    assert row is not None
    return tuple(row)
