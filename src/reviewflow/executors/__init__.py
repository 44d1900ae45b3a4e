"""Task types: how one attempt of a task is executed. See `registry` for plugins."""

from .base import TaskContext, TaskType
from .registry import registry

__all__ = ["TaskContext", "TaskType", "registry"]
