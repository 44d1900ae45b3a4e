"""Stores: where runs, tasks and events live. `open_store` picks one from a path or URL.

The stores themselves are imported when first used (PostgreSQL's only when a URL names it), so
commands that never open a database start without sqlite3 or psycopg.
"""

from __future__ import annotations

import re
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError

if TYPE_CHECKING:
    from .base import Batch, EventRecord, RunFilter, RunRecord, Store, TaskRecord
    from .memory import MemoryStore
    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

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
        from .memory import MemoryStore

        return MemoryStore()
    url = postgres_url(target)
    if url is not None:
        try:
            from .postgres import PostgresStore  # psycopg is only imported when it is used
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] not in ("psycopg", "psycopg_pool"):
                raise
            raise StoreError(
                "a PostgreSQL database needs the postgres extra: pip install 'reviewflow[postgres]'"
            ) from exc
        return PostgresStore(url)
    from .sqlite import SQLiteStore

    path = Path(target) if target else DEFAULT_DB
    return SQLiteStore(path)


_LAZY = {
    "Batch": ".base",
    "EventRecord": ".base",
    "RunFilter": ".base",
    "RunRecord": ".base",
    "Store": ".base",
    "TaskRecord": ".base",
    "MemoryStore": ".memory",
    "PostgresStore": ".postgres",
    "SQLiteStore": ".sqlite",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_DB",
    "Batch",
    "EventRecord",
    "MemoryStore",
    "PostgresStore",
    "RunFilter",
    "RunRecord",
    "SQLiteStore",
    "Store",
    "TaskRecord",
    "open_store",
    "postgres_url",
]
