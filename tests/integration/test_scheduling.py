"""Claim order, dependencies and concurrency limits, observed through the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewflow.engine import Engine
from reviewflow.states import RunState
from reviewflow.store import MemoryStore
from rfhelpers import (
    FLUSH,
    HEARTBEAT,
    arun,
    max_overlap,
    py,
    start_order,
    tasks_by_name,
    wait_until,
    workflow,
)

# ------------------------------------------------------------------------------- priorities


def test_start_order_is_priority_desc_then_definition_order(store, make_engine) -> None:
    defined = {
        "t_low": "low",
        "t_med": "medium",
        "t_high": "high",
        "t_int10": 10,
        "t_int3": 3,
        "t_neg": -5,
        "t_med2": "medium",
        "t_int0": 0,
        "t_low2": "low",
    }
    spec = workflow(
        {name: py("anoop", priority=prio) for name, prio in defined.items()}, max_concurrency=1
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    # high == 3, medium == 2, low == 1; equal priorities keep their definition order.
    assert start_order(store, run_id) == [
        "t_int10",
        "t_high",
        "t_int3",
        "t_med",
        "t_med2",
        "t_low",
        "t_low2",
        "t_int0",
        "t_neg",
    ]


def _aging_spec() -> Any:
    # `blocker` holds the only slot; `old_low` is ready from the start; `new_high` becomes ready
    # 0.15 s later (delay). When the slot frees at ~0.4 s both are ready and waiting.
    return workflow(
        {
            "blocker": py("asleep", priority=100, params={"seconds": 0.4}),
            "old_low": py("anoop", priority="low"),
            "new_high": py("anoop", priority="high", delay="150ms"),
        },
        max_concurrency=1,
    )


def _assert_both_waited(store, run_id: str) -> None:
    rows = tasks_by_name(store, run_id)
    assert rows["new_high"].ready_at > rows["old_low"].ready_at + 0.1  # it is the newer one
    assert rows["new_high"].ready_at < rows["blocker"].finished_at  # ... and was ready in time


@pytest.mark.parametrize(
    ("aging_interval", "expected"),
    [
        (600.0, ["blocker", "new_high", "old_low"]),  # default: priority wins
        (0.01, ["blocker", "old_low", "new_high"]),  # 0.15 s of waiting is worth 15 points
    ],
    ids=["no-aging", "aging"],
)
def test_aging_lets_an_older_low_task_go_before_a_newer_high_one(
    store, make_engine, aging_interval: float, expected: list[str]
) -> None:
    engine = make_engine(store, aging_interval=aging_interval)
    run_id, _ = engine.submit(_aging_spec())
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    _assert_both_waited(store, run_id)
    assert start_order(store, run_id) == expected


# ----------------------------------------------------------------------------- dependencies


@st.composite
def dags(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    n = draw(st.integers(2, 15))
    tasks: dict[str, dict[str, Any]] = {}
    for i in range(n):
        needs = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=4)) if i else []
        tasks[f"t{i}"] = py(
            "anoop",
            needs=[f"t{j}" for j in needs],
            priority=draw(st.integers(-3, 3)),
        )
    # shuffle definition order so that dependencies are not always defined first
    names = draw(st.permutations(list(tasks)))
    return {name: tasks[name] for name in names}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(tasks=dags(), max_concurrency=st.one_of(st.none(), st.integers(1, 4)))
def test_a_task_never_starts_before_all_its_dependencies_succeeded(
    tasks: dict[str, dict[str, Any]], max_concurrency: int | None, tmp_path_factory: Any
) -> None:
    store = MemoryStore()
    engine = Engine(
        store,
        flush_interval=FLUSH,
        heartbeat_interval=HEARTBEAT,
        runs_dir=tmp_path_factory.getbasetemp() / "runs",
    )
    spec = workflow(tasks, max_concurrency=max_concurrency)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id), timeout=20) is RunState.SUCCEEDED

    evs = store.get_events(run_id)
    running = {e.task: e.id for e in evs if e.task and e.to_state == "running"}
    succeeded = {e.task: e.id for e in evs if e.task and e.to_state == "succeeded"}
    assert set(running) == set(succeeded) == set(tasks)
    assert sum(1 for e in evs if e.task and e.to_state == "running") == len(tasks)  # each ran once
    for name, body in tasks.items():
        for dep in body["needs"]:
            assert running[name] > succeeded[dep], f"{name} started before {dep} succeeded"


def test_results_of_dependencies_reach_the_dependent(store, make_engine) -> None:
    spec = workflow(
        {
            "a": py("context_echo", params={"x": 1}),
            "b": py("context_echo", needs=["a"]),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec, meta={"pr": "42"})
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    import json

    b = json.loads(tasks_by_name(store, run_id)["b"].result)
    assert b["results"]["a"]["params"] == {"x": 1}
    assert b["meta"] == {"pr": "42"}
    assert (b["run_id"], b["task"], b["attempt"]) == (run_id, "b", 1)


# ------------------------------------------------------------------------ concurrency limits


@pytest.mark.parametrize("declared", ["on-task", "on-run"])
def test_concurrency_key_limit_one_serialises_the_key(store, make_engine, declared: str) -> None:
    key_fields: dict[str, Any] = {"concurrency_key": "gpu"}
    run_fields: dict[str, Any] = {}
    if declared == "on-task":
        key_fields["concurrency_limit"] = 1
    else:
        run_fields["concurrency_limits"] = {"gpu": 1}
    gpu_tasks = ["g1", "g2", "g3"]
    spec = workflow(
        {
            **{n: py("asleep", params={"seconds": 0.2}, **key_fields) for n in gpu_tasks},
            "cpu": py("asleep", params={"seconds": 0.2}),
        },
        **run_fields,
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    seen: dict[str, set[str]] = {n: set() for n in gpu_tasks}

    async def watch() -> None:
        while True:
            for row in store.get_tasks(run_id):
                if row.name in seen and row.state == "ready" and row.wait_reason:
                    seen[row.name].add(row.wait_reason)
            await asyncio.sleep(0.02)

    async def main() -> RunState:
        watcher = asyncio.create_task(watch())
        try:
            return await engine.execute(run_id)
        finally:
            watcher.cancel()

    assert arun(main()) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    gpu = [(rows[n].started_at, rows[n].finished_at) for n in gpu_tasks]
    assert max_overlap(gpu) == 1
    # the key does not hold back tasks without it: cpu ran alongside the first gpu task
    assert max_overlap([*gpu, (rows["cpu"].started_at, rows["cpu"].finished_at)]) == 2
    # two of the three had to wait for the key, and the store said so while they waited
    waited = [n for n in gpu_tasks if seen[n]]
    assert len(waited) == 2, seen
    for n in waited:
        assert seen[n] == {"waiting for key gpu: 1/1 in use"}
    assert all(rows[n].wait_reason is None for n in rows)  # cleared once they ran


def test_run_max_concurrency_is_respected(store, make_engine) -> None:
    names = [f"t{i}" for i in range(6)]
    spec = workflow({n: py("asleep", params={"seconds": 0.1}) for n in names}, max_concurrency=2)
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    reasons: set[str] = set()

    async def watch() -> None:
        while True:
            reasons.update(
                r.wait_reason
                for r in store.get_tasks(run_id)
                if r.state == "ready" and r.wait_reason
            )
            await asyncio.sleep(0.02)

    async def main() -> RunState:
        watcher = asyncio.create_task(watch())
        try:
            return await engine.execute(run_id)
        finally:
            watcher.cancel()

    assert arun(main()) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    assert max_overlap([(rows[n].started_at, rows[n].finished_at) for n in names]) == 2
    assert "waiting for run max_concurrency: 2/2 in use" in reasons


def test_engine_max_concurrency_limits_all_runs_together(store, make_engine) -> None:
    engine = make_engine(store, max_concurrency=2)
    spec = workflow({f"t{i}": py("asleep", params={"seconds": 0.1}) for i in range(4)})
    run_ids = [engine.submit(spec)[0] for _ in range(2)]

    async def main() -> list[RunState]:
        return list(await asyncio.gather(*(engine.execute(r) for r in run_ids)))

    assert arun(main()) == [RunState.SUCCEEDED, RunState.SUCCEEDED]
    intervals = [(t.started_at, t.finished_at) for r in run_ids for t in store.get_tasks(r)]
    assert len(intervals) == 8
    assert max_overlap(intervals) == 2


# --------------------------------------------- waiting tasks must not be stranded (bug hunt)


def test_on_failure_hooks_run_after_fail_fast_under_max_concurrency_1(store, make_engine) -> None:
    """`a` fails while `b` and `c` wait for the run's only slot; fail_fast cancels them. The two
    on_failure hooks must then both run (one after the other) and the run must end failed."""
    spec = workflow(
        {
            "a": py("fail", priority="high", retry={"max_retries": 0}),
            "b": py("anoop"),
            "c": py("anoop"),
        },
        max_concurrency=1,
        on_failure={"h1": py("anoop"), "h2": py("anoop")},
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)

    async def main() -> RunState:
        try:
            return await asyncio.wait_for(engine.execute(run_id), 3)
        except TimeoutError:
            states = {t.name: (t.state, t.wait_reason) for t in store.get_tasks(run_id)}
            pytest.fail(f"run never finished; tasks: {states}")

    assert arun(main()) is RunState.FAILED
    states = {t.name: t.state for t in store.get_tasks(run_id)}
    assert states == {
        "a": "failed",
        "b": "cancelled",
        "c": "cancelled",
        "h1": "succeeded",
        "h2": "succeeded",
    }


def test_cancelling_one_run_does_not_strand_another_runs_tasks_waiting_for_a_key(
    store, make_engine, tmp_path: Path
) -> None:
    """Two runs share the engine's `gpu` key (limit 1). Run A holds it and has two more tasks
    waiting for it; run B's tasks wait behind them. Cancelling A must let B finish."""
    engine = make_engine(store)
    key = {"concurrency_key": "gpu", "concurrency_limit": 1}
    spec_a = workflow(
        {
            "a1": py("asleep", params={"seconds": 5}, priority="high", **key),
            "a2": py("anoop", **key),
            "a3": py("anoop", **key),
        },
        name="a",
    )
    spec_b = workflow({"b1": py("anoop", **key), "b2": py("anoop", **key)}, name="b")
    run_a, _ = engine.submit(spec_a)
    run_b, _ = engine.submit(spec_b)

    async def main() -> tuple[RunState, RunState]:
        ta = asyncio.create_task(engine.execute(run_a))
        await asyncio.sleep(0.05)
        tb = asyncio.create_task(engine.execute(run_b))
        assert await wait_until(
            lambda: all(t.wait_reason for t in store.get_tasks(run_b)), timeout=3
        ), "run B's tasks never waited for the key"
        engine.cancel(run_a)
        state_a = await asyncio.wait_for(ta, 5)
        try:
            state_b = await asyncio.wait_for(tb, 3)
        except TimeoutError:
            states = {t.name: (t.state, t.wait_reason) for t in store.get_tasks(run_b)}
            pytest.fail(f"run B never finished after run A was cancelled; B's tasks: {states}")
        return state_a, state_b

    assert arun(main()) == (RunState.CANCELLED, RunState.SUCCEEDED)


def test_tasks_held_by_the_global_limit_say_so(store, make_engine):
    """With the process's global limit full, queued tasks' status reads
    "waiting for global limit: 1/1 in use" while they wait."""
    spec = workflow({name: py("asleep", params={"seconds": 0.3}) for name in ("a", "b", "c")})
    engine = make_engine(store, max_concurrency=1)
    run_id, _ = engine.submit(spec)
    seen: dict[str, str] = {}

    async def main() -> None:
        execution = asyncio.ensure_future(engine.execute(run_id))
        await asyncio.sleep(0.15)
        for t in store.get_tasks(run_id):
            if t.state == "ready":
                seen[t.name] = t.wait_reason or ""
        await execution

    arun(main())
    assert len(seen) == 2
    assert set(seen.values()) == {"waiting for global limit: 1/1 in use"}
    assert all(t.wait_reason is None for t in store.get_tasks(run_id))
