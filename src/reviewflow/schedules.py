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

from .cadence import Cadence, jitter_offset, plan, slot_id, slot_text
from .errors import ReviewflowError
from .logs import log
from .spec import ScheduleSpec, WorkflowSpec
from .store.base import Store
from .store.schedules import ScheduleRecord

LEASE = 30.0
"""Seconds a claimed schedule is held; a scheduler that died leaves it due again after this."""
POLL = 1.0
"""Longest sleep between passes: schedules added by other processes are seen within this."""
BATCH = 20
"""Schedules claimed at a time: small claims let several schedulers share one slot's work."""
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
        batch: int = BATCH,
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
        self.batch = batch
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
        """Plan every claimed schedule, store all their runs at once, then advance them."""
        wanted: list[tuple[ScheduleRecord, float, float]] = []  # (schedule, slot, its offset)
        requests: list[tuple[WorkflowSpec, str, dict[str, str]]] = []
        moves: list[tuple[ScheduleRecord, float, float, float | None]] = []
        for rec in claimed:
            try:
                spec, entry = self._parsed(rec)
            except (ValueError, ReviewflowError) as exc:
                # A stored workflow this version cannot read: skip an hour, say so, go on.
                log.error("schedule.unreadable", schedule=rec.id, error=str(exc).splitlines()[0])
                later = Cadence(interval=3600.0).next_after(now)
                moves.append((rec, later, later, None))
                continue
            jitter = entry.jitter
            first = rec.next_slot
            if first + jitter_offset(rec.id, first, jitter) > now:  # jittered: not yet
                moves.append((rec, first, first + jitter_offset(rec.id, first, jitter), None))
                continue
            todo = plan(
                entry.cadence(),
                entry.catchup,
                first,
                now,
                partial(jitter_offset, rec.id, jitter=jitter),
            )
            if todo.skipped:
                log.info(
                    "schedule.missed", schedule=rec.id, slots=todo.skipped, catchup=entry.catchup
                )
            for slot in todo.fire:
                meta = {**entry.meta, "schedule": rec.id, "slot": slot_text(slot)}
                requests.append((spec, run_id_of(rec.id, slot), meta))
                wanted.append((rec, slot, jitter_offset(rec.id, slot, jitter)))
            following = todo.next_slot
            last = todo.fire[-1] if todo.fire else None
            moves.append(
                (rec, following, following + jitter_offset(rec.id, following, jitter), last)
            )
        results = self._submit(requests) if requests else []
        stored = self.clock()
        fired = [
            Fired(rec.id, slot, rid, created, stored - (slot + offset))
            for (rec, slot, offset), (rid, created) in zip(wanted, results, strict=True)
        ]
        created = {f.run_id for f in fired if f.created}
        self.store.advance_schedules(
            self.owner,
            [
                (
                    rec,
                    nxt,
                    fire_at,
                    last,
                    None if last is None else run_id_of(rec.id, last),
                    sum(1 for f in fired if f.schedule == rec.id and f.run_id in created),
                )
                for rec, nxt, fire_at, last in moves
            ],
            now,
        )
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
