"""Numbered schema migrations of the PostgreSQL store (`reviewflow db upgrade`).

Migrations are the files reviewflow/store/sql/migrations/NNNN_what.sql; the versions applied to
a database are rows of its `schema_migrations` table. `upgrade` applies the missing ones in one
transaction (PostgreSQL DDL is transactional: all or nothing) under a transaction-scoped
advisory lock, so two processes upgrading the same database at once queue up instead of
failing, and running it again applies nothing. An empty database gets sql/schema.sql (the same
schema in one go) and every migration up to its version recorded as applied.

A PostgresStore runs `ensure` when it opens: an empty database is upgraded there and then, an
outdated one is refused with a pointer to `reviewflow db upgrade` (migrating a shared database
should be a deliberate step, not a side effect of whichever worker starts first). A database
*newer* than this reviewflow is accepted: migrations are meant to be additive, so older
processes keep working during a rolling upgrade.
"""

from __future__ import annotations

import psycopg

from ..errors import StoreError
from .sql import migrations, schema

LOCK_KEY = 0x7265766965776677
"""pg_advisory_xact_lock key taken by every schema change (the bytes of "reviewfw")."""

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


def latest() -> int:
    """The version this reviewflow's schema is at (its highest migration)."""
    return migrations()[-1].version


def current(conn: psycopg.Connection) -> int:
    """The highest migration applied to the database; 0 if reviewflow never touched it."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def upgrade(db: str | psycopg.Connection, to: int | None = None) -> list[str]:
    """Apply the missing migrations up to version `to` (default: all) to a database given by URL
    or connection; returns the names applied (empty when it was up to date)."""
    if isinstance(db, str):
        from .postgres import connect  # postgres imports this module

        with connect(db) as conn:
            return upgrade(conn, to)
    target = latest() if to is None else to
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        db.execute(_CREATE_TABLE)
        done = current(db)  # read under the lock: another process may just have upgraded
        pending = [m for m in migrations() if done < m.version <= target]
        if not pending:
            return []
        base_version, base_sql = schema()
        steps = pending
        if done == 0 and base_version <= target:
            db.execute(base_sql)
            steps = [m for m in pending if m.version > base_version]
        for migration in steps:
            db.execute(migration.sql)
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                [(m.version, m.name) for m in pending],
            )
    return [m.name for m in pending]


def ensure(conn: psycopg.Connection, where: str) -> None:
    """Create the schema of an empty database; refuse one older than this reviewflow."""
    version = current(conn)
    if version == 0:
        upgrade(conn)
    elif version < latest():
        raise StoreError(
            f"{where}: database schema is at version {version}, this reviewflow needs"
            f" {latest()}: run `reviewflow db upgrade`"
        )
