"""Stores: where runs, tasks and events live. `open_store` picks one from a path or URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Batch, EventRecord, RunRecord, Store, TaskRecord
from .memory import MemoryStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

DEFAULT_DB = Path(".reviewflow") / "reviewflow.db"
MEMORY_TARGETS = (":memory:", "memory://")
POSTGRES_URL = re.compile(r"^(postgres(?:ql)?):/+")
"""postgresql://… or postgres://…; one slash too, as Path("postgresql://h/db") collapses `//`."""


def postgres_url(target: str | Path | None) -> str | None:
    """The PostgreSQL URL that `target` names, or None if it names something else."""
    if target is None:
        return None
    text = str(target)
    match = POSTGRES_URL.match(text)
    if match is None:
        return None
    return f"{match[1]}://{text[match.end() :]}"


def open_store(target: str | Path | None = None) -> Store:
    """`:memory:`/`memory://` for an ephemeral store, a `postgresql://user@host:port/dbname`
    (or `postgres://`) URL for a PostgreSQL database, otherwise a SQLite file path."""
    if target is not None and str(target) in MEMORY_TARGETS:
        return MemoryStore()
    url = postgres_url(target)
    if url is not None:
        from .postgres import PostgresStore  # psycopg is only imported when it is used

        return PostgresStore(url)
    path = Path(target) if target else DEFAULT_DB
    return SQLiteStore(path)


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_DB",
    "Batch",
    "EventRecord",
    "MemoryStore",
    "PostgresStore",
    "RunRecord",
    "SQLiteStore",
    "Store",
    "TaskRecord",
    "open_store",
    "postgres_url",
]
