"""An in-process store for tests and ephemeral runs; same semantics as the durable ones."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..errors import ApprovalDecided, LeaseLost, RunNotFound, StoreError
from . import outbox
from .base import (
    ApprovalRecord,
    Batch,
    Event,
    EventRecord,
    RunFilter,
    RunRecord,
    TaskRecord,
)
from .schedules import ScheduleMethods

_T = TypeVar("_T")


class MemoryStore(ScheduleMethods):
    """Holds everything in dicts; nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunRecord] = {}
        # Task rows as plain tuples (TASK_COLUMNS values + name): applying a write is one dict
        # assignment, and tuples of atomic values are invisible to the cyclic GC.
        self._tasks: dict[str, dict[str, tuple[Any, ...]]] = {}
        self._events: dict[str, list[Event]] = {}
        self._event_ids: dict[str, list[int]] = {}
        self._next_event_id = 1
        self._approvals: dict[tuple[str, str], ApprovalRecord] = {}
        self._sources: dict[str, dict[str, str]] = {}
        self._outbox: dict[int, outbox.OutboxRecord] = {}
        self._outbox_keys: set[str] = set()
        self._schedules_db: sqlite3.Connection | None = None  # made when first used
        self.outbox_defaults: dict[str, Any] = {}
        self.outbox_waker: Callable[[], None] | None = None

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord], events: list[Event]) -> bool:
        with self._lock:
            if run.run_id in self._runs:
                return False
            self._runs[run.run_id] = replace(run)
            self._tasks[run.run_id] = {t.name: (*t.row(), t.name) for t in tasks}
            self._events[run.run_id] = []
            self._event_ids[run.run_id] = []
            config = outbox.notify_config(run.spec, run.workflow, self.notify_extra())
            if config is not None:
                self._sources.setdefault(run.run_id, {})[outbox.NOTIFY] = config
            self._append_events(run.run_id, events)
            return True

    def _append_events(self, run_id: str, events: list[Event]) -> None:
        start = self._next_event_id
        self._events[run_id].extend(events)
        self._event_ids[run_id].extend(range(start, start + len(events)))
        self._next_event_id = start + len(events)
        sources = self._sources.get(run_id)
        if sources:
            wanted = [e for e in events if outbox.relevant(e)]
            if wanted:
                self._add_items(outbox.derive(sources.items(), wanted))

    def get_run(self, run_id: str, *, spec: bool = True) -> RunRecord | None:
        with self._lock:
            run = self._runs.get(run_id)
            return replace(run) if run else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.created_at, reverse=True)
            return [replace(r) for r in runs[:limit]]

    def find_runs(self, where: RunFilter, limit: int = 20) -> list[RunRecord]:
        with self._lock:
            found = [r for r in self._runs.values() if where.matches(r)]
        found.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return [replace(r) for r in found[:limit]]

    def count_runs(self, where: RunFilter) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for r in self._runs.values():
                if where.matches(r, with_state=False):
                    counts[r.state] = counts.get(r.state, 0) + 1
        return counts

    def get_tasks(self, run_id: str) -> list[TaskRecord]:
        with self._lock:
            return [
                TaskRecord(run_id, row[-1], *row[:-1])
                for row in self._tasks.get(run_id, {}).values()
            ]

    def get_events(self, run_id: str, after_id: int = 0) -> list[EventRecord]:
        with self._lock:
            ids = self._event_ids.get(run_id, [])
            return [
                EventRecord(i, *ev)
                for i, ev in zip(ids, self._events.get(run_id, []), strict=True)
                if i > after_id
            ]

    def claim_run(self, run_id: str, owner: str, lease_until: float, expected: str | None) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFound(run_id)
            if run.owner != expected:
                return False
            run.owner, run.lease_until = owner, lease_until
            return True

    def release_run(self, run_id: str, owner: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and run.owner == owner:
                run.owner = run.lease_until = None

    def write(self, batch: Batch) -> str | None:
        with self._lock:
            run = self._runs.get(batch.run_id)
            if run is None:
                raise RunNotFound(batch.run_id)
            if run.owner != batch.owner:
                raise LeaseLost(f"run {batch.run_id!r} is now owned by {run.owner}")
            tasks = self._tasks[batch.run_id]
            unknown = [row[-1] for row in batch.tasks if row[-1] not in tasks]
            if unknown:  # checked first: a batch is applied whole or not at all
                raise StoreError(f"run {batch.run_id!r} has no task {unknown[0]!r}")
            run.lease_until = batch.lease_until
            if batch.run is not None:
                run.state, run.started_at, run.finished_at, run.error = batch.run
            for row in batch.tasks:
                tasks[row[-1]] = row
            self._append_events(batch.run_id, batch.events)
            request, run.request = run.request, None
            return request

    def request(self, run_id: str, command: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFound(run_id)
            run.request = command

    def open_approval(self, run_id: str, task: str, now: float) -> ApprovalRecord:
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFound(run_id)
            record = self._approvals.setdefault((run_id, task), ApprovalRecord(run_id, task))
            if record.requested_at is None:
                record.requested_at = now
            return replace(record)

    def get_approval(self, run_id: str, task: str) -> ApprovalRecord | None:
        with self._lock:
            record = self._approvals.get((run_id, task))
            return replace(record) if record else None

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
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFound(run_id)
            record = self._approvals.setdefault((run_id, task), ApprovalRecord(run_id, task))
            if record.decision is not None:
                raise ApprovalDecided(f"{task} was already {record.decision} by {record.approver}")
            record.decision, record.approver, record.comment = decision, approver, comment
            record.decided_at = now
            if event is not None:
                self._append_events(run_id, [event])
            return replace(record)

    # ------------------------------------------------------------------ outbox

    def notify_extra(self) -> dict[str, Any]:
        """What a new run's notify config gets besides its spec's targets."""
        return dict(self.outbox_defaults)

    def _add_items(self, items: list[outbox.OutboxItem]) -> int:
        added = 0
        now = time.time()
        for item in items:
            if item.dedupe_key in self._outbox_keys:
                continue
            self._outbox_keys.add(item.dedupe_key)
            row = item.row(now)
            new_id = len(self._outbox) + 1
            self._outbox[new_id] = outbox.OutboxRecord(
                new_id, *row[:6], outbox.PENDING, 0, *row[6:], None, None, None, None
            )
            added += 1
        if added and self.outbox_waker is not None:
            self.outbox_waker()
        return added

    def subscribe(self, run_id: str, source: str, config: dict[str, Any]) -> None:
        """Let `source`'s deriver turn the run's later events into outbox rows."""
        with self._lock:
            self._sources.setdefault(run_id, {})[source] = json.dumps(config)

    def enqueue(self, items: list[outbox.OutboxItem]) -> int:
        """Add outbox rows outside any run transaction; returns how many were new."""
        with self._lock:
            return self._add_items(items)

    def claim_outbox(self, owner: str, lease: float, limit: int) -> list[outbox.OutboxRecord]:
        """Claim up to `limit` due rows for `lease` seconds (each claim counts an attempt)."""
        now = time.time()
        with self._lock:
            due = sorted(
                (
                    r
                    for r in self._outbox.values()
                    if r.state == outbox.PENDING and r.next_at <= now
                ),
                key=lambda r: r.next_at,
            )[:limit]
            for r in due:
                r.attempts += 1
                r.lease_owner, r.lease_until, r.next_at = owner, now + lease, now + lease
            return [replace(r) for r in due]

    def finish_outbox(
        self,
        record: outbox.OutboxRecord,
        owner: str,
        error: str | None,
        took: float,
        permanent: bool = False,
    ) -> str | None:
        """Record a claimed attempt's outcome; the row's new state (None: claim lost)."""
        now = time.time()
        with self._lock:
            r = self._outbox.get(record.id)
            if r is None or r.lease_owner != owner or r.attempts != record.attempts:
                return None
            history = outbox.with_attempt(r.attempts_list(), r.attempts, now, error, took)
            r.history = json.dumps(history)
            r.lease_owner = r.lease_until = None
            r.last_error = error
            if error is None:
                r.state, r.delivered_at = outbox.DELIVERED, now
            elif permanent or now >= r.expires_at:
                r.state = outbox.FAILED
            else:
                r.next_at = now + outbox.backoff(r.attempts)
            return r.state

    def list_outbox(
        self, *, failed_only: bool = False, limit: int = 100, run_id: str | None = None
    ) -> list[outbox.OutboxRecord]:
        """Outbox rows, newest first."""
        with self._lock:
            rows = [
                replace(r)
                for r in reversed(self._outbox.values())
                if (run_id is None or r.run_id == run_id)
                and (
                    not failed_only
                    or r.state == outbox.FAILED
                    or (r.state == outbox.PENDING and r.last_error is not None)
                )
            ]
            return rows[:limit]

    def retry_outbox_now(self) -> int:
        """Make pending rows waiting out a backoff due now; returns how many."""
        now = time.time()
        with self._lock:
            waiting = [
                r
                for r in self._outbox.values()
                if r.state == outbox.PENDING and r.lease_owner is None and r.next_at > now
            ]
            for r in waiting:
                r.next_at = now
            return len(waiting)

    def next_outbox_due(self) -> float | None:
        """When the earliest pending outbox row is due, None if there is none."""
        with self._lock:
            due = [r.next_at for r in self._outbox.values() if r.state == outbox.PENDING]
            return min(due) if due else None

    def _schedules_tx(self, fn: Callable[[Any], _T]) -> _T:
        """Schedules live in a private in-memory SQLite: the same SQL as the durable stores."""
        from importlib.resources import files

        with self._lock:
            if self._schedules_db is None:
                db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                schema = files("reviewflow.store").joinpath("schema.sql").read_text()
                start = schema.index("CREATE TABLE IF NOT EXISTS schedules")
                db.executescript(schema[start:])
                self._schedules_db = db
            db = self._schedules_db
            db.execute("BEGIN")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

    def close(self) -> None:
        pass
