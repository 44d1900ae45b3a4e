"""Which instants a schedule fires at: cron in a time zone across DST, intervals, catchup after
downtime, jitter (cadence.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reviewflow.cadence import (
    MAX_CATCHUP,
    Cadence,
    check_cron,
    jitter_offset,
    plan,
    slot_id,
    slot_text,
    zone,
)

NY = ZoneInfo("America/New_York")


def ts(*parts: int, tz: ZoneInfo | None = None) -> float:
    return datetime(*parts, tzinfo=tz or UTC).timestamp()


def slots(cadence: Cadence, start: float, end: float) -> list[float]:
    out, t = [], start
    while (t := cadence.next_after(t)) <= end:
        out.append(t)
    return out


def test_cron_in_utc_and_with_seconds_first() -> None:
    weekdays = Cadence(cron="0 3 * * 1-5")
    # 2026-12-04 is a Friday: next is Monday 03:00.
    assert weekdays.next_after(ts(2026, 12, 4, 3, 0)) == ts(2026, 12, 7, 3, 0)
    assert weekdays.next_after(ts(2026, 12, 4, 2, 59, 59)) == ts(2026, 12, 4, 3, 0)
    every10s = Cadence(cron="*/10 * * * * *")
    assert slots(every10s, ts(2026, 1, 1), ts(2026, 1, 1, 0, 0, 30)) == [
        ts(2026, 1, 1, 0, 0, 10),
        ts(2026, 1, 1, 0, 0, 20),
        ts(2026, 1, 1, 0, 0, 30),
    ]


def test_a_skipped_hour_fires_once_and_a_repeated_hour_fires_once() -> None:
    daily = Cadence(cron="30 2 * * *", timezone="America/New_York")
    # Spring forward (2026-03-08 02:00 -> 03:00): 02:30 does not exist; it fires once, after.
    spring = slots(daily, ts(2026, 3, 7, 12, 0, tz=NY), ts(2026, 3, 9, 12, 0, tz=NY))
    assert spring == [ts(2026, 3, 8, 3, 0, tz=NY), ts(2026, 3, 9, 2, 30, tz=NY)]
    at_130 = Cadence(cron="30 1 * * *", timezone="America/New_York")
    # Fall back (2026-11-01 02:00 -> 01:00): 01:30 happens twice, fires once.
    fall = slots(at_130, ts(2026, 10, 31, 12, 0, tz=NY), ts(2026, 11, 2, 12, 0, tz=NY))
    assert [datetime.fromtimestamp(s, NY).strftime("%m-%d %H:%M") for s in fall] == [
        "11-01 01:30",
        "11-02 01:30",
    ]
    hourly = Cadence(cron="0 * * * *", timezone="America/New_York")
    night = slots(hourly, ts(2026, 11, 1, 0, 30, tz=NY), ts(2026, 11, 1, 3, 30, tz=NY))
    walls = [datetime.fromtimestamp(s, NY).strftime("%H:%M") for s in night]
    assert walls == ["01:00", "02:00", "03:00"]  # the second 01:00 is not fired again


def test_intervals_are_epoch_aligned_and_the_same_everywhere() -> None:
    every30 = Cadence(interval=30.0)
    assert every30.next_after(ts(2026, 1, 1, 0, 0, 10)) == ts(2026, 1, 1, 0, 0, 30)
    assert every30.next_after(ts(2026, 1, 1, 0, 0, 30)) == ts(2026, 1, 1, 0, 1, 0)
    assert Cadence(interval=7200.0, timezone="Asia/Tokyo").next_after(0.0) == 7200.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"cron": "* * * * *", "interval": 60.0}, "exactly one"),
        ({"interval": 0.5}, "at least 1"),
        ({"interval": float("inf")}, "at least 1"),
    ],
)
def test_a_cadence_is_one_of_cron_or_interval(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cadence(**kwargs)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "invalid cron"),
        ("* * *", "3 fields"),
        ("* * * * * * *", "7 fields"),
        ("x" * 300, "at most 200"),
        ("0 0 31 2 *", "invalid cron"),  # February 31st never comes
    ],
)
def test_bad_cron_is_named(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_cron(expr)


def test_cron_blanks_are_normalised_and_zones_checked() -> None:
    assert check_cron("  0   3 * *  1-5 ") == "0 3 * * 1-5"
    assert zone("Europe/Paris").key == "Europe/Paris"
    for bad in ("Mars/Base", "", "../etc/passwd", "/etc/localtime", "x" * 100):
        with pytest.raises(ValueError, match="unknown time zone"):
            zone(bad)


def test_catchup_after_downtime() -> None:
    minute = Cadence(cron="* * * * *")
    start = ts(2026, 1, 1, 0, 0)
    now = start + 5 * 60 + 20  # five slots missed (00:00 … 00:04), 00:05 is 20 s late
    everything = plan(minute, "all", start, now)
    assert everything.fire == [start + 60 * i for i in range(6)]
    assert everything.next_slot == start + 6 * 60
    latest = plan(minute, "one", start, now)
    assert latest.fire == [start + 300] and latest.skipped == 5
    assert latest.next_slot == start + 360
    # skip: the latest slot is 20 s late, within its period (60 s): it fires, the rest do not.
    assert plan(minute, "skip", start, now).fire == [start + 300]
    # An hourly slot 61 s late is dropped too (the grace is the period, at most a minute).
    hourly = Cadence(cron="0 * * * *")
    late = plan(hourly, "skip", start, start + 5 * 3600 + 61)
    assert late.fire == [] and late.skipped == 6 and late.next_slot == start + 6 * 3600
    # Not due yet: nothing happens.
    assert plan(minute, "all", start + 60, start + 30).fire == []


def test_catchup_all_is_bounded_per_pass_and_one_finds_the_latest_far_away() -> None:
    second = Cadence(interval=1.0)
    far = MAX_CATCHUP * 3 + 0.5
    first_pass = plan(second, "all", 1.0, far)
    assert len(first_pass.fire) == MAX_CATCHUP and first_pass.next_slot == MAX_CATCHUP + 1.0
    assert plan(second, "one", 1.0, far).fire == [float(MAX_CATCHUP * 3)]
    hourly = Cadence(cron="0 * * * *")
    start = ts(2026, 1, 1)
    now = start + 3600 * (MAX_CATCHUP + 10) + 5
    assert plan(hourly, "one", start, now).fire == [start + 3600 * (MAX_CATCHUP + 10)]


def test_jitter_is_fixed_per_slot_and_bounded() -> None:
    offsets = {jitter_offset("nightly", float(s), 30.0) for s in range(200)}
    assert all(0 <= o < 30 for o in offsets) and len(offsets) > 150
    assert jitter_offset("nightly", 5.0, 30.0) == jitter_offset("nightly", 5.0, 30.0)
    assert jitter_offset("nightly", 5.0, 0.0) == 0.0


def test_slots_as_text_and_in_run_ids() -> None:
    slot = ts(2026, 12, 2, 3, 0)
    assert slot_text(slot) == "2026-12-02T03:00:00Z"
    assert slot_id(slot) == "20261202T030000Z"
    assert slot_text(slot + 0.25) == "2026-12-02T03:00:00.250Z"
    assert slot_id(slot + 0.25) == "20261202T030000250Z"


def test_the_jitter_offset_is_the_same_for_a_slot_read_back_as_an_int() -> None:
    # SQLite returns a whole-second REAL slot as an int: the offset must not change with it
    assert jitter_offset("tick", 1_800_000_000, 600.0) == jitter_offset(
        "tick", 1_800_000_000.0, 600.0
    )


def test_the_hosts_own_zone_is_refused() -> None:
    # `localtime` is each host's /etc/localtime: schedulers on hosts in different zones
    # would compute different slots and each fire its own
    for host_dependent in ("localtime", "posix/localtime", "right/localtime", "posixrules"):
        with pytest.raises(ValueError, match="unknown time zone"):
            zone(host_dependent)
