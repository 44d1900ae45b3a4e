"""Schedules: runs of a stored workflow that start by themselves, exactly once per slot.

A workflow's `schedules:` (or `reviewflow schedule add`) become rows of the store's schedules
table (store/schedules.py). Any number of processes fire them — `reviewflow serve`, workers,
`reviewflow scheduler --db DB` — each running a `Scheduler`: it claims the due rows (a lease: two
schedulers never work on one row at once), plans the slots to fire (cadence.py: cron or interval,
time zone and DST, catchup after downtime, jitter) and submits one run per slot. The run id is
`<schedule>.<slot>` (e.g. `nightly.20261202T030000Z`), so the runs table's primary key keeps a
slot to one run even when a scheduler dies between the submit and the advance and another fires
the slot again; the run's `meta` carries `schedule` and `slot` (ISO 8601, UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .cadence import Cadence, jitter_offset, plan, slot_id, slot_text
from .errors import ReviewflowError
from .logs import log
from .spec import ScheduleSpec, WorkflowSpec
from .store.base import Store
from .store.schedules import Move, ScheduleRecord

LEASE = 30.0
"""Seconds a claimed schedule is held; a scheduler that died leaves it due again after this."""
POLL = 1.0
"""Longest sleep between passes: schedules added by other processes are seen within this."""
BATCH = 20
"""Schedules claimed at a time: small claims let several schedulers share one slot's work. A
store may prefer another size (`schedules_batch`): on PostgreSQL a claim's runs are one
statement whatever their number, so fewer, larger claims mean fewer round trips per slot."""
MAX_BATCHES = 100
"""Claims per pass (2,000 schedules); the rest wait for the next pass, a moment later."""
PASS_BUDGET = 1.0
"""Seconds a pass goes on claiming before it lets the loop look at its stop flag."""

Submit = Callable[[WorkflowSpec, str, dict[str, str]], tuple[str, bool]]
"""Stores a run (spec, run id, meta) and says whether it was new: (run_id, created)."""
SubmitMany = Callable[[list[tuple[WorkflowSpec, str, dict[str, str]]]], list[tuple[str, bool]]]
"""`Submit` of several runs at once (one transaction), results in order."""


@dataclass(frozen=True)
class Fired:
    """A slot fired: the run it made (created False: the slot's run existed already)."""

    schedule: str
    slot: float
    run_id: str
    created: bool
    late: float  # seconds between the slot's firing time (slot + jitter) and its run stored


class ScheduleError(ReviewflowError):
    """A schedule command could not be done (unknown schedule, bad workflow); one line."""


@dataclass
class _Plan:
    """What one claimed schedule fires in this pass and where it goes next."""

    rec: ScheduleRecord
    entry: ScheduleSpec
    spec: WorkflowSpec
    slots: list[float]
    next_slot: float
    next_fire: float

    @property
    def requests(self) -> list[tuple[WorkflowSpec, str, dict[str, str]]]:
        meta = self.entry.meta
        return [
            (
                self.spec,
                run_id_of(self.rec.id, s),
                {**meta, "schedule": self.rec.id, "slot": slot_text(s)},
            )
            for s in self.slots
        ]

    def fired(self, results: list[tuple[str, bool]], stored: float) -> list[Fired]:
        sid, jitter = self.rec.id, self.entry.jitter
        return [
            Fired(sid, slot, rid, created, stored - (slot + jitter_offset(sid, slot, jitter)))
            for slot, (rid, created) in zip(self.slots, results, strict=True)
        ]

    def move(self, fired: list[Fired]) -> Move:
        last = self.slots[-1] if self.slots else None
        return (
            self.rec,
            self.next_slot,
            self.next_fire,
            last,
            None if last is None else run_id_of(self.rec.id, last),
            sum(1 for f in fired if f.created),
            None,
        )


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_id_of(schedule_id: str, slot: float) -> str:
    return f"{schedule_id}.{slot_id(slot)}"


def entries(spec: WorkflowSpec) -> list[tuple[str, ScheduleSpec]]:
    """The workflow's schedules with their ids: `name`, else the workflow's name, `-2`, `-3`…"""
    out: list[tuple[str, ScheduleSpec]] = []
    for i, entry in enumerate(spec.schedules):
        out.append((entry.name or (spec.name if i == 0 else f"{spec.name}-{i + 1}"), entry))
    ids = [i for i, _ in out]
    room = 200 - len(".20261202T030000250Z")  # a run id is <schedule>.<slot>, at most 200
    for i, (sid, entry) in enumerate(out):
        if len(sid) > room:  # only a workflow name can be (a schedule's name has 100 at most)
            field = f"schedules.{i}.name" if entry.name else "name"
            raise ScheduleError(
                f"{field}: schedule id {sid[:40]}… is longer than {room} characters"
                " (its runs' ids would be too long): give the schedule a shorter name"
            )
    if len(set(ids)) != len(ids):
        raise ScheduleError(f"workflow {spec.name}: two schedules have the same name")
    return out


class ScheduleFieldError(ScheduleError):
    """A schedule given by its fields (CLI flags, API query) is invalid; `field` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def from_fields(
    *,
    name: str | None = None,
    cron: str | None = None,
    interval: str | None = None,
    timezone: str = "UTC",
    catchup: str = "one",
    jitter: str | None = None,
    meta: dict[str, str] | None = None,
) -> ScheduleSpec:
    """One schedule from separate fields (`schedule add --cron …`, POST /schedules?cron=…),
    validated as a `schedules:` entry; ScheduleFieldError names the field at fault."""
    entry: dict[str, Any] = {"timezone": timezone, "catchup": catchup}
    for key, value in (("name", name), ("cron", cron), ("interval", interval), ("jitter", jitter)):
        if value is not None:
            entry[key] = value
    if meta:
        entry["meta"] = meta
    try:
        return ScheduleSpec.model_validate(entry)
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise ScheduleFieldError(str(exc), "") from None
        first = errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if not where and message.startswith("jitter:"):  # a rule across fields, about jitter
            where, message = "jitter", message.removeprefix("jitter:").strip()
        raise ScheduleFieldError(message, where) from None


def describe(rec: ScheduleRecord) -> dict[str, Any]:
    """A schedule as `schedule list --json` and GET /schedules show it."""
    entry = json.loads(rec.cadence)
    when = entry["cron"] or f"every {entry['interval']:g}s"
    if entry["cron"] and entry["timezone"] != "UTC":
        when += f" ({entry['timezone']})"
    return {
        "id": rec.id,
        "workflow": rec.workflow,
        "when": when,
        "cron": entry["cron"],
        "interval": entry["interval"],
        "timezone": entry["timezone"],
        "catchup": entry["catchup"],
        "jitter": entry["jitter"],
        "meta": entry["meta"],
        "paused": rec.paused,
        "next_slot": slot_text(rec.next_slot),
        "last_slot": None if rec.last_slot is None else slot_text(rec.last_slot),
        "last_run": rec.last_run,
        "runs": rec.fired,
        "error": rec.last_error,
    }


def record(
    schedule_id: str, spec: WorkflowSpec, entry: ScheduleSpec, now: float, paused: bool = False
) -> ScheduleRecord:
    """A new schedule row: its first slot is the first after `now`."""
    first = entry.cadence().next_after(now)
    return ScheduleRecord(
        id=schedule_id,
        workflow=spec.name,
        spec=spec.model_dump_json(exclude={"schedules"}),
        cadence=entry.model_dump_json(),
        paused=paused,
        next_slot=first,
        next_fire=first + jitter_offset(schedule_id, first, entry.jitter),
        created_at=now,
        updated_at=now,
    )


def register(store: Store, spec: WorkflowSpec, *, now: float | None = None) -> list[ScheduleRecord]:
    """Add (or replace) the schedules of `spec` in the store; returns their rows (a replaced
    schedule that was paused stays paused)."""
    now = time.time() if now is None else now
    rows = [record(sid, spec, entry, now) for sid, entry in entries(spec)]
    for row in rows:
        store.put_schedule(row)
    return [store.get_schedule(row.id) or row for row in rows]


def set_paused(store: Store, schedule_id: str, paused: bool, now: float | None = None) -> bool:
    """Pause, or resume from the first slot after now (slots missed while paused stay missed);
    False if no such schedule."""
    now = time.time() if now is None else now
    rec = store.get_schedule(schedule_id)
    if rec is None:
        return False
    if not paused and not rec.paused:
        return True  # already active: its waiting slot stays
    entry = ScheduleSpec.model_validate_json(rec.cadence)
    next_slot = rec.next_slot if paused else entry.cadence().next_after(now)
    next_fire = next_slot + jitter_offset(schedule_id, next_slot, entry.jitter)
    return bool(store.pause_schedule(schedule_id, paused, next_slot, next_fire, now))


class Scheduler:
    """Fires the due schedules of one store; one per process, any number per database."""

    def __init__(
        self,
        store: Store,
        submit: Submit,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
        batch: int | None = None,
        submit_many: SubmitMany | None = None,
    ) -> None:
        self.store = store
        self.submit = submit
        self.submit_many = submit_many
        self.owner = (
            owner or f"scheduler-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.clock = clock
        self.lease = lease
        self.batch = batch or int(getattr(store, "schedules_batch", BATCH))
        self._specs: dict[tuple[str, int], tuple[WorkflowSpec, ScheduleSpec]] = {}

    def tick(self, on_fired: Callable[[Fired], None] | None = None) -> list[Fired]:
        """One pass: claim what is due, fire its slots, move each schedule on. Claims are
        small (`batch`) and each claim's runs are stored together (`submit_many`: one commit);
        a pass stops after PASS_BUDGET seconds so a stop request is heard."""
        fired: list[Fired] = []
        started = time.monotonic()
        for _ in range(MAX_BATCHES):
            now = self.clock()
            claimed = self.store.claim_schedules(self.owner, now, self.lease, self.batch)
            if claimed:
                try:
                    done = self._fire(claimed, now)
                except ReviewflowError as exc:  # the store failed: the leases hand them on
                    log.warning("schedule.fire_failed", schedules=len(claimed), error=str(exc))
                    break
                fired.extend(done)
                if on_fired is not None:
                    for f in done:
                        on_fired(f)
            if len(claimed) < self.batch or time.monotonic() - started > PASS_BUDGET:
                break
        return fired

    def _parsed(self, rec: ScheduleRecord) -> tuple[WorkflowSpec, ScheduleSpec]:
        # keyed by what was stored, not updated_at (every advance changes that)
        key = (rec.id, hash((rec.spec, rec.cadence)))
        held = self._specs.get(key)
        if held is None:
            from .config import validate_spec

            spec = validate_spec(json.loads(rec.spec))
            held = self._specs[key] = (spec, ScheduleSpec.model_validate_json(rec.cadence))
            if len(self._specs) > 4 * MAX_BATCHES * self.batch:
                self._specs.clear()
                self._specs[key] = held
        return held

    def _fire(self, claimed: list[ScheduleRecord], now: float) -> list[Fired]:
        """Plan every claimed schedule, store all their runs at once, then advance them. One
        bad schedule (a stored workflow this version cannot read, a run that cannot be stored)
        gets its error recorded and moves on; the others of its batch fire."""
        plans: list[_Plan] = []
        moves: list[Move] = []
        for rec in claimed:
            try:
                plans.append(self._plan(rec, now))
            except Exception as exc:
                moves.append(self._failed(rec, now, f"cannot read the schedule: {_line(exc)}"))
        firing = [p for p in plans if p.slots]
        fired: list[Fired] = []
        results: list[tuple[str, bool]] | None = None
        error: Exception | None = None
        if firing and self.submit_many is not None:  # all at once: one commit
            try:
                results = list(self.submit_many([r for p in firing for r in p.requests]))
            except Exception as exc:
                error = exc
        if results is not None:
            stored = self.clock()
            at = 0
            for p in firing:
                mine = p.fired(results[at : at + len(p.slots)], stored)
                at += len(p.slots)
                fired.extend(mine)
                moves.append(p.move(mine))
        elif firing:  # each schedule on its own: runs stored one by one, or the batch failed
            failed = self._one_by_one(firing, error, fired, moves)
            if len(failed) == len(firing) and all(
                isinstance(e, ReviewflowError) for _, e in failed
            ):
                raise failed[0][1]  # all failed alike: the store (the leases hand them on)
            for p, why in failed:
                text = f"cannot store the run of slot {slot_text(p.slots[0])}: {_line(why)}"
                moves.append(self._failed(p.rec, now, text, p.entry))
        moves.extend(p.move([]) for p in plans if not p.slots)
        self.store.advance_schedules(self.owner, moves, now)
        for f in fired:
            log.info(
                "schedule.fired",
                schedule=f.schedule,
                slot=slot_text(f.slot),
                run_id=f.run_id,
                created=f.created,
                late_ms=round(f.late * 1000, 1),
            )
        return fired

    def _one_by_one(
        self,
        firing: list[_Plan],
        error: Exception | None,
        fired: list[Fired],
        moves: list[Move],
    ) -> list[tuple[_Plan, Exception]]:
        """Each schedule's runs on their own (`error`: the batch of them all failed so), to
        find the one(s) at fault. Returns those that failed. The first two failing with a
        store error, before any success, are the store's (a database down), not two bad
        schedules: that error is raised, without a wait for the store per schedule."""
        if error is not None and len(firing) < 2:
            return [(p, error) for p in firing]  # tried alone already
        failed: list[tuple[_Plan, Exception]] = []
        for p in firing:
            try:
                done = self._submit(p.requests)
            except Exception as again:
                failed.append((p, again))
                if (
                    len(failed) == 2
                    and not fired
                    and all(isinstance(e, ReviewflowError) for _, e in failed)
                ):
                    raise again
                continue
            mine = p.fired(done, self.clock())
            fired.extend(mine)
            moves.append(p.move(mine))
        return failed

    def _plan(self, rec: ScheduleRecord, now: float) -> _Plan:
        spec, entry = self._parsed(rec)
        jitter = entry.jitter
        first = rec.next_slot
        if first + jitter_offset(rec.id, first, jitter) > now:  # jittered: not yet
            return _Plan(rec, entry, spec, [], first, first + jitter_offset(rec.id, first, jitter))
        todo = plan(
            entry.cadence(),
            entry.catchup,
            first,
            now,
            partial(jitter_offset, rec.id, jitter=jitter),
        )
        if todo.skipped:
            log.info("schedule.missed", schedule=rec.id, slots=todo.skipped, catchup=entry.catchup)
        following = todo.next_slot
        return _Plan(
            rec,
            entry,
            spec,
            list(todo.fire),
            following,
            following + jitter_offset(rec.id, following, jitter),
        )

    def _failed(
        self, rec: ScheduleRecord, now: float, error: str, entry: ScheduleSpec | None = None
    ) -> Move:
        """Record why the schedule could not fire and move it on: to its next slot after now,
        or, if its cadence cannot be read, an hour on (said once an hour, not every pass)."""
        log.error("schedule.failed", schedule=rec.id, error=error)
        try:
            if entry is None:
                entry = ScheduleSpec.model_validate_json(rec.cadence)
            nxt = entry.cadence().next_after(now)
            fire_at = nxt + jitter_offset(rec.id, nxt, entry.jitter)
        except Exception:
            nxt = fire_at = Cadence(interval=3600.0).next_after(now)
        return (rec, nxt, fire_at, None, None, 0, error)

    def _submit(
        self, requests: list[tuple[WorkflowSpec, str, dict[str, str]]]
    ) -> list[tuple[str, bool]]:
        if self.submit_many is not None:
            return list(self.submit_many(requests))
        return [self.submit(spec, rid, meta) for spec, rid, meta in requests]

    def wait_time(self) -> float:
        """Seconds until the next pass is worth doing (at most POLL)."""
        due = self.store.next_schedule_fire()
        if due is None:
            return POLL
        return max(0.0, min(POLL, due - self.clock()))

    def run(self, stop: threading.Event, on_fired: Callable[[Fired], None] | None = None) -> None:
        """Pass after pass until `stop` is set (a thread's body)."""
        while not stop.is_set():
            try:
                self.tick(on_fired)
                wait = self.wait_time()
            except Exception as exc:  # a scheduler outlives one bad pass
                _pass_failed(exc)
                wait = POLL
            stop.wait(wait)

    def start(
        self, on_fired: Callable[[Fired], None] | None = None
    ) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(stop, on_fired), name="reviewflow-scheduler", daemon=True
        )
        thread.start()
        return thread, stop


async def run_async(
    scheduler: Scheduler, stop: asyncio.Event, on_created: Callable[[str], object]
) -> None:
    """The scheduler on an event loop: passes on a thread, `on_created(run_id)` on the loop
    for every new run (the server and `reviewflow scheduler` start executing it there)."""
    while not stop.is_set():
        try:
            fired = await asyncio.to_thread(scheduler.tick)
            for f in fired:
                if f.created:
                    on_created(f.run_id)
            wait = await asyncio.to_thread(scheduler.wait_time)
        except Exception as exc:  # a scheduler outlives one bad pass
            _pass_failed(exc)
            wait = POLL
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


def _pass_failed(exc: Exception) -> None:
    """Say why a pass failed and go on: the store's errors are expected (a database restart),
    anything else is a bug worth an error line, not a scheduler thread that silently ends."""
    if isinstance(exc, ReviewflowError):
        log.warning("schedule.pass_failed", error=str(exc))
    else:
        log.error("schedule.pass_failed", error=f"{type(exc).__name__}: {exc}")
