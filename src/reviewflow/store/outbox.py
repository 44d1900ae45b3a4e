"""The outbox: side effects (notifications, later GitHub post-backs) written with the state change
that causes them, delivered afterwards by whichever process gets to them first.

How a row comes to be: a run *subscribes* a source (`outbox_sources`: run id, source name, its
JSON config), e.g. source `notify` with the workflow's `notifications:` targets, written in the
run's creating transaction. Every time a store appends events, in the same transaction, the events
a deriver may care about (run-level events, approval notes: `relevant`) are handed to the
`DERIVERS` of the run's sources, which return `OutboxItem`s; each becomes a row, unique by its
`dedupe_key` (a re-sent batch, a restarted approval wait or a resumed run derive the same keys
and add nothing). A SIGKILL after the commit loses nothing: the row is there for the next
deliverer. Items can also be enqueued directly (`Store.enqueue`), for effects not tied to events.

How a row leaves: a deliverer (reviewflow.notify.deliver) claims due rows (`next_at <= now`): the
claim counts an attempt, names the owner and pushes `next_at` to the end of a lease, so a row whose
deliverer died becomes due again when the lease ends. The sender's outcome is recorded with the
owner and attempt as guard (a late answer of a presumed-dead deliverer changes nothing): delivered;
or due again after an exponential backoff with jitter; or failed once `expires_at` has passed.
Each row has a stable `delivery_id` (a UUID derived from its dedupe key), sent with every
attempt, so a receiver can drop duplicates (delivery is at least once).

The SQL below is shared by SQLite and PostgreSQL (`?` placeholders, turned into `%s` for psycopg).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .base import Event

NOTIFY = "notify"
"""The source name of a workflow's `notifications:`."""
APPROVAL_WAITING = "waiting for approval"
APPROVAL_ESCALATED = "escalated"
APPROVAL_TIMED_OUT = " by timeout: "
"""Details of the approval task's notes (reviewflow.executors.approval) that notify people."""
RUN_TERMINAL = ("succeeded", "failed", "cancelled")
_NAMESPACE = uuid.UUID("5b1d5e8c-3f0e-4c57-9d0a-7265766965ff")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
BACKOFF_BASE = 2.0
BACKOFF_MAX = 600.0
RETRY_BASE_ENV = "REVIEWFLOW_NOTIFY_RETRY_BASE"
HISTORY_MAX = 20
"""Attempts kept in a row's history (the count is kept in `attempts`)."""


def delivery_id(dedupe_key: str) -> str:
    """The stable delivery id of an outbox row: every attempt of it sends the same one."""
    return str(uuid.uuid5(_NAMESPACE, dedupe_key))


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before attempt `attempts + 1`: 2, 4, 8 ... capped at 10 min, each +-25 %
    (jitter: receivers coming back are not hit by every sender at once). The first delay is
    $REVIEWFLOW_NOTIFY_RETRY_BASE seconds if set (tests, impatient setups)."""
    base = float(os.environ.get(RETRY_BASE_ENV) or BACKOFF_BASE)
    delay = min(base * 2.0 ** max(attempts - 1, 0), BACKOFF_MAX)
    return delay * (0.75 + 0.5 * rand())


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A side effect to perform: `kind` picks the sender, `payload` is what it sends."""

    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    run_id: str | None = None
    target: dict[str, Any] | None = None
    retry_for: float = 24 * 3600.0

    def row(
        self, now: float
    ) -> tuple[str, str, str, str | None, str, str | None, float, float, float]:
        """Values of _INSERT."""
        return (
            self.kind,
            self.dedupe_key,
            delivery_id(self.dedupe_key),
            self.run_id,
            json.dumps(self.payload, sort_keys=True),
            None if self.target is None else json.dumps(self.target, sort_keys=True),
            now,
            now,
            now + self.retry_for,
        )


@dataclass(slots=True)
class OutboxRecord:
    """One stored row."""

    id: int
    kind: str
    dedupe_key: str
    delivery_id: str
    run_id: str | None
    payload: str
    target: str | None
    state: str
    attempts: int
    created_at: float
    next_at: float
    expires_at: float
    lease_owner: str | None
    lease_until: float | None
    delivered_at: float | None
    last_error: str | None
    history: str = "[]"
    _parsed: dict[str, Any] | None = field(default=None, repr=False)

    def data(self) -> dict[str, Any]:
        """The payload as a dict."""
        if self._parsed is None:
            self._parsed = json.loads(self.payload)
        return self._parsed

    def target_data(self) -> dict[str, Any]:
        return json.loads(self.target) if self.target else {}

    def attempts_list(self) -> list[dict[str, Any]]:
        return list(json.loads(self.history or "[]"))


COLUMNS = (
    "id, kind, dedupe_key, delivery_id, run_id, payload, target, state, attempts, created_at,"
    " next_at, expires_at, lease_owner, lease_until, delivered_at, last_error, history"
)

# ---------------------------------------------------------------------- deriving rows from events


def relevant(event: Event) -> bool:
    """Whether a deriver may care about `event` (cheap: run-level events and approval notes)."""
    if event[1] is None:
        return True
    detail = event[6]
    return (
        event[2] == event[3] == "running"
        and detail is not None
        and (
            detail.startswith(APPROVAL_WAITING)
            or detail.startswith(APPROVAL_ESCALATED)
            or APPROVAL_TIMED_OUT in detail
        )
    )


def notify_event(event: Event) -> list[tuple[str, dict[str, Any]]]:
    """The notification events (name, fields) that one stored event is."""
    _run, task, _from, to, _attempt, _at, detail = event
    if task is None:
        if to not in RUN_TERMINAL:
            return []
        found = [("run_finished", {"state": to, "outcome": to, "error": detail})]
        if to == "failed":
            found.append(("run_failed", {"state": to, "outcome": to, "error": detail}))
        return found
    if not relevant(event) or detail is None:
        return []
    fields: dict[str, Any] = {"state": "waiting", "task": task, "detail": detail}
    if detail.startswith(APPROVAL_WAITING):
        return [("approval_requested", fields)]
    if detail.startswith(APPROVAL_ESCALATED):
        return [("approval_escalated", fields)]
    decision = detail.split(" by ", 1)[0]
    return [("approval_timed_out", {**fields, "state": "running", "decision": decision})]


def derive_notify(config: dict[str, Any], events: list[Event]) -> list[OutboxItem]:
    """Outbox rows for a run's `notifications:` targets (the `notify` source)."""
    targets: list[dict[str, Any]] = config.get("targets") or []
    items = []
    for event in events:
        for name, fields in notify_event(event):
            run_id, task, at = event[0], event[1], event[5]
            payload: dict[str, Any] = {
                "event": name,
                "run_id": run_id,
                "workflow": config.get("workflow"),
                "at": at,
                **{k: v for k, v in fields.items() if v is not None},
            }
            base = config.get("base_url")
            if base:
                payload["url"] = f"{base.rstrip('/')}/ui/runs/{run_id}"
            if name == "approval_requested":
                db = config.get("db")
                where = f" --db {db}" if db else ""
                payload["approve"] = f"reviewflow approve {run_id} {task}{where}"
                payload["reject"] = f"reviewflow reject {run_id} {task}{where}"
            key = f"{run_id}/{task or ''}/{name}"
            for index, target in enumerate(targets):
                if name not in target.get("events", ()):
                    continue
                items.append(
                    OutboxItem(
                        kind=target["kind"],
                        dedupe_key=f"{key}/{index}",
                        payload=payload,
                        run_id=run_id,
                        target=target,
                        retry_for=float(target.get("retry_for") or 24 * 3600.0),
                    )
                )
    return items


Deriver = Callable[[dict[str, Any], list[Event]], list[OutboxItem]]
DERIVERS: dict[str, Deriver] = {NOTIFY: derive_notify}
"""Source name -> deriver. A new kind of side effect registers one (e.g. a GitHub check run)."""


def notify_config(spec_json: str, workflow: str, extra: dict[str, Any] | None = None) -> str | None:
    """The `notify` source config of a run from its stored spec, or None without targets.
    `extra` may add `targets` (the server's, as stored dicts), `base_url` and `db`.

    `notifications` is the third field of a stored WorkflowSpec, after two strings: the first
    `"notifications":` in the JSON text is the workflow's (a string cannot hold an unescaped
    quote), so only the list itself is parsed, never the tasks."""
    key = '"notifications":'
    at = spec_json.find(key)
    extra = dict(extra or {})
    targets = list(extra.pop("targets", None) or [])
    if at >= 0:
        targets[:0], _ = json.JSONDecoder().raw_decode(spec_json, at + len(key))
    if not targets:
        return None
    cleaned = [{k: v for k, v in t.items() if v is not None} for t in targets]
    for t in cleaned:  # stored by field name; the sender reads `from`
        if "sender" in t:
            t["from"] = t.pop("sender")
    return json.dumps({"workflow": workflow, "targets": cleaned, **extra})


def derive(sources: Iterable[tuple[str, str]], events: list[Event]) -> list[OutboxItem]:
    """Items of one run's (source, config JSON) subscriptions for `events`."""
    items: list[OutboxItem] = []
    for source, config in sources:
        deriver = DERIVERS.get(source)
        if deriver is not None:
            items.extend(deriver(json.loads(config), events))
    return items


# ---------------------------------------------------------------------- SQL of both databases

_INSERT = (
    "INSERT INTO outbox (kind, dedupe_key, delivery_id, run_id, payload, target, created_at,"
    " next_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING"
)
_SOURCES = "SELECT source, config FROM outbox_sources WHERE run_id = ?"
_SUBSCRIBE = (
    "INSERT INTO outbox_sources (run_id, source, config) VALUES (?, ?, ?)"
    " ON CONFLICT (run_id, source) DO UPDATE SET config = excluded.config"
)
_CLAIM = (
    "UPDATE outbox SET attempts = attempts + 1, lease_owner = ?, lease_until = ?, next_at = ?"
    " WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_at <= ?"
    " ORDER BY next_at LIMIT ?{lock}) RETURNING " + COLUMNS
)
_GET = "SELECT " + COLUMNS + " FROM outbox WHERE id = ?"
_FINISH = (
    "UPDATE outbox SET state = ?, next_at = ?, lease_owner = NULL, lease_until = NULL,"
    " delivered_at = ?, last_error = ?, history = ?"
    " WHERE id = ? AND lease_owner = ? AND attempts = ? AND state = 'pending'"
)
_HAS_DUE = "SELECT min(next_at) FROM outbox WHERE state = 'pending'"
_RETRY_NOW = (
    "UPDATE outbox SET next_at = ? WHERE state = 'pending' AND lease_owner IS NULL AND next_at > ?"
)


# PostgreSQL: leases and "due" are measured on the database's clock, the one clock every
# deliverer of every host shares (a host whose clock runs ahead would otherwise see another's
# lease as ended and send the notification again). SQLite's deliverers share one host's.
_DB_NOW = "extract(epoch FROM clock_timestamp())::float8"
_CLAIM_PG = (
    f"WITH clock AS (SELECT {_DB_NOW} AS t)"
    " UPDATE outbox SET attempts = attempts + 1, lease_owner = %s, lease_until = clock.t + %s,"
    " next_at = clock.t + %s FROM clock WHERE outbox.id IN (SELECT id FROM outbox, clock"
    " WHERE state = 'pending' AND next_at <= clock.t ORDER BY next_at LIMIT %s"
    " FOR UPDATE OF outbox SKIP LOCKED) RETURNING "
    + ", ".join(f"outbox.{c.strip()}" for c in COLUMNS.split(","))
)
_RETRY_NOW_PG = (
    f"UPDATE outbox SET next_at = {_DB_NOW} WHERE state = 'pending' AND lease_owner IS NULL"
    f" AND next_at > {_DB_NOW}"
)


def sql(statement: str, postgres: bool) -> str:
    """`statement` for psycopg (`%s` placeholders, row locks skipped) or sqlite3."""
    if postgres:
        return statement.replace("?", "%s").replace("{lock}", " FOR UPDATE SKIP LOCKED")
    return statement.replace("{lock}", "")


def add_derived(conn: Any, events: list[Event], now: float, postgres: bool = False) -> int:
    """In the caller's transaction: the outbox rows `events` cause. Returns rows inserted."""
    wanted = [e for e in events if relevant(e)]
    if not wanted:
        return 0
    by_run: dict[str, list[Event]] = {}
    for e in wanted:
        by_run.setdefault(e[0], []).append(e)
    items: list[OutboxItem] = []
    for run_id, run_events in by_run.items():
        sources = conn.execute(sql(_SOURCES, postgres), (run_id,)).fetchall()
        if sources:
            items.extend(derive(sources, run_events))
    return insert_items(conn, items, now, postgres)


def insert_items(conn: Any, items: list[OutboxItem], now: float, postgres: bool = False) -> int:
    """Insert items (a dedupe key already stored is skipped); returns how many were new."""
    added = 0
    for item in items:  # few per transaction; rowcount per row says which were new
        added += conn.execute(sql(_INSERT, postgres), item.row(now)).rowcount
    return added


def subscribe(conn: Any, run_id: str, source: str, config: str, postgres: bool = False) -> None:
    conn.execute(sql(_SUBSCRIBE, postgres), (run_id, source, config))


def claim(
    conn: Any, owner: str, lease: float, limit: int, now: float, postgres: bool = False
) -> list[OutboxRecord]:
    if postgres:  # `now` is the database's (see _CLAIM_PG)
        cur = conn.execute(_CLAIM_PG, (owner, lease, lease, limit))
    else:
        cur = conn.execute(sql(_CLAIM, False), (owner, now + lease, now + lease, now, limit))
    return [OutboxRecord(*r) for r in cur.fetchall()]


LOST = "lost: the sender stopped before it recorded an outcome (the receiver may have it)"


def with_attempt(
    history: list[dict[str, Any]], attempt: int, now: float, error: str | None, took: float
) -> list[dict[str, Any]]:
    """`history` plus this attempt, and the attempts before it that nobody recorded (their
    deliverer died mid-send: its lease ran out), newest HISTORY_MAX kept."""
    last = max((int(a.get("attempt") or 0) for a in history), default=0)
    for lost in range(last + 1, attempt):
        history.append({"attempt": lost, "at": None, "ok": False, "error": LOST, "took": None})
    history.append(
        {"attempt": attempt, "at": now, "ok": error is None, "error": error, "took": took}
    )
    return history[-HISTORY_MAX:]


def finish(
    conn: Any,
    record: OutboxRecord,
    owner: str,
    error: str | None,
    took: float,
    now: float,
    permanent: bool = False,
    rand: Callable[[], float] = random.random,
    postgres: bool = False,
) -> str | None:
    """Record the outcome of the claimed attempt `record.attempts`; the row's new state, or
    None if the claim was lost (another deliverer took the row over meanwhile)."""
    row = conn.execute(sql(_GET, postgres), (record.id,)).fetchone()
    if row is None:
        return None
    current = OutboxRecord(*row)
    history = with_attempt(current.attempts_list(), record.attempts, now, error, took)
    if error is None:
        state, next_at, delivered = DELIVERED, now, now
    elif permanent or now >= current.expires_at:
        state, next_at, delivered = FAILED, now, None
    else:
        state, next_at, delivered = PENDING, now + backoff(record.attempts, rand), None
    cur = conn.execute(
        sql(_FINISH, postgres),
        (
            state,
            next_at,
            delivered,
            error,
            json.dumps(history),
            record.id,
            owner,
            record.attempts,
        ),
    )
    return state if cur.rowcount == 1 else None


def listing(
    conn: Any, failed_only: bool, limit: int, run_id: str | None = None, postgres: bool = False
) -> list[OutboxRecord]:
    where, args = [], []
    if failed_only:
        where.append("(state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL))")
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    text = "SELECT " + COLUMNS + " FROM outbox"
    if where:
        text += " WHERE " + " AND ".join(where)
    text += " ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql(text, postgres), (*args, limit)).fetchall()
    return [OutboxRecord(*r) for r in rows]


def next_due(conn: Any, postgres: bool = False) -> float | None:
    """When the earliest pending row is due (None: nothing pending)."""
    row = conn.execute(sql(_HAS_DUE, postgres)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def retry_now(conn: Any, now: float, postgres: bool = False) -> int:
    """Make the rows that wait out a backoff due now (never one leased to a deliverer)."""
    if postgres:  # the database's clock (see _CLAIM_PG)
        return int(conn.execute(_RETRY_NOW_PG).rowcount)
    return int(conn.execute(_RETRY_NOW, (now, now)).rowcount)


_T = TypeVar("_T")


class OutboxMethods:
    """The stores' outbox methods, written once over the SQL above (SQLite, PostgreSQL, and the
    memory store's private SQLite). A store gives `_outbox_tx` (a transaction) and may give
    `_outbox_read` (a read), `_outbox_one` (a single statement: PostgreSQL needs no BEGIN and
    COMMIT around it), `_outbox_pg` (whether its SQL is PostgreSQL's) and `_outbox_look_first`
    (whether a claim looks for a due row before it writes: on SQLite a write takes the
    database's one lock)."""

    _outbox_pg = False
    _outbox_look_first = True
    outbox_waker: Callable[[], None] | None = None
    """Called after a commit that added outbox rows (wakes this process's deliverer)."""

    def _outbox_tx(self, fn: Callable[[Any], _T]) -> _T:  # pragma: no cover - per store
        raise NotImplementedError

    def _outbox_read(self, fn: Callable[[Any], _T]) -> _T:
        return self._outbox_tx(fn)

    def _outbox_one(self, fn: Callable[[Any], _T]) -> _T:
        return self._outbox_tx(fn)

    def _wake(self, added: int) -> None:
        if added and self.outbox_waker is not None:
            self.outbox_waker()

    def subscribe(self, run_id: str, source: str, config: dict[str, Any]) -> None:
        """Let `source`'s deriver turn the run's later events into outbox rows."""
        text = json.dumps(config)
        self._outbox_one(lambda c: subscribe(c, run_id, source, text, postgres=self._outbox_pg))

    def enqueue(self, items: list[OutboxItem]) -> int:
        """Add outbox rows outside any run transaction; returns how many were new."""
        added = self._outbox_tx(
            lambda c: insert_items(c, items, time.time(), postgres=self._outbox_pg)
        )
        self._wake(added)
        return added

    def claim_outbox(self, owner: str, lease: float, limit: int) -> list[OutboxRecord]:
        """Claim up to `limit` due rows for `lease` seconds (each claim counts an attempt;
        PostgreSQL: FOR UPDATE SKIP LOCKED, claimers never wait for each other)."""
        now = time.time()
        if self._outbox_look_first and ((due := self.next_outbox_due()) is None or due > now):
            return []  # nothing due: no write lock taken
        return self._outbox_one(
            lambda c: claim(c, owner, lease, limit, now, postgres=self._outbox_pg)
        )

    def finish_outbox(
        self,
        record: OutboxRecord,
        owner: str,
        error: str | None,
        took: float,
        permanent: bool = False,
    ) -> str | None:
        """Record a claimed attempt's outcome; the row's new state (None: claim lost)."""
        return self._outbox_tx(
            lambda c: finish(
                c, record, owner, error, took, time.time(), permanent, postgres=self._outbox_pg
            )
        )

    def list_outbox(
        self, *, failed_only: bool = False, limit: int = 100, run_id: str | None = None
    ) -> list[OutboxRecord]:
        """Outbox rows, newest first."""
        return self._outbox_read(
            lambda c: listing(c, failed_only, limit, run_id, postgres=self._outbox_pg)
        )

    def retry_outbox_now(self) -> int:
        """Make pending rows waiting out a backoff due now; returns how many."""
        return self._outbox_one(lambda c: retry_now(c, time.time(), postgres=self._outbox_pg))

    def next_outbox_due(self) -> float | None:
        """When the earliest pending outbox row is due, None if there is none."""
        return self._outbox_read(lambda c: next_due(c, postgres=self._outbox_pg))
