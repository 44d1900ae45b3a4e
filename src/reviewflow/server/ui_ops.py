"""The Workers and Metrics pages' data, computed in the database.

Workers: the `workers` rows of a PostgreSQL database (heartbeat age on the database clock) with
the tasks each one runs; a SQLite database has no workers (the process running a run executes
it), which the page explains.

Metrics: time buckets over the tasks of the runs created in (or a day before) the chosen window,
the newest MAX_RUNS of them: tasks finished (throughput), duration and queue-wait percentiles
(nearest rank, with window functions: the same SQL on SQLite and PostgreSQL), success / retry /
failure rates, runs finished, and tasks finished per workflow. At most 60 buckets, one query
per chart family, nothing proportional to the database's size leaves it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..store import Store

RANGES = {"1h": (3600, 60), "6h": (6 * 3600, 300), "24h": (86400, 1800), "7d": (7 * 86400, 14400)}
"""range -> (seconds, bucket width)."""
MAX_RUNS = 20_000
RUN_SLACK = 86400.0
"""Runs created this long before the window still count (a long run finishes inside it)."""
MAX_WORKERS = 500
MAX_RUNNING_SHOWN = 20
TOP_WORKFLOWS = 6
FAILED = ("failed", "timed_out")


def _select(store: Store) -> Any:
    return getattr(store, "select", None)


def _dialect(store: Store) -> str:
    return str(getattr(store, "dialect", ""))


def workers_doc(store: Store) -> dict[str, Any]:
    """{supported, workers: [{name, host, pid, started_at, heartbeat_age, concurrency, state,
    running, tasks: [[run_id, task, started_at]]}]}; supported is False but on PostgreSQL."""
    select = _select(store)
    if select is None or _dialect(store) != "postgresql":
        return {"supported": False, "database": _dialect(store) or "memory", "workers": []}
    now = float(select("SELECT extract(epoch FROM clock_timestamp())", {})[0][0])
    rows = select(
        "SELECT owner, name, host, pid, started_at, :now - heartbeat_at, concurrency,"
        " CASE WHEN heartbeat_at >= :now - lease_ttl / 2 THEN state ELSE 'lost' END"
        " FROM workers ORDER BY name, started_at LIMIT :limit",
        {"now": now, "limit": MAX_WORKERS},
    )
    owners = [r[0] for r in rows]
    running: dict[str, list[list[Any]]] = {o: [] for o in owners}
    counts: dict[str, int] = dict.fromkeys(owners, 0)
    if owners:
        for owner, run_id, task, started in select(
            "SELECT owner, run_id, name, started_at FROM tasks"
            " WHERE state = 'running' AND owner = ANY(:owners) ORDER BY started_at",
            {"owners": owners},
        ):
            counts[owner] += 1
            if len(running[owner]) < MAX_RUNNING_SHOWN:
                running[owner].append([run_id, task, started])
    keys = ("name", "host", "pid", "started_at", "heartbeat_age", "concurrency", "state")
    workers = [
        {**dict(zip(keys, r[1:], strict=True)), "running": counts[r[0]], "tasks": running[r[0]]}
        for r in rows
    ]
    return {"supported": True, "database": "postgresql", "now": now, "workers": workers}


def _bucket(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"CAST(floor(({column} - :since) / :width) AS INTEGER)"
    return f"CAST(({column} - :since) / :width AS INTEGER)"  # SQLite: >= 0, truncation is floor


def _scope(workflow: str | None) -> str:
    only = " AND workflow = :workflow" if workflow else ""
    return (
        "WITH scope AS (SELECT run_id, workflow FROM runs WHERE created_at >= :since_runs"
        f"{only} ORDER BY created_at DESC LIMIT :max_runs)"
    )


def _percentiles(value: str, bucket: str, where: str, workflow: str | None) -> str:
    return f"""{_scope(workflow)},
d AS (SELECT {bucket} AS b, {value} AS v, t.state AS state, t.attempts AS attempts
      FROM scope s JOIN tasks t ON t.run_id = s.run_id WHERE {where}),
r AS (SELECT b, v, state, attempts, ROW_NUMBER() OVER (PARTITION BY b ORDER BY v) AS rn,
             COUNT(*) OVER (PARTITION BY b) AS n FROM d)
SELECT b, MAX(n),
       SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state IN ('failed', 'timed_out') THEN 1 ELSE 0 END),
       SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END),
       MIN(CASE WHEN rn >= (50 * n + 99) / 100 THEN v END),
       MIN(CASE WHEN rn >= (95 * n + 99) / 100 THEN v END),
       MAX(v)
FROM r GROUP BY b ORDER BY b"""


def metrics_doc(
    store: Store, range_: str = "1h", workflow: str | None = None, now: float | None = None
) -> dict[str, Any]:
    select = _select(store)
    if select is None:
        return {"supported": False}
    span, width = RANGES[range_]
    until = time.time() if now is None else now
    n = span // width
    since = (math.floor(until / width) - n + 1) * width  # whole buckets, the last holds now
    args: dict[str, Any] = {
        "since": since,
        "until": until,
        "width": float(width),
        "since_runs": since - RUN_SLACK,
        "max_runs": MAX_RUNS,
    }
    if workflow:
        args["workflow"] = workflow
    dialect = _dialect(store)
    done = _bucket(dialect, "t.finished_at")
    finished = (
        "t.finished_at >= :since AND t.finished_at < :until AND t.started_at IS NOT NULL"
        " AND t.state IN ('succeeded', 'failed', 'timed_out', 'cancelled')"
    )
    tasks = select(_percentiles("t.finished_at - t.started_at", done, finished, workflow), args)
    waited = (
        "t.started_at >= :since AND t.started_at < :until AND t.ready_at IS NOT NULL"
        " AND t.started_at >= t.ready_at"
    )
    started = _bucket(dialect, "t.started_at")
    waits = select(_percentiles("t.started_at - t.ready_at", started, waited, workflow), args)
    per_wf = select(
        f"{_scope(workflow)} SELECT s.workflow, {done}, COUNT(*)"
        f" FROM scope s JOIN tasks t ON t.run_id = s.run_id WHERE {finished}"
        f" GROUP BY s.workflow, {done}",
        args,
    )
    only = " AND workflow = :workflow" if workflow else ""
    runs = select(
        f"SELECT {_bucket(dialect, 'finished_at')}, COUNT(*),"
        " SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END)"
        " FROM runs WHERE created_at >= :since_runs AND finished_at >= :since"
        f" AND finished_at < :until{only} GROUP BY 1",
        args,
    )
    workflows = select(
        "SELECT workflow, COUNT(*) FROM runs WHERE created_at >= :since_runs"
        " GROUP BY workflow ORDER BY COUNT(*) DESC, workflow LIMIT 50",
        args,
    )
    scanned = select(
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE created_at >= :since_runs"
        f"{only} LIMIT :cap) x",
        {**args, "cap": MAX_RUNS + 1},
    )[0][0]

    def series() -> list[Any]:
        return [None] * n

    out: dict[str, list[Any]] = {
        k: series()
        for k in (
            "finished",
            "succeeded",
            "failed",
            "duration_p50",
            "duration_p95",
            "duration_max",
            "success_rate",
            "retry_rate",
            "failure_rate",
            "wait_p50",
            "wait_p95",
            "runs_finished",
            "runs_succeeded",
        )
    }
    for k in ("finished", "succeeded", "failed", "runs_finished", "runs_succeeded"):
        out[k] = [0] * n
    for b, count, ok, bad, retried, p50, p95, top in tasks:
        if not 0 <= b < n:
            continue
        out["finished"][b], out["succeeded"][b], out["failed"][b] = count, ok, bad
        out["duration_p50"][b], out["duration_p95"][b], out["duration_max"][b] = p50, p95, top
        out["success_rate"][b] = round(100.0 * ok / count, 2)
        out["failure_rate"][b] = round(100.0 * bad / count, 2)
        out["retry_rate"][b] = round(100.0 * retried / count, 2)
    for b, _count, _ok, _bad, _retried, p50, p95, _top in waits:
        if 0 <= b < n:
            out["wait_p50"][b], out["wait_p95"][b] = p50, p95
    for b, count, ok in runs:
        if 0 <= b < n:
            out["runs_finished"][b], out["runs_succeeded"][b] = count, ok
    totals: dict[str, int] = {}
    for wf, b, count in per_wf:
        if 0 <= b < n:
            totals[wf] = totals.get(wf, 0) + count
    top_wfs = sorted(totals, key=lambda w: (-totals[w], w))[:TOP_WORKFLOWS]
    by_wf = {w: [0] * n for w in top_wfs}
    for wf, b, count in per_wf:
        if wf in by_wf and 0 <= b < n:
            by_wf[wf][b] = count
    return {
        "supported": True,
        "range": range_,
        "width": width,
        "since": since,
        "until": until,
        "buckets": [since + i * width for i in range(n)],
        "workflow": workflow,
        "workflows": [w for w, _ in workflows],
        "per_workflow": by_wf,
        "runs_scanned": min(int(scanned), MAX_RUNS),
        "capped": int(scanned) > MAX_RUNS,
        **out,
    }
