"""ReadyQueue (reviewflow.scheduler) on its own: claim order, limits, wake-ups."""

from __future__ import annotations

from typing import Any

import pytest

from reviewflow.runtime import LiveRun, LiveTask
from reviewflow.scheduler import ReadyQueue
from reviewflow.states import RunState, TaskState
from rfhelpers import py, workflow


def _live_run(tasks: dict[str, dict[str, Any]], run_id: str = "r", **fields: Any) -> LiveRun:
    spec = workflow(tasks, **fields)
    run = LiveRun(run_id, spec, {})
    run.state = RunState.RUNNING
    for t in spec.tasks.values():
        run.tasks[t.name] = LiveTask(run, t, hook=False)
    return run


def _ready(queue: ReadyQueue, task: LiveTask, at: float) -> None:
    task.state = TaskState.READY
    task.ready_at = at
    queue.push(task)


def _claim_all(queue: ReadyQueue) -> list[str]:
    names = []
    while (task := queue.pop()) is not None:
        task.state = TaskState.RUNNING
        names.append(task.name)
    return names


def test_pop_orders_by_priority_then_readiness_then_push_order() -> None:
    run = _live_run(
        {
            "a": py("anoop", priority="low"),
            "b": py("anoop", priority="high"),
            "c": py("anoop", priority="high"),
            "d": py("anoop", priority=7),
        }
    )
    queue = ReadyQueue(10)
    for name in "abcd":
        _ready(queue, run.tasks[name], at=100.0)
    assert _claim_all(queue) == ["d", "b", "c", "a"]
    assert (queue.running, run.running) == (4, 4)


def test_aging_makes_a_long_waiting_task_win() -> None:
    run = _live_run({"low": py("anoop", priority="low"), "high": py("anoop", priority="high")})
    queue = ReadyQueue(10, aging_interval=1.0)
    _ready(queue, run.tasks["low"], at=100.0)
    _ready(queue, run.tasks["high"], at=102.5)  # 2.5 s later: worth 2.5 priority points
    assert _claim_all(queue) == ["low", "high"]


def test_global_limit_and_wait_reason() -> None:
    run = _live_run({n: py("anoop") for n in "abc"})
    waits: list[tuple[str, str]] = []
    queue = ReadyQueue(1, on_wait=lambda t: waits.append((t.name, t.wait_reason)))
    for name in "abc":
        _ready(queue, run.tasks[name], at=1.0)
    assert _claim_all(queue) == ["a"]
    # b and c queued while the slot was free; once the limit stops the claim they are told why.
    assert waits == [
        ("b", "waiting for global limit: 1/1 in use"),
        ("c", "waiting for global limit: 1/1 in use"),
    ]
    _ready(queue, run.tasks["a"], at=2.0)  # (re-queue of a retry, say) while the slot is taken
    assert ("a", "waiting for global limit: 1/1 in use") in waits


def test_key_limit_parks_and_release_wakes_the_next() -> None:
    run = _live_run({n: py("anoop", concurrency_key="gpu") for n in "abc"})
    queue = ReadyQueue(10)
    queue.key_limits["gpu"] = 1
    for name in "abc":
        _ready(queue, run.tasks[name], at=1.0)
    assert _claim_all(queue) == ["a"]
    assert run.tasks["b"].wait_reason == "waiting for key gpu: 1/1 in use"
    run.tasks["a"].state = TaskState.SUCCEEDED
    queue.release(run.tasks["a"])
    assert _claim_all(queue) == ["b"]
    assert run.tasks["b"].wait_reason is None


@pytest.mark.parametrize("limit", ["run", "key"])
def test_a_parked_task_that_was_cancelled_does_not_swallow_the_next_wakeup(
    limit: str,
) -> None:
    """b and c wait for a slot; b is cancelled meanwhile (its run failed fast, say). When a's
    slot frees, c - the only task still waiting - must become claimable."""
    if limit == "run":
        run = _live_run({n: py("anoop") for n in "abc"}, max_concurrency=1)
        queue = ReadyQueue(10)
    else:
        run = _live_run({n: py("anoop", concurrency_key="gpu") for n in "abc"})
        queue = ReadyQueue(10)
        queue.key_limits["gpu"] = 1
    a, b, c = (run.tasks[n] for n in "abc")
    for t in (a, b, c):
        _ready(queue, t, at=1.0)
    assert _claim_all(queue) == ["a"]
    b.state = TaskState.CANCELLED
    a.state = TaskState.SUCCEEDED
    queue.release(a)
    assert _claim_all(queue) == ["c"]
