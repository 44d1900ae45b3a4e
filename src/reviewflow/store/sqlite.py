"""The embedded default store: one SQLite file in WAL mode, shared safely between processes.

Writers take the lock up front (`BEGIN IMMEDIATE`) and wait for it (`busy_timeout`, plus a
bounded retry loop), so two runs, a `status` poller and a `cancel` on one file never fail with
"database is locked"; readers never block the writer in WAL mode. `synchronous=NORMAL`: a commit
survives the process being killed; only a power loss can drop the last few batches, and batches
are applied in order, so what survives is always a consistent prefix.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ApprovalDecided, LeaseLost, RunNotFound, StoreError
from ..statedir import make_dirs
from . import DEFAULT_DB, outbox
from .base import (
    TASK_COLUMNS,
    ApprovalRecord,
    Batch,
    Event,
    EventRecord,
    RunFilter,
    RunRecord,
    TaskRecord,
)
from .schedules import ScheduleMethods

SCHEMA_VERSION = 1
LOCK_WAIT_SECONDS = 120.0
_T = TypeVar("_T")

_RUN_SELECT = (
    "SELECT run_id, workflow, state,"
    " coalesce((SELECT s.spec FROM run_specs s WHERE s.run_id = runs.run_id), spec),"
    " meta, created_at, started_at, finished_at, error, owner, lease_until, request FROM runs"
)
"""Run rows with their spec: from run_specs (runs.spec is '' there), or runs.spec for runs stored
before run_specs existed."""
_RUN_LIST = (
    "SELECT run_id, workflow, state, '', meta, created_at, started_at, finished_at, error,"
    " owner, lease_until, request FROM runs"
)
"""Run rows without their spec (find_runs: a list polled every 2 s has no use for 50 specs)."""
_TASK_SELECT = "SELECT run_id, name, " + ", ".join(TASK_COLUMNS) + " FROM tasks"
_TASK_UPDATE = (
    "UPDATE tasks SET "
    + ", ".join(f"{c} = ?" for c in TASK_COLUMNS)
    + " WHERE run_id = ? AND name = ?"
)
_EVENT_INSERT = (
    "INSERT INTO events (run_id, task, from_state, to_state, attempt, at, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _run_where(where: RunFilter, *, with_state: bool) -> tuple[str, list[Any]]:
    """The WHERE clause of a run list (with its arguments): only the filters given."""
    parts: list[str] = []
    args: list[Any] = []
    if with_state and where.state is not None:
        parts.append("state = ?")
        args.append(where.state)
    if where.workflow is not None:
        parts.append("workflow = ?")
        args.append(where.workflow)
    if where.search:
        parts.append("(instr(lower(run_id), ?) > 0 OR instr(lower(workflow), ?) > 0)")
        args += [where.search.lower()] * 2
    for key, value in where.meta:
        parts.append("json_extract(meta, '$.' || json_quote(?)) = ?")
        args += [key, value]
    if where.created_after is not None:
        parts.append("created_at >= ?")
        args.append(where.created_after)
    if where.created_before is not None:
        parts.append("created_at < ?")
        args.append(where.created_before)
    if with_state and where.before is not None:
        parts.append("(created_at < ? OR (created_at = ? AND run_id < ?))")
        args += [where.before[0], where.before[0], where.before[1]]
    return (" WHERE " + " AND ".join(parts) if parts else ""), args


def _run_from_row(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow=row[1],
        state=row[2],
        spec=row[3],
        meta=json.loads(row[4]),
        created_at=row[5],
        started_at=row[6],
        finished_at=row[7],
        error=row[8],
        owner=row[9],
        lease_until=row[10],
        request=row[11],
    )


class SQLiteStore(ScheduleMethods, outbox.OutboxMethods):
    """A Store on a SQLite file (created with its directory if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            make_dirs(self.path.parent)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self.outbox_defaults: dict[str, Any] = {}
        """Added to every run's notify config: `targets` (the server's) and `base_url`."""
        self.outbox_waker: Callable[[], None] | None = None
        """Called after a commit that added outbox rows (wakes this process's deliverer)."""
        self._retrying(self._setup)

    def _setup(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        schema = files("reviewflow.store").joinpath("schema.sql").read_text()
        with self._transaction():
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            columns = {r[1] for r in conn.execute("PRAGMA table_info(schedules)")}
            if "last_error" not in columns:  # a file made before schedules recorded errors
                conn.execute("ALTER TABLE schedules ADD COLUMN last_error text")

    def _retrying(self, fn: Callable[[], _T]) -> _T:
        """Run `fn`, retrying while another process holds the write lock (bounded in time)."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.01
        while True:
            try:
                with self._lock:
                    return fn()
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise StoreError(f"{self.path}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; on any error (a failed COMMIT too: disk full, I/O error)
        the transaction is rolled back, so nothing of it is applied and the connection is
        usable again (SQLite may leave a transaction open after such an error)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # the first error is the one to report
                    conn.execute("ROLLBACK")
            raise

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord], events: list[Event]) -> bool:
        def create() -> bool:
            with self._transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO runs (run_id, workflow, state, spec, meta, created_at)"
                    " VALUES (?, ?, ?, '', ?, ?) ON CONFLICT (run_id) DO NOTHING",
                    (run.run_id, run.workflow, run.state, json.dumps(run.meta), run.created_at),
                )
                if cur.rowcount == 0:
                    return False
                # Apart from the run row, which every flush rewrites whole (see schema.sql).
                conn.execute(
                    "INSERT INTO run_specs (run_id, spec) VALUES (?, ?)", (run.run_id, run.spec)
                )
                conn.executemany(
                    "INSERT INTO tasks (run_id, name, position, "
                    + ", ".join(TASK_COLUMNS)
                    + ") VALUES (?, ?, ?"
                    + ", ?" * len(TASK_COLUMNS)
                    + ")",
                    ((run.run_id, t.name, i, *t.row()) for i, t in enumerate(tasks)),
                )
                conn.executemany(_EVENT_INSERT, events)
                config = outbox.notify_config(run.spec, run.workflow, self.notify_extra())
                if config is not None:
                    outbox.subscribe(conn, run.run_id, outbox.NOTIFY, config)
                    added[0] = outbox.add_derived(conn, events, time.time())
                return True

        added = [0]
        created = self._retrying(create)
        self._wake(added[0])
        return created

    def get_run(self, run_id: str, *, spec: bool = True) -> RunRecord | None:
        select = _RUN_SELECT if spec else _RUN_LIST

        def get() -> RunRecord | None:
            row = self._conn.execute(select + " WHERE run_id = ?", (run_id,)).fetchone()
            return _run_from_row(row) if row else None

        return self._retrying(get)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        def list_() -> list[RunRecord]:
            rows = self._conn.execute(
                _RUN_SELECT + " ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
            return [_run_from_row(r) for r in rows]

        return self._retrying(list_)

    def find_runs(self, where: RunFilter, limit: int = 20) -> list[RunRecord]:
        sql, args = _run_where(where, with_state=True)
        sql = _RUN_LIST + sql + " ORDER BY created_at DESC, run_id DESC LIMIT ?"

        def find() -> list[RunRecord]:
            rows = self._conn.execute(sql, (*args, limit)).fetchall()
            return [_run_from_row(r) for r in rows]

        return self._retrying(find)

    def count_runs(self, where: RunFilter) -> dict[str, int]:
        sql, args = _run_where(where, with_state=False)
        sql = "SELECT state, count(*) FROM runs" + sql + " GROUP BY state"
        return self._retrying(lambda: dict(self._conn.execute(sql, args).fetchall()))

    def get_tasks(self, run_id: str) -> list[TaskRecord]:
        def get() -> list[TaskRecord]:
            rows = self._conn.execute(
                _TASK_SELECT + " WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
            return [TaskRecord(*r) for r in rows]

        return self._retrying(get)

    def get_events(
        self, run_id: str, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        def get() -> list[EventRecord]:
            rows = self._conn.execute(
                "SELECT id, run_id, task, from_state, to_state, attempt, at, detail FROM events"
                " WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (run_id, after_id, -1 if limit is None else limit),
            ).fetchall()
            return [EventRecord(*r) for r in rows]

        return self._retrying(get)

    def claim_run(self, run_id: str, owner: str, lease_until: float, expected: str | None) -> bool:
        def claim() -> bool:
            with self._transaction() as conn:
                cur = conn.execute(
                    "UPDATE runs SET owner = ?, lease_until = ? WHERE run_id = ? AND owner IS ?",
                    (owner, lease_until, run_id, expected),
                )
                if (
                    cur.rowcount == 0
                    and not conn.execute(
                        "SELECT 1 FROM runs WHERE run_id = ?", (run_id,)
                    ).fetchone()
                ):
                    raise RunNotFound(run_id)
                return cur.rowcount == 1

        return self._retrying(claim)

    def release_run(self, run_id: str, owner: str) -> None:
        def release() -> None:
            with self._transaction() as conn:
                conn.execute(
                    "UPDATE runs SET owner = NULL, lease_until = NULL"
                    " WHERE run_id = ? AND owner = ?",
                    (run_id, owner),
                )

        self._retrying(release)

    def write(self, batch: Batch) -> str | None:
        def write() -> str | None:
            with self._transaction() as conn:
                row = conn.execute(
                    "SELECT owner, request FROM runs WHERE run_id = ?", (batch.run_id,)
                ).fetchone()
                if row is None:
                    raise RunNotFound(batch.run_id)
                if row[0] != batch.owner:
                    raise LeaseLost(f"run {batch.run_id!r} is now owned by {row[0]}")
                if batch.run is not None:
                    conn.execute(
                        "UPDATE runs SET lease_until = ?, request = NULL, state = ?,"
                        " started_at = ?, finished_at = ?, error = ? WHERE run_id = ?",
                        (batch.lease_until, *batch.run, batch.run_id),
                    )
                else:
                    conn.execute(
                        "UPDATE runs SET lease_until = ?, request = NULL WHERE run_id = ?",
                        (batch.lease_until, batch.run_id),
                    )
                if batch.tasks:
                    run_id = batch.run_id
                    conn.executemany(_TASK_UPDATE, ((*r[:-1], run_id, r[-1]) for r in batch.tasks))
                if batch.events:
                    conn.executemany(_EVENT_INSERT, batch.events)
                    added[0] = outbox.add_derived(conn, batch.events, time.time())
                request: str | None = row[1]
                return request

        added = [0]
        request = self._retrying(write)
        self._wake(added[0])
        return request

    def request(self, run_id: str, command: str) -> None:
        def request() -> None:
            with self._transaction() as conn:
                cur = conn.execute(
                    "UPDATE runs SET request = ? WHERE run_id = ?", (command, run_id)
                )
                if cur.rowcount == 0:
                    raise RunNotFound(run_id)

        self._retrying(request)

    def open_approval(self, run_id: str, task: str, now: float) -> ApprovalRecord:
        def open_() -> ApprovalRecord:
            with self._transaction() as conn:
                if (
                    conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    is None
                ):
                    raise RunNotFound(run_id)
                conn.execute(
                    "INSERT INTO approvals (run_id, task, requested_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (run_id, task) DO UPDATE"
                    " SET requested_at = coalesce(requested_at, excluded.requested_at)",
                    (run_id, task, now),
                )
                opened = self._approval(conn, run_id, task)
                assert opened is not None  # inserted or kept just above
                return opened

        return self._retrying(open_)

    @staticmethod
    def _approval(conn: sqlite3.Connection, run_id: str, task: str) -> ApprovalRecord | None:
        row = conn.execute(
            "SELECT run_id, task, requested_at, decision, approver, comment, decided_at"
            " FROM approvals WHERE run_id = ? AND task = ?",
            (run_id, task),
        ).fetchone()
        return ApprovalRecord(*row) if row else None

    def get_approval(self, run_id: str, task: str) -> ApprovalRecord | None:
        return self._retrying(lambda: self._approval(self._conn, run_id, task))

    def decide_approval(
        self,
        run_id: str,
        task: str,
        decision: str,
        approver: str,
        comment: str | None,
        now: float,
        event: Event | None = None,
    ) -> ApprovalRecord:
        def decide() -> ApprovalRecord:
            with self._transaction() as conn:
                if (
                    conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    is None
                ):
                    raise RunNotFound(run_id)
                conn.execute(
                    "INSERT INTO approvals (run_id, task) VALUES (?, ?)"
                    " ON CONFLICT (run_id, task) DO NOTHING",
                    (run_id, task),
                )
                cur = conn.execute(
                    "UPDATE approvals SET decision = ?, approver = ?, comment = ?,"
                    " decided_at = ? WHERE run_id = ? AND task = ? AND decision IS NULL",
                    (decision, approver, comment, now, run_id, task),
                )
                if cur.rowcount == 0:
                    old = self._approval(conn, run_id, task)
                    assert old is not None
                    raise ApprovalDecided(f"{task} was already {old.decision} by {old.approver}")
                if event is not None:
                    conn.execute(_EVENT_INSERT, event)
                    added[0] = outbox.add_derived(conn, [event], now)
                decided = self._approval(conn, run_id, task)
                assert decided is not None  # updated just above
                return decided

        added = [0]
        record = self._retrying(decide)
        self._wake(added[0])
        return record

    # ------------------------------------------------------------------ schedules

    def _schedules_tx(self, fn: Callable[[Any], _T]) -> _T:
        def run() -> _T:
            with self._transaction() as conn:
                return fn(conn)

        return self._retrying(run)

    def _schedules_read(self, fn: Callable[[Any], _T]) -> _T:
        return self._retrying(lambda: fn(self._conn))

    # ------------------------------------------------------------------ outbox

    def notify_extra(self) -> dict[str, Any]:
        """What a new run's notify config gets besides its spec's targets."""
        extra = dict(self.outbox_defaults)
        if not self._is_default_db():
            extra.setdefault("db", str(self.path))
        return extra

    def _is_default_db(self) -> bool:
        """Whether this is the default database (resolved once: a third of a submit's time)."""
        held = self.__dict__.get("_default_db")
        if held is None:
            held = self.__dict__["_default_db"] = self.path.resolve() == DEFAULT_DB.resolve()
        return bool(held)

    def _outbox_tx(self, fn: Callable[[Any], _T]) -> _T:
        return self._schedules_tx(fn)

    def _outbox_read(self, fn: Callable[[Any], _T]) -> _T:
        return self._schedules_read(fn)

    dialect = "sqlite"

    def select(self, sql: str, args: dict[str, Any]) -> list[tuple[Any, ...]]:
        """A read-only query with `:name` parameters (the dashboard's timeline and metrics)."""
        return self._retrying(lambda: self._conn.execute(sql, args).fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()
