"""`delay` (after the dependencies succeed) and `not_before` (from run creation, or absolute)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from reviewflow.states import RunState
from rfhelpers import arun, py, tasks_by_name, workflow

EPS = 0.002  # clock granularity on the lower bound
SLACK = 0.25  # upper-bound tolerance for a loaded machine


def test_delay_counts_from_the_dependency_finishing(store, make_engine) -> None:
    spec = workflow(
        {
            "a": py("asleep", params={"seconds": 0.1}),
            "b": py("anoop", needs=["a"], delay="300ms"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    gap = rows["b"].started_at - rows["a"].finished_at
    assert 0.3 - EPS <= gap < 0.3 + SLACK


def test_delay_counts_from_the_last_dependency(store, make_engine) -> None:
    spec = workflow(
        {
            "fast": py("anoop"),
            "slow": py("asleep", params={"seconds": 0.3}),
            "join": py("anoop", needs=["fast", "slow"], delay="200ms"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    gap = rows["join"].started_at - rows["slow"].finished_at
    assert 0.2 - EPS <= gap < 0.2 + SLACK


def test_delay_of_a_root_task_counts_from_the_run_start(store, make_engine) -> None:
    spec = workflow({"a": py("anoop", delay="300ms"), "b": py("anoop")})
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    run = store.get_run(run_id)
    rows = tasks_by_name(store, run_id)
    assert 0.3 - EPS <= rows["a"].started_at - run.started_at < 0.3 + SLACK
    assert rows["b"].started_at - run.started_at < SLACK  # undelayed tasks do not wait


def test_delayed_task_shows_when_it_will_start(store, make_engine) -> None:
    spec = workflow({"a": py("anoop", delay="400ms")})
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    seen: list[str | None] = []

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        await asyncio.sleep(0.2)
        seen.append(tasks_by_name(store, run_id)["a"].wait_reason)
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    match = re.fullmatch(r"delayed until (\d\d:\d\d:\d\d\.\d{3})", seen[0] or "")
    assert match, seen
    run = store.get_run(run_id)
    due = datetime.fromtimestamp(run.started_at + 0.4)
    shown = datetime.combine(due.date(), datetime.strptime(match[1], "%H:%M:%S.%f").time())
    assert abs((shown - due).total_seconds()) < 0.01


def test_not_before_duration_counts_from_run_creation(store, make_engine) -> None:
    spec = workflow(
        {
            "a": py("anoop", not_before="400ms"),
            "b": py("anoop"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)

    async def main() -> RunState:
        await asyncio.sleep(0.15)  # the run is created now but only executed 0.15 s later
        return await engine.execute(run_id)

    assert arun(main()) is RunState.SUCCEEDED
    run = store.get_run(run_id)
    rows = tasks_by_name(store, run_id)
    assert run.started_at - run.created_at >= 0.15 - EPS
    assert 0.4 - EPS <= rows["a"].started_at - run.created_at < 0.4 + SLACK
    assert rows["b"].started_at - run.started_at < SLACK


def test_not_before_already_passed_adds_no_wait(store, make_engine) -> None:
    spec = workflow(
        {
            "a": py("asleep", params={"seconds": 0.3}),
            "b": py("anoop", needs=["a"], not_before="100ms"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    assert 0 <= rows["b"].started_at - rows["a"].finished_at < SLACK


def test_not_before_absolute_time(store, make_engine) -> None:
    when = datetime.now(UTC) + timedelta(seconds=0.4)
    spec = workflow({"a": py("anoop", not_before=when.isoformat())})
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    started = tasks_by_name(store, run_id)["a"].started_at
    assert when.timestamp() - EPS <= started < when.timestamp() + SLACK


def test_run_level_not_before_holds_back_the_roots(store, make_engine) -> None:
    spec = workflow(
        {"a": py("anoop"), "b": py("anoop", needs=["a"])},
        not_before="300ms",
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    run = store.get_run(run_id)
    rows = tasks_by_name(store, run_id)
    assert 0.3 - EPS <= rows["a"].started_at - run.created_at < 0.3 + SLACK
    assert rows["b"].started_at >= rows["a"].finished_at
