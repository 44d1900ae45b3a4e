"""The schedules table: SQL shared by SQLite, PostgreSQL and the memory store's private SQLite.

A row is one schedule of a stored workflow: its spec and cadence (JSON), whether it is paused, the
first slot not fired yet (`next_slot`) and when to look at it again (`next_fire`: the slot plus its
jitter, or the end of a claim's lease). A scheduler *claims* due rows (`next_fire <= now`): the
claim names the owner and pushes `next_fire` to the end of a lease, so a scheduler that dies
mid-pass leaves its rows due again when the lease ends, and two schedulers never work on the same
row at once (SQLite: one writer; PostgreSQL: FOR UPDATE SKIP LOCKED). It then fires the planned
slots — runs whose ids derive from schedule + slot, so a slot fired twice after a crash is still
one run — and *advances* the row, guarded by owner and `next_slot`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .outbox import sql  # the same SQL dialect rule as the outbox's

_T = TypeVar("_T")

COLUMNS = (
    "id, workflow, spec, cadence, paused, next_slot, next_fire, last_slot, last_run, fired,"
    " lease_owner, lease_until, created_at, updated_at, last_error"
)


@dataclass(frozen=True)
class ScheduleRecord:
    id: str
    workflow: str
    spec: str  # the workflow (WorkflowSpec JSON)
    cadence: str  # the schedule (ScheduleSpec JSON)
    paused: bool
    next_slot: float
    next_fire: float
    last_slot: float | None = None
    last_run: str | None = None
    fired: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_error: str | None = None  # why its last slot could not fire (None: it fired)

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> ScheduleRecord:
        values = list(row)
        values[4] = bool(values[4])
        return cls(*values)


Move = tuple[ScheduleRecord, float, float, float | None, str | None, int, str | None]
"""A claimed schedule moved on: (schedule, next slot, next fire, last slot fired, its run,
runs created, why it could not fire or None)."""

_PUT = (
    "INSERT INTO schedules (" + COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, NULL,"
    " NULL, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET workflow = excluded.workflow,"
    " spec = excluded.spec, cadence = excluded.cadence, paused = schedules.paused,"
    " next_slot = excluded.next_slot, next_fire = excluded.next_fire,"
    " lease_owner = NULL, lease_until = NULL, updated_at = excluded.updated_at, last_error = NULL"
)
_GET = "SELECT " + COLUMNS + " FROM schedules WHERE id = ?"
_LIST = "SELECT " + COLUMNS + " FROM schedules ORDER BY id"
_PAUSE = (
    "UPDATE schedules SET paused = ?, next_slot = ?, next_fire = ?, lease_owner = NULL,"
    " lease_until = NULL, updated_at = ? WHERE id = ?"
)
_REMOVE = "DELETE FROM schedules WHERE id = ?"
_CLAIM = (
    "UPDATE schedules SET lease_owner = ?, lease_until = ?, next_fire = ?"
    " WHERE id IN (SELECT id FROM schedules WHERE paused = 0 AND next_fire <= ?"
    " ORDER BY next_fire LIMIT ?{lock}) RETURNING " + COLUMNS
)
_ADVANCE = (
    "UPDATE schedules SET next_slot = ?, next_fire = ?, last_slot = coalesce(?, last_slot),"
    " last_run = coalesce(?, last_run), fired = fired + ?, lease_owner = NULL,"
    " lease_until = NULL, updated_at = ?, last_error = ? WHERE id = ? AND lease_owner = ?"
    " AND next_slot = ?"
)
_ADVANCE_PG = (
    "UPDATE schedules s SET next_slot = v.next_slot, next_fire = v.next_fire,"
    " last_slot = coalesce(v.last_slot, s.last_slot), last_run = coalesce(v.last_run, s.last_run),"
    " fired = s.fired + v.fired, lease_owner = NULL, lease_until = NULL, updated_at = %s,"
    " last_error = v.error FROM json_to_recordset(%s::json) AS v(id text,"
    " old_slot double precision, next_slot double precision, next_fire double precision,"
    " last_slot double precision, last_run text, fired integer, error text)"
    " WHERE s.id = v.id AND s.lease_owner = %s AND s.next_slot = v.old_slot RETURNING s.id"
)
_NEXT = "SELECT min(next_fire) FROM schedules WHERE paused = 0"


def put(conn: Any, rec: ScheduleRecord, postgres: bool = False) -> None:
    """Add the schedule, or replace its workflow and cadence (a re-added file wins; a paused
    schedule stays paused)."""
    conn.execute(
        sql(_PUT, postgres),
        (
            rec.id,
            rec.workflow,
            rec.spec,
            rec.cadence,
            int(rec.paused),
            rec.next_slot,
            rec.next_fire,
            rec.created_at,
            rec.updated_at,
        ),
    )


def get(conn: Any, schedule_id: str, postgres: bool = False) -> ScheduleRecord | None:
    row = conn.execute(sql(_GET, postgres), (schedule_id,)).fetchone()
    return None if row is None else ScheduleRecord.of(row)


def listing(conn: Any, postgres: bool = False) -> list[ScheduleRecord]:
    return [ScheduleRecord.of(r) for r in conn.execute(sql(_LIST, postgres)).fetchall()]


def pause(
    conn: Any,
    schedule_id: str,
    paused: bool,
    next_slot: float,
    next_fire: float,
    now: float,
    postgres: bool = False,
) -> bool:
    args = (int(paused), next_slot, next_fire, now, schedule_id)
    return bool(conn.execute(sql(_PAUSE, postgres), args).rowcount)


def remove(conn: Any, schedule_id: str, postgres: bool = False) -> bool:
    return bool(conn.execute(sql(_REMOVE, postgres), (schedule_id,)).rowcount)


def claim(
    conn: Any, owner: str, now: float, lease: float, limit: int, postgres: bool = False
) -> list[ScheduleRecord]:
    args = (owner, now + lease, now + lease, now, limit)
    return [ScheduleRecord.of(r) for r in conn.execute(sql(_CLAIM, postgres), args).fetchall()]


def advance(
    conn: Any,
    rec: ScheduleRecord,
    owner: str,
    next_slot: float,
    next_fire: float,
    last_slot: float | None,
    last_run: str | None,
    fired: int,
    now: float,
    error: str | None = None,
    postgres: bool = False,
) -> bool:
    """Move the claimed schedule on, recording why it could not fire (`error`) or that it could
    (None); False if the claim was lost (another took it over)."""
    args = (
        next_slot, next_fire, last_slot, last_run, fired, now, error, rec.id, owner, rec.next_slot
    )  # fmt: skip
    return bool(conn.execute(sql(_ADVANCE, postgres), args).rowcount)


def next_fire(conn: Any, postgres: bool = False) -> float | None:
    row = conn.execute(sql(_NEXT, postgres)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


class ScheduleMethods:
    """The stores' schedule methods; a store gives `_schedules_tx` (a transaction) and
    `_schedules_pg` (whether its SQL is PostgreSQL's)."""

    _schedules_pg = False

    def _schedules_tx(self, fn: Callable[[Any], _T]) -> _T:  # pragma: no cover - per store
        raise NotImplementedError

    def _schedules_read(self, fn: Callable[[Any], _T]) -> _T:
        """A read; stores whose transactions take a write lock read outside one."""
        return self._schedules_tx(fn)

    def _schedules_lease_tx(self, fn: Callable[[Any], _T]) -> _T:
        """A claim's or an advance's transaction. Neither needs to survive a crash of the
        database: a claim lost is a schedule due again, an advance lost is a slot fired again
        that finds its run stored (created False); so a store may commit them without waiting
        for the disk (a later durable commit writes them anyway)."""
        return self._schedules_tx(fn)

    _schedules_look_first = True
    """Whether a claim looks for a due schedule before it writes: on SQLite a claim takes the
    database's one write lock, on PostgreSQL it is one UPDATE that may change no row."""

    def put_schedule(self, rec: ScheduleRecord) -> None:
        """Add the schedule or replace it (same id)."""
        self._schedules_tx(lambda c: put(c, rec, self._schedules_pg))

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return self._schedules_read(lambda c: get(c, schedule_id, self._schedules_pg))

    def list_schedules(self) -> list[ScheduleRecord]:
        return self._schedules_read(lambda c: listing(c, self._schedules_pg))

    def pause_schedule(
        self, schedule_id: str, paused: bool, next_slot: float, next_fire: float, now: float
    ) -> bool:
        """Pause, or resume from `next_slot`; False if there is no such schedule."""
        return self._schedules_tx(
            lambda c: pause(c, schedule_id, paused, next_slot, next_fire, now, self._schedules_pg)
        )

    def remove_schedule(self, schedule_id: str) -> bool:
        return self._schedules_tx(lambda c: remove(c, schedule_id, self._schedules_pg))

    def claim_schedules(
        self, owner: str, now: float, lease: float, limit: int
    ) -> list[ScheduleRecord]:
        """Due schedules, claimed by `owner` for `lease` seconds."""
        if self._schedules_look_first and ((due := self.next_schedule_fire()) is None or due > now):
            return []  # nothing due: no write lock taken
        return self._schedules_lease_tx(
            lambda c: claim(c, owner, now, lease, limit, self._schedules_pg)
        )

    def advance_schedules(
        self,
        owner: str,
        moves: list[Move],
        now: float,
    ) -> int:
        """Move claimed schedules on, in one transaction (guarded by owner and slot). Returns how
        many were still this owner's."""

        def go(c: Any) -> int:
            if self._schedules_pg:  # one statement: a network round trip per row adds up
                rows = [
                    {
                        "id": rec.id,
                        "old_slot": rec.next_slot,
                        "next_slot": nxt,
                        "next_fire": fire,
                        "last_slot": last,
                        "last_run": run,
                        "fired": n,
                        "error": error,
                    }
                    for rec, nxt, fire, last, run, n, error in moves
                ]
                return len(c.execute(_ADVANCE_PG, (now, json.dumps(rows), owner)).fetchall())
            return sum(
                advance(c, rec, owner, nxt, fire, last, run, n, now, error)
                for rec, nxt, fire, last, run, n, error in moves
            )

        return self._schedules_lease_tx(go) if moves else 0

    def next_schedule_fire(self) -> float | None:
        """When the earliest active schedule wants looking at; None without one."""
        return self._schedules_read(lambda c: next_fire(c, self._schedules_pg))
