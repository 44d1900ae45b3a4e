"""The PostgreSQL store: one database shared by engines on several hosts (`--db postgresql://…`).

Same semantics as SQLiteStore; what differs is how writers are serialised. SQLite has one write
lock per file; here a run's row is the lock (`lock_run`: SELECT … FOR NO KEY UPDATE), taken by
every transaction that checks the owner or adds events to the run, so batches of different runs
commit in parallel while the lease check, the request hand-over and the order of a run's event
ids stay exactly as on SQLite. Single-statement operations (claim, release, request, approval
requests) run in autocommit on one round trip each.

Lease times are the engine's time.time() floats, as on SQLite: liveness is judged by the engine
(owner_alive), not here. When the store starts judging it (workers taking over lapsed leases,
claiming ready tasks with FOR UPDATE SKIP LOCKED), compare against the database clock
(extract(epoch FROM clock_timestamp())) so that hosts with skewed clocks agree.

Connections come from a small psycopg_pool pool (the engine calls the store from its event loop
thread and from a few helper threads, never from many). Statements live in sql/queries.sql. Every
psycopg error becomes a StoreError at one boundary (`translated`), with the URL shown without its
password, so callers (the CLI: one line per error) never see a driver exception.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Json
from psycopg.types.string import StrDumperUnknown
from psycopg_pool import ConnectionPool

from ..errors import ApprovalDecided, LeaseLost, RunNotFound, StoreError
from . import migrate, outbox
from .base import (
    RUN_COLUMNS,
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
from .sql import query

_T = TypeVar("_T")

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

CONNECT_TIMEOUT = 10
"""Seconds to wait for a connection unless the URL says (libpq waits forever by default)."""
POOL_MIN, POOL_MAX = 1, 4
POOL_TIMEOUT = 10.0
"""Seconds a store call waits for a free (or re-established) connection before it fails."""

_UPDATE_COLUMNS = (*TASK_COLUMNS, "name")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def _run_args(where: RunFilter) -> dict[str, Any]:
    """The parameters of find_runs / count_runs (a filter not given is NULL)."""
    return {
        "state": where.state,
        "workflow": where.workflow,
        "search": where.search.lower() if where.search else None,
        "meta": Json(dict(where.meta)) if where.meta else None,
        "after": where.created_after,
        "until": where.created_before,
        "before_at": where.before[0] if where.before else None,
        "before_id": where.before[1] if where.before else None,
    }


class _NulFreeStr(StrDumperUnknown):
    """PostgreSQL text cannot hold NUL (SQLite and the engine can): a task error quoting binary
    output would make every batch of its run fail. It is stored as U+FFFD instead."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


_ADAPTERS = AdaptersMap(psycopg.adapters)
_ADAPTERS.register_dumper(str, _NulFreeStr)


def redact(url: str) -> str:
    """The URL (or key=value conninfo) without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return _KV_PASSWORD.sub(r"\1***", url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}@{hosts}" if at else hosts
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    query = f"?{urlencode(params)}" if params else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"  # urlunsplit drops an empty host


def _password(url: str) -> str | None:
    try:
        password = conninfo_to_dict(url).get("password")
        return str(password) if password else None
    except psycopg.Error:
        try:
            return urlsplit(url).password
        except ValueError:
            return None


def _one_line(exc: BaseException, url: str) -> str:
    """libpq messages span lines ("…failed: Connection refused\\n\\tIs the server running…")."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


@contextmanager
def translated(url: str, doing: str = "") -> Iterator[None]:
    """The one boundary where psycopg errors (pool errors included) become StoreErrors."""
    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"{doing}{redact(url)}: {_one_line(exc, url)}") from exc


def _connect_options(url: str) -> dict[str, Any]:
    # prepare_threshold=None: no statement is prepared by name on the server. Behind a pooler
    # in transaction mode (PgBouncer before 1.21) the next transaction may run on another
    # server connection, where the name is missing ("prepared statement _pg3_0 does not
    # exist"); reviewflow's statements are short, so parsing each costs little.
    options: dict[str, Any] = {"autocommit": True, "context": _ADAPTERS, "prepare_threshold": None}
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:
        given = {}  # psycopg.connect reports the bad URL itself
    if "connect_timeout" not in given:
        options["connect_timeout"] = CONNECT_TIMEOUT
    return options


def connect(url: str) -> psycopg.Connection:
    """One autocommit connection, or a one-line StoreError naming the URL (never the password)."""
    with translated(url, "cannot connect to "):
        return psycopg.connect(url, **_connect_options(url))


class PostgresStore(ScheduleMethods, outbox.OutboxMethods):
    """A Store on a PostgreSQL database; an empty database gets the schema on first use."""

    def __init__(self, url: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> None:
        self.url = url
        self.where = redact(url)
        with connect(url) as conn, translated(url):
            migrate.ensure(conn, self.where)
        self._pool = ConnectionPool(
            url,
            kwargs=_connect_options(url),
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=POOL_TIMEOUT,
            name=f"reviewflow {self.where}",
        )
        with translated(url):
            self._pool.open()
        self.outbox_defaults: dict[str, Any] = {}
        """Added to every run's notify config: `targets` (the server's) and `base_url`."""
        self.outbox_waker: Callable[[], None] | None = None
        """Called after a commit that added outbox rows (wakes this process's deliverer)."""

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        with translated(self.url), self._pool.connection() as conn:
            yield conn

    session = _session
    """A pooled autocommit connection, errors translated (for reviewflow.cluster)."""

    @property
    def pool(self) -> ConnectionPool:
        return self._pool

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord], events: list[Event]) -> bool:
        added = 0
        with self._session() as conn, conn.transaction():
            cur = conn.execute(
                query("insert_run"),
                {
                    "run_id": run.run_id,
                    "workflow": run.workflow,
                    "state": run.state,
                    "spec": run.spec,
                    "meta": Json(run.meta),
                    "created_at": run.created_at,
                },
            )
            if cur.rowcount == 0:
                return False
            with conn.cursor() as cur:
                if tasks:
                    cur.executemany(
                        query("insert_task"),
                        [
                            dict(
                                zip(TASK_COLUMNS, t.row(), strict=True),
                                run_id=run.run_id,
                                name=t.name,
                                position=i,
                            )
                            for i, t in enumerate(tasks)
                        ],
                    )
                if events:
                    cur.executemany(query("insert_event"), events)
            config = outbox.notify_config(run.spec, run.workflow, self.notify_extra())
            if config is not None:
                outbox.subscribe(conn, run.run_id, outbox.NOTIFY, config, postgres=True)
                added = outbox.add_derived(conn, events, time.time(), postgres=True)
        self._wake(added)
        return True

    def get_run(self, run_id: str, *, spec: bool = True) -> RunRecord | None:
        with self._session() as conn:
            name = "get_run" if spec else "get_run_without_spec"
            row = conn.execute(query(name), {"run_id": run_id}).fetchone()
        return RunRecord(*row) if row else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        with self._session() as conn:
            rows = conn.execute(query("list_runs"), {"limit": limit}).fetchall()
        return [RunRecord(*r) for r in rows]

    def find_runs(self, where: RunFilter, limit: int = 20) -> list[RunRecord]:
        with self._session() as conn:
            rows = conn.execute(query("find_runs"), {**_run_args(where), "limit": limit})
            return [RunRecord(*r) for r in rows.fetchall()]

    def count_runs(self, where: RunFilter) -> dict[str, int]:
        with self._session() as conn:
            rows = conn.execute(query("count_runs"), _run_args(where)).fetchall()
        return {state: int(n) for state, n in rows}

    def get_tasks(self, run_id: str) -> list[TaskRecord]:
        with self._session() as conn:
            rows = conn.execute(query("get_tasks"), {"run_id": run_id}).fetchall()
        return [TaskRecord(*r) for r in rows]

    def get_events(
        self, run_id: str, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        with self._session() as conn:
            rows = conn.execute(
                query("get_events"), {"run_id": run_id, "after_id": after_id, "limit": limit}
            ).fetchall()
        return [EventRecord(*r) for r in rows]

    def events_window(self, after_id: int, limit: int = 5000) -> list[EventRecord]:
        """Events of all runs with id > after_id (for metrics; see queries.sql)."""
        with self._session() as conn:
            rows = conn.execute(
                query("events_window"), {"after_id": after_id, "limit": limit}
            ).fetchall()
        return [EventRecord(*r) for r in rows]

    def max_event_id(self) -> int:
        with self._session() as conn:
            row = conn.execute(query("max_event_id")).fetchone()
        return int(row[0]) if row else 0

    def claim_run(self, run_id: str, owner: str, lease_until: float, expected: str | None) -> bool:
        with self._session() as conn:
            row = conn.execute(
                query("claim_run"),
                {
                    "run_id": run_id,
                    "owner": owner,
                    "lease_until": lease_until,
                    "expected": expected,
                },
            ).fetchone()
        assert row is not None
        claimed, exists = row
        if not exists:
            raise RunNotFound(run_id)
        return bool(claimed)

    def release_run(self, run_id: str, owner: str) -> None:
        with self._session() as conn:
            conn.execute(query("release_run"), {"run_id": run_id, "owner": owner})

    def write(self, batch: Batch) -> str | None:
        run_id = batch.run_id
        added = 0
        with self._session() as conn, conn.transaction():
            row = conn.execute(query("lock_run"), {"run_id": run_id}).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            owner, request = row
            if owner != batch.owner:
                raise LeaseLost(f"run {run_id!r} is now owned by {owner}")
            params: dict[str, Any] = {"run_id": run_id, "lease_until": batch.lease_until}
            if batch.run is not None:
                params.update(zip(RUN_COLUMNS, batch.run, strict=True))
                conn.execute(query("write_run"), params)
            else:
                conn.execute(query("renew_lease"), params)
            with conn.cursor() as cur:
                if batch.tasks:
                    cur.executemany(
                        query("update_task"),
                        [
                            dict(zip(_UPDATE_COLUMNS, r, strict=True), run_id=run_id)
                            for r in batch.tasks
                        ],
                    )
                    if cur.rowcount != len(batch.tasks):
                        # raised inside the transaction: the whole batch is rolled back
                        known = {t[1] for t in conn.execute(query("get_tasks"), {"run_id": run_id})}
                        unknown = next(r[-1] for r in batch.tasks if r[-1] not in known)
                        raise StoreError(f"run {run_id!r} has no task {unknown!r}")
                if batch.events:
                    cur.executemany(query("insert_event"), batch.events)
            if batch.events:
                added = outbox.add_derived(conn, batch.events, time.time(), postgres=True)
        self._wake(added)
        pending: str | None = request  # the run's control request, taken with this write
        return pending

    def request(self, run_id: str, command: str) -> None:
        with self._session() as conn:
            cur = conn.execute(query("request"), {"run_id": run_id, "command": command})
        if cur.rowcount == 0:
            raise RunNotFound(run_id)

    def open_approval(self, run_id: str, task: str, now: float) -> ApprovalRecord:
        with self._session() as conn:
            row = conn.execute(
                query("open_approval"), {"run_id": run_id, "task": task, "now": now}
            ).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return ApprovalRecord(*row)

    def get_approval(self, run_id: str, task: str) -> ApprovalRecord | None:
        with self._session() as conn:
            row = conn.execute(query("get_approval"), {"run_id": run_id, "task": task}).fetchone()
        return ApprovalRecord(*row) if row else None

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
        added = 0
        with self._session() as conn, conn.transaction():
            if conn.execute(query("lock_run"), {"run_id": run_id}).fetchone() is None:
                raise RunNotFound(run_id)
            row = conn.execute(
                query("decide_approval"),
                {
                    "run_id": run_id,
                    "task": task,
                    "decision": decision,
                    "approver": approver,
                    "comment": comment,
                    "now": now,
                },
            ).fetchone()
            if row is None:
                old = conn.execute(
                    query("get_approval"), {"run_id": run_id, "task": task}
                ).fetchone()
                assert old is not None
                raise ApprovalDecided(f"{task} was already {old[3]} by {old[4]}")
            if event is not None:
                conn.execute(query("insert_event"), event)
                added = outbox.add_derived(conn, [event], now, postgres=True)
        self._wake(added)
        return ApprovalRecord(*row)

    # ------------------------------------------------------------------ outbox

    def notify_extra(self) -> dict[str, Any]:
        """What a new run's notify config gets besides its spec's targets."""
        return {"db": self.where, **self.outbox_defaults}

    _schedules_pg = True

    _schedules_look_first = False
    schedules_batch = 50
    """Schedules a scheduler claims at a time here (reviewflow.schedules.BATCH): a claim's runs
    are one statement, so 100 due schedules are two claims, not five (benchmarks/schedules.py:
    p99 185-278 ms with 20, 114-125 ms with 50, back to back at load 14)."""

    def _schedules_tx(self, fn: Callable[[Any], _T]) -> _T:
        with self._session() as conn, conn.transaction():
            return fn(conn)

    def _schedules_read(self, fn: Callable[[Any], _T]) -> _T:
        with self._session() as conn:  # autocommit: one round trip, no BEGIN/COMMIT
            return fn(conn)

    def _schedules_lease_tx(self, fn: Callable[[Any], _T]) -> _T:
        # Pipelined: BEGIN and SET go with the statement, one round trip, and COMMIT another.
        with self._session() as conn, conn.pipeline(), conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")  # see ScheduleMethods
            return fn(conn)

    _outbox_pg = True
    _outbox_look_first = False

    def _outbox_tx(self, fn: Callable[[Any], _T]) -> _T:
        return self._schedules_tx(fn)

    def _outbox_read(self, fn: Callable[[Any], _T]) -> _T:
        return self._schedules_read(fn)

    def _outbox_one(self, fn: Callable[[Any], _T]) -> _T:
        return self._schedules_read(fn)  # autocommit: the statement is its own transaction

    dialect = "postgresql"

    def select(self, sql: str, args: dict[str, Any]) -> list[tuple[Any, ...]]:
        """A read-only query with `:name` parameters, as SQLiteStore.select (no `%` or `::` in
        `sql`: `:name` becomes psycopg's `%(name)s`)."""
        with self._session() as conn:
            return conn.execute(_NAMED.sub(r"%(\1)s", sql), args).fetchall()

    def close(self) -> None:
        self._pool.close()
