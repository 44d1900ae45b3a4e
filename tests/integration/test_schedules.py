"""Schedules on every store: one run per slot whoever fires it, catchup after downtime, a
scheduler that dies mid-pass, pause/resume/remove, a bad schedule or a failing store; `serve`
and `worker` leaving schedules to a dedicated scheduler. The `schedule` and `scheduler`
commands themselves: test_cli_schedule.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reviewflow.cadence import slot_text
from reviewflow.schedules import Scheduler, register, run_id_of, set_paused
from reviewflow.store.base import Store
from rfhelpers import (
    break_schedule,
    engine_submitter,
    reviewflow_cmd,
    schedule_workflow,
    scheduled_runs,
    wait_for,
)

T0 = 1_800_000_000.0  # a round instant: multiples of 1, 2, 10 and 60 s


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_slot_fires_once_with_its_id_and_meta(store: Store) -> None:
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "2s", "meta": {"team": "web"}}), now=clock.now)
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    assert sched.tick() == []  # first slot is T0
    clock.now = T0 + 0.01
    (fired,) = sched.tick()
    assert fired.run_id == run_id_of("tick", T0) == "tick.20270115T080000Z"
    assert fired.created and fired.late == pytest.approx(0.01)
    assert sched.tick() == []  # the same slot never again
    run = store.get_run(fired.run_id)
    assert run is not None
    assert run.meta == {"team": "web", "schedule": "tick", "slot": slot_text(T0)}
    clock.now = T0 + 2.0
    assert [f.slot for f in sched.tick()] == [T0 + 2]
    row = store.get_schedule("tick")
    assert row is not None and row.fired == 2 and row.last_run == run_id_of("tick", T0 + 2)
    assert row.next_slot == T0 + 4


@pytest.mark.parametrize(("catchup", "expected"), [("all", 5), ("one", 1), ("skip", 0)])
def test_catchup_decides_what_downtime_becomes(store: Store, catchup: str, expected: int) -> None:
    clock = Clock(T0 - 1)
    register(store, schedule_workflow({"interval": "10s", "catchup": catchup}), now=clock.now)
    clock.now = T0 + 45.0  # down from T0 to T0+45: slots T0 … T0+40 missed, the last 5 s late
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    if catchup == "skip":
        clock.now = T0 + 55.0  # the last missed slot (T0+50) is 5 s late: still fires
        assert [f.slot for f in sched.tick()] == [T0 + 50]
        assert len(scheduled_runs(store, "tick")) == 1
        return
    fired = sched.tick()
    assert len(fired) == expected
    assert fired[-1].slot == T0 + 40
    assert store.get_schedule("tick").next_slot == T0 + 50  # type: ignore[union-attr]


def test_two_schedulers_never_fire_a_slot_twice(stores: Any) -> None:
    clock = Clock(T0 - 0.5)
    register(stores.main, schedule_workflow({"interval": "1s", "catchup": "all"}), now=clock.now)
    other = stores.second_handle()
    a = Scheduler(stores.main, engine_submitter(stores.main), clock=clock, owner="a")
    b = Scheduler(other, engine_submitter(other), clock=clock, owner="b")
    fired = []
    for step in range(40):
        clock.now = T0 + step * 0.5
        for sched in (a, b) if step % 2 else (b, a):
            fired.extend(sched.tick())
    slots = [f.slot for f in fired]
    assert len(slots) == len(set(slots)) == 20  # T0 … T0+19.5 every second: 20 slots
    assert len(scheduled_runs(stores.main, "tick")) == 20


def test_a_scheduler_that_dies_mid_pass_costs_no_duplicate(store: Store) -> None:
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "1s", "catchup": "all"}), now=clock.now)
    stored = engine_submitter(store)

    def dies_after_storing(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
        stored(spec, run_id, meta)
        raise KeyboardInterrupt  # the process goes after the run is stored, before the advance

    clock.now = T0 + 0.1
    with pytest.raises(KeyboardInterrupt):
        Scheduler(store, dies_after_storing, clock=clock, owner="dead").tick()
    heir = Scheduler(store, stored, clock=clock, owner="heir")
    assert heir.tick() == []  # the dead one's lease still holds the row
    clock.now = T0 + 31.0  # the lease (30 s) is over: the heir fires from the dead one's slot
    fired = heir.tick()
    assert [(f.slot, f.created) for f in fired[:2]] == [(T0, False), (T0 + 1, True)]
    assert len(fired) == 32
    runs = scheduled_runs(store, "tick")
    assert len(runs) == 32 == len({r.run_id for r in runs})


def test_pause_resume_remove(store: Store) -> None:
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "1s", "name": "beat"}), now=clock.now)
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    assert set_paused(store, "beat", True, now=clock.now)
    clock.now = T0 + 5
    assert sched.tick() == []
    assert set_paused(store, "beat", False, now=clock.now)  # from the next slot: T0+6
    assert sched.tick() == []
    clock.now = T0 + 6
    assert [f.slot for f in sched.tick()] == [T0 + 6]
    assert store.remove_schedule("beat")
    assert store.list_schedules() == []
    assert not set_paused(store, "nope", True)
    assert not store.remove_schedule("beat")


def test_a_schedules_workflow_is_validated_once_not_at_every_firing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # validating a large workflow takes a second of CPU: firing every second must not redo it
    import reviewflow.config

    calls = []
    real = reviewflow.config.validate_spec
    monkeypatch.setattr(
        reviewflow.config, "validate_spec", lambda data: calls.append(1) or real(data)
    )
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "1s"}), now=clock.now)
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    for step in range(3):
        clock.now = T0 + step
        assert len(sched.tick()) == 1
    assert len(calls) == 1


def test_resuming_an_active_schedule_changes_nothing(store: Store) -> None:
    # a resume of a schedule that is not paused (a script, a second operator) must not drop
    # the slot that waits out its jitter
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "60s", "jitter": "30s"}), now=clock.now)
    row = store.get_schedule("tick")
    assert row is not None and row.next_slot == T0
    clock.now = T0 + (row.next_fire - T0) / 2  # the slot is past, its firing time not yet
    assert set_paused(store, "tick", False, now=clock.now)
    clock.now = row.next_fire
    (fired,) = Scheduler(store, engine_submitter(store), clock=clock).tick()
    assert fired.slot == T0


def test_adding_a_paused_schedule_again_keeps_it_paused(store: Store) -> None:
    # `schedule add` of an edited file (a deploy re-adding it) replaces the workflow and the
    # cadence; it does not undo an operator's pause
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "1s", "name": "beat"}), now=clock.now)
    assert set_paused(store, "beat", True, now=clock.now)
    (row,) = register(store, schedule_workflow({"interval": "2s", "name": "beat"}), now=clock.now)
    assert row.paused
    clock.now = T0 + 5
    assert Scheduler(store, engine_submitter(store), clock=clock).tick() == []
    stored = store.get_schedule("beat")
    assert stored is not None and stored.paused and '"interval":2.0' in stored.cadence


def test_jitter_delays_the_run_not_the_slot(store: Store) -> None:
    clock = Clock(T0 - 0.5)
    register(store, schedule_workflow({"interval": "60s", "jitter": "30s"}), now=clock.now)
    row = store.get_schedule("tick")
    assert row is not None and row.next_slot == T0 and T0 <= row.next_fire < T0 + 30
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    clock.now = row.next_fire - 0.01
    assert sched.tick() == []
    clock.now = row.next_fire
    (fired,) = sched.tick()
    assert fired.slot == T0 and fired.run_id == run_id_of("tick", T0)


def test_jitter_longer_than_a_minute_still_fires_with_catchup_skip(store: Store) -> None:
    # skip drops a slot late by more than its grace (a minute at most); a slot that waits
    # out its own jitter is on time, not late
    clock = Clock(T0 - 0.5)
    register(
        store,
        schedule_workflow({"interval": "1h", "jitter": "50m", "catchup": "skip"}),
        now=clock.now,
    )
    row = store.get_schedule("tick")
    assert row is not None and row.next_fire - row.next_slot > 60  # this slot's offset
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    clock.now = row.next_fire + 0.5
    (fired,) = sched.tick()
    assert fired.slot == row.next_slot and fired.created


# ------------------------------------------------------------------ real processes


def test_a_pass_that_raises_does_not_end_the_scheduler(tmp_path: Path) -> None:
    """Whatever a pass meets (here a bug-like ValueError from the store), the thread goes on."""
    from reviewflow.store import SQLiteStore

    store = SQLiteStore(tmp_path / "rf.db")
    register(store, schedule_workflow({"interval": "1s"}), now=time.time() - 5)
    calls = []
    real = store.claim_schedules

    def flaky(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("boom")
        return real(*args)

    store.claim_schedules = flaky  # type: ignore[method-assign]
    sched = Scheduler(store, engine_submitter(store))
    thread, stop = sched.start()
    try:
        wait_for(lambda: len(scheduled_runs(store, "tick")) >= 1, timeout=30)
    finally:
        stop.set()
        thread.join(10)
        store.close()
    assert len(calls) >= 2 and not thread.is_alive()


def test_a_bad_schedule_does_not_block_the_others_of_its_batch(store: Store) -> None:
    clock = Clock(T0 - 0.5)
    names = [f"s{i:02d}" for i in range(20)]  # one claim's batch
    for name in names:
        register(store, schedule_workflow({"interval": "1s"}, name=name), now=clock.now)
    break_schedule(store, "s07")
    sched = Scheduler(store, engine_submitter(store), clock=clock)
    clock.now = T0 + 0.1
    fired = sched.tick()
    assert sorted(f.schedule for f in fired) == [n for n in names if n != "s07"]
    bad = store.get_schedule("s07")
    assert bad is not None and bad.fired == 0 and bad.next_slot == T0 + 1  # moved on
    assert bad.last_error is not None and "gone-plugin" in bad.last_error
    assert all(store.get_schedule(n).last_error is None for n in names if n != "s07")  # type: ignore[union-attr]
    clock.now = T0 + 1.1  # still broken: the others go on firing every slot
    assert len(sched.tick()) == 19
    register(store, schedule_workflow({"interval": "1s"}, name="s07"), now=clock.now)  # fixed
    clock.now = T0 + 2.1
    assert len(sched.tick()) == 20
    fixed = store.get_schedule("s07")
    assert fixed is not None and fixed.last_error is None and fixed.fired == 1


def test_a_run_that_cannot_be_stored_fails_its_schedule_only(store: Store) -> None:
    clock = Clock(T0 - 0.5)
    for name in ("a", "b", "c"):
        register(store, schedule_workflow({"interval": "1s"}, name=name), now=clock.now)
    stored = engine_submitter(store)

    def refuses_b(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
        if spec.name == "b":  # e.g. a limit of the engine this workflow breaks
            raise ValueError("b: refused by the engine")
        return stored(spec, run_id, meta)

    clock.now = T0 + 0.1
    fired = Scheduler(store, refuses_b, clock=clock).tick()
    assert sorted(f.schedule for f in fired) == ["a", "c"]
    row = store.get_schedule("b")
    assert row is not None and row.last_error is not None
    assert "refused by the engine" in row.last_error and row.next_slot == T0 + 1
    assert scheduled_runs(store, "b") == []
    assert [store.get_schedule(n).fired for n in "ac"] == [1, 1]  # type: ignore[union-attr]


def test_a_database_made_before_schedule_errors_opens_and_records_them(tmp_path: Path) -> None:
    import sqlite3

    from reviewflow.store import SQLiteStore

    db = tmp_path / "rf.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:  # the schedules table as the previous version made it
        conn.execute("ALTER TABLE schedules DROP COLUMN last_error")
    store = SQLiteStore(db)
    try:
        register(store, schedule_workflow({"interval": "1s"}, name="bad"), now=time.time() - 5)
        break_schedule(store, "bad")
        Scheduler(store, engine_submitter(store)).tick()
        row = store.get_schedule("bad")
        assert row is not None and row.last_error is not None
    finally:
        store.close()


def _fired_by(log: Path) -> set[str]:
    """Run ids a process's JSON log says it created by firing a slot."""
    fired = set()
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("event") == "schedule.fired" and doc.get("created"):
                fired.add(doc["run_id"])
    return fired


def _beat(tmp_path: Path) -> Path:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "name: beat\nschedules:\n  - {interval: 1s, catchup: skip}\n"
        "tasks:\n  noop: {type: shell, run: ['true']}\n"
    )
    return wf


def test_serve_with_no_schedules_leaves_them_to_a_dedicated_scheduler(tmp_path: Path) -> None:
    """`serve --no-schedules` next to `reviewflow scheduler`: every scheduled run is the
    scheduler's (without the flag the server fires too: test_serve_schedules.py)."""
    import socket

    import httpx

    db = tmp_path / "rf.db"
    subprocess.run(
        reviewflow_cmd("schedule", "add", str(_beat(tmp_path)), "--db", str(db)), check=True
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "REVIEWFLOW_API_TOKENS": "tok", "NO_COLOR": "1"}
    env.pop("REVIEWFLOW_DB", None)
    serve_log, sched_log = tmp_path / "serve.log", tmp_path / "scheduler.log"
    with serve_log.open("w") as s_out, sched_log.open("w") as c_out:
        procs = [
            subprocess.Popen(
                reviewflow_cmd(*args, "--db", str(db), "--log-format", "json"),
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            for args, out in (
                (["serve", "--no-schedules", "--port", str(port)], s_out),
                (["scheduler"], c_out),
            )
        ]
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
        auth = {"Authorization": "Bearer tok"}

        def scheduled() -> list[dict[str, Any]]:
            try:
                got = http.get("/runs", headers=auth, params=[("meta", "schedule=beat")])
            except httpx.TransportError:
                return []  # not listening yet
            return list(got.json()["runs"])

        try:
            wait_for(lambda: sum(r["state"] == "succeeded" for r in scheduled()) >= 3)
            runs = {r["run_id"] for r in scheduled()}
        finally:
            http.close()
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
    assert _fired_by(serve_log) == set()
    assert runs and runs <= _fired_by(sched_log)


def test_a_worker_with_no_schedules_leaves_them_to_a_dedicated_scheduler(
    pg_url: str, tmp_path: Path
) -> None:
    from reviewflow.store.postgres import PostgresStore

    env = {**os.environ, "REVIEWFLOW_DB": pg_url}
    subprocess.run(reviewflow_cmd("schedule", "add", str(_beat(tmp_path))), env=env, check=True)
    worker_log, sched_log = tmp_path / "worker.log", tmp_path / "scheduler.log"
    with worker_log.open("w") as w_out, sched_log.open("w") as c_out:
        procs = [
            subprocess.Popen(
                reviewflow_cmd(*args, "--log-format", "json"),
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            for args, out in (
                (["worker", "--no-schedules", "--poll-interval", "0.2"], w_out),
                (["scheduler", "--no-execute"], c_out),
            )
        ]
        store = PostgresStore(pg_url)
        try:  # the worker executes what the scheduler fires: both are alive and working
            wait_for(
                lambda: sum(r.state == "succeeded" for r in scheduled_runs(store, "beat")) >= 3
            )
            runs = {r.run_id for r in scheduled_runs(store, "beat")}
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
            store.close()
    assert _fired_by(worker_log) == set()
    assert runs and runs <= _fired_by(sched_log)


def test_a_store_that_fails_every_run_is_not_blamed_on_the_schedules(store: Store) -> None:
    """A database down refuses every run: no schedule is marked failing, the leases hand them
    on, and the scheduler does not try each schedule on its own against a dead store."""
    from reviewflow.errors import StoreError

    clock = Clock(T0 - 0.5)
    for name in ("a", "b", "c", "d"):
        register(store, schedule_workflow({"interval": "1s"}, name=name), now=clock.now)
    calls = []

    def down(requests: Any) -> list[tuple[str, bool]]:
        calls.append(len(requests))
        raise StoreError("database down")

    clock.now = T0 + 0.1
    sched = Scheduler(store, engine_submitter(store), clock=clock, submit_many=down)
    assert sched.tick() == []
    assert calls == [4, 1, 1]  # the batch, then two alone: the store's fault, not theirs
    for name in ("a", "b", "c", "d"):
        row = store.get_schedule(name)
        assert row is not None and row.last_error is None and row.fired == 0
        assert row.next_slot == T0  # still due: another scheduler fires it when the lease ends
