"""The workers-mode queue on PostgreSQL: submit, claim, record, heartbeat, maintain, control.

Every operation is one transaction on the database clock (`db_now`), safe to run from any
number of processes at once:

- `claim` takes a batch in one statement (`claim_tasks`: SELECT … ORDER BY sort_key LIMIT n
  FOR UPDATE SKIP LOCKED feeding UPDATE … WHERE state='ready' RETURNING). Claimed tasks with a
  per-key or per-run limit are then checked under a transaction-scoped advisory lock per key
  (counting running tasks, committed and this claim's); those over the limit go back to
  `ready`, *held* (out of the claim index) with the reason, until a slot frees.
- `record` applies a batch of attempt outcomes and the start events of earlier claims, run by
  run under each run's lock (`dag.RunTx`; successes nothing depends on under the run's gate
  held shared, so the workers of one run record at once). A completion is conditional on
  (task, attempt, owner): one from a worker that lost its lease is rejected and recorded as an
  event.
- `heartbeat` renews the leases of this worker's attempts — its row in `workers`: a task's
  lease has expired once both its claim's `lease_until` and its worker's last heartbeat +
  lease_ttl have passed, so renewing takes no task row lock — and returns what must stop:
  cancelled attempts, and attempts this worker no longer owns.
- `maintain` (every worker, every poll interval; overlapping calls are harmless) returns
  expired leases to ready (after `max_lost_attempts` the task fails, reason `lost`), readies
  delayed tasks and retries that are due, applies cancel/pause/resume requests and run timeouts.
- `control` applies cancel/pause/resume at once, from any process (CLI, API server).

NOTIFY on the channel `reviewflow_ready` tells idle workers that tasks became ready.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .. import rules
from ..constants import DEFAULT_LEASE_TTL as DEFAULT_LEASE_TTL
from ..constants import DEFAULT_MAX_LOST_ATTEMPTS as DEFAULT_MAX_LOST_ATTEMPTS
from ..engine import durable_wait, run_id_for
from ..errors import RunNotFound, SpecError, StoreError
from ..executors.shell import kill_orphans
from ..logs import log
from ..scheduler import DEFAULT_AGING_INTERVAL
from ..spec import TaskSpec, WorkflowSpec
from ..states import RUN_TERMINAL, RunState
from ..store import outbox
from ..store.base import Event
from ..store.postgres import PostgresStore, translated
from ..store.sql import query
from .dag import (
    CHANNEL,
    FETCH_LOCK,
    GUARD_FAILED,
    Conflict,
    Escalate,
    Graph,
    HandOff,
    Row,
    RunTx,
    _json,
    already_recorded,
    fetch_rows,
    insert_events,
    lock_run,
)

RETRIES = 8  # attempts of one transaction that hit a conflict or a deadlock
WORKER_FORGET_AFTER = 3600.0  # rows of workers silent for this long are removed


@dataclass(slots=True)
class Claimed:
    """One attempt this worker must run."""

    run_id: str
    name: str
    attempt: int
    spec: TaskSpec | None  # None: the run's spec cannot be read here (error in `problem`)
    meta: dict[str, str]
    results: dict[str, Any]
    failures: dict[str, str]
    started_at: float
    problem: str | None = None
    recorded: bool = False
    """Its start event is stored already (written by the transaction that started it)."""

    @property
    def event(self) -> Event:
        return (self.run_id, self.name, "ready", "running", self.attempt, self.started_at, None)


@dataclass(slots=True)
class Outcome:
    """How an attempt ended, as its worker reports it."""

    run_id: str
    name: str
    attempt: int
    kind: str  # succeeded | failed | cancelled | interrupted | lost
    result: Any = None
    error: str | None = None
    retryable: bool = True
    timed_out: bool = False


@dataclass(slots=True)
class Pending:
    """What a worker has to write under runs' locks: outcomes and events."""

    outcomes: list[Outcome] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    resent: bool = False
    """Sent before and met an error: that sending may have committed (the reply was lost)."""

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.events)


def _clock(cur: psycopg.Cursor[Any]) -> float:
    """The database's clock from a `db_now` cursor (a SELECT without FROM: always one row)."""
    row = cur.fetchone()
    assert row is not None
    return float(row[0])


class Cluster:
    """The queue operations of one process (a worker, or a client submitting and controlling)."""

    def __init__(
        self,
        store: PostgresStore,
        *,
        owner: str | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        max_lost_attempts: int = DEFAULT_MAX_LOST_ATTEMPTS,
        aging_interval: float = DEFAULT_AGING_INTERVAL,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(store, PostgresStore):
            raise StoreError("workers need a PostgreSQL database (--db postgresql://…)")
        self.store = store
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.host = self.owner.split(":", 1)[0]
        self.lease_ttl = lease_ttl
        self.max_lost_attempts = max_lost_attempts
        self.aging_interval = aging_interval
        self.rand = rand
        self.graphs: dict[str, Graph] = {}
        self.bad_specs: dict[str, str] = {}

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self) -> Iterator[tuple[psycopg.Connection, float]]:
        with translated(self.store.url), self.store.pool.connection() as conn, conn.transaction():
            yield conn, _clock(conn.execute(query("db_now")))

    @contextmanager
    def _pipelined_tx(self) -> Iterator[tuple[psycopg.Connection, psycopg.Cursor]]:
        """A transaction in pipeline mode: statements are sent without waiting for their
        answers, and a round trip happens only when an answer is read. BEGIN, the clock and
        whatever the caller sends before reading the clock's cursor share one; COMMIT and
        whatever was sent after the last answer read share another.

        BEGIN and COMMIT are sent as statements, not by `conn.transaction()`: inside a
        pipeline that nests pipelines of its own, each waiting for a sync of its own — at
        BEGIN, before COMMIT and after it: three round trips more (measured with a relay
        counting the turns of the conversation: a chain step took five)."""
        with translated(self.store.url), self.store.pool.connection() as conn:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    yield conn, conn.execute(query("db_now"))
                    conn.execute("COMMIT")
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()  # out of the pipeline, whose exit synced what was sent
                raise

    def _retrying(
        self, fn: Callable[[psycopg.Connection, Any], Any], pipelined: bool = False
    ) -> Any:
        """Run `fn` in a transaction; again (bounded) on a guard conflict or a deadlock.
        `pipelined`: in pipeline mode, `fn` gets the clock's cursor instead of the time.
        An Escalate is tried again at once and not counted: `fn` takes the run's lock next
        time, so it happens at most once per run."""
        attempt = 0
        while True:
            try:
                if pipelined:
                    with self._pipelined_tx() as (conn, clock):
                        return fn(conn, clock)
                with self._tx() as (conn, now):
                    return fn(conn, now)
            except Escalate:
                continue
            except Conflict:
                if attempt == RETRIES - 1:
                    raise StoreError("gave up after repeated conflicting updates") from None
            except StoreError as exc:
                cause = exc.__cause__
                retry = isinstance(cause, psycopg.errors.DeadlockDetected | GUARD_FAILED)
                if not retry or attempt == RETRIES - 1:
                    if isinstance(cause, GUARD_FAILED):
                        raise StoreError("gave up after repeated conflicting updates") from None
                    raise
            attempt += 1
            time.sleep(0.01 * attempt * (0.5 + self.rand()))

    def _run_tx(
        self,
        conn: psycopg.Connection,
        run_id: str,
        now: float,
        locked: Any = FETCH_LOCK,
        shared: bool = False,
    ) -> RunTx:
        return RunTx(
            conn,
            run_id,
            now,
            self.graphs,
            aging_interval=self.aging_interval,
            rand=self.rand,
            locked=locked,
            shared=shared,
        )

    @staticmethod
    def _notify(conn: psycopg.Connection, payloads: set[str]) -> None:
        for payload in payloads:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def _unhold(self, conn: psycopg.Connection, keys: Counter[str], runs: Counter[str]) -> bool:
        """Freed slots let held tasks go (under the same advisory locks as the claims).
        Whether some went; in pipeline mode a row count is not known before the answers are
        read (-1), so there it is "perhaps" (True): a wake-up too many, never one too few."""
        locks = sorted([f"key:{k}" for k in keys] + [f"run:{r}" for r in runs])
        for lock in locks:
            conn.execute(query("key_lock"), {"lock": lock})
        counts = [
            conn.execute(query("unhold_key"), {"key": k, "n": n}).rowcount for k, n in keys.items()
        ]
        counts += [
            conn.execute(query("unhold_run"), {"run_id": r, "n": n}).rowcount
            for r, n in runs.items()
        ]
        return any(c != 0 for c in counts)

    def _finish_txs(
        self,
        conn: psycopg.Connection,
        txs: list[RunTx],
        then: Callable[[set[str]], None] | None = None,
    ) -> None:
        keys: Counter[str] = Counter()
        runs: Counter[str] = Counter()
        notify: set[str] = set()
        for tx in txs:
            tx.save()
            keys.update(tx.freed_keys)
            if tx.freed_run:
                runs[tx.run_id] += tx.freed_run
            notify |= tx.notify
        if (keys or runs) and self._unhold(conn, keys, runs):
            notify.add("")
        self._notify(conn, notify)
        if then is not None:
            then(notify)

    # ------------------------------------------------------------------ submit

    def submit(
        self,
        spec: WorkflowSpec,
        *,
        run_id: str | None = None,
        meta: dict[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Store a run for the workers and make its first tasks ready. Returns (run_id,
        created); an existing id is left untouched (idempotency key)."""
        return self.submit_many([(spec, run_id, meta)])[0]

    def submit_many(
        self, items: Sequence[tuple[WorkflowSpec, str | None, dict[str, str] | None]]
    ) -> list[tuple[str, bool]]:
        """`submit` of several runs in one transaction of a few statements whatever their
        number (a scheduler's batch of slots: on a database a network hop away, round trips
        per run are what made slots late). Returns (run_id, created) for each, in order."""
        prepared: list[tuple[WorkflowSpec, str, dict[str, str], str, str | None]] = []
        dumped: dict[int, str] = {}  # a batch of slots often shares one spec object
        for spec, run_id, meta in items:
            spec_json = dumped.get(id(spec)) or dumped.setdefault(id(spec), spec.stored_json())
            notify = outbox.notify_config(spec_json, spec.name, self.store.notify_extra())
            prepared.append((spec, run_id_for(spec, run_id), dict(meta or {}), spec_json, notify))

        first: dict[str, int] = {}  # an id twice in one batch: the first is the run
        for i, p in enumerate(prepared):
            first.setdefault(p[1], i)
        stamps: list[float] = []

        def go(conn: psycopg.Connection, now: float) -> list[tuple[str, bool]]:
            stamps.append(now)
            batch = [prepared[i] for i in first.values()]
            new, derived, wake = self._insert_new(conn, now, batch)
            if derived:
                outbox.insert_items(conn, [d for d in derived if d.run_id in new], now, True)
            if wake and new:
                self._notify(conn, {""})
            return [(p[1], p[1] in new and first[p[1]] == i) for i, p in enumerate(prepared)]

        try:
            return list(self._retrying(go))
        except StoreError:
            held = self._committed([p[1] for p in prepared], first, stamps)
            if held is None:
                raise
            return held

    def _committed(
        self, ids: list[str], first: dict[str, int], stamps: list[float]
    ) -> list[tuple[str, bool]] | None:
        """After a submit's error, which may have come after its COMMIT (a connection dropped
        with the answer): what the database holds if the transaction was applied, else None.
        Its runs were stored whole or not at all; a run it made has its clock as created_at."""
        if not stamps:
            return None
        try:
            runs = [self.store.get_run(rid, spec=False) for rid in ids]
        except StoreError:
            return None  # cannot tell: the caller sees the error
        if any(r is None for r in runs):
            return None
        now = stamps[-1]
        return [
            (rid, r is not None and r.created_at == now and first[rid] == i)
            for i, (rid, r) in enumerate(zip(ids, runs, strict=True))
        ]

    def _insert_new(
        self,
        conn: psycopg.Connection,
        now: float,
        runs: list[tuple[WorkflowSpec, str, dict[str, str], str, str | None]],
    ) -> tuple[set[str], list[outbox.OutboxItem], bool]:
        """The runs' first transaction in one statement: each run is made in memory by the DAG
        logic (roots ready or due) as if new, and the database keeps the ones that are. Returns
        the new ids, the outbox rows their events cause and whether a task became ready."""
        rows: list[dict[str, Any]] = []
        sources: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []
        events: list[Event] = []
        derived: list[outbox.OutboxItem] = []
        graphs: dict[str, Graph] = {}
        wake = False
        for spec, rid, meta, spec_json, notify in runs:
            rows.append(
                {
                    "run_id": rid,
                    "workflow": spec.name,
                    "spec": spec_json,
                    "meta": meta,
                    "open_main": len(spec.tasks),
                    "open_hooks": len(spec.on_failure),
                    "deadline": now + spec.timeout if spec.timeout else None,
                }
            )
            graph = Graph.of(spec, meta)
            tx = RunTx(
                conn,
                rid,
                now,
                {rid: graph},
                aging_interval=self.aging_interval,
                rand=self.rand,
                fresh=True,
            )
            started = "submitted to workers"
            tx.event(None, None, RunState.PENDING.value, None, None)
            tx.event(None, RunState.PENDING.value, RunState.RUNNING.value, None, started)
            tx.deps_met([t.name for t in spec.tasks.values() if not t.needs])
            tasks.extend(
                {
                    "run_id": rid,
                    "name": r.name,
                    "position": position,
                    "state": r.state,
                    "hook": r.hook,
                    "remaining": r.remaining,
                    "concurrency_key": r.concurrency_key,
                    "key_limit": r.key_limit,
                    "run_limit": r.run_limit,
                    "ready_at": r.ready_at,
                    "sort_key": r.sort_key,
                    "held": r.held,
                    "wait_reason": r.wait_reason,
                    "due_at": r.due_at,
                }
                for position, r in enumerate(tx.rows.values())
            )
            events.extend(tx.events)
            if notify:
                sources.append({"run_id": rid, "source": outbox.NOTIFY, "config": notify})
                told = [e for e in tx.events if outbox.relevant(e)]
                derived.extend(outbox.derive([(outbox.NOTIFY, notify)], told))
            wake = wake or bool(tx.notify)
            graphs[rid] = graph
        new = {
            r[0]
            for r in conn.execute(
                query("insert_new_cluster_runs"),
                {
                    "now": now,
                    "runs": _json(rows),
                    "sources": _json(sources),
                    "tasks": _json(tasks),
                    "events": _json(events),
                },
            ).fetchall()
        }
        self.graphs.update((rid, graphs[rid]) for rid in new)
        return new, derived, wake

    # ------------------------------------------------------------------ claim

    def claim(self, n: int, *, start_events: bool = False) -> list[Claimed]:
        """Claim up to `n` ready tasks. Their start events (`Claimed.event`) are the caller's to
        record: with the outcomes, under the runs' locks, so a run's events stay in order.
        `start_events`: the claim writes them itself for the runs whose lock it gets without
        waiting (`Claimed.recorded`), saving a transaction; the others are still the caller's."""
        if n <= 0:
            return []
        recorded: set[str] = set()

        def go(conn: psycopg.Connection, clock: psycopg.Cursor) -> list[Any]:
            recorded.clear()
            now = _clock(clock)  # with BEGIN: one round trip
            rows = conn.execute(query("claim_tasks"), self._claim_args(n, now)).fetchall()
            if rows:
                rows = self._enforce_limits(conn, rows)
            if rows and start_events:
                runs = sorted({r[0] for r in rows})
                recorded.update(r for (r,) in conn.execute(query("try_lock_runs"), {"runs": runs}))
                events = [(r[0], r[1], "ready", "running", r[2], now, None) for r in rows]
                if recorded:
                    insert_events(conn, [e for e in events if e[0] in recorded])
            return [(r, now) for r in rows]

        claimed = self._retrying(go, pipelined=True)  # the events go with the COMMIT
        if not claimed:
            return []
        out = self._described(claimed)
        for c in out:
            c.recorded = c.run_id in recorded
        return out

    def _claim_args(self, n: int, now: float) -> dict[str, Any]:
        return {"n": n, "now": now, "owner": self.owner, "ttl": self.lease_ttl}

    def _described(
        self,
        claimed: list[Any],
        inputs: dict[tuple[str, str], tuple[str, str | None, str | None]] | None = None,
    ) -> list[Claimed]:
        """`_describe` after the claim committed: if it fails, the attempts are leased to this
        worker but unknown to it; its heartbeat hands such strays back (see Worker)."""
        try:
            return self._describe(claimed, inputs)
        except StoreError as exc:
            log.warning(
                "claim.describe_failed", owner=self.owner, error=str(exc), tasks=len(claimed)
            )
            return []

    def _enforce_limits(self, conn: psycopg.Connection, rows: list[Any]) -> list[Any]:
        """Keep only the claimed tasks within their key's and run's limits."""
        keyed = defaultdict(list)
        per_run = defaultdict(list)
        for r in rows:
            run_id, _name, _att, key, key_limit, run_limit = r[:6]
            if key is not None and key_limit is not None:
                keyed[key].append(r)
            if run_limit is not None:
                per_run[run_id].append(r)
        if not keyed and not per_run:
            return rows
        for lock in sorted([f"key:{k}" for k in keyed] + [f"run:{r}" for r in per_run]):
            conn.execute(query("key_lock"), {"lock": lock})
        dropped: set[tuple[str, str]] = set()
        for key, mine in keyed.items():
            row = conn.execute(query("count_key_running"), {"key": key}).fetchone()
            assert row is not None
            limit = mine[0][4]
            extra = int(row[0]) - limit
            for r in sorted(mine, key=lambda r: (r[6], r[10]), reverse=True)[: max(extra, 0)]:
                self._hold_back(conn, r, "key", f"waiting for key {key}: {limit}/{limit} in use")
                dropped.add((r[0], r[1]))
        for run_id, mine in per_run.items():
            row = conn.execute(query("count_run_running"), {"run_id": run_id}).fetchone()
            assert row is not None
            limit = mine[0][5]
            extra = int(row[0]) - limit
            for r in sorted(
                (r for r in mine if (r[0], r[1]) not in dropped),
                key=lambda r: (r[6], r[10]),
                reverse=True,
            )[: max(extra, 0)]:
                self._hold_back(
                    conn, r, "run", f"waiting for run max_concurrency: {limit}/{limit} in use"
                )
                dropped.add((r[0], r[1]))
        return [r for r in rows if (r[0], r[1]) not in dropped]

    def _hold_back(self, conn: psycopg.Connection, r: Any, held: str, reason: str) -> None:
        conn.execute(
            query("hold_back"),
            {
                "run_id": r[0],
                "name": r[1],
                "owner": self.owner,
                "started_at": r[7],
                "held": held,
                "reason": reason,
            },
        )

    def _wanted(self, tasks: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
        """The dependencies whose results `tasks` (run id, name) get; None if a run's spec
        is not parsed here yet."""
        wanted: list[tuple[str, str]] = []
        for run_id, name in tasks:
            graph = self.graphs.get(run_id)
            if graph is None:
                return None
            wanted.extend((run_id, d) for d in graph.tasks[name].needs)
        return wanted

    @staticmethod
    def _send_inputs(conn: psycopg.Connection, wanted: list[tuple[str, str]]) -> psycopg.Cursor:
        return conn.execute(
            query("inputs"), {"runs": [w[0] for w in wanted], "names": [w[1] for w in wanted]}
        )

    def _describe(
        self,
        claimed: list[Any],
        inputs: dict[tuple[str, str], tuple[str, str | None, str | None]] | None = None,
    ) -> list[Claimed]:
        """Specs, metadata and dependency results of claimed attempts (`inputs`: the results,
        read already in the transaction that started them)."""
        runs = sorted({r[0] for r, _ in claimed} - set(self.graphs))
        if runs:
            with self.store.session() as conn:
                for run_id, text, meta in conn.execute(query("run_specs"), {"runs": runs}):
                    try:
                        self.graphs[run_id] = Graph.stored(text, dict(meta or {}))
                    except (SpecError, ValueError) as exc:
                        self.bad_specs[run_id] = f"cannot read the run's workflow here: {exc}"
        specs: dict[tuple[str, str], TaskSpec | str] = {}
        for r, _ in claimed:
            if (graph := self.graphs.get(r[0])) is not None:
                try:  # a stored spec's task is validated on first read (dag.Graph.stored)
                    specs[(r[0], r[1])] = graph.tasks[r[1]]
                except (SpecError, ValueError) as exc:
                    specs[(r[0], r[1])] = f"cannot read the run's workflow here: {exc}"
        if inputs is None:
            inputs = {}
            wanted = [
                (r[0], d)
                for r, _ in claimed
                if isinstance(spec := specs.get((r[0], r[1])), TaskSpec)
                for d in spec.needs
            ]
            if wanted:
                with self.store.session() as conn:
                    for run_id, name, state, result, error in self._send_inputs(conn, wanted):
                        inputs[(run_id, name)] = (state, result, error)
        out = []
        for r, now in claimed:
            run_id, name, attempt = r[0], r[1], r[2]
            graph = self.graphs.get(run_id)
            spec = specs.get((run_id, name))
            if graph is None or not isinstance(spec, TaskSpec):
                problem = (
                    spec
                    if isinstance(spec, str)
                    else self.bad_specs.get(run_id, "the run's workflow is missing")
                )
                out.append(Claimed(run_id, name, attempt, None, {}, {}, {}, now, problem))
                continue
            results: dict[str, Any] = {}
            failures: dict[str, str] = {}
            for dep in spec.needs:
                state, result, error = inputs.get((run_id, dep), ("blocked", None, None))
                results[dep] = None if result is None else json.loads(result)
                if state != "succeeded":
                    failures[dep] = error or state
            if spec.trigger == "all_succeeded":
                failures = {}
            out.append(Claimed(run_id, name, attempt, spec, graph.meta, results, failures, now))
        return out

    # ------------------------------------------------------------------ record

    def record(self, pending: Pending) -> list[Outcome]:
        """Write outcomes and events (all or nothing); returns the outcomes rejected as late.
        The caller must not add to `pending` meanwhile (the worker hands over a batch)."""
        return self.record_and_take(pending, 0)[0]

    def record_and_take(self, pending: Pending, take: int) -> tuple[list[Outcome], list[Claimed]]:
        """`record`, and start up to `take` attempts for this worker in the same transaction:
        first the dependents it readies (dag.HandOff), then the best ready tasks of any run
        (the claim). Returns (rejected outcomes, attempts to run); `Claimed.recorded` says
        whether an attempt's start event was written here (its run's lock was held).

        One commit, and two or three round trips: the transaction runs in pipeline mode, so
        the clock, the run locks (or gates) and the rows the outcomes and their dependents
        touch are read in one round trip; the writes (guards checked on the server), the
        hand-offs' inputs and the COMMIT go in the second. Only a claim (when a task was ready
        or became ready without being handed off) is read before the COMMIT, which then is a
        third. A run recorded under its gate shared is counted off in the COMMIT's round
        trip, and settled after it by `_settle` if that was its last main task."""
        handoff: HandOff | None = None
        by_run: dict[str, tuple[list[Outcome], list[Event]]] = defaultdict(lambda: ([], []))
        for o in pending.outcomes:
            by_run[o.run_id][0].append(o)
        for e in pending.events:
            by_run[e[0]][1].append(e)
        claimed_rows: list[Any] = []
        recorded: set[str] = set()  # runs whose lock (or gate) this transaction holds
        inputs: dict[tuple[str, str], tuple[str, str | None, str | None]] | None = None
        locked: set[str] = set()  # runs that met a decision for the whole run: lock them
        counted: dict[str, psycopg.Cursor] = {}  # shared runs' count_off answers
        inputs_sent: list[psycopg.Cursor] = []  # the hand-offs' inputs, read after COMMIT

        def go(conn: psycopg.Connection, clock: psycopg.Cursor) -> tuple[list[Any], list[Outcome]]:
            try:
                return attempt(conn, clock)
            except Escalate as exc:
                locked.add(exc.run_id)
                raise

        def attempt(
            conn: psycopg.Connection, clock: psycopg.Cursor
        ) -> tuple[list[Any], list[Outcome]]:
            nonlocal handoff, claimed_rows, inputs
            handoff = HandOff(self.owner, self.lease_ttl, take) if take > 0 else None
            claimed_rows, inputs = [], None
            inputs_sent.clear()
            recorded.clear()
            counted.clear()
            ahead = {}
            shared = {r for r in by_run if r not in locked and self._shareable(r, by_run[r][0])}
            for run_id in sorted(by_run):  # locks in run order, as every transaction takes them
                names = [o.name for o in by_run[run_id][0]]
                graph = self.graphs.get(run_id)
                if graph is not None:  # and their dependents, to count them off here
                    names += {d for n in names for d in graph.dependents.get(n, ())}
                ahead[run_id] = (
                    lock_run(conn, run_id, self.graphs, shared=run_id in shared),
                    fetch_rows(conn, run_id, names) if names else None,
                )
            best = conn.execute(query("best_ready")) if handoff is not None else None
            now = _clock(clock)  # the first round trip
            if handoff is not None and best is not None:
                row = best.fetchone()
                handoff.best, handoff.looked = (row[0] if row else None), True
            rejected: list[Outcome] = []
            txs = []
            resent: dict[str, list[Event]] = {}
            for run_id in sorted(by_run):
                outcomes, events = by_run[run_id]
                lock, rows = ahead[run_id]
                try:
                    tx = self._run_tx(
                        conn, run_id, now, locked=lock.fetchone(), shared=run_id in shared
                    )
                except RunNotFound:
                    continue  # deleted meanwhile: nothing to record
                if tx.shared and (tx.state is not RunState.RUNNING or tx.outcome is not None):
                    raise Escalate(run_id)  # paused or stopping: decided under the run's lock
                recorded.add(run_id)
                if rows is not None:
                    tx.preload(rows.fetchall())
                tx.handoff = handoff
                if pending.resent and events:
                    if tx.shared:
                        resent[run_id] = events  # with the run's row lock, at the end
                    else:
                        insert_events(conn, events, resent=True)
                else:
                    tx.events.extend(events)
                rejected += self._apply(tx, outcomes)
                txs.append(tx)
            sent: dict[str, psycopg.Cursor] = {}

            def then(notify: set[str]) -> None:
                left = handoff.budget if handoff is not None else 0
                if left > 0 and handoff is not None and handoff.best is None and "" not in notify:
                    left = 0  # no task was ready, none became ready but handed off: no claim
                if left > 0:
                    sent["claim"] = conn.execute(query("claim_tasks"), self._claim_args(left, now))
                if handoff is not None and handoff.started:
                    wanted = self._wanted([(s[0], s[1]) for s in handoff.started])
                    if wanted is not None:
                        sent["inputs"] = self._send_inputs(conn, wanted)

            self._finish_txs(conn, txs, then)
            starts: dict[str, list[Event]] = defaultdict(list)
            if "claim" in sent:
                claimed_rows = sent["claim"].fetchall()
                if claimed_rows:
                    claimed_rows = self._enforce_limits(conn, claimed_rows)
                    for r in claimed_rows:  # start events of runs locked here, in run order
                        if r[0] in recorded:
                            starts[r[0]].append((r[0], r[1], "ready", "running", r[2], now, None))
                    mine = [e for run_id in sorted(starts) for e in starts[run_id]]
                    mine = [e for e in mine if e[0] not in shared]
                    if mine:
                        insert_events(conn, mine)
            if "inputs" in sent:  # read after the commit: no round trip of its own
                inputs_sent[:] = [sent["inputs"]]
            for tx in txs:  # last, in the COMMIT's round trip: the row lock for the fsync only
                if tx.shared:
                    cur = tx.count_off(starts[tx.run_id], resent.get(tx.run_id))
                    if cur is not None:
                        counted[tx.run_id] = cur
            return [(r, now) for r in claimed_rows], rejected

        claims, rejected = self._retrying(go, pipelined=True)
        if inputs_sent:
            inputs = {(r[0], r[1]): (r[2], r[3], r[4]) for r in inputs_sent[0]}
        self._settle(counted)
        started = handoff.started if handoff is not None else []
        out: list[Claimed] = []
        if started:
            out += self._described([((r, n, a), at) for r, n, a, at in started], inputs=inputs)
        if claims:
            out += self._described(claims)
        for c in out:
            c.recorded = c.run_id in recorded
        return rejected, out

    def _shareable(self, run_id: str, outcomes: list[Outcome]) -> bool:
        """Whether recording `outcomes` of the run decides nothing for the whole run, so the
        run's gate shared does (dag.RunTx.shared): successes of main tasks that no task
        depends on. (The last of them to end leaves the run's outcome to `_settle`.)"""
        graph = self.graphs.get(run_id)
        if graph is None:
            return False
        for o in outcomes:
            if o.kind != "succeeded" or o.name in graph.hooks or graph.dependents.get(o.name):
                return False
        return True

    def _settle(self, counted: dict[str, psycopg.Cursor]) -> None:
        """After the commit: a run whose main tasks all ended in transactions holding its gate
        shared gets its outcome now, under its lock (once: the transaction that counted the
        last task off left the request `settle`, which any worker's maintenance also takes
        up, should this worker die first)."""
        for run_id, cur in counted.items():
            row = cur.fetchone()
            if row is None or row[0] > 0 or row[1]:
                continue
            try:
                self._per_run(run_id, self._requested)
            except StoreError as exc:
                log.warning("record.settle_failed", run_id=run_id, error=str(exc))

    def _apply(self, tx: RunTx, outcomes: list[Outcome]) -> list[Outcome]:
        rows = tx.load([o.name for o in outcomes])
        rejected = []
        succeeded = []
        for o in outcomes:
            row = rows.get(o.name)
            if row is None:
                continue
            if row.state != "running" or row.attempts != o.attempt or row.owner != self.owner:
                if already_recorded(row, o.attempt, o.kind, o.error):
                    continue  # this very outcome, sent again: its first sending committed
                rejected.append(o)
                tx.event(
                    o.name,
                    row.state,
                    row.state,
                    o.attempt,
                    f"late completion of attempt {o.attempt} by {self.owner} rejected"
                    f" ({o.kind}): the task is {row.state}, attempt {row.attempts}",
                )
                continue
            if o.kind == "succeeded":
                tx.succeeded(row, None if o.result is None else json.dumps(o.result))
                succeeded.append(row.name)
            elif o.kind == "failed":
                tx.failed(row, o.error or "failed", o.retryable, timed_out=o.timed_out)
            elif o.kind == "cancelled":
                tx.cancelled(row, o.error or row.cancel_reason or "cancelled")
            elif o.kind == "lost":  # its worker never ran it: the number stays used
                tx.lost(
                    row, self.max_lost_attempts, durable_wait(tx.graph.tasks[row.name]), o.error
                )
            else:
                tx.interrupted(row, o.error or "interrupted")
        if succeeded:
            tx.advance(succeeded, [])
        return rejected

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(
        self, name: str, *, concurrency: int, running: int, state: str = "running"
    ) -> dict[tuple[str, str, int], str | None]:
        """Renew the leases of this worker's attempts (its `workers` row: a lease lasts until
        both the claim's lease_until and the worker's last heartbeat + lease_ttl have passed);
        returns each attempt it still owns with the reason it must stop (None: carry on). An
        attempt missing from the answer lost its lease."""
        with self._tx() as (conn, now):
            conn.execute(
                query("upsert_worker"),
                {
                    "name": name,
                    "owner": self.owner,
                    "host": self.host,
                    "pid": os.getpid(),
                    "now": now,
                    "concurrency": concurrency,
                    "running": running,
                    "state": state,
                    "ttl": self.lease_ttl,
                },
            )
        # read after the renewal committed: a task missing here was reaped before it
        with self.store.session() as conn:
            rows = conn.execute(query("my_running"), {"owner": self.owner}).fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def leave(self, name: str) -> None:
        with self.store.session() as conn:
            conn.execute(query("remove_worker"), {"owner": self.owner})

    def detail(
        self,
        run_id: str,
        name: str,
        attempt: int,
        *,
        pid: int | None = None,
        wait_reason: str | None = None,
    ) -> None:
        """What a running attempt reports: its process group, or what it waits for. An
        attempt waiting on a person gives its key's and run's slots back, as in the embedded
        engine: the best held task may go (the claims' count leaves waiting attempts out)."""
        with self._tx() as (conn, _now):
            row = conn.execute(
                query("set_task_detail"),
                {
                    "run_id": run_id,
                    "name": name,
                    "attempt": attempt,
                    "owner": self.owner,
                    "pid": pid,
                    "wait_reason": wait_reason,
                },
            ).fetchone()
            if wait_reason is None or row is None:
                return
            key, key_limit, run_limit = row
            keys = Counter({key: 1}) if key is not None and key_limit is not None else Counter()
            runs = Counter({run_id: 1}) if run_limit is not None else Counter()
            if (keys or runs) and self._unhold(conn, keys, runs):
                self._notify(conn, {""})

    # ------------------------------------------------------------------ maintenance

    def maintain(self) -> int:
        """Leases, due tasks, requests, run timeouts; returns how many runs were touched."""
        with self.store.session() as conn:
            now = _clock(conn.execute(query("db_now")))
            expired = [r for (r,) in conn.execute(query("expired_leases"), {"now": now})]
            due = [r for (r,) in conn.execute(query("due_runs"), {"now": now})]
            requested = [r for (r,) in conn.execute(query("requested_runs"))]
            overdue = [r for (r,) in conn.execute(query("overdue_runs"), {"now": now})]
            conn.execute(query("prune_workers"), {"before": now - WORKER_FORGET_AFTER})
        for run_id in expired:
            self._per_run(run_id, self._reap)
        for run_id in due:
            self._per_run(run_id, self._promote)
        for run_id in requested:
            self._per_run(run_id, self._requested)
        for run_id in overdue:
            self._per_run(run_id, self._overdue)
        return len(expired) + len(due) + len(requested) + len(overdue)

    def _per_run(self, run_id: str, fn: Callable[[RunTx], None]) -> RunState:
        def go(conn: psycopg.Connection, now: float) -> RunState:
            tx = self._run_tx(conn, run_id, now)
            if tx.state not in RUN_TERMINAL:
                fn(tx)
            self._finish_txs(conn, [tx])
            return tx.state

        result: RunState = self._retrying(go)
        return result

    def _reap(self, tx: RunTx) -> None:
        names = [
            n
            for (n,) in tx.conn.execute(
                query("expired_in_run"), {"run_id": tx.run_id, "now": tx.now}
            )
        ]
        for row in tx.load(names).values():
            if row.state != "running" or row.lease_until is None or row.lease_until >= tx.now:
                continue
            self._kill_orphans(tx.run_id, row)
            tx.lost(row, self.max_lost_attempts, durable_wait(tx.graph.tasks[row.name]))

    def _kill_orphans(self, run_id: str, row: Row) -> None:
        """A dead worker on this host may have left a process group running."""
        if row.pid is not None and row.owner and row.owner.split(":", 1)[0] == self.host:
            kill_orphans(row.pid, run_id, row.name)

    @staticmethod
    def _promote(tx: RunTx) -> None:
        names = [
            n for (n,) in tx.conn.execute(query("due_in_run"), {"run_id": tx.run_id, "now": tx.now})
        ]
        for row in tx.load(names).values():
            if row.due_at is None or row.due_at > tx.now:
                continue
            if row.state in ("blocked", "retry_wait"):
                tx.make_ready(row)

    def _requested(self, tx: RunTx) -> None:
        command, tx.request = tx.request, None
        tx.run_dirty = True
        self._command(tx, command)

    @staticmethod
    def _command(tx: RunTx, command: str | None) -> None:
        if command == "cancel":
            tx.stop(rules.cancel_requested())
        elif command == "pause":
            tx.pause()
        elif command == "resume":
            tx.unpause()

    @staticmethod
    def _overdue(tx: RunTx) -> None:
        timeout = tx.graph.timeout or 0.0
        if tx.outcome is None and timeout and tx.now >= tx.created_at + timeout:
            tx.stop(rules.run_timed_out(timeout))

    # ------------------------------------------------------------------ control

    def control(self, run_id: str, command: str) -> RunState:
        """Cancel, pause or resume a workers-mode run now; returns its state after."""
        if command not in ("cancel", "pause", "resume"):
            raise ValueError(command)

        def apply(tx: RunTx) -> None:
            self._reap(tx)  # attempts of dead workers: settled now, not by some later worker
            self._command(tx, command)

        return self._per_run(run_id, apply)


def list_workers(store: PostgresStore, *, include_silent: bool = False) -> list[dict[str, Any]]:
    """Live workers of this database (heard from within half their lease time, on the
    database clock); with `include_silent`, also those not heard from since, in state `lost`
    (forgotten after an hour)."""
    with store.session() as conn:
        now = _clock(conn.execute(query("db_now")))
        rows = conn.execute(query("list_workers"), {"now": now, "all": include_silent}).fetchall()
    keys = ("name", "host", "pid", "started_at", "heartbeat_age", "concurrency", "running", "state")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def submit_to_workers(
    store: PostgresStore,
    spec: WorkflowSpec,
    *,
    run_id: str | None = None,
    meta: dict[str, str] | None = None,
) -> tuple[str, bool]:
    return Cluster(store).submit(spec, run_id=run_id, meta=meta)
