"""reviewflow: durable review workflows (DAGs of checks) on embedded SQLite.

The public names below are imported on first use (PEP 562), so `import reviewflow` — and with
it every `reviewflow` command — does not pay for pydantic, the engine or the stores until a
name is actually used: `reviewflow --version` must not load a workflow engine.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .version import __version__ as __version__

_EXPORTS = {
    "Workflow": ".api",
    "run_sync": ".api",
    "load_workflow": ".config",
    "load_workflow_text": ".config",
    "Engine": ".engine",
    "RunBusy": ".engine",
    "InvalidTransition": ".errors",
    "LeaseLost": ".errors",
    "ReviewflowError": ".errors",
    "RunNotFound": ".errors",
    "SpecError": ".errors",
    "StoreError": ".errors",
    "TaskError": ".errors",
    "TaskFailed": ".errors",
    "TaskTimeout": ".errors",
    "TaskContext": ".executors",
    "registry": ".executors",
    "RetryPolicy": ".spec",
    "TaskSpec": ".spec",
    "WorkflowSpec": ".spec",
    "validate_spec": ".config",
    "RunState": ".states",
    "TaskState": ".states",
    "run_status": ".status",
    "MemoryStore": ".store",
    "SQLiteStore": ".store",
    "Store": ".store",
    "open_store": ".store",
    "mermaid": ".diagram",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from .api import Workflow, run_sync
    from .config import load_workflow, load_workflow_text, validate_spec
    from .diagram import mermaid
    from .engine import Engine, RunBusy
    from .errors import (
        InvalidTransition,
        LeaseLost,
        ReviewflowError,
        RunNotFound,
        SpecError,
        StoreError,
        TaskError,
        TaskFailed,
        TaskTimeout,
    )
    from .executors import TaskContext, registry
    from .spec import RetryPolicy, TaskSpec, WorkflowSpec
    from .states import RunState, TaskState
    from .status import run_status
    from .store import MemoryStore, SQLiteStore, Store, open_store

__all__ = [
    "Engine",
    "InvalidTransition",
    "LeaseLost",
    "MemoryStore",
    "RetryPolicy",
    "ReviewflowError",
    "RunBusy",
    "RunNotFound",
    "RunState",
    "SQLiteStore",
    "SpecError",
    "Store",
    "StoreError",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskSpec",
    "TaskState",
    "TaskTimeout",
    "Workflow",
    "WorkflowSpec",
    "load_workflow",
    "load_workflow_text",
    "mermaid",
    "open_store",
    "registry",
    "run_status",
    "run_sync",
    "validate_spec",
]
