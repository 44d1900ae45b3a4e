"""The Store protocol and the records it moves.

The engine keeps the live state of the runs it executes in memory and hands the store batches of
changes (group commit). A batch is applied atomically and batches are applied in order, so the
store never holds a task's completion without its dependencies' completions. Every write carries
the writer's owner id; a store refuses (LeaseLost) a batch from a process that no longer owns the
run, which is what makes a zombie's late completion harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .outbox import OutboxItem, OutboxRecord
    from .schedules import ScheduleRecord

TASK_COLUMNS = (
    "state",
    "attempts",
    "ready_at",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "result",
    "error",
    "errors",
    "wait_reason",
    "pid",
)
"""Mutable task columns, in the order of TaskRecord.row() and of batch task updates."""

RUN_COLUMNS = ("state", "started_at", "finished_at", "error")
"""Mutable run columns written by the owner, in the order of batch run updates."""


@dataclass(slots=True)
class RunRecord:
    run_id: str
    workflow: str
    state: str
    spec: str  # the WorkflowSpec as JSON
    meta: dict[str, str]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    request: str | None = None
    mode: str | None = None
    """None: one process executes the run (embedded); "workers": `reviewflow worker`s do."""


@dataclass(slots=True)
class TaskRecord:
    run_id: str
    name: str
    state: str
    attempts: int = 0
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    next_attempt_at: float | None = None
    result: str | None = None  # JSON text
    error: str | None = None
    errors: str | None = None  # JSON list: one entry per failed attempt
    wait_reason: str | None = None
    pid: int | None = None  # process group of the running attempt, if it started one

    def row(self) -> tuple[Any, ...]:
        return (
            self.state,
            self.attempts,
            self.ready_at,
            self.started_at,
            self.finished_at,
            self.next_attempt_at,
            self.result,
            self.error,
            self.errors,
            self.wait_reason,
            self.pid,
        )


@dataclass(slots=True)
class EventRecord:
    id: int
    run_id: str
    task: str | None
    from_state: str | None
    to_state: str
    attempt: int | None
    at: float
    detail: str | None


Event = tuple[str, str | None, str | None, str, int | None, float, str | None]
"""(run_id, task, from_state, to_state, attempt, at, detail) — an event not yet stored."""


@dataclass(slots=True)
class Batch:
    """Changes of one owner, applied in one transaction."""

    run_id: str
    owner: str
    lease_until: float
    run: tuple[Any, ...] | None = None  # values of RUN_COLUMNS
    tasks: list[tuple[Any, ...]] = field(default_factory=list)  # TASK_COLUMNS + (name,)
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a list asks for, answered by the database (any number of runs, no scan in
    Python). `search` is a case-insensitive substring of the run id or the workflow name;
    `before` is the (created_at, run_id) of the last run of the previous page."""

    state: str | None = None
    workflow: str | None = None
    search: str | None = None
    meta: tuple[tuple[str, str], ...] = ()
    created_after: float | None = None
    created_before: float | None = None
    before: tuple[float, str] | None = None

    def matches(self, r: RunRecord, *, with_state: bool = True) -> bool:
        """The same predicate in Python (the memory store; tests compare with the SQL)."""
        if with_state and self.state is not None and r.state != self.state:
            return False
        if self.workflow is not None and r.workflow != self.workflow:
            return False
        if self.search and not (
            self.search.lower() in r.run_id.lower() or self.search.lower() in r.workflow.lower()
        ):
            return False
        if any(r.meta.get(k) != v for k, v in self.meta):
            return False
        if self.created_after is not None and r.created_at < self.created_after:
            return False
        if self.created_before is not None and r.created_at >= self.created_before:
            return False
        if with_state and self.before is not None:
            at, rid = self.before
            return r.created_at < at or (r.created_at == at and r.run_id < rid)
        return True


@dataclass(slots=True)
class ApprovalRecord:
    """The state of one approval task: when it started waiting and what was decided."""

    run_id: str
    task: str
    requested_at: float | None = None
    decision: str | None = None  # approved | rejected
    approver: str | None = None
    comment: str | None = None
    decided_at: float | None = None


class Store(Protocol):
    """Durable (or not) home of runs, tasks and events; safe to share between processes."""

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord], events: list[Event]) -> bool:
        """Insert a run with its tasks; False (and no change) if the run id already exists."""

    def get_run(self, run_id: str, *, spec: bool = True) -> RunRecord | None:
        """The run, or None. With `spec=False` its `spec` may be '' (an engine that holds the
        spec already need not read ~440 bytes a task of JSON back)."""

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """Most recent runs first."""

    def find_runs(self, where: RunFilter, limit: int = 20) -> list[RunRecord]:
        """Runs matching `where`, newest first (created_at, then run_id, descending), without
        their spec (`spec` may be ''; get_run has it)."""

    def count_runs(self, where: RunFilter) -> dict[str, int]:
        """How many runs match `where` (its state and page position ignored), by state."""

    def get_tasks(self, run_id: str) -> list[TaskRecord]:
        """The run's tasks in definition order."""

    def get_events(
        self, run_id: str, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """The run's events with id > after_id, oldest first; at most `limit` of them (a
        reader of a 1M-task run's events pages through them instead of holding them all)."""

    def claim_run(self, run_id: str, owner: str, lease_until: float, expected: str | None) -> bool:
        """Compare-and-swap the run's owner from `expected` to `owner`."""

    def release_run(self, run_id: str, owner: str) -> None:
        """Give up ownership (no-op if not the owner)."""

    def write(self, batch: Batch) -> str | None:
        """Apply the batch, renew the lease and return (and clear) a pending request.

        Raises LeaseLost if `batch.owner` no longer owns the run.
        """

    def request(self, run_id: str, command: str) -> None:
        """Ask the run's owner to `cancel`, `pause` or `resume` (picked up on its next write)."""

    def open_approval(self, run_id: str, task: str, now: float) -> ApprovalRecord:
        """Note that `task` waits for a person since `now` (kept if already noted) and return
        its record: the first request time bounds the approval's timeout across restarts."""

    def get_approval(self, run_id: str, task: str) -> ApprovalRecord | None:
        """The approval record of `task`, or None."""

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
        """Record a decision once (with `event` in the same transaction); ApprovalDecided if
        one was already recorded."""

    # The outbox (store/outbox.py). Rows are also derived from the events every write above
    # appends, in the same transaction, for the runs' subscribed sources.
    outbox_defaults: dict[str, Any]
    """Added to every new run's notify config: `targets` (the server's) and `base_url`."""

    def subscribe(self, run_id: str, source: str, config: dict[str, Any]) -> None:
        """Let `source`'s deriver (outbox.DERIVERS) turn the run's later events into rows."""

    def enqueue(self, items: list[OutboxItem]) -> int:
        """Add outbox rows in a transaction of their own; returns how many were new (a dedupe
        key already stored is skipped)."""

    def claim_outbox(self, owner: str, lease: float, limit: int) -> list[OutboxRecord]:
        """Claim up to `limit` due rows for `lease` seconds; each claim counts an attempt."""

    def finish_outbox(
        self,
        record: OutboxRecord,
        owner: str,
        error: str | None,
        took: float,
        permanent: bool = False,
    ) -> str | None:
        """Record a claimed attempt's outcome; the row's new state, None if the claim was lost."""

    def list_outbox(
        self, *, failed_only: bool = False, limit: int = 100, run_id: str | None = None
    ) -> list[OutboxRecord]:
        """Outbox rows, newest first."""

    def retry_outbox_now(self) -> int:
        """Make pending rows that wait out a backoff due now (not those a deliverer holds)."""

    def next_outbox_due(self) -> float | None:
        """When the earliest pending row is due; None if nothing is pending."""

    # Schedules (store/schedules.py: ScheduleMethods gives every store these).

    def put_schedule(self, rec: ScheduleRecord) -> None:
        """Add the schedule or replace it (same id)."""

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, or None."""

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""

    def pause_schedule(
        self, schedule_id: str, paused: bool, next_slot: float, next_fire: float, now: float
    ) -> bool:
        """Pause, or resume from `next_slot`; False if there is no such schedule."""

    def remove_schedule(self, schedule_id: str) -> bool:
        """Delete the schedule; False if there was none."""

    def claim_schedules(
        self, owner: str, now: float, lease: float, limit: int
    ) -> list[ScheduleRecord]:
        """Due schedules, claimed by `owner` for `lease` seconds."""

    def advance_schedules(
        self,
        owner: str,
        moves: list[tuple[ScheduleRecord, float, float, float | None, str | None, int, str | None]],
        now: float,
    ) -> int:
        """Move claimed schedules on (store/schedules.py: Move); how many were still `owner`'s."""

    def next_schedule_fire(self) -> float | None:
        """When the earliest active schedule wants looking at; None without one."""

    def close(self) -> None:
        """Release connections."""
