"""An in-process store for tests and ephemeral runs; same semantics as the durable ones."""

from __future__ import annotations

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


class MemoryStore(ScheduleMethods, outbox.OutboxMethods):
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
        self._db: sqlite3.Connection | None = None  # outbox and schedules; made when first used
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
                self._in_db(lambda db: outbox.subscribe(db, run.run_id, outbox.NOTIFY, config))
            self._append_events(run.run_id, events)
            return True

    def _append_events(self, run_id: str, events: list[Event]) -> None:
        start = self._next_event_id
        self._events[run_id].extend(events)
        self._event_ids[run_id].extend(range(start, start + len(events)))
        self._next_event_id = start + len(events)
        if any(outbox.relevant(e) for e in events):
            self._wake(self._in_db(lambda db: outbox.add_derived(db, events, time.time())))

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

    def get_events(
        self, run_id: str, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        with self._lock:
            ids = self._event_ids.get(run_id, [])
            events = [
                EventRecord(i, *ev)
                for i, ev in zip(ids, self._events.get(run_id, []), strict=True)
                if i > after_id
            ]
            return events if limit is None else events[:limit]

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

    def _in_db(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn` in a transaction of the private in-memory SQLite that holds the outbox and the
        schedules (the same SQL as the durable stores); the caller holds the lock."""
        if self._db is None:
            from importlib.resources import files

            db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            schema = files("reviewflow.store").joinpath("schema.sql").read_text()
            db.executescript(schema[schema.index("CREATE TABLE IF NOT EXISTS outbox_sources") :])
            self._db = db
        db = self._db
        db.execute("BEGIN")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _schedules_tx(self, fn: Callable[[Any], _T]) -> _T:
        with self._lock:
            return self._in_db(fn)

    def _outbox_tx(self, fn: Callable[[Any], _T]) -> _T:
        with self._lock:
            return self._in_db(fn)

    def close(self) -> None:
        pass
