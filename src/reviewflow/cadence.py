"""When a schedule fires: pure time arithmetic, no I/O (the scheduler and the spec use it).

A cadence is a cron expression in a time zone — five fields, or six with the seconds first
(`*/10 * * * * *` is every ten seconds) — or a fixed interval. Slots are instants (UTC
timestamps); a slot is fired at most once, so everything here is about which slots exist:

- cron follows the wall clock of its zone (croniter, zoneinfo). When a DST change skips an hour,
  the times in it fire at the first instant after the gap (croniter's choice), once. When an
  hour repeats, only its first occurrence fires: the wall clock never goes back for a schedule,
  so `30 1 * * *` runs once on the night clocks fall back, not twice.
- an interval is in absolute time, its slots the multiples of it since the Unix epoch, so every
  process computes the same slots without talking to the others.

After downtime, `catchup` decides what the missed slots become: `all` fires each (at most
MAX_CATCHUP per pass), `one` fires only the latest, `skip` fires a slot only if it is not late
by more than its period (at most a minute): missed ones are dropped. `jitter` delays each
slot's firing by a fixed pseudo-random offset in [0, jitter) derived from the schedule and the
slot, the same in every process, so runs of many schedules on one slot spread out while the
slot (the run's identity) stays the nominal time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Catchup = Literal["skip", "one", "all"]
MAX_CATCHUP = 1000
"""Slots `catchup: all` fires in one pass; the rest follow on the next passes."""
MAX_SKIP_GRACE = 60.0
MIN_INTERVAL = 1.0
MAX_SEARCH = 4000
"""Candidates looked at to find a cron slot (a repeated hour skips a few): bounded work."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError naming it when unknown."""
    bad = f"unknown time zone {name!r}: use an IANA name such as Europe/Paris"
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")):
        raise ValueError(bad)
    if name.rsplit("/", 1)[-1].lower() in ("localtime", "posixrules"):
        raise ValueError(bad)  # the host's own zone: every host would have its own slots
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(bad) from None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_cron(expr: str) -> str:
    """`expr` with its blanks normalised if it is a valid 5- or 6-field cron; else ValueError."""
    from croniter import croniter

    if not isinstance(expr, str) or len(expr) > 200:
        raise ValueError("cron must be a text of at most 200 characters")
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron {expr!r} has {len(fields)} fields: use 5 (minute hour day month weekday)"
            " or 6 (second first)"
        )
    text = " ".join(fields)
    try:
        it = croniter(text, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=len(fields) == 6)
        it.get_next(datetime)
    except Exception as exc:  # croniter raises several types (CroniterBadCronError, …)
        raise ValueError(f"invalid cron {expr!r}: {exc}") from None
    return text


@dataclass(frozen=True)
class Cadence:
    """Which instants are slots: `cron` in `timezone`, or every `interval` seconds."""

    cron: str | None = None
    interval: float | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron and interval")
        if self.interval is not None and not (
            math.isfinite(self.interval) and self.interval >= MIN_INTERVAL
        ):
            raise ValueError(f"interval must be at least {MIN_INTERVAL:g} s")

    def next_after(self, t: float) -> float:
        """The first slot strictly after instant `t`."""
        if self.interval is not None:
            return (math.floor(t / self.interval) + 1) * self.interval
        return self._cron_after(t)

    def _cron_after(self, t: float) -> float:
        from croniter import croniter

        assert self.cron is not None
        tz = zone(self.timezone)
        start = datetime.fromtimestamp(t, tz)
        seconds = len(self.cron.split()) == 6
        it = croniter(self.cron, start, second_at_beginning=seconds)
        for _ in range(MAX_SEARCH):
            slot: datetime = it.get_next(datetime)
            if slot.timestamp() <= t:
                continue
            if _repeated(slot, tz):
                continue  # the second pass of a repeated hour: fired in the first
            return slot.timestamp()
        raise ValueError(f"cron {self.cron!r} has no slot after {start.isoformat()}")

    def period(self, t: float) -> float:
        """The gap between the two slots after `t` (a cron's period there)."""
        first = self.next_after(t)
        return self.next_after(first) - first


def _repeated(slot: datetime, tz: ZoneInfo) -> bool:
    """Whether `slot` is the second occurrence of its wall-clock time (clocks fell back)."""
    wall = slot.replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0)
    return first.timestamp() != slot.timestamp()


def jitter_offset(schedule_id: str, slot: float, jitter: float) -> float:
    """A fixed delay in [0, jitter) for this schedule and slot, equal in every process."""
    if jitter <= 0:
        return 0.0
    # float(): SQLite hands a whole-second slot back as an int, whose repr differs
    digest = hashlib.sha256(f"{schedule_id}\0{float(slot)!r}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * jitter


@dataclass(frozen=True)
class Plan:
    """One pass over a due schedule: the slots to fire now, and the next slot to wait for."""

    fire: list[float] = field(default_factory=list)
    next_slot: float = 0.0
    skipped: int = 0


def plan(
    cadence: Cadence,
    catchup: Catchup,
    next_slot: float,
    now: float,
    offset: Callable[[float], float] | None = None,
) -> Plan:
    """What to do at `now` with a schedule whose first unfired slot is `next_slot`; `offset`
    gives a slot's jitter (skip measures lateness from the slot's firing time)."""
    if next_slot > now:
        return Plan([], next_slot)
    due: list[float] = []
    slot = next_slot
    while slot <= now and len(due) <= MAX_CATCHUP:
        due.append(slot)
        slot = cadence.next_after(slot)
    if catchup == "all":
        if len(due) > MAX_CATCHUP:
            return Plan(due[:MAX_CATCHUP], due[MAX_CATCHUP])
        return Plan(due, slot)
    following = cadence.next_after(now)
    latest = due[-1] if slot > now else _latest_before(cadence, now)
    fires_at = latest + (offset(latest) if offset is not None else 0.0)
    if catchup == "skip" and now - fires_at > _grace(cadence, latest):
        return Plan([], following, skipped=len(due))
    return Plan([latest], following, skipped=len(due) - 1)


def _grace(cadence: Cadence, slot: float) -> float:
    period = cadence.interval if cadence.interval is not None else cadence.period(slot)
    return min(period, MAX_SKIP_GRACE)


def _latest_before(cadence: Cadence, now: float) -> float:
    """The last slot at or before `now`, after a downtime longer than MAX_CATCHUP slots."""
    if cadence.interval is not None:
        return math.floor(now / cadence.interval) * cadence.interval
    back = 60.0
    for _ in range(40):  # looks back up to ~2**40 minutes: any cron has a slot in there
        found = None
        slot = cadence.next_after(now - back)
        while slot <= now:
            found, slot = slot, cadence.next_after(slot)
        if found is not None:
            return found
        back *= 2
    raise ValueError("no slot found before now")


def slot_text(slot: float) -> str:
    """The slot as ISO 8601 in UTC (`2026-12-02T03:00:00Z`; milliseconds when it has some)."""
    moment = datetime.fromtimestamp(slot, UTC)
    text = moment.isoformat(timespec="milliseconds" if slot % 1 else "seconds")
    return text.replace("+00:00", "Z")


def slot_id(slot: float) -> str:
    """The slot as a run id part: `20261202T030000Z` (`20261202T030000250Z` with ms)."""
    moment = datetime.fromtimestamp(slot, UTC)
    millis = f"{round((slot % 1) * 1000):03d}" if slot % 1 else ""
    return moment.strftime("%Y%m%dT%H%M%S") + millis + "Z"
