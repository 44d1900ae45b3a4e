"""Durability on SQLite, in one process: interrupted and abandoned runs are finished by another
engine on its own connection, every task completes exactly once in the store, and a stale
owner's writes are refused. (Killing a real engine process with SIGKILL is tested elsewhere.)"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reviewflow.engine import RunBusy
from reviewflow.errors import LeaseLost
from reviewflow.states import RunState
from reviewflow.store.base import TASK_COLUMNS, Batch
from rfhelpers import (
    arun,
    process_gone,
    py,
    run_events,
    sh,
    task_events,
    tasks_by_name,
    wait_until,
    workflow,
)


def _succeeded_once(store, run_id: str) -> None:
    evs = store.get_events(run_id)
    per_task = Counter(e.task for e in evs if e.task and e.to_state == "succeeded")
    assert set(per_task.values()) == {1}, per_task
    assert len(per_task) == len(store.get_tasks(run_id))
    terminal = [e for e in evs if e.task is None and e.to_state in ("succeeded", "failed")]
    assert len(terminal) == 1


def _executions(log: Path) -> Counter:
    """How many attempts of each task ran to their end (lines `end <task> ...`)."""
    return Counter(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("end ")
    )


def _layered_spec(log: Path):
    p = {"seconds": 0.3, "log": str(log)}
    return workflow(
        {
            "a1": py("asleep", params=p),
            "a2": py("asleep", params=p),
            "a3": py("asleep", params=p),
            "b": py("asleep", params={**p, "seconds": 0.05}, needs=["a1", "a2", "a3"]),
            "c": py("asleep", params={**p, "seconds": 0.05}, needs=["b"]),
        }
    )


def test_shutdown_mid_run_then_another_engine_finishes_it(
    sqlite_stores, make_engine, tmp_path: Path
) -> None:
    log = tmp_path / "exec.log"
    store_a, store_b = sqlite_stores(), sqlite_stores()
    engine_a = make_engine(store_a)
    run_id, _ = engine_a.submit(_layered_spec(log))

    async def first() -> RunState:
        execution = asyncio.create_task(engine_a.execute(run_id))
        assert await wait_until(
            lambda: all(
                tasks_by_name(store_a, run_id)[n].state == "running" for n in ("a1", "a2", "a3")
            )
        )
        engine_a.shutdown()
        return await execution

    assert arun(first()) is RunState.RUNNING  # interrupted: no final state
    run = store_b.get_run(run_id)
    assert (run.state, run.owner) == ("running", None)  # resumable by anyone
    rows = tasks_by_name(store_b, run_id)
    for name in ("a1", "a2", "a3"):
        assert (rows[name].state, rows[name].attempts) == ("ready", 0)
        assert task_events(store_b, run_id, name)[-1].detail == "interrupted"
    assert _executions(log) == Counter()  # nothing finished in engine A

    engine_b = make_engine(store_b)
    assert arun(engine_b.execute(run_id)) is RunState.SUCCEEDED
    rows = tasks_by_name(store_b, run_id)
    assert {(r.state, r.attempts) for r in rows.values()} == {("succeeded", 1)}
    _succeeded_once(store_b, run_id)
    assert _executions(log) == Counter({n: 1 for n in rows})
    assert rows["b"].started_at >= max(rows[n].finished_at for n in ("a1", "a2", "a3"))
    assert rows["c"].started_at >= rows["b"].finished_at


def _task_row(name: str, **cols) -> tuple:
    """A batch task update (values of TASK_COLUMNS, then the task name)."""
    return (*(cols.get(c) for c in TASK_COLUMNS), name)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("max_retries", [1, 0])
def test_tasks_left_running_by_a_dead_owner_are_recovered(
    sqlite_stores, make_engine, tmp_path: Path, max_retries: int
) -> None:
    """A run whose owner process died with tasks `running` in the database (written here through
    the store, as that process would have) is taken over; the lost attempts count."""
    log = tmp_path / "exec.log"
    store = sqlite_stores()
    spec = workflow(
        {
            "a": py(
                "asleep",
                params={"seconds": 0.05, "log": str(log)},
                retry={"max_retries": max_retries},
            ),
            "b": py("asleep", params={"seconds": 0.05, "log": str(log)}, needs=["a"]),
        }
    )
    run_id, _ = make_engine(store).submit(spec)
    dead = f"{socket.gethostname()}:{_dead_pid()}:deadbeef"
    now = time.time()
    assert store.claim_run(run_id, dead, now + 60, expected=None)  # lease not even expired
    store.write(
        Batch(
            run_id,
            dead,
            now + 60,
            run=("running", now, None, None),
            tasks=[_task_row("a", state="running", attempts=1, ready_at=now, started_at=now)],
            events=[
                (run_id, None, "pending", "running", None, now, None),
                (run_id, "a", "ready", "running", 1, now, None),
            ],
        )
    )

    engine = make_engine(sqlite_stores())
    final = arun(engine.execute(run_id))
    rows = tasks_by_name(store, run_id)
    lost = [e for e in task_events(store, run_id, "a") if e.detail and "lost" in e.detail]
    assert len(lost) == 1
    assert "attempt 1 died" in lost[0].detail
    assert any(e.detail == f"taken over by {engine.owner}" for e in run_events(store, run_id))
    if max_retries:
        assert final is RunState.SUCCEEDED
        assert (rows["a"].state, rows["a"].attempts) == ("succeeded", 2)
        assert (rows["b"].state, rows["b"].attempts) == ("succeeded", 1)
        assert lost[0].to_state == "ready"
        _succeeded_once(store, run_id)
    else:
        assert final is RunState.FAILED
        assert (rows["a"].state, rows["b"].state) == ("failed", "cancelled")
        assert lost[0].to_state == "failed"
        assert not log.exists()
    assert store.get_run(run_id).owner is None


def test_a_run_owned_by_a_live_engine_is_busy(sqlite_stores, make_engine, tmp_path) -> None:
    store_a, store_b = sqlite_stores(), sqlite_stores()
    engine_a, engine_b = make_engine(store_a), make_engine(store_b)
    run_id, _ = engine_a.submit(workflow({"t": py("asleep", params={"seconds": 0.3})}))

    async def main() -> RunState:
        execution = asyncio.create_task(engine_a.execute(run_id))
        assert await wait_until(lambda: store_b.get_run(run_id).owner == engine_a.owner)
        with pytest.raises(RunBusy):
            await engine_b.execute(run_id)
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    _succeeded_once(store_a, run_id)


def test_forced_takeover_fences_off_the_old_owner(
    sqlite_stores, make_engine, tmp_path: Path
) -> None:
    """Engine B takes over a run that engine A still executes (as after a network partition or
    a frozen process). A's next write is refused with LeaseLost, A stops its attempt, and the
    store records each completion once - B's."""
    store_a, store_b = sqlite_stores(), sqlite_stores()
    engine_a, engine_b = make_engine(store_a), make_engine(store_b)
    spec = workflow(
        {
            "first": py("anoop"),
            # A's attempt (the first) would sleep 30 s: it only ends early if A stops it.
            "long": sh(
                'echo $$ >> pids; [ "$REVIEWFLOW_ATTEMPT" = 1 ] && exec sleep 30; sleep 0.2',
                cwd=str(tmp_path),
                kill_grace="1s",
                needs=["first"],
            ),
            "last": py("anoop", needs=["long"]),
        }
    )
    run_id, _ = engine_a.submit(spec)

    async def main() -> tuple[BaseException | RunState, RunState]:
        exec_a = asyncio.create_task(engine_a.execute(run_id))
        assert await wait_until(lambda: tasks_by_name(store_b, run_id)["long"].state == "running")
        exec_b = asyncio.create_task(engine_b.execute(run_id, force=True))
        try:
            result_a: BaseException | RunState = await asyncio.wait_for(exec_a, 5)
        except LeaseLost as exc:
            result_a = exc
        first_pid = int((tmp_path / "pids").read_text().split()[0])
        assert await wait_until(lambda: process_gone(first_pid), timeout=3), (
            "A's attempt kept running after A lost the run"
        )
        return result_a, await exec_b

    result_a, state_b = arun(main())
    assert isinstance(result_a, LeaseLost)
    assert state_b is RunState.SUCCEEDED
    run = store_b.get_run(run_id)
    assert (run.state, run.owner) == ("succeeded", None)
    rows = tasks_by_name(store_b, run_id)
    assert {n: r.state for n, r in rows.items()} == dict.fromkeys(rows, "succeeded")
    assert rows["long"].attempts == 2  # A's attempt counted as lost, B's succeeded
    _succeeded_once(store_b, run_id)
    assert json.loads(rows["long"].result)["exit_code"] == 0
    pids = [int(x) for x in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2  # A's attempt and B's
    assert all(process_gone(pid) for pid in pids)

    # whatever A would still write is refused
    with pytest.raises(LeaseLost):
        store_a.write(
            Batch(
                run_id,
                engine_a.owner,
                time.time() + 30,
                events=[(run_id, "long", "running", "succeeded", 1, time.time(), None)],
            )
        )
    assert (
        len(
            [
                e
                for e in store_b.get_events(run_id)
                if e.to_state == "succeeded" and e.task == "long"
            ]
        )
        == 1
    )
