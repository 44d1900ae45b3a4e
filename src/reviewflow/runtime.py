"""The live, in-memory state of runs an engine is executing (mirrored to the store in batches)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .states import RunState, TaskState

if TYPE_CHECKING:
    from .spec import TaskSpec, WorkflowSpec
    from .store.base import Event


class LiveTask:
    """One task of a live run. Slots keep 100k of them cheap."""

    __slots__ = (
        "attempts",
        "cancel_reason",
        "dependents",
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
        self.dependents: list[LiveTask] = []
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
        self.run_dir: Any = None

    @property
    def paused(self) -> bool:
        return self.state is RunState.PAUSED
