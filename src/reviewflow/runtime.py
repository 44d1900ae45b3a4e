"""The live, in-memory state of runs an engine is executing (mirrored to the store in batches)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .states import RunState, TaskState
from .store.base import Batch

if TYPE_CHECKING:
    from .errors import StoreError
    from .spec import TaskSpec, WorkflowSpec
    from .store.base import Event, RunRecord, TaskRecord


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class LiveTask:
    """One task of a live run. Slots keep 100k of them cheap."""

    __slots__ = (
        "attempts",
        "cancel_reason",
        "dependents",
        "detached",
        "entered",
        "error",
        "errors",
        "finished_at",
        "handle",
        "hook",
        "name",
        "next_attempt_at",
        "pid",
        "priority",
        "ready_at",
        "remaining",
        "result",
        "run",
        "spec",
        "started_at",
        "state",
        "ticket",
        "timer",
        "wait_reason",
    )

    def __init__(self, run: LiveRun, spec: TaskSpec, hook: bool) -> None:
        self.run = run
        self.spec = spec
        self.name = spec.name
        self.hook = hook
        self.priority = spec.priority
        self.state = TaskState.BLOCKED
        self.attempts = 0
        self.remaining = 0
        # Most tasks of a wide run have none: one shared empty tuple, not a list each.
        self.dependents: list[LiveTask] | tuple[()] = ()
        self.ready_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.next_attempt_at: float | None = None
        self.result: Any = None
        self.error: str | None = None
        self.errors: list[dict[str, Any]] | None = None
        self.wait_reason: str | None = None
        self.pid: int | None = None
        self.handle: asyncio.Task[None] | None = None
        self.cancel_reason: str | None = None
        self.entered = False  # the current attempt's coroutine has started
        self.detached = False  # the running attempt gave its slots back (it waits outside)
        self.timer: asyncio.TimerHandle | None = None
        self.ticket = 0

    def __repr__(self) -> str:
        return f"<LiveTask {self.run.run_id}/{self.name} {self.state}>"


class LiveRun:
    """A run being executed: its tasks, counters, pending writes and completion future."""

    __slots__ = (
        "created_at",
        "dirty",
        "done",
        "error",
        "events",
        "fault",
        "finished_at",
        "halted",
        "hooks_started",
        "max_concurrency",
        "meta",
        "not_before",
        "open",
        "open_hooks",
        "outcome",
        "parked",
        "run_dir",
        "run_dirty",
        "run_id",
        "running",
        "spec",
        "started_at",
        "state",
        "tasks",
        "timeout_handle",
    )

    def __init__(self, run_id: str, spec: WorkflowSpec, meta: dict[str, str]) -> None:
        self.run_id = run_id
        self.spec = spec
        self.meta = meta
        self.state = RunState.PENDING
        self.tasks: dict[str, LiveTask] = {}
        self.max_concurrency = spec.max_concurrency
        self.running = 0
        self.open = 0  # main tasks not yet in a terminal state
        self.open_hooks = 0
        self.hooks_started = False
        self.halted = False  # interrupted: nothing more starts, the run stays resumable
        self.fault: StoreError | None = None  # the store refused a write: the run is interrupted
        self.outcome: RunState | None = None  # what the run will end as, once decided
        self.parked: list[tuple[float, int, int, LiveTask]] = []
        self.dirty: dict[LiveTask, None] = {}
        self.run_dirty = False
        self.events: list[Event] = []
        self.created_at = 0.0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.not_before: float | None = None
        self.error: str | None = None
        self.done: asyncio.Future[RunState] | None = None
        self.timeout_handle: asyncio.TimerHandle | None = None
        self.run_dir: Path = Path()

    @property
    def paused(self) -> bool:
        return self.state is RunState.PAUSED

    @classmethod
    def load(
        cls, record: RunRecord, spec: WorkflowSpec, rows: list[TaskRecord], run_dir: Path
    ) -> LiveRun:
        """Rebuild a run from its stored rows (none for a run that never started)."""
        run = cls(record.run_id, spec, record.meta)
        run.state = RunState(record.state)
        run.created_at = record.created_at
        run.started_at = record.started_at
        run.error = record.error
        run.run_dir = run_dir
        tasks = run.tasks
        for tspec in spec.tasks.values():
            tasks[tspec.name] = LiveTask(run, tspec, hook=False)
        for tspec in spec.on_failure.values():
            tasks[tspec.name] = LiveTask(run, tspec, hook=True)
        for dependent in tasks.values():
            for dep in dependent.spec.needs:
                upstream = tasks[dep]
                if upstream.dependents:
                    upstream.dependents.append(dependent)
                else:
                    upstream.dependents = [dependent]
        for row in rows:
            task = tasks.get(row.name)
            if task is None:
                continue
            task.state = TaskState(row.state)
            task.attempts = row.attempts
            task.ready_at = row.ready_at
            task.started_at = row.started_at
            task.finished_at = row.finished_at
            task.next_attempt_at = row.next_attempt_at
            task.result = json.loads(row.result) if row.result else None
            task.error = row.error
            task.errors = json.loads(row.errors) if row.errors else None
            task.wait_reason = row.wait_reason
            task.pid = row.pid
        return run

    def drain(self, owner: str, lease_until: float) -> Batch:
        """Take the changes not yet written (dirty tasks, events, run row) as one batch."""
        rows = [
            (
                t.state._value_,
                t.attempts,
                t.ready_at,
                t.started_at,
                t.finished_at,
                t.next_attempt_at,
                _json(t.result),
                t.error,
                _json(t.errors),
                t.wait_reason,
                t.pid,
                t.name,
            )
            for t in self.dirty
        ]
        batch = Batch(
            run_id=self.run_id,
            owner=owner,
            lease_until=lease_until,
            run=(self.state.value, self.started_at, self.finished_at, self.error)
            if self.run_dirty
            else None,
            tasks=rows,
            events=self.events,
        )
        self.dirty = {}
        self.events = []
        self.run_dirty = False
        return batch

    def undrain(self, batch: Batch) -> None:
        """Take back a batch the store refused, ahead of what changed since."""
        for row in batch.tasks:
            self.dirty[self.tasks[row[-1]]] = None
        self.events = batch.events + self.events
        self.run_dirty = self.run_dirty or batch.run is not None
