"""What a task type is given and must provide."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..spec import TaskSpec
    from ..store.base import Store


@dataclass(slots=True)
class TaskContext:
    """Everything one attempt may know: who it is, its inputs, where to write."""

    run_id: str
    task: str
    attempt: int
    params: dict[str, Any]
    results: dict[str, Any]
    meta: dict[str, str]
    run_dir: Path
    spec: TaskSpec = field(repr=False)
    on_process: Callable[[int], None] | None = field(default=None, repr=False)
    """Task types that start a process group report its id here, so that a process taking
    over the run after a crash can stop what the dead attempt left running."""
    failures: Mapping[str, str] = field(default_factory=dict)
    """For `trigger: all_done` tasks: dependencies that did not succeed, with their error."""
    store: Store | None = field(default=None, repr=False)
    """The run's store, for task types that wait on durable signals (approval)."""
    note: Callable[[str], None] | None = field(default=None, repr=False)
    """Record an informational event for this task (shown by `reviewflow events`)."""
    waiting: Callable[[str | None], None] | None = field(default=None, repr=False)
    """Say what the running attempt waits for (shown by `reviewflow status`)."""
    run_view: Callable[[], dict[str, dict[str, Any]]] | None = field(default=None, repr=False)
    """A snapshot of every task of the run (state, attempts, times, error): for reports."""

    @property
    def log_path(self) -> Path:
        """Where this attempt's output goes: `<run_dir>/<task>.<attempt>.log`."""
        return self.run_dir / f"{self.task}.{self.attempt}.log"


class TaskType(Protocol):
    """A kind of task. `execute` returns a JSON-serialisable result or raises TaskFailed.

    Timeouts and cancellation arrive as `asyncio.CancelledError` inside `execute`; a task type
    that starts processes must stop them before letting the error go on.
    """

    name: str
    owns_timeout: bool = False
    """True if `execute` enforces `spec.timeout` itself (the engine then sets no timer)."""

    def validate(self, spec: TaskSpec) -> None:
        """Raise SpecError (naming the field) if `spec` lacks what this type needs."""

    async def execute(self, ctx: TaskContext) -> Any:
        """Run one attempt."""
