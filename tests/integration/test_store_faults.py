"""Storage faults at every write point: the store's Nth write raises a real driver error
(SQLite: "database or disk is full" / "disk I/O error"; PostgreSQL: DiskFull / IOError), for N
over every write a small run makes. Each submit either commits or leaves nothing; each execute
that meets the fault ends interrupted with the error (nothing more starts, nothing unsaved is
reported to the observer), and executing the run again completes every task exactly once."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reviewflow.engine import Engine
from reviewflow.errors import StoreError
from reviewflow.states import RunState
from reviewflow.store import SQLiteStore
from reviewflow.store.base import Store
from reviewflow.store.postgres import PostgresStore
from rfhelpers import FLUSH, HEARTBEAT, arun, py, workflow

MAX_WRITES = 300  # far more than the workflow below makes: the loop always ends by itself
_WRITE = re.compile(
    r"^\s*(?:--[^\n]*\n\s*)*(INSERT|UPDATE|DELETE|COMMIT|WITH\s+\w+\s+AS\s+\(\s*UPDATE)"
)


class Fault:
    """Counts write statements and raises `error` at the `at`-th one (once)."""

    def __init__(self, at: int, error: Exception) -> None:
        self.at = at
        self.error = error
        self.writes = 0
        self.failed_sql: str | None = None
        self._last = ""

    def check(self, sql: Any) -> None:
        text = sql if isinstance(sql, str) else str(sql)
        if not _WRITE.match(text):
            return
        self.writes += 1
        if self.writes == self.at:
            self.failed_sql = f"COMMIT of {self._last}" if text == "COMMIT" else text
            raise self.error
        self._last = text


class FaultySQLite:
    """A sqlite3 connection whose write statements go through `fault` first."""

    def __init__(self, conn: sqlite3.Connection, fault: Fault) -> None:
        self._conn = conn
        self._fault = fault

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._fault.check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._fault.check(sql)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class FaultyPgCursor:
    def __init__(self, cur: psycopg.Cursor, fault: Fault) -> None:
        self._cur = cur
        self._fault = fault

    def executemany(self, sql: Any, *args: Any) -> None:
        self._fault.check(sql)
        self._cur.executemany(sql, *args)

    def __enter__(self) -> FaultyPgCursor:
        self._cur.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cur.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class FaultyPgConnection:
    def __init__(self, conn: psycopg.Connection, fault: Fault) -> None:
        self._conn = conn
        self._fault = fault

    def execute(self, sql: Any, *args: Any) -> psycopg.Cursor:
        self._fault.check(sql)
        return self._conn.execute(sql, *args)

    def cursor(self, *args: Any, **kwargs: Any) -> FaultyPgCursor:
        return FaultyPgCursor(self._conn.cursor(*args, **kwargs), self._fault)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class FaultyPool:
    """The store's connection pool, handing out connections that go through `fault`."""

    def __init__(self, pool: Any, fault: Fault) -> None:
        self._pool = pool
        self._fault = fault

    @contextmanager
    def connection(self) -> Iterator[FaultyPgConnection]:
        with self._pool.connection() as conn:
            yield FaultyPgConnection(conn, self._fault)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def _sqlite(tmp_path: Path, at: int) -> tuple[Store, Fault, str]:
    path = tmp_path / f"db-{at}.sqlite"
    store = SQLiteStore(path)
    message = "database or disk is full" if at % 2 else "disk I/O error"
    error = sqlite3.OperationalError if at % 2 else sqlite3.DatabaseError
    fault = Fault(at, error(message))
    store._conn = FaultySQLite(store._conn, fault)  # type: ignore[assignment]
    return store, fault, message


def _postgres(url: str) -> Callable[[Path, int], tuple[Store, Fault, str]]:
    def open_(tmp_path: Path, at: int) -> tuple[Store, Fault, str]:
        store = PostgresStore(url)
        with store.session() as conn:  # a fresh database for each write point
            conn.execute("TRUNCATE runs CASCADE")
        if at % 2:
            message = "could not extend file: No space left on device"
            error: Exception = psycopg.errors.DiskFull(message)
        else:
            message = "could not write block 7 of relation: Input/output error"
            error = psycopg.errors.IoError(message)
        fault = Fault(at, error)
        store._pool = FaultyPool(store._pool, fault)  # type: ignore[assignment]
        return store, fault, message

    return open_


SPEC = workflow(
    {
        "a": py("anoop"),
        "b": py("anoop", needs=["a"]),
        "c": py("anoop", needs=["a"]),
        "d": py("anoop", needs=["b", "c"]),
    }
)


def _fault_at(
    open_store: Callable[[Path, int], tuple[Store, Fault, str]], tmp_path: Path, at: int
) -> bool:
    """One trial: the `at`-th write fails. Returns whether the fault fired at all."""
    store, fault, message = open_store(tmp_path, at)
    seen: list[tuple[Any, ...]] = []
    engine = Engine(
        store,
        flush_interval=FLUSH,
        heartbeat_interval=HEARTBEAT,
        runs_dir=tmp_path / "runs",
        observer=lambda *event: seen.append(event),
    )
    try:
        try:
            run_id, created = engine.submit(SPEC, run_id=f"r{at}")
        except StoreError as exc:
            assert message in str(exc)
            assert store.get_run(f"r{at}") is None, "a failed submit left a run behind"
            return True
        assert created
        try:
            state = arun(engine.execute(run_id))
        except StoreError as exc:
            assert fault.failed_sql is not None and message in str(exc)
            stored = Counter(
                (e.task, e.from_state, e.to_state, e.attempt) for e in store.get_events(run_id)
            )
            reported = Counter((task, frm, to, attempt) for _, task, frm, to, attempt, _ in seen)
            assert not reported - stored, f"reported but not stored: {reported - stored}"
            assert store.get_run(run_id).state not in ("succeeded", "failed", "cancelled")
            state = arun(engine.execute(run_id))  # the resume, once the store writes again
        else:
            # Only a failed release (the lease then lapses by itself) lets the run end well.
            assert fault.failed_sql is None or "owner = NULL" in fault.failed_sql
        assert state is RunState.SUCCEEDED
        done = Counter(
            e.task for e in store.get_events(run_id) if e.task and e.to_state == "succeeded"
        )
        assert done == {"a": 1, "b": 1, "c": 1, "d": 1}
        assert {t.state for t in store.get_tasks(run_id)} == {"succeeded"}
        return fault.failed_sql is not None
    finally:
        store.close()


def _every_write_point(open_store: Callable[[Path, int], tuple[Store, Fault, str]], tmp_path):
    fired = 0
    for at in range(1, MAX_WRITES):
        if not _fault_at(open_store, tmp_path, at):
            break
        fired += 1
    else:
        pytest.fail(f"the run made more than {MAX_WRITES} writes")
    assert fired >= 6  # submit, claim, the batches, the release: every one was tried


def test_sqlite_errors_at_every_write_point_interrupt_and_resume(tmp_path: Path) -> None:
    _every_write_point(_sqlite, tmp_path)


def test_postgres_errors_at_every_write_point_interrupt_and_resume(
    pg_url: str, tmp_path: Path
) -> None:
    _every_write_point(_postgres(pg_url), tmp_path)


def test_a_failed_commit_leaves_the_sqlite_connection_usable(tmp_path: Path) -> None:
    """SQLite may keep the transaction open after a failed COMMIT: it is rolled back, so the
    next write reports its own outcome, not "cannot start a transaction within a transaction"."""
    counting, fault, _ = _sqlite(tmp_path, 10**9)
    Engine(counting, runs_dir=tmp_path).submit(SPEC, run_id="r")
    counting.close()
    store, fault, _ = _sqlite(tmp_path, fault.writes)  # create_run's last write: its COMMIT
    with pytest.raises(StoreError, match=r"disk I/O error|database or disk is full"):
        Engine(store, runs_dir=tmp_path).submit(SPEC, run_id="r")
    assert fault.failed_sql is not None and fault.failed_sql.startswith("COMMIT")
    assert store.get_run("r") is None
    assert Engine(store, runs_dir=tmp_path).submit(SPEC, run_id="r") == ("r", True)
    store.close()


GATED = workflow(
    {
        "a": py("anoop"),
        "gate": {"type": "approval", "needs": ["a"], "timeout": 0.01, "on_timeout": "approve"},
        "b": py("anoop", needs=["gate"]),
    }
)


def test_a_store_fault_under_an_approval_interrupts_the_run_instead_of_failing_the_gate(
    tmp_path: Path,
) -> None:
    """An approval task reads and writes the store itself (the request, the decision): when
    that write fails, the store failed, not the gate. The run is interrupted, resumable, and
    the gate goes on when it resumes, as after a fault in any other write."""
    fired = 0
    for at in range(1, MAX_WRITES):
        store, fault, message = _sqlite(tmp_path, at)
        engine = Engine(
            store, flush_interval=FLUSH, heartbeat_interval=HEARTBEAT, runs_dir=tmp_path
        )
        try:
            try:
                run_id, _ = engine.submit(GATED, run_id=f"g{at}")
            except StoreError:
                fired += 1
                continue
            try:
                state = arun(engine.execute(run_id))
            except StoreError as exc:
                assert message in str(exc)
                state = arun(engine.execute(run_id))  # the resume, once the store writes again
            assert state is RunState.SUCCEEDED, (at, fault.failed_sql)
            tasks = {t.name: t for t in store.get_tasks(run_id)}
            assert {t.state for t in tasks.values()} == {"succeeded"}
            # The gate never failed for the store's fault: no error, no retry in its history.
            assert (tasks["gate"].error, tasks["gate"].errors) == (None, None), at
            gate_states = {e.to_state for e in store.get_events(run_id) if e.task == "gate"}
            assert not gate_states & {"failed", "retry_wait"}, (at, fault.failed_sql)
            if fault.failed_sql is None:
                break
            fired += 1
        finally:
            store.close()
    else:
        pytest.fail(f"the run made more than {MAX_WRITES} writes")
    assert fired >= 6
