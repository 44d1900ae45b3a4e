"""What a task type is given and must provide."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..spec import TaskSpec


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

    def validate(self, spec: TaskSpec) -> None:
        """Raise SpecError (naming the field) if `spec` lacks what this type needs."""

    async def execute(self, ctx: TaskContext) -> Any:
        """Run one attempt."""
