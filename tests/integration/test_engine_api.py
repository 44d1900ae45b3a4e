"""Engine entry points: submit/execute/run_sync, idempotency, observers, misuse."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from reviewflow.api import run_sync
from reviewflow.engine import RunBusy
from reviewflow.errors import RunNotFound
from reviewflow.states import RunState
from reviewflow.store import MemoryStore
from rfhelpers import arun, process_gone, py, sh, tasks_by_name, wait_until, workflow


def test_submit_is_idempotent_on_the_run_id(store, make_engine, tmp_path: Path) -> None:
    log = tmp_path / "log"
    spec = workflow({"t": py("record", params={"log": str(log)})})
    engine = make_engine(store)
    assert engine.submit(spec, run_id="pr-42") == ("pr-42", True)
    assert engine.submit(spec, run_id="pr-42") == ("pr-42", False)
    assert arun(engine.execute("pr-42")) is RunState.SUCCEEDED
    # a finished run is not executed again: its final state is returned
    assert engine.submit(spec, run_id="pr-42") == ("pr-42", False)
    assert arun(engine.execute("pr-42")) is RunState.SUCCEEDED
    assert log.read_text().splitlines() == ["t 1"]
    assert [r.run_id for r in store.list_runs()] == ["pr-42"]


def test_generated_run_ids_are_unique_and_named_after_the_workflow(store, make_engine) -> None:
    engine = make_engine(store)
    spec = workflow({"t": py("anoop")}, name="review")
    ids = {engine.submit(spec)[0] for _ in range(20)}
    assert len(ids) == 20
    assert all(i.startswith("review-") for i in ids)


def test_execute_unknown_run_raises(store, make_engine) -> None:
    with pytest.raises(RunNotFound):
        arun(make_engine(store).execute("nope"))


def test_run_records_spec_meta_and_times(store, make_engine) -> None:
    spec = workflow({"t": py("anoop")})
    engine = make_engine(store)
    state = arun(engine.run(spec, run_id="r", meta={"pr": "1"}))
    assert state is RunState.SUCCEEDED
    run = store.get_run("r")
    assert (run.state, run.workflow, run.meta, run.error, run.owner) == (
        "succeeded",
        "wf",
        {"pr": "1"},
        None,
        None,
    )
    assert run.created_at <= run.started_at <= run.finished_at
    assert [(e.from_state, e.to_state) for e in store.get_events("r") if e.task is None] == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "succeeded"),
    ]


def test_observer_sees_every_stored_transition(store, make_engine) -> None:
    seen: list[tuple] = []
    spec = workflow({"a": py("anoop"), "b": py("anoop", needs=["a"])})
    engine = make_engine(
        store, observer=lambda run_id, task, frm, to, attempt, detail: seen.append((task, frm, to))
    )
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    stored = [(e.task, e.from_state, e.to_state) for e in store.get_events(run_id)]
    assert seen == stored[1:]  # all but the `pending` event written at submit


def test_run_sync(tmp_path: Path) -> None:
    store = MemoryStore()
    run_id, state = run_sync(
        workflow({"t": py("anoop")}),
        store=store,
        run_id="sync-1",
        runs_dir=tmp_path / "runs",
        flush_interval=0.01,
    )
    assert (run_id, state) == ("sync-1", RunState.SUCCEEDED)
    assert store.get_run("sync-1").state == "succeeded"


def test_executing_a_run_twice_at_once_in_one_engine(store, make_engine, tmp_path) -> None:
    """A second `execute` of a run the same engine is already executing must not run the run a
    second time or hang: it either waits for the same outcome or refuses with RunBusy."""
    log = tmp_path / "log"
    spec = workflow({"t": py("record", params={"log": str(log), "seconds": 0.1})})
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)

    async def main() -> list:
        first = asyncio.create_task(engine.execute(run_id))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(engine.execute(run_id))
        _, pending = await asyncio.wait({first, second}, timeout=3)
        for t in pending:
            t.cancel()
        assert not pending, "an execute() call never returned"
        return [t.exception() or t.result() for t in (first, second)]

    first, second = arun(main())
    assert first is RunState.SUCCEEDED
    assert second is RunState.SUCCEEDED or isinstance(second, RunBusy)
    assert log.read_text().splitlines() == ["t 1"]


def test_cancelling_execute_stops_the_attempts_it_started(
    store, make_engine, tmp_path: Path
) -> None:
    """`asyncio.wait_for(engine.execute(r), t)` cancels execute when t passes. The processes
    of the run's running attempts must not be left behind, running unsupervised."""
    engine = make_engine(store)
    run_id, _ = engine.submit(
        workflow(
            {
                "long": sh(
                    "echo $$ > long.pid; exec sleep 30", cwd=str(tmp_path), kill_grace="500ms"
                ),
            }
        )
    )

    async def main() -> bool:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(engine.execute(run_id), 0.5)
        pid = int((tmp_path / "long.pid").read_text())
        gone = await wait_until(lambda: process_gone(pid), timeout=3)
        if not gone:
            os.kill(pid, signal.SIGKILL)  # do not leak it past the test
        return gone

    assert arun(main()), "the attempt's process kept running after execute() was cancelled"
    assert tasks_by_name(store, run_id)["long"].state != "succeeded"
