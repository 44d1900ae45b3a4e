"""PostgreSQL schema migrations (reviewflow.store.migrate): an empty database gets the schema on
first use (once, however many processes start at the same moment), `reviewflow db upgrade` is
idempotent, a database behind this version is refused until upgraded, and migrating one release
at a time ends with exactly the schema a fresh database gets. Real PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import subprocess
import threading

import psycopg
import pytest

import pg
from reviewflow.errors import StoreError
from reviewflow.store import migrate
from reviewflow.store.postgres import PostgresStore
from reviewflow.store.sql import migrations, schema
from rfhelpers import create_run_in


def _applied(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()


def test_an_empty_database_gets_the_schema_on_first_use(pg_empty_url: str) -> None:
    store = PostgresStore(pg_empty_url)
    try:
        create_run_in(store)
        assert [t.name for t in store.get_tasks("r1")] == ["b", "a", "c"]
    finally:
        store.close()
    assert _applied(pg_empty_url) == [(m.version, m.name) for m in migrations()]


def test_upgrade_is_idempotent(pg_empty_url: str) -> None:
    assert migrate.upgrade(pg_empty_url) == [m.name for m in migrations()]
    assert migrate.upgrade(pg_empty_url) == []
    with psycopg.connect(pg_empty_url) as conn:
        assert migrate.current(conn) == migrate.latest()


def test_concurrent_first_use_of_an_empty_database(pg_empty_url: str) -> None:
    n = 4
    barrier = threading.Barrier(n)
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait(10)
            opened.append(PostgresStore(pg_empty_url))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for store in opened:
        store.close()
    assert errors == []
    assert len(opened) == n
    assert _applied(pg_empty_url) == [(m.version, m.name) for m in migrations()]


def test_an_outdated_database_is_refused_until_upgraded(pg_empty_url: str) -> None:
    assert migrate.upgrade(pg_empty_url, to=1) == [migrations()[0].name]
    with pytest.raises(StoreError, match=r"version 1, .*reviewflow db upgrade"):
        PostgresStore(pg_empty_url)
    assert migrate.upgrade(pg_empty_url) == [m.name for m in migrations()[1:]]
    PostgresStore(pg_empty_url).close()


def _schema_dump(server: pg.PgServer, url: str) -> str:
    pg_dump = server.tool("pg_dump")
    if pg_dump is None:
        if pg.required():
            pytest.fail("pg_dump not found")
        pytest.skip("pg_dump not found")
    dump = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", "--no-privileges", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    # pg_dump >= 15.14 brackets the dump with \restrict <random key>
    return "\n".join(
        line for line in dump.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def test_a_database_migrated_step_by_step_equals_a_fresh_one(pg_server: pg.PgServer) -> None:
    version, _ = schema()
    assert version == migrate.latest(), "schema.sql must be at the latest migration's version"
    stepwise = pg_server.new_database(migrated=False)
    fresh = pg_server.new_database(migrated=False)
    try:
        for m in migrations():  # one upgrade per version, as successive releases would
            assert migrate.upgrade(stepwise, to=m.version) == [m.name]
        assert migrate.upgrade(fresh) == [m.name for m in migrations()]  # schema.sql
        assert _applied(stepwise) == _applied(fresh)
        assert _schema_dump(pg_server, stepwise) == _schema_dump(pg_server, fresh)
    finally:
        pg_server.drop_database(stepwise)
        pg_server.drop_database(fresh)
