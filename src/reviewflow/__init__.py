"""reviewflow: durable review workflows (DAGs of checks) on embedded SQLite."""

from .api import Workflow, run_sync
from .config import load_workflow, load_workflow_text
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
from .spec import RetryPolicy, TaskSpec, WorkflowSpec, validate_spec
from .states import RunState, TaskState
from .status import run_status
from .store import MemoryStore, SQLiteStore, Store, open_store
from .viz import mermaid

__version__ = "0.1.0"

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
