"""Workers mode in-process: `Worker`s in the test's event loop on a real PostgreSQL database.

Each Worker has its own store (connection pool) and owner id, as separate machines would; they
claim from the queue that `Cluster.submit` fills. The tests check what a user relies on: the
same results as the embedded engine, limits and priorities that hold across workers, leases
that bring back the tasks of a hung worker (and refuse its late completions), run control,
draining, approvals and idempotent submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reviewflow.api import run_sync
from reviewflow.cluster.queue import Cluster, Outcome, Pending
from reviewflow.cluster.worker import Worker
from reviewflow.errors import StoreError
from reviewflow.spec import WorkflowSpec
from reviewflow.states import RUN_TERMINAL, RunState
from reviewflow.store import SQLiteStore
from reviewflow.store.base import RunRecord, Store
from reviewflow.store.postgres import PostgresStore
from rfhelpers import (
    FLUSH,
    HEARTBEAT,
    arun,
    max_overlap,
    py,
    start_order,
    task_events,
    tasks_by_name,
    wait_until,
    workflow,
)
from rfhelpers import (
    pg_task_row as _row,
)

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))  # workers_tasks

LEASE = 1.0
POLL = 0.05
NO_RETRY = {"max_retries": 0}
RUN_TERMINAL_STATES = {s.value for s in RUN_TERMINAL}


# ------------------------------------------------------------------------------- helpers


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_url)
    yield store
    store.close()


def wt(fn: str, **body: Any) -> dict[str, Any]:
    """A python task body calling workers_tasks:<fn>."""
    return {"type": "python", "call": f"workers_tasks:{fn}", **body}


@contextlib.asynccontextmanager
async def workers(
    url: str, tmp_path: Path, n: int = 1, **options: Any
) -> AsyncIterator[list[Worker]]:
    """`n` Workers running in this loop, each with its own store; drained (at once) on exit."""
    options.setdefault("lease_ttl", LEASE)
    options.setdefault("poll_interval", POLL)
    options.setdefault("grace", 0.1)
    options.setdefault("runs_dir", tmp_path / "runs")
    stores = [PostgresStore(url) for _ in range(n)]
    started = [Worker(s, name=f"w{i}", **options) for i, s in enumerate(stores)]
    loops = [asyncio.create_task(w.run()) for w in started]
    try:
        yield started
    finally:
        for w in started:
            w.drain()
            w.drain()  # a second call hands back at once
        outcomes = await asyncio.wait_for(asyncio.gather(*loops, return_exceptions=True), 10)
        for s in stores:
            s.close()
        await asyncio.to_thread(_join_listeners)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors


def _join_listeners(within: float = 2.0) -> None:
    """Stopped workers' LISTEN threads end within their 0.5 s poll: wait for them, so none
    outlives its test (and its database)."""
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread.name == "reviewflow-listen":
            thread.join(max(deadline - time.monotonic(), 0.0))


async def until_done(store: Store, run_id: str, timeout: float = 10.0) -> RunRecord:
    """The run once it ended (polled from the loop, so the workers keep running)."""
    ended = await wait_until(
        lambda: store.get_run(run_id).state in RUN_TERMINAL_STATES,  # type: ignore[union-attr]
        timeout=timeout,
        interval=0.02,
    )
    if not ended:
        states = {t.name: (t.state, t.attempts, t.wait_reason) for t in store.get_tasks(run_id)}
        pytest.fail(f"run {run_id} did not end within {timeout}s; tasks: {states}")
    run = store.get_run(run_id)
    assert run is not None
    return run


def lost_attempts(store: PostgresStore, run_id: str, name: str) -> int:
    with store.session() as conn:
        row = conn.execute(
            "SELECT lost_attempts FROM tasks WHERE run_id = %s AND name = %s", (run_id, name)
        ).fetchone()
    assert row is not None
    return int(row[0])


def log_intervals(log: Path) -> list[tuple[float, float]]:
    """[start, end] of each attempt from an `asleep` log (the task body's own clock)."""
    starts: dict[tuple[str, str], float] = {}
    spans = []
    for line in log.read_text().splitlines():
        what, task, attempt, at = line.split()
        if what == "start":
            starts[(task, attempt)] = float(at)
        else:
            spans.append((starts.pop((task, attempt)), float(at)))
    assert not starts, f"attempts that never ended: {starts}"
    return spans


# ------------------------------------------------------- 1. parity with the embedded engine


def _flaky(d: Path, fail_times: int, max_retries: int) -> dict[str, Any]:
    return py(
        "flaky",
        params={"counter": str(d / "count"), "fail_times": fail_times},
        retry={"max_retries": max_retries, "base_delay": "10ms", "jitter": False},
    )


def _hook_log(d: Path) -> dict[str, Any]:
    return {
        "notify": py("record", params={"log": str(d / "hooks.log")}),
        "cleanup": py("record", params={"log": str(d / "hooks.log")}, needs=["notify"]),
    }


PARITY: dict[str, Callable[[Path], WorkflowSpec]] = {
    "retry-then-succeed": lambda d: workflow({"flaky": _flaky(d, 2, 3)}),
    "retries-exhausted": lambda d: workflow({"flaky": _flaky(d, 100, 2)}),
    "fail-fast": lambda d: workflow(
        {
            "bad": py("fail", params={"seconds": 0.1}, retry=NO_RETRY),
            "long": py("asleep", params={"seconds": 30}),
            "after_long": py("anoop", needs=["long"]),
            "after_bad": py("anoop", needs=["bad"]),
            "delayed": py("anoop", delay="10s"),
        }
    ),
    "continue": lambda d: workflow(
        {
            "bad": py("fail", retry=NO_RETRY),
            "child": py("anoop", needs=["bad"]),
            "grandchild": py("anoop", needs=["child"]),
            "x": py("asleep", params={"seconds": 0.1}),
            "y": py("anoop", needs=["x"]),
            "join": py("anoop", needs=["x", "bad"]),
        },
        failure_policy="continue",
    ),
    "continue-last-task-fails": lambda d: workflow(
        {
            "ok": py("anoop"),
            "bad": py("fail", params={"seconds": 0.2}, retry=NO_RETRY),
        },
        failure_policy="continue",
    ),
    "all-done-trigger": lambda d: workflow(
        {
            "bad": py("fail", retry=NO_RETRY),
            "ok": py("asleep", params={"seconds": 0.05}),
            "report": py("failures_echo", needs=["bad", "ok"], trigger="all_done"),
            "after_report": py("anoop", needs=["report"]),
        },
        failure_policy="continue",
    ),
    "hooks-on-failure": lambda d: workflow(
        {"bad": py("fail", retry=NO_RETRY), "ok": py("anoop")},
        failure_policy="continue",
        on_failure=_hook_log(d),
    ),
    "hooks-fail-fast": lambda d: workflow(
        {"bad": py("fail", retry=NO_RETRY), "ok": py("asleep", params={"seconds": 30})},
        on_failure=_hook_log(d),
    ),
    "hooks-not-needed": lambda d: workflow(
        {"ok": py("anoop"), "then": py("anoop", needs=["ok"])},
        on_failure=_hook_log(d),
    ),
    "task-timeout-retried": lambda d: workflow(
        {
            "slow": py(
                "asleep",
                params={"seconds": 30},
                timeout="200ms",
                retry={"max_retries": 1, "base_delay": "10ms", "jitter": False},
            ),
            "after": py("anoop", needs=["slow"]),
        }
    ),
    "task-timeout-then-success": lambda d: workflow(
        {
            "t": wt(
                "flaky_slow",
                params={"counter": str(d / "count"), "slow_times": 1},
                timeout="200ms",
                retry={"max_retries": 2, "base_delay": "10ms"},
            ),
        }
    ),
    "run-timeout": lambda d: workflow(
        {
            "long": py("asleep", params={"seconds": 30}),
            "after": py("anoop", needs=["long"]),
            "quick": py("anoop"),
        },
        timeout="500ms",
        on_failure={"notify": py("anoop")},
    ),
    "delay-and-not-before": lambda d: workflow(
        {
            "a": py("anoop", delay="200ms"),
            "b": py("anoop", needs=["a"], delay="100ms"),
            "c": py("anoop", not_before="300ms"),
            "d": py("anoop", needs=["c"]),
        }
    ),
}


def _summary(store: Store, run_id: str) -> tuple[Any, ...]:
    run = store.get_run(run_id)
    assert run is not None
    tasks = {
        t.name: (t.state, t.attempts, t.error, None if t.result is None else json.loads(t.result))
        for t in store.get_tasks(run_id)
    }
    return run.state, run.error, tasks


@pytest.mark.parametrize("case", sorted(PARITY))
def test_workers_give_the_embedded_engines_results(
    pg: PostgresStore, pg_url: str, tmp_path: Path, case: str
) -> None:
    embedded_dir, workers_dir = tmp_path / "embedded", tmp_path / "workers"
    embedded_dir.mkdir()
    workers_dir.mkdir()

    sqlite = SQLiteStore(tmp_path / "db.sqlite")
    try:
        run_id, _ = run_sync(
            PARITY[case](embedded_dir),
            store=sqlite,
            run_id="parity",
            flush_interval=FLUSH,
            heartbeat_interval=HEARTBEAT,
            runs_dir=tmp_path / "runs",
        )
        expected = _summary(sqlite, run_id)
    finally:
        sqlite.close()

    async def main() -> None:
        Cluster(pg).submit(PARITY[case](workers_dir), run_id="parity")
        async with workers(pg_url, tmp_path, n=2):
            await until_done(pg, "parity")

    arun(main())
    assert _summary(pg, "parity") == expected
    # side effects happened as often in both modes (retries executed, hooks ran once each)
    for name in ("count", "hooks.log"):
        here, there = embedded_dir / name, workers_dir / name
        assert here.exists() == there.exists(), name
        if here.exists():
            assert len(here.read_text().splitlines()) == len(there.read_text().splitlines())
    if case == "delay-and-not-before":
        run = pg.get_run("parity")
        assert run is not None
        rows = tasks_by_name(pg, "parity")
        assert rows["a"].started_at >= run.created_at + 0.2 - 0.002
        assert rows["b"].started_at >= rows["a"].finished_at + 0.1 - 0.002
        assert rows["c"].started_at >= run.created_at + 0.3 - 0.002


# ----------------------------------------------------------- 2. limits hold across workers


def test_a_concurrency_key_limit_holds_across_workers(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    names = [f"t{i:02}" for i in range(30)]
    spec = workflow(
        {
            n: py("asleep", params={"seconds": 0.05, "log": str(log)}, concurrency_key="k")
            for n in names
        },
        concurrency_limits={"k": 2},
    )
    reasons: set[str] = set()

    async def main() -> RunRecord:
        run_id, _ = Cluster(pg).submit(spec, run_id="keyed")

        async def watch() -> None:
            while True:
                reasons.update(
                    t.wait_reason
                    for t in pg.get_tasks(run_id)
                    if t.state == "ready" and t.wait_reason
                )
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        try:
            async with workers(pg_url, tmp_path, n=3, concurrency=4):
                return await until_done(pg, run_id, timeout=30)
        finally:
            watcher.cancel()

    assert arun(main()).state == "succeeded"
    spans = log_intervals(log)
    assert len(spans) == 30  # each task ran once
    assert max_overlap(spans) == 2  # never more than the limit at once, and the limit used
    assert "waiting for key k: 2/2 in use" in reasons
    assert {t.state for t in pg.get_tasks("keyed")} == {"succeeded"}
    assert all(t.wait_reason is None and t.attempts == 1 for t in pg.get_tasks("keyed"))


def test_a_runs_max_concurrency_holds_across_workers(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = workflow(
        {f"t{i:02}": py("asleep", params={"seconds": 0.05, "log": str(log)}) for i in range(12)},
        max_concurrency=2,
    )
    other = workflow(
        {f"o{i}": py("asleep", params={"seconds": 0.05}) for i in range(4)}, name="other"
    )
    reasons: set[str] = set()

    async def main() -> tuple[str, str]:
        run_id, _ = Cluster(pg).submit(spec, run_id="capped")

        async def watch() -> None:
            while True:
                reasons.update(
                    t.wait_reason
                    for t in pg.get_tasks(run_id)
                    if t.state == "ready" and t.wait_reason
                )
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        try:
            async with workers(pg_url, tmp_path, n=3, concurrency=4):
                Cluster(pg).submit(other, run_id="other")  # another run is not held back
                first = await until_done(pg, run_id, timeout=30)
                second = await until_done(pg, "other", timeout=30)
                return first.state, second.state
        finally:
            watcher.cancel()

    assert arun(main()) == ("succeeded", "succeeded")
    spans = log_intervals(log)
    assert len(spans) == 12
    assert max_overlap(spans) == 2
    assert "waiting for run max_concurrency: 2/2 in use" in reasons
    assert all(t.wait_reason is None for t in pg.get_tasks("capped"))


# ------------------------------------------------------------------------- 3. priorities


def test_a_worker_starts_ready_tasks_in_priority_order(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    defined = {
        "t_low": "low",
        "t_high": "high",
        "t_int10": 10,
        "t_med": "medium",
        "t_neg": -5,
        "t_int0": 0,
    }
    spec = workflow({n: py("anoop", priority=p) for n, p in defined.items()})

    async def main() -> RunRecord:
        Cluster(pg).submit(spec, run_id="prio")
        async with workers(pg_url, tmp_path, n=1, concurrency=1):
            return await until_done(pg, "prio")

    assert arun(main()).state == "succeeded"
    assert start_order(pg, "prio") == ["t_int10", "t_high", "t_med", "t_low", "t_int0", "t_neg"]
    starts = {t.name: t.started_at for t in pg.get_tasks("prio")}
    assert sorted(starts, key=lambda n: starts[n]) == start_order(pg, "prio")


# ------------------------------------------------------------------------------- 4. leases


def _hang(cluster: Cluster, n: int = 1) -> list[Any]:
    """Claim like a worker that then hangs: start events recorded, no heartbeat ever again."""
    claimed = cluster.claim(n)
    cluster.record(Pending(events=[c.event for c in claimed]))
    return claimed


def test_a_hung_workers_task_goes_back_to_ready_and_succeeds_elsewhere(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    spec = workflow({"t": wt("whoami"), "after": py("anoop", needs=["t"])})
    Cluster(pg).submit(spec, run_id="hung")
    hung = Cluster(pg, lease_ttl=0.3)
    [claimed] = _hang(hung)
    assert (claimed.name, claimed.attempt) == ("t", 1)

    async def main() -> RunRecord:
        async with workers(pg_url, tmp_path, n=1, max_lost_attempts=2) as [w]:
            run = await until_done(pg, "hung")
            assert w.completed == 2  # t's second attempt and `after`
            return run

    assert arun(main()).state == "succeeded"
    row = tasks_by_name(pg, "hung")["t"]
    assert (row.state, row.attempts, json.loads(row.result)) == ("succeeded", 2, {"attempt": 2})
    assert lost_attempts(pg, "hung", "t") == 1
    evs = task_events(pg, "hung", "t")
    back = [e for e in evs if (e.from_state, e.to_state) == ("running", "ready")]
    assert len(back) == 1
    assert back[0].detail.startswith("lost:")
    assert hung.owner in back[0].detail
    assert [e.attempt for e in evs if e.to_state == "running"] == [1, 2]


def test_a_task_whose_leases_keep_expiring_fails_as_lost(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    spec = workflow({"t": py("anoop", retry={"max_retries": 5}), "after": py("anoop", needs=["t"])})
    Cluster(pg).submit(spec, run_id="lost")
    reaper = Cluster(pg, max_lost_attempts=2)
    for attempt in (1, 2):
        [claimed] = _hang(Cluster(pg, lease_ttl=0.2))
        assert claimed.attempt == attempt
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not reaper.maintain():
            time.sleep(0.05)
    run = pg.get_run("lost")
    assert run is not None
    rows = tasks_by_name(pg, "lost")
    assert (rows["t"].state, rows["t"].attempts) == ("failed", 2)
    assert rows["t"].error is not None and rows["t"].error.startswith("lost")
    assert rows["after"].state == "cancelled"
    assert lost_attempts(pg, "lost", "t") == 2
    assert run.state == "failed"
    assert run.error == f"task 't' failed: {rows['t'].error}"
    details = [e.detail for e in task_events(pg, "lost", "t") if e.from_state == "running"]
    assert details[0].startswith("lost:") and details[1].startswith("lost")


# -------------------------------------------------------------------- 5. late completions


def test_a_late_completion_after_the_lease_expired_is_rejected(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    Cluster(pg).submit(workflow({"t": wt("whoami", params={"seconds": 0.8})}), run_id="late")
    slow = Cluster(pg, lease_ttl=0.3)
    [claimed] = _hang(slow)
    late = Outcome("late", "t", claimed.attempt, "succeeded", result={"attempt": "late"})

    async def main() -> RunRecord:
        async with workers(pg_url, tmp_path, n=1):
            # while another worker runs attempt 2, the first one's completion is refused ...
            assert await wait_until(lambda: tasks_by_name(pg, "late")["t"].attempts == 2, timeout=5)
            assert slow.record(Pending(outcomes=[late])) == [late]
            assert tasks_by_name(pg, "late")["t"].state == "running"
            return await until_done(pg, "late")

    assert arun(main()).state == "succeeded"
    # ... and so it is once the task succeeded there
    assert slow.record(Pending(outcomes=[late])) == [late]
    row = tasks_by_name(pg, "late")["t"]
    assert (row.state, row.attempts, json.loads(row.result)) == ("succeeded", 2, {"attempt": 2})
    evs = task_events(pg, "late", "t")
    # one success: the other worker's (a rejection is an event that changes nothing)
    assert [(e.from_state, e.to_state) for e in evs].count(("running", "succeeded")) == 1
    rejected = [e for e in evs if (e.detail or "").startswith("late completion")]
    assert [(e.from_state, e.to_state) for e in rejected] == [
        ("running", "running"),
        ("succeeded", "succeeded"),
    ]
    assert all(slow.owner in e.detail for e in rejected)
    run = pg.get_run("late")
    assert run is not None and run.state == "succeeded"


# ------------------------------------------------------------------------ 6. run control


def test_pause_holds_ready_tasks_and_resume_lets_them_run(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    """`k2` waits for key k and `d` for the run's only slot when the run is paused; `b` and `c`
    become ready while it is paused. The slots `a` frees must not let any of them start."""
    key = {"concurrency_key": "k", "concurrency_limit": 1}
    spec = workflow(
        {
            "a": py("asleep", params={"seconds": 0.4}, priority="high", **key),
            "k2": py("anoop", **key),
            "d": py("anoop", priority="low"),
            "b": py("anoop", needs=["a"]),
            "c": py("anoop", needs=["a"]),
        },
        max_concurrency=1,
    )
    waiting = ["k2", "d", "b", "c"]

    async def main() -> RunRecord:
        cluster = Cluster(pg)
        cluster.submit(spec, run_id="paused")
        async with workers(pg_url, tmp_path, n=1, concurrency=3):
            assert await wait_until(
                lambda: tasks_by_name(pg, "paused")["a"].state == "running", timeout=5
            )
            rows = tasks_by_name(pg, "paused")
            assert {n: (rows[n].state, rows[n].wait_reason) for n in ("k2", "d")} == {
                "k2": ("ready", "waiting for key k: 1/1 in use"),
                "d": ("ready", "waiting for run max_concurrency: 1/1 in use"),
            }
            assert cluster.control("paused", "pause") is RunState.PAUSED
            # `a` finishes; what was ready, and what became ready meanwhile, waits
            assert await wait_until(
                lambda: tasks_by_name(pg, "paused")["a"].state == "succeeded", timeout=5
            )
            await asyncio.sleep(0.3)
            rows = tasks_by_name(pg, "paused")
            assert {n: (rows[n].state, rows[n].wait_reason) for n in waiting} == dict.fromkeys(
                waiting, ("ready", "run paused")
            )
            assert pg.get_run("paused").state == "paused"  # type: ignore[union-attr]
            assert cluster.control("paused", "resume") is RunState.RUNNING
            return await until_done(pg, "paused")

    assert arun(main()).state == "succeeded"
    evs = pg.get_events("paused")
    resumed = next(e.at for e in evs if e.task is None and e.detail == "resumed")
    starts = {e.task: e.at for e in evs if e.task in waiting and e.to_state == "running"}
    assert len(starts) == len(waiting)
    assert min(starts.values()) >= resumed, "a task started while the run was paused"
    assert all(t.wait_reason is None for t in pg.get_tasks("paused"))


def test_cancel_stops_running_attempts_and_ends_the_run_cancelled(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = workflow(
        {
            "long": py("asleep", params={"seconds": 30, "log": str(log)}),
            "other": py("asleep", params={"seconds": 30, "log": str(log)}),
            "after": py("anoop", needs=["long"]),
        },
        on_failure={"notify": py("anoop")},
    )

    async def main() -> RunRecord:
        cluster = Cluster(pg)
        cluster.submit(spec, run_id="stopped")
        async with workers(pg_url, tmp_path, n=2, concurrency=1):
            assert await wait_until(
                lambda: (
                    {
                        t.state
                        for n, t in tasks_by_name(pg, "stopped").items()
                        if n in ("long", "other")
                    }
                    == {"running"}
                ),
                timeout=5,
            )
            assert cluster.control("stopped", "cancel") is RunState.RUNNING  # until they stop
            return await until_done(pg, "stopped", timeout=5)

    run = arun(main())
    assert (run.state, run.error) == ("cancelled", "cancelled by user")
    rows = tasks_by_name(pg, "stopped")
    assert {n: r.state for n, r in rows.items()} == dict.fromkeys(
        ["long", "other", "after", "notify"], "cancelled"
    )
    for name in ("long", "other"):
        assert [(e.from_state, e.to_state, e.detail) for e in task_events(pg, "stopped", name)][
            -1
        ] == ("running", "cancelled", "cancelled by user")
    # the attempts really stopped: they started and never reached their end
    lines = log.read_text().splitlines()
    assert sorted(line.split()[:2] for line in lines) == [["start", "long"], ["start", "other"]]


# ------------------------------------------------------------------------------- 7. drain


def test_drain_hands_back_what_outlives_the_grace_and_another_worker_finishes_it(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = workflow(
        {
            "long": py("asleep", params={"seconds": 1.0, "log": str(log)}),
            "short": py("asleep", params={"seconds": 0.1, "log": str(log)}),
        }
    )

    async def main() -> RunRecord:
        Cluster(pg).submit(spec, run_id="drained")
        store = PostgresStore(pg_url)
        try:
            first = Worker(
                store,
                name="first",
                lease_ttl=LEASE,
                poll_interval=POLL,
                grace=0.3,
                runs_dir=tmp_path / "runs",
            )
            loop = asyncio.create_task(first.run())
            assert await wait_until(
                lambda: {t.state for t in pg.get_tasks("drained")} == {"running"}, timeout=5
            )
            first.drain()
            await asyncio.wait_for(loop, 5)  # run() returns once the attempts are settled
        finally:
            store.close()
        rows = tasks_by_name(pg, "drained")
        # the short one finished within the grace; the long one was handed back, uncounted
        assert (rows["short"].state, rows["short"].attempts) == ("succeeded", 1)
        assert (rows["long"].state, rows["long"].attempts) == ("ready", 0)
        assert rows["long"].wait_reason is None
        async with workers(pg_url, tmp_path, n=1):
            return await until_done(pg, "drained")

    assert arun(main()).state == "succeeded"
    row = tasks_by_name(pg, "drained")["long"]
    assert (row.state, row.attempts) == ("succeeded", 1)
    back = [
        e
        for e in task_events(pg, "drained", "long")
        if (e.from_state, e.to_state) == ("running", "ready")
    ]
    assert len(back) == 1 and back[0].detail == "handed back by a stopping worker"
    # attempt 1 ran twice: cut short on the first worker, to its end on the second
    assert [line.split()[:3] for line in log.read_text().splitlines() if "long" in line] == [
        ["start", "long", "1"],
        ["start", "long", "1"],
        ["end", "long", "1"],
    ]


# ---------------------------------------------------------------------------- 8. approval


def test_an_approval_waits_without_a_slot_until_a_person_decides(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    spec = workflow(
        {
            "build": py("anoop"),
            "approve": {"type": "approval", "needs": ["build"], "params": {"approvers": ["alice"]}},
            "ship": py("anoop", needs=["approve"]),
            "meanwhile": py("anoop", needs=["build"], delay="300ms"),
        }
    )

    async def main() -> RunRecord:
        Cluster(pg).submit(spec, run_id="gate")

        def waiting() -> bool:
            row = tasks_by_name(pg, "gate")["approve"]
            return row.state == "running" and bool(row.wait_reason)

        async with workers(pg_url, tmp_path, n=1, concurrency=1):
            assert await wait_until(waiting, timeout=5)
            row = tasks_by_name(pg, "gate")["approve"]
            assert row.wait_reason == "waiting for approval: reviewflow approve gate approve"
            # the wait gives its slot back: the worker's only slot runs another task meanwhile
            assert await wait_until(
                lambda: tasks_by_name(pg, "gate")["meanwhile"].state == "succeeded", timeout=5
            )
            assert tasks_by_name(pg, "gate")["ship"].state == "blocked"
            now = time.time()
            pg.decide_approval(
                "gate",
                "approve",
                "approved",
                "alice",
                "lgtm",
                now,
                ("gate", "approve", "running", "running", 1, now, "approved by alice: lgtm"),
            )
            return await until_done(pg, "gate")

    assert arun(main()).state == "succeeded"
    rows = tasks_by_name(pg, "gate")
    assert {n: r.state for n, r in rows.items()} == dict.fromkeys(
        ["build", "approve", "ship", "meanwhile"], "succeeded"
    )
    assert json.loads(rows["approve"].result) == {
        "decision": "approved",
        "approver": "alice",
        "comment": "lgtm",
    }
    assert rows["approve"].attempts == 1 and rows["approve"].wait_reason is None
    assert "approved by alice: lgtm" in [e.detail for e in task_events(pg, "gate", "approve")]


def test_a_store_error_under_an_approval_hands_it_back_instead_of_failing_it(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    """An approval reads and writes the store itself: when that write fails (the worker's
    connection lost), the store failed, not the gate. No retry used, no error recorded: the
    worker hands it back and it runs again, as the embedded engine does."""
    spec = workflow(
        {
            "gate": {"type": "approval", "timeout": 0.01, "on_timeout": "approve"},
            "after": py("anoop", needs=["gate"]),
        }
    )
    calls: list[str] = []

    async def main() -> RunRecord:
        async with workers(pg_url, tmp_path, n=1, concurrency=1) as started:
            store = started[0].store
            real = store.open_approval

            def fails_once(*args: Any, **kwargs: Any) -> Any:
                calls.append("open_approval")
                if len(calls) == 1:
                    raise StoreError("could not receive data from server: connection lost")
                return real(*args, **kwargs)

            store.open_approval = fails_once  # type: ignore[method-assign]
            Cluster(pg).submit(spec, run_id="se")
            return await until_done(pg, "se")

    assert arun(main()).state == "succeeded"
    assert len(calls) == 2
    row = tasks_by_name(pg, "se")["gate"]
    assert (row.error, row.errors) == (None, None)
    assert not {e.to_state for e in task_events(pg, "se", "gate")} & {"failed", "retry_wait"}


# --------------------------------------------------------------- stopping, holds, strays


def test_a_claim_the_worker_never_learned_of_is_handed_back(pg_url: str, tmp_path: Path) -> None:
    """Tasks leased to a worker that lost the claim's reply are not held forever: its
    heartbeats notice them and hand them back; then they run."""

    async def main() -> None:
        async with workers(pg_url, tmp_path, 1) as (w,):
            await wait_until(lambda: w._last_beat > 0, timeout=5)
            store = w.store
            w.concurrency = 0  # keep the worker from claiming: the stray is ours to make
            assert isinstance(store, PostgresStore)
            run_id, _ = Cluster(store).submit(workflow({"a": py("anoop")}))
            stray = Cluster(store, owner=w.cluster.owner).claim(1)
            assert [c.name for c in stray] == ["a"]
            w.concurrency = 2
            run = await until_done(store, run_id, timeout=15)
            assert run.state == "succeeded"
            events = [e.detail for e in store.get_events(run_id) if e.task == "a"]
            assert any(d and d.startswith("lost: attempt 1 leased to w0") for d in events)
            assert store.get_tasks(run_id)[0].attempts == 2  # the stray's number stays used

    arun(main())


def test_workers_leave_runs_one_process_executes_alone(pg_url: str, tmp_path: Path) -> None:
    """`reviewflow run` without --submit (or a serve that executes) runs on the same database
    as live workers: its ready tasks are its own, never claimed by a worker."""
    spec = workflow(
        {f"t{i}": py("asleep", params={"seconds": 0.05}) for i in range(6)}, max_concurrency=1
    )

    def embedded() -> tuple[str, RunState]:
        store = PostgresStore(pg_url)
        try:
            return run_sync(
                spec,
                store=store,
                runs_dir=tmp_path / "emb",
                flush_interval=FLUSH,
                heartbeat_interval=HEARTBEAT,
            )
        finally:
            store.close()

    async def main() -> None:
        async with workers(pg_url, tmp_path, 2) as pool:
            await wait_until(lambda: all(w._last_beat > 0 for w in pool), timeout=5)
            run_id, state = await asyncio.to_thread(embedded)
            assert state is RunState.SUCCEEDED
            assert [w.completed for w in pool] == [0, 0]
            store = pool[0].store
            assert all(t.attempts == 1 for t in store.get_tasks(run_id))
            ran = [e for e in store.get_events(run_id) if e.to_state == "running" and e.task]
            assert len(ran) == 6

    arun(main())


def test_an_approval_waiting_gives_back_its_run_slot(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    """max_concurrency 1: while the approval waits for a person, the run's other task runs
    (as in the embedded engine), across workers."""
    spec = workflow(
        {
            "build": py("anoop"),
            "approve": {"type": "approval", "needs": ["build"]},
            "meanwhile": py("anoop", needs=["build"]),
        },
        max_concurrency=1,
    )

    async def main() -> RunRecord:
        Cluster(pg).submit(spec, run_id="slot")
        async with workers(pg_url, tmp_path, n=2, concurrency=2):
            assert await wait_until(
                lambda: tasks_by_name(pg, "slot")["meanwhile"].state == "succeeded", timeout=8
            )
            assert tasks_by_name(pg, "slot")["approve"].state == "running"
            now = time.time()
            pg.decide_approval("slot", "approve", "approved", "bob", None, now)
            return await until_done(pg, "slot")

    assert arun(main()).state == "succeeded"


def _heartbeat_earlier(store: PostgresStore, seconds: float) -> None:
    """As if `seconds` passed without a heartbeat from any worker (the database clock is what
    liveness is judged by, so shifting the row stands in for waiting)."""
    with store.session() as conn:
        conn.execute("UPDATE workers SET heartbeat_at = heartbeat_at - %s", (seconds,))


def test_a_silent_worker_is_lost_and_status_says_no_worker_takes_the_run(
    pg: PostgresStore,
) -> None:
    from reviewflow.cluster.queue import list_workers
    from reviewflow.status import NO_LIVE_WORKER, run_status

    cluster = Cluster(pg)  # the default lease: 30 s, heartbeats every 10 s
    run_id, _ = cluster.submit(workflow({"a": py("anoop"), "b": py("anoop", needs=["a"])}))
    # Submitted, nobody to take it: status says so rather than look slow.
    assert run_status(pg, run_id)["workers"] == {"live": 0, "note": NO_LIVE_WORKER}

    cluster.heartbeat("w1", concurrency=2, running=0)
    (a,) = cluster.claim(1)
    cluster.record(Pending([], [a.event]))
    assert run_status(pg, run_id)["workers"] == {"live": 1}
    _heartbeat_earlier(pg, 12.0)  # one heartbeat late: still live
    assert [(w["name"], w["state"], w["running"]) for w in list_workers(pg)] == [
        ("w1", "running", 1)
    ]

    _heartbeat_earlier(pg, 8.0)  # 20 s silent (SIGKILLed): lost, though its lease holds
    assert list_workers(pg) == []
    (lost,) = list_workers(pg, include_silent=True)
    assert (lost["name"], lost["state"], lost["running"]) == ("w1", "lost", 1)
    assert lost["heartbeat_age"] >= 20.0
    assert run_status(pg, run_id)["workers"] == {"live": 0, "note": NO_LIVE_WORKER}
    assert _row(pg, run_id, "a")[0] == "running"  # taken over only once its lease expires

    # A worker starts: the note goes; once the run ended, it does not come back.
    other = Cluster(pg)
    other.heartbeat("w2", concurrency=1, running=0)
    assert run_status(pg, run_id)["workers"] == {"live": 1}
    cluster.record(Pending([Outcome(run_id, "a", a.attempt, "succeeded")], []))
    (b,) = other.claim(1)
    other.record(Pending([Outcome(run_id, "b", b.attempt, "succeeded")], [b.event]))
    assert pg.get_run(run_id).state == "succeeded"  # type: ignore[union-attr]
    _heartbeat_earlier(pg, 60.0)
    assert run_status(pg, run_id)["workers"] == {"live": 0}


def test_status_of_an_embedded_run_has_no_workers_field(pg: PostgresStore, tmp_path: Path) -> None:
    from reviewflow.status import run_status

    run_id, _ = run_sync(workflow({"a": py("anoop")}), store=pg, runs_dir=tmp_path / "runs")
    assert "workers" not in run_status(pg, run_id)


def test_a_chain_advances_without_a_claim_per_step(
    pg: PostgresStore, pg_url: str, tmp_path
) -> None:
    """Each step is recorded by one transaction that also starts the next task here (the
    hand-off); a claim after it finds nothing. The worker claims when a NOTIFY, a poll or a
    full batch says a claim may find something: a 20-step chain takes a few claims, not 20."""
    steps = 20
    tasks = {"t0": py("anoop")}
    tasks |= {f"t{i}": py("anoop", needs=[f"t{i - 1}"]) for i in range(1, steps)}
    calls: list[int] = []

    async def main() -> None:
        run_id, _ = Cluster(pg).submit(workflow(tasks))
        # Polls every 60 s: within this run only NOTIFYs and the start ask for a claim.
        async with workers(pg_url, tmp_path, n=1, poll_interval=60.0) as (worker,):
            claim = worker.cluster.claim

            def counted(n: int, **options: Any) -> Any:
                calls.append(n)
                return claim(n, **options)

            worker.cluster.claim = counted  # type: ignore[method-assign]
            run = await until_done(pg, run_id, timeout=60)
            assert run.state == "succeeded"

    arun(main(), timeout=90)
    assert len(calls) <= 3, calls


def _write_commits(store: PostgresStore) -> int:
    """Transactions that wrote (each got a transaction id, and its commit waited for the disk)
    on this server so far. A read-only transaction gets none."""
    with store.session() as conn:
        row = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        return int(row.fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize("shape", ["chain", "wide"])
def test_tasks_that_run_one_after_another_cost_one_commit_each(
    pg: PostgresStore, pg_url: str, tmp_path: Path, shape: str
) -> None:
    """A chain step, or a slot refilled when its task ends, is one commit: the transaction
    recording an attempt's end also starts the next attempt for the freed slot (a dependent it
    readies, or the best ready task) with its start event. Before, a refill cost three (the
    record, a claim, the claimed task's start event) and the target is at most two. Counted in
    transaction ids, not time: one worker, one slot, no heartbeat or poll during the run.
    The slack covers the first claim and the test server's own database upkeep."""
    n = 20
    if shape == "chain":
        tasks = {"t0": py("anoop")}
        tasks |= {f"t{i}": py("anoop", needs=[f"t{i - 1}"]) for i in range(1, n)}
    else:
        tasks = {f"t{i}": py("anoop") for i in range(n)}

    async def main() -> int:
        async with workers(
            pg_url, tmp_path, n=1, concurrency=1, lease_ttl=600.0, poll_interval=600.0
        ):
            await wait_until(lambda: bool(_workers_up(pg)), timeout=10)
            before = _write_commits(pg)
            run_id, _ = Cluster(pg).submit(workflow(tasks))
            run = await until_done(pg, run_id, timeout=60)
            assert run.state == "succeeded"
            return _write_commits(pg) - before

    commits = arun(main(), timeout=90)
    assert commits <= n + 6, f"{commits} commits for {n} tasks run one after another"


def _workers_up(store: PostgresStore) -> list[Any]:
    from reviewflow.cluster.queue import list_workers

    return list_workers(store)


def test_a_slot_freed_under_a_run_limit_starts_the_held_task_without_a_poll(
    pg: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    """A run limited to one task at a time, on one worker with free slots that never polls:
    each task's end releases the next held one, and the same record transaction (or a
    wake-up) starts it. Before, a released task could wait for the next poll: in a pipelined
    transaction the release's row count is unknown when the claim is decided."""
    tasks = {f"t{i}": py("anoop") for i in range(4)}

    async def main() -> str:
        async with workers(
            pg_url, tmp_path, n=1, concurrency=4, lease_ttl=600.0, poll_interval=600.0
        ):
            await wait_until(lambda: bool(_workers_up(pg)), timeout=10)
            run_id, _ = Cluster(pg).submit(workflow(tasks, max_concurrency=1))
            return (await until_done(pg, run_id, timeout=60)).state

    assert arun(main(), timeout=90) == "succeeded"
