"""Views over a run's rows and events: the status document and the run's metrics.

Everything here reads the store only, so any process can report on any run while it executes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import RunNotFound
from .states import RUN_TERMINAL, TASK_TERMINAL, RunState, TaskState
from .store import EventRecord, RunRecord, Store, TaskRecord

NO_LIVE_WORKER = "no live worker: tasks stay ready/running until a worker starts"


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(sum(values) / len(values), 6), "max": round(max(values), 6)}


def attempt_timings(events: Iterable[EventRecord]) -> tuple[list[float], list[float]]:
    """(wait times ready→running, run times running→end) of every attempt, from events."""
    ready_at: dict[str, float] = {}
    started_at: dict[str, float] = {}
    waits: list[float] = []
    runs: list[float] = []
    for ev in events:
        if ev.task is None:
            continue
        if ev.to_state == TaskState.READY:
            ready_at[ev.task] = ev.at
        elif ev.to_state == TaskState.RUNNING:
            started_at[ev.task] = ev.at
            if ev.task in ready_at:
                waits.append(ev.at - ready_at.pop(ev.task))
        elif ev.from_state == TaskState.RUNNING and ev.task in started_at:
            runs.append(ev.at - started_at.pop(ev.task))
    return waits, runs


def run_metrics(
    tasks: list[TaskRecord],
    events: Iterable[EventRecord],
    started: float | None,
    finished: float | None,
) -> dict[str, Any]:
    """Duration, counts by state, success/failure/retry rates, wait and run times, throughput.

    `events` is read once (a run's events may be paged from the store, not held at once)."""
    counts = Counter(t.state for t in tasks)
    succeeded = counts.get(TaskState.SUCCEEDED, 0)
    failed = counts.get(TaskState.FAILED, 0)
    started_tasks = [t for t in tasks if t.attempts > 0]
    attempts = sum(t.attempts for t in tasks)
    # Attempts lost with their process (or lease) were not retries: counted apart.
    lost: Counter[str] = Counter()

    def counting_lost() -> Iterator[EventRecord]:
        for e in events:
            if (
                e.task
                and e.from_state == TaskState.RUNNING
                and e.to_state != e.from_state
                and (e.detail or "").startswith("lost:")
            ):
                lost[e.task] += 1
            yield e

    waits, runs = attempt_timings(counting_lost())
    retried = sum(1 for t in started_tasks if t.attempts - lost[t.name] > 1)
    end = finished if finished is not None else time.time()
    duration = (end - started) if started is not None else None
    # Rates are over the tasks that finished (succeeded, failed, cancelled), skipped ones aside
    # (never run, by the workflow's rules): a cancelled run's success rate counts what it did
    # not finish, not 100% of the one task that ended before the cancel.
    cancelled = counts.get(TaskState.CANCELLED, 0)
    ended = sum(n for state, n in counts.items() if state in _RATED)
    cpu: list[float] = []
    rss: list[int] = []
    for t in tasks:
        if t.result and '"cpu_s"' in t.result:
            result = json.loads(t.result)
            if isinstance(result, dict) and "cpu_s" in result:
                cpu.append(float(result["cpu_s"]))
                if result.get("max_rss_kib") is not None:
                    rss.append(int(result["max_rss_kib"]))
    return {
        "duration_s": round(duration, 6) if duration is not None else None,
        "tasks": len(tasks),
        "tasks_by_state": dict(sorted(counts.items())),
        "attempts": attempts,
        "retries": max(attempts - len(started_tasks) - sum(lost.values()), 0),
        "lost_attempts": sum(lost.values()),
        "success_rate": round(succeeded / ended, 4) if ended else None,
        "failure_rate": round(failed / ended, 4) if ended else None,
        "cancel_rate": round(cancelled / ended, 4) if ended else None,
        "retry_rate": round(retried / len(started_tasks), 4) if started_tasks else None,
        "wait_time_s": _stats(waits),
        "run_time_s": _stats(runs),
        "throughput_tasks_per_s": round(succeeded / duration, 3) if duration else None,
        # Resource use of the tasks that started processes (shell), as their reaper saw it.
        "task_cpu_s": {"total": round(sum(cpu), 3), "max": max(cpu)} if cpu else None,
        "task_max_rss_kib": max(rss) if rss else None,
    }


_RATED = TASK_TERMINAL - {TaskState.SKIPPED}
"""Task states that count in the rates: every way a task ends except skipped."""


def _task_doc(t: TaskRecord) -> dict[str, Any]:
    duration = (
        round(t.finished_at - t.started_at, 6)
        if t.started_at is not None and t.finished_at is not None and t.finished_at >= t.started_at
        else None
    )
    doc: dict[str, Any] = {
        "name": t.name,
        "state": t.state,
        "attempts": t.attempts,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "duration_s": duration,
        "result": json.loads(t.result) if t.result else None,
        "error": t.error,
        "errors": json.loads(t.errors) if t.errors else [],
    }
    if t.wait_reason and t.state in (TaskState.READY, TaskState.BLOCKED, TaskState.RUNNING):
        doc["waiting"] = t.wait_reason
    return doc


def _workers_doc(store: Store, run: RunRecord, tasks: list[TaskRecord]) -> dict[str, Any] | None:
    """For a run left to `reviewflow worker`s: how many are live and, when none is while tasks
    wait or run, a note saying so (a submitted run otherwise just looks slow)."""
    if not run.mode:
        return None
    from .store.postgres import PostgresStore  # workers runs live in PostgreSQL only
    from .store.sql import query

    if not isinstance(store, PostgresStore):
        return None
    with store.session() as conn:
        # the same liveness as `reviewflow workers`, on the database clock
        clock = conn.execute(query("db_now")).fetchone()
        assert clock is not None  # a SELECT without FROM: one row
        now = float(clock[0])
        live = len(conn.execute(query("list_workers"), {"now": now, "all": False}).fetchall())
    doc: dict[str, Any] = {"live": live}
    waiting = any(t.state in (TaskState.READY, TaskState.RUNNING) for t in tasks)
    if live == 0 and waiting and RunState(run.state) not in RUN_TERMINAL:
        doc["note"] = NO_LIVE_WORKER
    return doc


EVENTS_PAGE = 10_000
"""Events read at a time for a run's metrics: a 1M-task run has ~3M of them (~1 GB as records)."""


def _paged_events(store: Store, run_id: str) -> Iterator[EventRecord]:
    after = 0
    while True:
        page = store.get_events(run_id, after, EVENTS_PAGE)
        yield from page
        if len(page) < EVENTS_PAGE:
            return
        after = page[-1].id


def run_status(store: Store, run_id: str) -> dict[str, Any]:
    """The status document of a run (what `reviewflow status RUN_ID --json` prints)."""
    run = store.get_run(run_id, spec=False)
    if run is None:
        raise RunNotFound(run_id)
    tasks = store.get_tasks(run_id)
    events = _paged_events(store, run_id)
    doc: dict[str, Any] = {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "state": run.state,
        "meta": run.meta,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "owner": run.owner,
        "tasks": [_task_doc(t) for t in tasks],
        "metrics": run_metrics(tasks, events, run.started_at, run.finished_at),
    }
    workers = _workers_doc(store, run, tasks)
    if workers is not None:
        doc["workers"] = workers
    return doc


def list_status(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """One line of facts per recent run."""
    return [
        {
            "run_id": r.run_id,
            "workflow": r.workflow,
            "state": r.state,
            "meta": r.meta,
            "created_at": r.created_at,
            "finished_at": r.finished_at,
            "error": r.error,
        }
        for r in store.list_runs(limit)
    ]
