"""The registry of task types: built-ins plus entry points of group `reviewflow.task_types`.

A plugin package declares, in its pyproject.toml:

    [project.entry-points."reviewflow.task_types"]
    approval = "mypkg.tasks:ApprovalTaskType"

The object named there is a TaskType instance or a class that builds one with no arguments.
"""

from __future__ import annotations

from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from ..errors import SpecError
from ..plugins import plugin_errors, provide
from .base import TaskType

if TYPE_CHECKING:
    from ..spec import TaskSpec

ENTRY_POINT_GROUP = "reviewflow.task_types"


STORED: ContextVar[bool] = ContextVar("reviewflow_stored_spec", default=False)
"""Set while a spec read back from the store is parsed (see `validate_task`)."""


class TaskTypeRegistry:
    """Maps a task's `type` to the TaskType that runs it."""

    def __init__(self) -> None:
        self._types: dict[str, TaskType] = {}
        self._plugins_loaded = False
        self.plugin_errors: dict[str, str] = {}
        """Entry points that failed to load, by name (they break only the tasks using them)."""

    def register(self, task_type: TaskType) -> None:
        """Add or replace a task type."""
        self._types[task_type.name] = task_type

    def names(self) -> list[str]:
        """Known type names (plugins included)."""
        self._load_plugins()
        return sorted(self._types)

    def get(self, name: str) -> TaskType:
        """The TaskType called `name`; raises KeyError if none is known."""
        found = self._types.get(name)
        if found is None:
            self._load_plugins()
            found = self._types[name]
        return found

    def validate_task(self, spec: TaskSpec) -> None:
        """Check that the task's type exists and that the task has what the type needs."""
        if STORED.get():
            return  # a spec validated at submit: this process may lack a plugin; its attempts
            # fail then ("task type unavailable"), the run's logic must still work here
        try:
            task_type = self.get(spec.type)
        except KeyError:
            broken = {**self.plugin_errors, **plugin_errors()}
            hint = "".join(
                f"; plugin {name} failed to load: {why}" for name, why in sorted(broken.items())
            )
            raise SpecError(
                f"unknown task type {spec.type!r} (known: {', '.join(self.names())}){hint}",
                task=spec.name,
                field="type",
            ) from None
        task_type.validate(spec)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._types:
                continue
            try:
                obj = ep.load()
                self.register(obj() if isinstance(obj, type) else obj)
            except Exception as exc:  # one broken plugin must not hide the others
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"


def _builtin_registry() -> TaskTypeRegistry:
    from .approval import ApprovalTaskType
    from .python import PythonTaskType
    from .shell import ShellTaskType

    reg = TaskTypeRegistry()
    reg.register(ApprovalTaskType())
    reg.register(PythonTaskType())
    reg.register(ShellTaskType())
    return reg


registry = _builtin_registry()
provide("task_types", registry)
