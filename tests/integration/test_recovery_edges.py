"""Edge cases of recovery and control found in review: a cancellation that must survive a
crash, recovery of a run that was already failing, wake-ups lost behind a paused run, store
writes that fail, and an observer that raises."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from reviewflow.engine import Engine
from reviewflow.errors import StoreError
from reviewflow.states import RunState
from reviewflow.store import MemoryStore
from reviewflow.store.base import Batch
from rfhelpers import FLUSH, HEARTBEAT, arun, py, sh, tasks_by_name, workflow


def test_a_cancelled_run_interrupted_before_its_attempts_stopped_resumes_as_cancelled(
    store, make_engine
):
    """cancel, then Ctrl-C while an attempt ignores SIGTERM: the resumed run ends cancelled,
    not succeeded, and the cancelled task never runs."""
    spec = workflow(
        {
            "a": sh("trap '' TERM; sleep 1", kill_grace=30),
            "b": sh("true", needs=["a"]),
        }
    )
    first = make_engine(store)
    run_id, _ = first.submit(spec, run_id="c1")

    async def crash_after_cancel() -> RunState:
        execution = asyncio.ensure_future(first.execute(run_id))
        await asyncio.sleep(0.3)
        first.cancel(run_id)
        await asyncio.sleep(0.2)
        first.shutdown()
        return await execution

    assert arun(crash_after_cancel()) is RunState.RUNNING  # interrupted: left resumable
    second = make_engine(store)
    assert arun(second.execute(run_id)) is RunState.CANCELLED
    tasks = tasks_by_name(store, run_id)
    assert tasks["b"].state == "cancelled" and tasks["b"].attempts == 0
    assert store.get_run(run_id).state == "cancelled"


def test_recovering_a_failing_fail_fast_run_does_not_rerun_its_other_tasks(
    store, make_engine, tmp_path: Path
):
    """A dead process left `a` (no retries left) and `b` running. Recovery fails the run on
    `a`; `b` must be cancelled, not started again."""
    marker = tmp_path / "b-ran"
    spec = workflow(
        {
            "a": sh("sleep 1", retry={"max_retries": 0}),
            "b": sh(f"echo ran >> {marker}; sleep 1"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec, run_id="f1")
    dead = f"{socket.gethostname()}:999999:dead"
    now = time.time()
    assert store.claim_run(run_id, dead, now + 30, None)

    def row(name: str) -> tuple:
        return ("running", 1, now, now, None, None, None, None, None, None, None, name)

    store.write(
        Batch(run_id, dead, now + 30, run=("running", now, None, None), tasks=[row("a"), row("b")])
    )
    assert arun(engine.execute(run_id)) is RunState.FAILED
    tasks = tasks_by_name(store, run_id)
    assert tasks["a"].state == "failed" and "lost" in tasks["a"].error
    assert tasks["b"].state == "cancelled" and tasks["b"].attempts == 1
    assert not marker.exists()


def test_a_paused_run_does_not_swallow_a_key_slot_meant_for_another_run(tmp_path: Path):
    store = MemoryStore()
    engine = Engine(
        store,
        key_limits={"k": 1},
        flush_interval=FLUSH,
        heartbeat_interval=HEARTBEAT,
        runs_dir=tmp_path / "runs",
    )
    specs = {
        name: workflow(
            {name.lower(): py("asleep", params={"seconds": seconds}, concurrency_key="k")},
            name=name,
        )
        for name, seconds in (("H", 0.3), ("A", 0.05), ("B", 0.05))
    }
    ids = {name: engine.submit(spec)[0] for name, spec in specs.items()}

    async def main() -> RunState:
        runs = {}
        for name in ("H", "A", "B"):
            runs[name] = asyncio.ensure_future(engine.execute(ids[name]))
            await asyncio.sleep(0.05)
        engine.pause(ids["A"])
        await runs["H"]
        state = await asyncio.wait_for(asyncio.shield(runs["B"]), 3)
        engine.resume(ids["A"])
        await runs["A"]
        return state

    assert arun(main()) is RunState.SUCCEEDED
    assert engine.queue.key_running == {"k": 0}


class FlakyStore(MemoryStore):
    """A real MemoryStore with a fault-injection point: the next N writes fail."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def write(self, batch: Batch) -> str | None:
        if self.failures:
            self.failures -= 1
            raise StoreError("x.db: disk I/O error")
        return super().write(batch)


def test_a_failed_group_commit_interrupts_the_run_and_executing_it_again_finishes_it(
    tmp_path: Path,
):
    """The store refused a batch: nothing more starts, `execute` raises the store's error and
    the run stays resumable; executing it again runs each task to one success."""
    store = FlakyStore()
    engine = Engine(store, flush_interval=0.01, heartbeat_interval=5, runs_dir=tmp_path)
    run_id, _ = engine.submit(
        workflow(
            {
                "a": py("asleep", params={"seconds": 0.05}),
                "b": py("asleep", params={"seconds": 0.3}, needs=["a"]),
            }
        )
    )

    async def main() -> RunState:
        execution = asyncio.ensure_future(engine.execute(run_id))
        await asyncio.sleep(0.02)
        store.failures = 1
        return await execution

    with pytest.raises(StoreError, match="disk I/O error"):
        arun(main())
    assert store.get_run(run_id).state == "running"
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    assert {t.name: t.state for t in store.get_tasks(run_id)} == {
        "a": "succeeded",
        "b": "succeeded",
    }
    transitions = [(e.task, e.to_state) for e in store.get_events(run_id) if e.task]
    for task in ("a", "b"):
        assert [s for t, s in transitions if t == task].count("succeeded") == 1


def test_a_store_that_refuses_the_final_write_fails_execute_instead_of_hanging(tmp_path: Path):
    store = FlakyStore()
    engine = Engine(store, flush_interval=5, heartbeat_interval=5, runs_dir=tmp_path)
    run_id, _ = engine.submit(workflow({"a": py("anoop")}))
    store.failures = 1000
    with pytest.raises(StoreError, match="disk I/O error"):
        arun(engine.execute(run_id), timeout=5)


def test_an_observer_that_raises_is_dropped_and_the_run_goes_on(store, make_engine):
    calls = []

    def observer(*event: object) -> None:
        calls.append(event)
        raise BrokenPipeError("stdout closed")

    engine = make_engine(store, observer=observer)
    run_id, _ = engine.submit(workflow({"a": py("anoop"), "b": py("anoop", needs=["a"])}))
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    assert len(calls) == 1
    assert {t.state for t in store.get_tasks(run_id)} == {"succeeded"}
