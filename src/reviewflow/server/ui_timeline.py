"""The run page's reads beyond the graph: one task's events, its row, and the timeline (Gantt)
of a run's attempts, bounded so that a 10,000-task run draws a few hundred bars.

Stores with `select` (SQLite, PostgreSQL) answer with one query that reads only the columns
needed (a task's events: that task's only); the memory store falls back to its records.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from ..store import Store, TaskRecord

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


def timeline(store: Store, run_id: str, limit: int = TIMELINE_LIMIT) -> dict[str, Any]:
    """{bars: [[task, attempt, start, end|None, outcome]], total, now}: every attempt of the
    run, or, beyond `limit`, the slowest limit/2 and the most recently started others."""
    now = time.time()
    bars: list[list[Any]] = []
    open_: dict[str, list[Any]] = {}
    for task, from_state, to_state, attempt, at in _transitions(store, run_id):
        if to_state == "running" and from_state != "running":
            bar = [task, attempt, at, None, "running"]
            open_[task] = bar
            bars.append(bar)
        elif from_state == "running" and to_state != "running":
            bar = open_.pop(task, None)  # type: ignore[assignment]
            if bar is not None:
                bar[3], bar[4] = at, to_state
    total = len(bars)
    if total > limit:

        def length(b: list[Any]) -> float:
            return float((b[3] if b[3] is not None else now) - b[2])

        order = sorted(range(total), key=lambda i: length(bars[i]), reverse=True)
        keep = set(order[: limit // 2])
        for i in range(total - 1, -1, -1):  # most recently started (bars are in start order)
            if len(keep) >= limit:
                break
            keep.add(i)
        bars = [bars[i] for i in sorted(keep)]
    return {"bars": bars, "total": total, "now": now, "limit": limit}
