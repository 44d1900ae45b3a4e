"""cancel / pause / resume: in the executing engine, and by request through the store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from reviewflow.states import RunState
from rfhelpers import (
    HEARTBEAT,
    arun,
    py,
    run_events,
    sh,
    task_events,
    tasks_by_name,
    wait_until,
    workflow,
)

# A request left in the store is picked up by the owner's next write: a flush or, at the
# latest, the heartbeat. Tolerance on top of one heartbeat interval for a loaded machine.
PICKUP = HEARTBEAT + 0.25


def _state(store, run_id: str, task: str) -> str:
    return tasks_by_name(store, run_id)[task].state


def _long_spec(tmp_path: Path):
    return workflow(
        {
            "long": sh("echo $$ > long.pid; exec sleep 30", cwd=str(tmp_path), kill_grace="1s"),
            "next": py("anoop", needs=["long"]),
        }
    )


def _assert_cancelled(store, run_id: str) -> None:
    run = store.get_run(run_id)
    assert run.state == "cancelled"
    assert run.error == "cancelled by user"
    rows = tasks_by_name(store, run_id)
    assert (rows["long"].state, rows["next"].state) == ("cancelled", "cancelled")
    assert [(e.from_state, e.to_state) for e in task_events(store, run_id, "long")][-1] == (
        "running",
        "cancelled",
    )
    assert run.owner is None  # released


def test_cancel_in_the_executing_engine(store, make_engine, tmp_path: Path) -> None:
    engine = make_engine(store)
    run_id, _ = engine.submit(_long_spec(tmp_path))

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: _state(store, run_id, "long") == "running")
        engine.cancel(run_id)
        return await execution

    assert arun(main()) is RunState.CANCELLED
    _assert_cancelled(store, run_id)


def test_cancel_requested_through_a_second_store_handle(
    stores, make_engine, tmp_path: Path
) -> None:
    """Another process (here: another Engine on its own handle of the same store) asks to
    cancel; the executing engine picks the request up within a heartbeat."""
    store = stores.main
    engine = make_engine(store)
    other = make_engine(stores.second_handle())
    run_id, _ = engine.submit(_long_spec(tmp_path))
    requested_at = 0.0

    async def main() -> RunState:
        nonlocal requested_at
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: _state(store, run_id, "long") == "running")
        await asyncio.sleep(0.05)  # let the engine settle into waiting on the task
        requested_at = time.time()
        other.cancel(run_id)  # not live in `other`: goes through store.request
        return await execution

    assert arun(main()) is RunState.CANCELLED
    _assert_cancelled(store, run_id)
    cancelled_at = next(
        e.at for e in task_events(store, run_id, "long") if e.to_state == "cancelled"
    )
    assert 0 <= cancelled_at - requested_at < PICKUP
    assert store.get_run(run_id).request is None  # consumed


def _pause_spec():
    return workflow(
        {
            "a": py("asleep", params={"seconds": 0.2}),
            "b": py("asleep", params={"seconds": 0.05}, needs=["a"]),
            "c": py("anoop", needs=["b"]),
            "d": py("anoop", needs=["a"]),
        }
    )


def _assert_nothing_started_while_paused(store, run_id: str) -> None:
    evs = store.get_events(run_id)
    runs = [e for e in evs if e.task is None]
    paused = [e for e in runs if e.to_state == "paused"]
    resumed = [e for e in runs if e.from_state == "paused" and e.to_state == "running"]
    assert len(paused) == len(resumed) == 1
    p, r = paused[0], resumed[0]
    assert r.detail == "resumed"
    started_while_paused = [
        e.task for e in evs if e.task and e.to_state == "running" and p.id < e.id < r.id
    ]
    assert started_while_paused == []
    # `a` finished during the pause and made b and d ready, but they waited for the resume
    a_done = next(e for e in evs if e.task == "a" and e.to_state == "succeeded")
    assert p.id < a_done.id < r.id
    for name in ("b", "d"):
        start = next(e for e in evs if e.task == name and e.to_state == "running")
        assert start.id > r.id
    assert r.at - p.at >= 0.4  # the pause lasted as long as the test held it


def test_pause_and_resume_in_the_executing_engine(store, make_engine) -> None:
    engine = make_engine(store)
    run_id, _ = engine.submit(_pause_spec())
    reasons: set[str] = set()

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: _state(store, run_id, "a") == "running")
        engine.pause(run_id)
        assert await wait_until(lambda: store.get_run(run_id).state == "paused")
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.5
        while loop.time() < end:  # a finishes meanwhile; b and d must wait
            reasons.update(t.wait_reason for t in store.get_tasks(run_id) if t.wait_reason)
            await asyncio.sleep(0.02)
        assert _state(store, run_id, "b") == "ready"
        engine.resume(run_id)
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    assert reasons == {"waiting: run paused"}
    _assert_nothing_started_while_paused(store, run_id)
    assert {t.state for t in store.get_tasks(run_id)} == {"succeeded"}


def test_pause_and_resume_requested_through_a_second_store_handle(stores, make_engine) -> None:
    store = stores.main
    engine = make_engine(store)
    other = make_engine(stores.second_handle())
    run_id, _ = engine.submit(_pause_spec())

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: _state(store, run_id, "a") == "running")
        other.pause(run_id)
        assert await wait_until(lambda: store.get_run(run_id).state == "paused", timeout=PICKUP)
        await asyncio.sleep(0.5)
        assert _state(store, run_id, "b") == "ready"
        other.resume(run_id)
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    _assert_nothing_started_while_paused(store, run_id)
    assert {t.state for t in store.get_tasks(run_id)} == {"succeeded"}


def test_cancel_a_paused_run(store, make_engine) -> None:
    engine = make_engine(store)
    run_id, _ = engine.submit(_pause_spec())

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: _state(store, run_id, "a") == "running")
        engine.pause(run_id)
        assert await wait_until(lambda: _state(store, run_id, "a") == "succeeded")
        engine.cancel(run_id)
        return await execution

    assert arun(main()) is RunState.CANCELLED
    rows = tasks_by_name(store, run_id)
    assert rows["a"].state == "succeeded"
    assert {rows[n].state for n in "bcd"} == {"cancelled"}
    assert [e.to_state for e in run_events(store, run_id)][-2:] == ["paused", "cancelled"]
