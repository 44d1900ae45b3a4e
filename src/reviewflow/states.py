"""Run and task state machines, as data.

Every state change of a run or a task goes through `check_run` / `check_task`; the tables below are
the whole truth about what may follow what. Terminal states have no outgoing edges.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import InvalidTransition


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    BLOCKED = "blocked"
    READY = "ready"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    TIMED_OUT = "timed_out"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


R, T = RunState, TaskState

RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    R.PENDING: frozenset({R.RUNNING, R.CANCELLED, R.PAUSED}),
    R.RUNNING: frozenset({R.PAUSED, R.SUCCEEDED, R.FAILED, R.CANCELLED}),
    R.PAUSED: frozenset({R.RUNNING, R.CANCELLED, R.FAILED, R.SUCCEEDED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
    R.CANCELLED: frozenset(),
}

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    T.BLOCKED: frozenset({T.READY, T.SKIPPED, T.CANCELLED}),
    T.READY: frozenset({T.RUNNING, T.CANCELLED, T.SKIPPED}),
    # running -> ready is the recovery edge: the process running the attempt died (reason "lost").
    T.RUNNING: frozenset({T.SUCCEEDED, T.FAILED, T.CANCELLED, T.RETRY_WAIT, T.TIMED_OUT, T.READY}),
    T.TIMED_OUT: frozenset({T.RETRY_WAIT, T.FAILED, T.CANCELLED}),
    T.RETRY_WAIT: frozenset({T.READY, T.CANCELLED}),
    T.SUCCEEDED: frozenset(),
    T.FAILED: frozenset(),
    T.CANCELLED: frozenset(),
    T.SKIPPED: frozenset(),
}

RUN_TERMINAL = frozenset(s for s, nxt in RUN_TRANSITIONS.items() if not nxt)
TASK_TERMINAL = frozenset(s for s, nxt in TASK_TRANSITIONS.items() if not nxt)


def check_run(run_id: str, from_state: RunState, to_state: RunState) -> None:
    """Raise InvalidTransition unless the run may go from `from_state` to `to_state`."""
    if to_state not in RUN_TRANSITIONS[from_state]:
        raise InvalidTransition("run", run_id, from_state, to_state)


def check_task(task: str, from_state: TaskState, to_state: TaskState) -> None:
    """Raise InvalidTransition unless the task may go from `from_state` to `to_state`."""
    if to_state not in TASK_TRANSITIONS[from_state]:
        raise InvalidTransition("task", task, from_state, to_state)
