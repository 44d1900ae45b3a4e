"""How a workers-mode run advances: the rule book's verdicts, applied to rows.

In the embedded mode one process holds a whole run in memory (`engine.py`). With workers, tasks
of one run complete on many machines, so every event is applied inside the transaction that
records it, while holding the run's row lock (`RunTx`): a completion decrements its dependents'
`remaining` counters and readies those reaching zero, a failure retries or fails (and
`fail_fast` stops the run), the last task to end decides the run's outcome and starts
`on_failure` tasks. What each event means — retries, triggers, skips, hooks, outcomes, messages —
is decided by `rules` (the engine asks the same functions), so both modes give the same results
for the same workflow; this module only reads and writes the rows.

Rows are loaded on demand (the tasks an event touches, never the whole run) and written back
guarded by the state they were read in: the one writer that does not take the run lock is a
claim (ready -> running), and a guard that no longer holds rolls the transaction back to be
tried again (`Conflict`).

The run's lock is two locks: its gate (an advisory lock) and its row. A transaction that may
decide for the whole run takes both, the gate exclusive. The commonest event, an attempt's
success that no task waits for, decides nothing for the run: its transaction holds the gate
shared, so many workers record one run's successes at once, and locks the row only in its
last statement, sent with COMMIT (`RunTx.count_off`): the run's counters and the order of its
event ids stay exact, and the row is held for the commit alone. Anything else met that way
raises `Escalate`: the transaction is done again under the run's lock.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from .. import rules
from ..config import stored_spec
from ..errors import InvalidTransition, RunNotFound
from ..plugins import load_plugin_folders
from ..spec import Duration, NotBefore, TaskSpec, WorkflowSpec, with_defaults
from ..states import RUN_TERMINAL, RUN_TRANSITIONS, TASK_TERMINAL, TASK_TRANSITIONS, RunState
from ..states import TaskState as T
from ..store import outbox
from ..store.base import Event
from ..store.sql import query

CHANNEL = "reviewflow_ready"
"""NOTIFY channel: tasks became ready (payload "") or running attempts must stop ("cancel")."""


class Conflict(Exception):
    """A row changed between the read and the guarded write: roll back and try again."""


GUARD_FAILED = psycopg.errors.DivisionByZero
"""What a guarded row update that did not apply raises (save_cluster_rows): a Conflict."""


class Escalate(Conflict):
    """A transaction holding a run's gate shared (`RunTx.shared`) met a decision for the whole
    run (its outcome, a stop, a pause, dependents to count off): roll back and do it again
    under the run's lock."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id}: needs the run's lock")
        self.run_id = run_id


class _StoredTasks(Mapping[str, TaskSpec]):
    """A stored spec's tasks, each validated the first time it is read: a worker reads the
    spec of every run it touches once, but most of a wide run's tasks are other workers' to
    run, and validating all of them cost each worker 0.08 s for 10k tasks (0.27 s in the
    full format): the largest part of a no-op run's extra CPU per worker. A task is validated
    from its body with the `defaults:` section applied, as `WorkflowSpec` does, without
    context (the task types are not checked again): the same TaskSpec (tests/unit/test_spec.py),
    and reading all of them costs what the whole spec's validation did."""

    __slots__ = ("_defaults", "_done", "_raw")

    def __init__(self, raw: dict[str, Any], defaults: dict[str, Any]) -> None:
        self._raw, self._defaults = raw, defaults
        self._done: dict[str, TaskSpec] = {}

    def __getitem__(self, name: str) -> TaskSpec:
        task = self._done.get(name)
        if task is None:
            body = with_defaults(name, self._raw[name], self._defaults)
            task = self._done[name] = TaskSpec.model_validate(body)
        return task

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class _StoredHead(BaseModel):
    """What the DAG logic reads of a stored spec besides its tasks, validated like the
    WorkflowSpec fields of the same names; the tasks are kept as raw JSON data."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    failure_policy: Literal["fail_fast", "continue"] = "fail_fast"
    timeout: Duration | None = None
    not_before: NotBefore = None
    plugins: list[str] = Field(default_factory=list)
    defaults: dict[str, Any] | None = None
    tasks: dict[str, Any] = Field(default_factory=dict)
    on_failure: dict[str, Any] = Field(default_factory=dict)


@dataclass(slots=True)
class Graph:
    """A run's spec, indexed for the DAG logic (cached per run: specs never change).

    A graph of a stored spec (`stored`) has its tasks validated on first read and no
    WorkflowSpec until one is asked for (`spec`); a submitter's graph (`of`) has both."""

    meta: dict[str, str]
    tasks: Mapping[str, TaskSpec]
    hooks: frozenset[str]
    dependents: dict[str, list[str]]
    failure_policy: str
    timeout: float | None
    not_before: Any
    text: str | None = None
    _spec: WorkflowSpec | None = None

    @classmethod
    def of(cls, spec: WorkflowSpec, meta: dict[str, str]) -> Graph:
        tasks = {**spec.tasks, **spec.on_failure}
        dependents: dict[str, list[str]] = {name: [] for name in tasks}
        for task in tasks.values():
            for dep in task.needs:
                dependents[dep].append(task.name)
        return cls(
            meta, tasks, frozenset(spec.on_failure), dependents, spec.failure_policy,
            spec.timeout, spec.not_before, None, spec,
        )  # fmt: skip

    @classmethod
    def stored(cls, text: str, meta: dict[str, str]) -> Graph:
        """A run's stored spec. It was validated at submit; a task type this process lacks (a
        plugin installed on other workers only) must not keep the run's logic from working
        here: stored specs' task types are not checked again (config.stored_spec)."""
        head = _StoredHead.model_validate_json(text)
        load_plugin_folders(head.plugins, strict=False)
        raw = {**head.tasks, **head.on_failure}
        dependents: dict[str, list[str]] = {name: [] for name in raw}
        for name, body in raw.items():
            for dep in (body or {}).get("needs") or ():
                dependents[dep].append(name)
        tasks = _StoredTasks(raw, head.defaults or {})
        return cls(
            meta, tasks, frozenset(head.on_failure), dependents, head.failure_policy,
            head.timeout, head.not_before, text, None,
        )  # fmt: skip

    @property
    def spec(self) -> WorkflowSpec:
        """The whole spec (parsed on first use for a stored graph: the DAG logic needs only
        the fields above)."""
        if self._spec is None:
            assert self.text is not None
            self._spec = loads_spec(self.text)
        return self._spec


@dataclass(slots=True)
class Row:
    """A task row as the DAG logic reads and writes it (order: the cluster_rows query)."""

    name: str
    state: str
    attempts: int
    hook: bool
    remaining: int | None
    owner: str | None
    lease_until: float | None
    lost_attempts: int
    errors: str | None
    error: str | None
    concurrency_key: str | None
    key_limit: int | None
    run_limit: int | None
    pid: int | None
    held: str | None
    started_at: float | None
    ready_at: float | None
    finished_at: float | None
    next_attempt_at: float | None
    wait_reason: str | None
    due_at: float | None
    cancel_reason: str | None
    sort_key: float | None
    old_state: str = field(default="", repr=False)
    old_owner: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.old_state, self.old_owner = self.state, self.owner


_SAVED = [
    f.name
    for f in fields(Row)
    if f.name
    not in (
        "hook",
        "concurrency_key",
        "key_limit",
        "run_limit",
        "old_state",
        "old_owner",
    )
]


@dataclass(slots=True)
class HandOff:
    """Dependents a recording worker starts itself, in the transaction that readies them (no
    claim round trip, no wake-up): at most `budget` (its free slots), only tasks without a
    key or run limit, and only while no other ready task has a better sort key."""

    owner: str
    lease_ttl: float
    budget: int
    best: float | None = None  # the best sort key among other ready tasks (read once)
    looked: bool = False
    started: list[tuple[str, str, int, float]] = field(default_factory=list)

    def first(self, conn: psycopg.Connection, sort_key: float) -> bool:
        if not self.looked:
            row = conn.execute(query("best_ready")).fetchone()
            self.best, self.looked = (row[0] if row else None), True
        return self.best is None or sort_key <= self.best


def _json(data: Any) -> str:
    """JSON for json_to_recordset. PostgreSQL text holds neither NUL nor lone surrogates (a
    file name decoded with surrogateescape): both become U+FFFD, as the store does for every
    text parameter. Checked on the text: both are rare (a surrogate escape there may also be
    half of a valid pair, which the clean-up keeps)."""
    text = json.dumps(data, separators=(",", ":"))
    if "\\u0000" in text or "\\ud" in text:
        text = json.dumps(_clean(data), separators=(",", ":"))
    return text


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _BAD_TEXT.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def insert_events(conn: psycopg.Connection, events: list[Event], *, resent: bool = False) -> None:
    """Insert events in one statement, ids in list order. `resent`: they were sent before,
    perhaps stored then (the reply was lost): those stored already are left out."""
    name = "insert_new_events" if resent else "insert_events"
    conn.execute(query(name), {"events": _json(events)})
    outbox.add_derived(conn, events, time.time(), postgres=True)  # same transaction


def already_recorded(row: Row, attempt: int, kind: str, error: str | None) -> bool:
    """Whether the row records this very outcome of `attempt` already: its worker sent it
    again because the reply to the first sending was lost (the commit happened). Only the
    attempt's owner can make it succeed; a failure is known by its entry in `errors`; a
    cancelled attempt has nothing more to tell."""
    if row.state == T.RUNNING and row.attempts == attempt:
        return False
    if kind == "succeeded":
        return row.state == T.SUCCEEDED and row.attempts == attempt
    if kind == "failed":
        entries = json.loads(row.errors) if row.errors else []
        return any(
            e.get("attempt") == attempt and e.get("error") == (error or "failed") for e in entries
        )
    if kind == "cancelled":
        return row.attempts == attempt and row.state in (T.CANCELLED, T.FAILED)
    return False


def loads_spec(text: str) -> WorkflowSpec:
    """A run's stored spec. It was validated at submit; a task type this process lacks (a
    plugin installed on other workers only) must not keep the run's logic from working here:
    stored specs' task types are not checked again (config.stored_spec)."""
    return stored_spec(text, strict=False)


def new_task_rows(spec: WorkflowSpec) -> list[Row]:
    """A new run's task rows as inserted (all blocked), main tasks first, then hooks."""
    limits = spec.key_limits()
    rows = []
    for task in [*spec.tasks.values(), *spec.on_failure.values()]:
        hook = task.name in spec.on_failure
        key = task.concurrency_key
        rows.append(
            Row(
                task.name, "blocked", 0, hook, None if hook else len(task.needs), None, None, 0,
                None, None, key, limits.get(key) if key else None, spec.max_concurrency,
                None, None, None, None, None, None, None, None, None, None,
            )
        )  # fmt: skip
    return rows


def _new_run_row(graph: Graph, now: float) -> tuple[Any, ...]:
    """What lock_cluster_run reads of a run insert_cluster_runs has just stored."""
    spec = graph.spec
    return ("running", None, None, len(spec.tasks), len(spec.on_failure), False, None, None,
            None, now)  # fmt: skip


def lock_run(
    conn: psycopg.Connection, run_id: str, graphs: dict[str, Graph], *, shared: bool = False
) -> psycopg.Cursor:
    """Send the run's lock statement (`RunTx(locked=cursor.fetchone())` reads its answer): in a
    pipeline, several runs' locks and their rows go to the server in one round trip.
    `shared`: the run's gate shared and its row unlocked (see RunTx.shared)."""
    params = {"run_id": run_id, "with_spec": run_id not in graphs}
    if not shared:
        return conn.execute(query("lock_cluster_run"), params)
    conn.execute(query("run_gate_shared"), {"run_id": run_id})
    return conn.execute(query("read_cluster_run"), params)


def fetch_rows(conn: psycopg.Connection, run_id: str, names: list[str]) -> psycopg.Cursor:
    """Send the read of a run's task rows (`RunTx.preload` takes the answer)."""
    return conn.execute(query("cluster_rows"), {"run_id": run_id, "names": names})


FETCH_LOCK: Any = object()
"""`RunTx(locked=…)` default: the lock statement is sent and read by the constructor."""


class RunTx:
    """One run's changes inside one transaction, with its row lock held — or, `shared`, with
    the run's gate held shared: then only attempts' ends that decide nothing for the whole run
    (successes of tasks without dependents), its counters counted off and its events inserted
    at the end (`count_off`), and anything else raises Escalate."""

    def __init__(
        self,
        conn: psycopg.Connection,
        run_id: str,
        now: float,
        graphs: dict[str, Graph],
        *,
        aging_interval: float,
        rand: Any,
        fresh: bool = False,
        locked: Any = FETCH_LOCK,
        shared: bool = False,
    ) -> None:
        """`fresh`: the run was inserted in this transaction (its graph is in `graphs`): its
        row and task rows are known without reading them (see Cluster.submit_many)."""
        graph = graphs.get(run_id)
        row: tuple[Any, ...] | None
        if fresh and graph is not None:
            row = _new_run_row(graph, now)
        else:
            row = lock_run(conn, run_id, graphs).fetchone() if locked is FETCH_LOCK else locked
        if row is None:
            raise RunNotFound(run_id)
        (
            state,
            outcome,
            error,
            open_main,
            open_hooks,
            hooks_started,
            request,
            spec_text,
            meta,
            created_at,
        ) = row
        self.conn, self.run_id, self.now = conn, run_id, now
        self.shared = shared
        self.read_open = (open_main or 0, open_hooks or 0)
        if graph is None:
            graph = graphs[run_id] = Graph.stored(spec_text, dict(meta or {}))
        self.graph = graph
        self.state = RunState(state)
        self.outcome = RunState(outcome) if outcome else None
        self.error: str | None = error
        self.open_main: int = open_main or 0
        self.open_hooks: int = open_hooks or 0
        self.hooks_started: bool = hooks_started
        self.request: str | None = request
        self.created_at: float = created_at
        self.finished_at: float | None = None
        self.run_dirty = False
        self.rows: dict[str, Row] = {}
        self.dirty: dict[str, Row] = {}
        self.results: dict[str, str | None] = {}
        self.events: list[Event] = []
        self.notify: set[str] = set()
        self.freed_keys: Counter[str] = Counter()
        self.freed_run = 0
        self.aging_interval = aging_interval
        self.rand = rand
        self.handoff: HandOff | None = None
        if fresh and graph is not None:
            self.rows = {row.name: row for row in new_task_rows(graph.spec)}

    # ------------------------------------------------------------------ rows and events

    def preload(self, rows: list[Any]) -> None:
        """Rows read ahead (`fetch_rows`) in the order of the cluster_rows query."""
        for r in rows:
            self.rows.setdefault(r[0], Row(*r))

    def load(self, names: list[str] | set[str]) -> dict[str, Row]:
        missing = [n for n in names if n not in self.rows]
        if missing:
            for r in self.conn.execute(
                query("cluster_rows"), {"run_id": self.run_id, "names": missing}
            ):
                self.rows[r[0]] = Row(*r)
        return {n: self.rows[n] for n in names if n in self.rows}

    def event(
        self,
        task: str | None,
        frm: str | None,
        to: str,
        attempt: int | None,
        detail: str | None,
        at: float | None = None,
    ) -> None:
        self.events.append((self.run_id, task, frm, to, attempt, at or self.now, detail))

    def to(self, row: Row, to: T, detail: str | None = None) -> None:
        frm = T(row.state)
        if to not in TASK_TRANSITIONS[frm]:
            raise InvalidTransition("task", row.name, frm, to)
        if frm is T.RUNNING:
            self._free_slot(row)
        row.state = to.value
        self.event(row.name, frm.value, to.value, row.attempts, detail)
        self.dirty[row.name] = row
        if to in TASK_TERMINAL:
            self._ended(row)

    def _ended(self, row: Row) -> None:
        row.finished_at = self.now
        row.wait_reason = row.held = None
        row.due_at = row.next_attempt_at = None
        row.owner = row.lease_until = None
        if row.hook:
            self.open_hooks -= 1
        else:
            self.open_main -= 1
        self.run_dirty = True

    def _free_slot(self, row: Row) -> None:
        """A running attempt ends: its key's and run's next held tasks may go."""
        if row.concurrency_key is not None and row.key_limit is not None:
            self.freed_keys[row.concurrency_key] += 1
        if row.run_limit is not None:
            self.freed_run += 1
        row.owner = row.lease_until = None
        row.cancel_reason = None
        row.pid = None

    def _whole_run(self) -> None:
        """A decision for the whole run is coming: it needs the run's lock."""
        if self.shared:
            raise Escalate(self.run_id)

    def run_to(self, to: RunState, detail: str | None = None) -> None:
        self._whole_run()
        if to not in RUN_TRANSITIONS[self.state]:
            raise InvalidTransition("run", self.run_id, self.state, to)
        self.event(None, self.state.value, to.value, None, detail)
        self.state = to
        self.run_dirty = True

    # ------------------------------------------------------------------ readiness

    def deps_met(self, names: list[str], since: float | None = None) -> None:
        """All dependencies done: ready now (held if paused), or due after delay/not_before."""
        rows = self.load(names)
        not_before = self.graph.not_before
        run_not_before = self._absolute(not_before) if not_before is not None else None
        for name in names:
            row = rows.get(name)
            if row is None or row.state != T.BLOCKED:
                continue
            task = self.graph.tasks[name]
            due = rules.due_at(
                since if since is not None else self.now,
                delay=task.delay,
                not_before=None if task.not_before is None else self._absolute(task.not_before),
                run_not_before=run_not_before,
                has_needs=bool(task.needs),
            )
            row.remaining = 0
            if not rules.ready_now(due, self.now):
                row.due_at = due
                row.wait_reason = rules.delayed_reason(due)
                self.dirty[name] = row
            else:
                self.make_ready(row)

    def make_ready(self, row: Row) -> None:
        row.ready_at = self.now
        row.due_at = row.next_attempt_at = None
        row.wait_reason = None
        row.sort_key = self.now - self.graph.tasks[row.name].priority * self.aging_interval
        if self.state is RunState.PAUSED:
            row.held, row.wait_reason = "paused", "run paused"
        else:
            row.held = None
        self.to(row, T.READY)
        if row.held is None and not self._hand_off(row):
            self.notify.add("")

    def _hand_off(self, row: Row) -> bool:
        """Start the task right here for the recording worker (see HandOff)."""
        h = self.handoff
        if (
            h is None
            or h.budget <= 0
            or self.outcome is not None
            or row.hook
            or row.key_limit is not None
            or row.run_limit is not None
            or not h.first(self.conn, row.sort_key or 0.0)
        ):
            return False
        h.budget -= 1
        row.attempts += 1
        row.started_at = self.now
        row.owner, row.lease_until = h.owner, self.now + h.lease_ttl
        row.cancel_reason = row.pid = None
        self.to(row, T.RUNNING)
        h.started.append((self.run_id, row.name, row.attempts, self.now))
        return True

    def _absolute(self, when: Any) -> float:
        return rules.absolute(when, self.created_at)

    def advance(self, succeeded: list[str], unsucceeded: list[str]) -> None:
        """Dependencies ended: count them off their dependents; skip what can no longer run."""
        while succeeded or unsucceeded:
            counts: Counter[str] = Counter()
            skip: list[str] = []
            for name in succeeded:
                counts.update(self.graph.dependents[name])
            for name in unsucceeded:
                for dep in self.graph.dependents[name]:
                    trigger = self.graph.tasks[dep].trigger
                    if rules.dependency_ended(trigger, succeeded=False) == "count":
                        counts[dep] += 1
                    else:
                        skip.append(dep)
            skipped = []  # skipped in this round only: their dependents are counted once
            if skip:
                for row in self.load(set(skip)).values():
                    if row.state == T.BLOCKED:
                        self.to(row, T.SKIPPED, rules.SKIPPED_DETAIL)
                        skipped.append(row.name)
            counts = Counter(
                {
                    n: c
                    for n, c in counts.items()
                    if not (n in self.rows and self.rows[n].state != T.BLOCKED)
                }
            )
            ready = self._decrement(counts)
            self.deps_met(ready)
            succeeded, unsucceeded = [], skipped

    def _decrement(self, counts: Counter[str]) -> list[str]:
        if not counts:
            return []
        self._whole_run()  # `remaining` is counted off in memory: only under the run's lock
        # Rows loaded in this transaction (under the run lock, so no other transaction
        # changes a blocked row meanwhile) are counted off here and saved with the rest: no
        # round trip. A record reads its outcomes' dependents ahead with the outcomes.
        ready = []
        names = []
        for name in counts:
            row = self.rows.get(name)
            if row is None:
                names.append(name)
            elif row.remaining is not None and row.state == T.BLOCKED:
                row.remaining -= counts[name]
                self.dirty[name] = row
                if row.remaining == 0:
                    ready.append(name)
        if not names:
            return ready
        for r in self.conn.execute(
            query("decrement_remaining"),
            {
                "run_id": self.run_id,
                "names": names,
                "counts": [counts[n] for n in names],
            },
        ):
            if r[4] == 0:
                ready.append(r[0])
                if r[0] not in self.rows:
                    self.rows[r[0]] = Row(*r)  # read once: deps_met needs it next
        return ready

    # ------------------------------------------------------------------ attempts ending

    def succeeded(self, row: Row, result: str | None) -> None:
        row.error = None
        self.results[row.name] = result
        self.to(row, T.SUCCEEDED)

    def failed(self, row: Row, message: str, retryable: bool, *, timed_out: bool = False) -> None:
        """An attempt ended without success: retry after backoff, or fail for good."""
        task = self.graph.tasks[row.name]
        self.apply(
            row,
            rules.attempt_failed(
                row.name,
                message,
                retry=task.retry,
                used=row.attempts - row.lost_attempts,  # lost attempts do not use up retries
                attempts=row.attempts,
                retryable=retryable,
                timed_out=timed_out,
                stopping=self.outcome is not None,
                hook=row.hook,
                failure_policy=self.graph.failure_policy,
                now=self.now,
                jitter=self.rand(),
            ),
        )

    def apply(self, row: Row, verdict: rules.Verdict) -> None:
        """Apply the rule book's verdict on an attempt's end to `row` (see rules.Verdict)."""
        if verdict.uncount:
            row.attempts -= 1
        if verdict.error is not None:
            if verdict.record:
                self.record_error(row, verdict.error)
            else:
                row.error = verdict.error
        if verdict.retry_at is not None:
            row.next_attempt_at = row.due_at = verdict.retry_at
        for step in verdict.steps:
            if step.state is T.READY:
                self.back_to_ready(row, step.detail)
            else:
                self.to(row, step.state, step.detail)
        if verdict.stop is not None:
            self.stop(verdict.stop)
        elif verdict.skip_dependents:
            self.advance([], [row.name])

    def record_error(self, row: Row, message: str) -> None:
        row.error = message
        errors = json.loads(row.errors) if row.errors else []
        errors.append({"attempt": row.attempts, "error": message, "at": self.now})
        row.errors = json.dumps(errors)

    def cancelled(self, row: Row, reason: str) -> None:
        self.apply(row, rules.attempt_cancelled(reason))

    def interrupted(self, row: Row, detail: str) -> None:
        """Handed back by a draining worker: the attempt does not count — unless the run (or
        the task) was being stopped: then it ends cancelled, never to run again."""
        verdict = rules.attempt_interrupted(
            detail,
            cancel_reason=row.cancel_reason,
            stopping=self.outcome is not None,
            hook=row.hook,
            run_error=self.error,
        )
        self.apply(row, verdict)

    def back_to_ready(self, row: Row, detail: str | None) -> None:
        row.ready_at = self.now
        row.sort_key = self.now - self.graph.tasks[row.name].priority * self.aging_interval
        if self.state is RunState.PAUSED:
            row.held, row.wait_reason = "paused", "run paused"
        else:
            row.held, row.wait_reason = None, None
            self.notify.add("")
        self.to(row, T.READY, detail)

    def lost(self, row: Row, max_lost: int, durable: bool, why: str | None = None) -> None:
        """The attempt is lost: its lease expired (its worker died or hung), or `why`. Lost
        attempts are counted apart (`max_lost_attempts`): they never use up retries."""
        row.lost_attempts += 1
        verdict = rules.attempt_lost(
            row.name,
            rules.workers_lost_detail(row.attempts, row.owner, why),
            hook=row.hook,
            cancel_reason=row.cancel_reason,
            stopping=self.outcome is not None,
            run_error=self.error,
            lost=row.lost_attempts,
            max_lost=max_lost,
            durable=durable,
            failed_message=rules.workers_lost_failed(row.lost_attempts, max_lost),
            failure_policy=self.graph.failure_policy,
        )
        self.apply(row, verdict)

    # ------------------------------------------------------------------ the run

    def stop(self, stop: rules.Stop) -> None:
        """Decide the outcome; cancel what has not started, ask workers to stop the rest
        (`rules.stop`, for the rows the queries open_tasks and mark_running_cancelled find)."""
        if not rules.stop_applies(self.outcome, stop.outcome):
            return
        self._whole_run()
        outcome, reason = stop.outcome, stop.reason
        self.outcome, self.error = outcome, reason
        self.run_dirty = True
        self._save_rows()  # the queries below must see this transaction's changes so far
        hooks = rules.stop_includes_hooks(outcome)
        params = {"run_id": self.run_id, "hooks": hooks}
        found = self.conn.execute(query("open_tasks"), params).fetchall()
        if found:
            for name, state, hook, _key in found:
                row = self.rows.get(name)
                if row is not None:
                    row.state = row.old_state = T.CANCELLED.value  # written by cancel_tasks
                self.event(name, state, T.CANCELLED.value, row.attempts if row else None, reason)
                if hook:
                    self.open_hooks -= 1
                else:
                    self.open_main -= 1
            self.conn.execute(
                query("cancel_tasks"),
                {
                    "run_id": self.run_id,
                    "names": [f[0] for f in found],
                    "to": T.CANCELLED.value,
                    "now": self.now,
                },
            )
        marked = self.conn.execute(
            query("mark_running_cancelled"), dict(params, reason=reason)
        ).fetchall()
        for (name,) in marked:
            row = self.rows.get(name)
            if row is not None and row.state == T.RUNNING:
                row.cancel_reason = reason
        if marked:
            self.notify.add("cancel")

    def pause(self) -> None:
        self._whole_run()
        self._save_rows()  # rows readied in this transaction must be held too
        to = rules.pause(self.state)
        if to is not None:
            self.run_to(to)
            self.conn.execute(query("hold_run_ready"), {"run_id": self.run_id})

    def unpause(self) -> None:
        self._whole_run()
        self._save_rows()  # rows held in this transaction must be released too
        to = rules.resume(self.state)
        if to is not None:
            self.run_to(to, rules.RESUMED)
            self.conn.execute(query("release_paused"), {"run_id": self.run_id})
            self.notify.add("")

    def check_done(self) -> None:
        if self.state in RUN_TERMINAL or self.open_main > 0:
            return
        failed: list[str] = []
        if self.outcome is None:
            self._save_rows()  # the query must see failures recorded in this transaction
            failed = [
                n for (n,) in self.conn.execute(query("failed_main_tasks"), {"run_id": self.run_id})
            ]
            self.run_dirty = True
        ending = rules.main_tasks_ended(
            self.outcome,
            self.error,
            failed,
            open_hooks=self.open_hooks,
            hooks_started=self.hooks_started,
        )
        self.outcome, self.error = ending.outcome, ending.error
        if ending.start_hooks:
            self.start_hooks()
        if ending.wait_hooks:
            return
        if ending.close_hooks is not None:
            for row in self.load(list(self.graph.hooks)).values():
                if row.state == T.BLOCKED:
                    self.to(row, ending.close_hooks, rules.HOOKS_NOT_NEEDED)
            if self.open_hooks > 0:
                return
        self.finished_at = self.now
        self.run_to(ending.outcome, rules.final_detail(ending.outcome, ending.error))

    def start_hooks(self) -> None:
        self._whole_run()
        self.hooks_started = True
        self.run_dirty = True
        hooks = [self.graph.tasks[n] for n in self.graph.hooks]
        with_needs = [h for h in hooks if h.needs]
        if with_needs:
            self.conn.execute(
                query("set_remaining"),
                {
                    "run_id": self.run_id,
                    "names": [h.name for h in with_needs],
                    "counts": [len(h.needs) for h in with_needs],
                },
            )
            for h in with_needs:
                row = self.rows.get(h.name)
                if row is not None:
                    row.remaining = len(h.needs)
        self.deps_met([h.name for h in hooks if not h.needs])

    # ------------------------------------------------------------------ writing

    def save(self) -> None:
        """Write every changed row (guarded), results, the run row and the events: one
        statement each, whatever the number of rows. Shared (see the class): the rows and
        results only; the run row and the events go with `count_off`."""
        if not self.shared:
            self.check_done()
        self._save_rows()
        if self.results:
            names = [n for n, v in self.results.items() if v is not None]
            if names:  # the column is NULL until the one success: NULL results need no write
                self.conn.execute(
                    query("save_results"),
                    {
                        "run_id": self.run_id,
                        "names": names,
                        "results": [self.results[n] for n in names],
                    },
                )
            self.results.clear()
        if self.shared:
            return
        if self.run_dirty:
            self.conn.execute(
                query("write_cluster_run"),
                {
                    "run_id": self.run_id,
                    "state": self.state.value,
                    "outcome": self.outcome.value if self.outcome else None,
                    "error": self.error,
                    "open_main": self.open_main,
                    "open_hooks": self.open_hooks,
                    "hooks_started": self.hooks_started,
                    "finished_at": self.finished_at,
                    "request": self.request,
                    "deadline": None if self.outcome is not None else self._deadline(),
                },
            )
            self.run_dirty = False
        if self.events:
            insert_events(self.conn, self.events)
            self.events.clear()

    def count_off(
        self, extra: list[Event], resent: list[Event] | None = None
    ) -> psycopg.Cursor | None:
        """Shared (see the class), sent last before COMMIT, in the same round trip: the ended
        tasks counted off the run row (which takes its lock until the commit: the events'
        ids, allocated next, then follow the run's commit order), then the events and `extra`
        (start events of attempts claimed in this transaction; `resent`: events sent before,
        perhaps stored then, see insert_events). The cursor answers
        (open_main, hooks_started) after the commit: open_main 0 means the run must settle;
        None: nothing to write."""
        main = self.read_open[0] - self.open_main
        hooks = self.read_open[1] - self.open_hooks
        if not (main or hooks or self.events or extra or resent):
            return None  # nothing counted, nothing to insert: no row lock needed
        cur = self.conn.execute(
            query("count_off_run"), {"run_id": self.run_id, "main": main, "hooks": hooks}
        )
        if resent:
            insert_events(self.conn, resent, resent=True)
        events = self.events + extra
        if events:
            insert_events(self.conn, events)
        self.events = []
        return cur

    def _save_rows(self) -> None:
        if not self.dirty:
            return
        rows = list(self.dirty.values())
        data = [
            {
                **{k: getattr(r, k) for k in _SAVED},
                "old_state": r.old_state,
                "old_owner": r.old_owner,
            }
            for r in rows
        ]
        # Checked on the server (GUARD_FAILED aborts the transaction): in a pipeline no answer
        # is awaited, and a statement between here and there that saw a row not applied is
        # rolled back with it.
        self.conn.execute(
            query("save_cluster_rows"),
            {"run_id": self.run_id, "rows": _json(data), "n": len(rows)},
        )
        for r in rows:
            r.old_state, r.old_owner = r.state, r.owner
        self.dirty.clear()

    def _deadline(self) -> float | None:
        timeout = self.graph.timeout
        return self.created_at + timeout if timeout else None
