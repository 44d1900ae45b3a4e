"""The run page's reads beyond the graph: one task's events, its row, and the timeline (Gantt)
of a run's attempts, bounded so that a 10,000-task run draws a few hundred bars.

Stores with `select` (SQLite, PostgreSQL) answer with one query that reads only the columns
needed (a task's events: that task's only); the memory store falls back to its records.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from ..store import RunRecord, Store, TaskRecord
from .context import load_run
from .http import ApiError

TIMELINE_LIMIT = 300
"""Bars drawn at most: the slowest half and the most recently started half of the attempts."""


class Ev(NamedTuple):
    task: str | None
    from_state: str | None
    to_state: str
    attempt: int | None
    at: float
    detail: str | None


def task_events(store: Store, run_id: str, task: str) -> list[Ev]:
    select = getattr(store, "select", None)
    if select is None:
        return [
            Ev(e.task, e.from_state, e.to_state, e.attempt, e.at, e.detail)
            for e in store.get_events(run_id)
            if e.task == task
        ]
    rows = select(
        "SELECT task, from_state, to_state, attempt, at, detail FROM events"
        " WHERE run_id = :run_id AND task = :task ORDER BY id",
        {"run_id": run_id, "task": task},
    )
    return [Ev(*r) for r in rows]


def task_row(store: Store, run_id: str, task: str) -> TaskRecord | None:
    select = getattr(store, "select", None)
    if select is None:
        return next((t for t in store.get_tasks(run_id) if t.name == task), None)
    rows = select(
        "SELECT state, attempts, ready_at, started_at, finished_at, next_attempt_at, result,"
        " error, errors, wait_reason, pid FROM tasks WHERE run_id = :run_id AND name = :task",
        {"run_id": run_id, "task": task},
    )
    if not rows:
        return None
    state, *rest = rows[0]
    return TaskRecord(run_id, task, state, *rest)


def run_head(store: Store, run_id: str) -> RunRecord:
    """The run's row without its spec (4.4 MB for 10,000 tasks; the dashboard keeps specs
    parsed, ui._spec); 404 if there is no such run."""
    select = getattr(store, "select", None)
    if select is None:
        return load_run(store, run_id)
    rows = select(
        "SELECT run_id, workflow, state, meta, created_at, started_at, finished_at, error"
        " FROM runs WHERE run_id = :run_id",
        {"run_id": run_id},
    )
    if not rows:
        raise ApiError(404, f"no run with id {run_id!r}", "run_id")
    rid, workflow, state, meta, created, started, finished, error = rows[0]
    if isinstance(meta, str):  # SQLite keeps JSON as text
        meta = json.loads(meta or "{}")
    return RunRecord(rid, workflow, state, "", meta or {}, created, started, finished, error)


class TaskState(NamedTuple):
    name: str
    state: str


def task_states(store: Store, run_id: str) -> list[Any]:
    """The run's tasks' names and states only (the graph needs no more)."""
    select = getattr(store, "select", None)
    if select is None:
        return list(store.get_tasks(run_id))
    rows = select(
        "SELECT name, state FROM tasks WHERE run_id = :run_id ORDER BY position",
        {"run_id": run_id},
    )
    return [TaskState(*r) for r in rows]


def last_event_id(store: Store, run_id: str) -> int:
    select = getattr(store, "select", None)
    if select is None:
        events = store.get_events(run_id)
        return events[-1].id if events else 0
    rows = select("SELECT max(id) FROM events WHERE run_id = :run_id", {"run_id": run_id})
    return int(rows[0][0] or 0) if rows else 0


def _transitions(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    select = getattr(store, "select", None)
    if select is None:
        return [
            (e.task, e.from_state, e.to_state, e.attempt, e.at)
            for e in store.get_events(run_id)
            if e.task is not None
        ]
    return list(
        select(
            "SELECT task, from_state, to_state, attempt, at FROM events"
            " WHERE run_id = :run_id AND task IS NOT NULL"
            " AND (to_state = 'running' OR from_state = 'running') ORDER BY id",
            {"run_id": run_id},
        )
    )


def _pair(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Attempts from (task, from, to, attempt, at) rows in event order."""
    bars: list[list[Any]] = []
    open_: dict[str, list[Any]] = {}
    for task, from_state, to_state, attempt, at in rows:
        if to_state == "running" and from_state != "running":
            bar = [task, attempt, at, None, "running"]
            open_[task] = bar
            bars.append(bar)
        elif from_state == "running" and to_state != "running":
            ended = open_.pop(task, None)
            if ended is not None:
                ended[3], ended[4] = at, to_state
    return bars


def timeline(store: Store, run_id: str, limit: int = TIMELINE_LIMIT) -> dict[str, Any]:
    """{bars: [[task, attempt, start, end|None, outcome]], total, now}: every attempt of the
    run in start order, or, beyond `limit`, the attempts of the limit/2 slowest tasks and of the
    most recently started others (their latest attempts first when they retried a lot).

    On SQLite and PostgreSQL the tasks table picks those tasks (their latest attempt's start
    and end are in their rows) and only their events are read: a 10,000-task run reads a few
    hundred rows, not its 20,000+ events."""
    now = time.time()
    select = getattr(store, "select", None)
    if select is None:
        bars = _pair(_transitions(store, run_id))
        return _bounded(bars, len(bars), limit, now)
    args: dict[str, Any] = {"run_id": run_id, "now": now}
    total = int(
        select("SELECT coalesce(sum(attempts), 0) FROM tasks WHERE run_id = :run_id", args)[0][0]
    )
    if total <= limit:
        return _bounded(_pair(_transitions(store, run_id)), total, limit, now)
    picked = select(
        "SELECT name FROM tasks WHERE run_id = :run_id AND started_at IS NOT NULL"
        " ORDER BY coalesce(finished_at, :now) - started_at DESC, name LIMIT :n",
        {**args, "n": limit // 2},
    )
    picked += select(
        "SELECT name FROM tasks WHERE run_id = :run_id AND started_at IS NOT NULL"
        " ORDER BY started_at DESC, name LIMIT :n",
        {**args, "n": limit},
    )
    names = list(dict.fromkeys(r[0] for r in picked))[:limit]
    marks = {f"t{i}": name for i, name in enumerate(names)}
    rows = select(
        "SELECT task, from_state, to_state, attempt, at FROM events WHERE run_id = :run_id"
        f" AND task IN ({', '.join(':' + k for k in marks)})"
        " AND (to_state = 'running' OR from_state = 'running') ORDER BY id",
        {**args, **marks},
    )
    return _bounded(_pair(rows), total, limit, now)


def _bounded(bars: list[list[Any]], total: int, limit: int, now: float) -> dict[str, Any]:
    if len(bars) > limit:  # retried tasks: each one's latest attempt, then the latest others
        latest = {b[0]: i for i, b in enumerate(bars)}
        keep = set(list(latest.values())[:limit])
        for i in range(len(bars) - 1, -1, -1):
            if len(keep) >= limit:
                break
            keep.add(i)
        bars = [bars[i] for i in sorted(keep)]
    return {"bars": bars, "total": total, "now": now, "limit": limit}
