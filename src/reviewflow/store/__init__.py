"""Stores: where runs, tasks and events live. `open_store` picks one from a path or URL."""

from __future__ import annotations

from pathlib import Path

from .base import Batch, EventRecord, RunRecord, Store, TaskRecord
from .memory import MemoryStore
from .sqlite import SQLiteStore

DEFAULT_DB = Path(".reviewflow") / "reviewflow.db"
MEMORY_TARGETS = (":memory:", "memory://")


def open_store(target: str | Path | None = None) -> Store:
    """`:memory:`/`memory://` for an ephemeral store, otherwise a SQLite file path."""
    if target is not None and str(target) in MEMORY_TARGETS:
        return MemoryStore()
    path = Path(target) if target else DEFAULT_DB
    return SQLiteStore(path)


__all__ = [
    "DEFAULT_DB",
    "Batch",
    "EventRecord",
    "MemoryStore",
    "RunRecord",
    "SQLiteStore",
    "Store",
    "TaskRecord",
    "open_store",
]
