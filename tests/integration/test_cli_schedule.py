"""The `reviewflow schedule` commands and `reviewflow scheduler` (`cli/schedule.py`) as real
processes: `schedule add` refuses what could never fire on one line, `schedule list` says why a
schedule fails, and schedulers on PostgreSQL and SQLite fire every slot once and execute it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reviewflow.schedules import Scheduler, register
from rfhelpers import (
    break_schedule,
    engine_submitter,
    reviewflow_cmd,
    schedule_workflow,
    scheduled_runs,
    wait_for,
)


def test_a_schedule_id_too_long_for_its_run_ids_is_refused_when_added(tmp_path: Path) -> None:
    # a run id is <schedule>.<slot> and at most 200 characters: a longer one would fail at
    # every firing (and hold up the schedules claimed with it), so it is refused up front
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: {'w' * 190}\ntasks:\n  noop: {{type: shell, run: ['true']}}\n")
    done = subprocess.run(
        reviewflow_cmd(
            "schedule", "add", str(wf), "--db", str(tmp_path / "rf.db"), "--interval", "1m"
        ),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "name" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_two_scheduler_processes_on_postgres_fire_every_slot_once(
    pg_url: str, tmp_path: Path
) -> None:
    from reviewflow.store.postgres import PostgresStore

    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "name: beat\nschedules:\n  - {interval: 1s, catchup: all}\n"
        "tasks:\n  noop: {type: shell, run: ['true']}\n"
    )
    env = {**os.environ, "REVIEWFLOW_DB": pg_url}
    subprocess.run(reviewflow_cmd("schedule", "add", str(wf)), env=env, check=True, cwd=tmp_path)
    procs = [
        subprocess.Popen(
            reviewflow_cmd("scheduler", "--no-execute", "--log-format", "json"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    store = PostgresStore(pg_url)
    try:
        wait_for(lambda: len(scheduled_runs(store, "beat")) >= 6)
        procs[0].send_signal(signal.SIGKILL)  # one dies: the other carries on alone
        seen = len(scheduled_runs(store, "beat"))
        wait_for(lambda: len(scheduled_runs(store, "beat")) >= seen + 3)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    runs = scheduled_runs(store, "beat")
    slots = sorted(r.meta["slot"] for r in runs)
    store.close()
    assert len(slots) == len(set(slots))
    # No slot missed between the first and the last one fired.
    from datetime import datetime

    stamps = [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in slots]
    assert stamps == [stamps[0] + i for i in range(len(stamps))]


def test_the_cli_on_sqlite_executes_what_it_fires(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "name: beat\nschedules:\n  - {interval: 1s, catchup: skip}\n"
        "tasks:\n  noop: {type: shell, run: ['true']}\n"
    )
    db = tmp_path / "rf.db"
    add = subprocess.run(
        reviewflow_cmd("schedule", "add", str(wf), "--db", str(db)),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert add.returncode == 0, add.stderr
    assert "schedule beat: next run" in add.stdout
    proc = subprocess.Popen(
        reviewflow_cmd("scheduler", "--db", str(db), "--log-format", "json"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from reviewflow.store import SQLiteStore

    store = SQLiteStore(db)
    try:
        wait_for(lambda: sum(r.state == "succeeded" for r in scheduled_runs(store, "beat")) >= 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        store.close()
    listed = subprocess.run(
        reviewflow_cmd("schedule", "list", "--db", str(db), "--json"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    (doc,) = json.loads(listed.stdout)
    assert doc["id"] == "beat" and doc["runs"] >= 2 and doc["when"] == "every 1s"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "invalid cron"),
        (["--interval", "0.1s"], "at least 1 s"),
        (["--cron", "* * * * *", "--timezone", "Mars/Base"], "unknown time zone"),
        (["--cron", "* * * * *", "--catchup", "some"], "catchup"),
        (["--jitter", "5s"], "go with --cron or --interval"),
        (["--interval", "1m", "--jitter", "5m"], "jitter: must be shorter than the interval"),
        ([], "no schedules"),
    ],
)
def test_bad_schedules_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: beat\ntasks:\n  noop: {type: shell, run: ['true']}\n")
    done = subprocess.run(
        reviewflow_cmd("schedule", "add", str(wf), "--db", str(tmp_path / "rf.db"), *args),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_schedule_list_shows_why_a_schedule_fails(tmp_path: Path) -> None:
    from reviewflow.store import SQLiteStore

    db = tmp_path / "rf.db"
    store = SQLiteStore(db)
    register(store, schedule_workflow({"interval": "1s"}, name="good"), now=time.time() - 5)
    register(store, schedule_workflow({"interval": "1s"}, name="bad"), now=time.time() - 5)
    break_schedule(store, "bad")
    Scheduler(store, engine_submitter(store)).tick()
    store.close()
    listed = subprocess.run(
        reviewflow_cmd("schedule", "list", "--db", str(db), "--json"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    docs = {d["id"]: d for d in json.loads(listed.stdout)}
    assert docs["good"]["error"] is None and docs["good"]["runs"] == 1
    assert "gone-plugin" in docs["bad"]["error"] and docs["bad"]["runs"] == 0
    table = subprocess.run(
        reviewflow_cmd("schedule", "list", "--db", str(db)),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "250"},
    )
    line = next(x for x in table.stdout.splitlines() if x.startswith("bad "))
    assert "failing" in line and "gone-plugin" in line


def test_pause_resume_and_remove_say_what_they_did_and_name_an_unknown_id(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "rf.db")

    def rf(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            reviewflow_cmd("schedule", *args, "--db", db),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )

    def listed() -> dict[str, bool]:
        return {d["id"]: d["paused"] for d in json.loads(rf("list", "--json").stdout)}

    wf = tmp_path / "wf.yaml"
    wf.write_text("name: beat\ntasks:\n  noop: {type: shell, run: ['true']}\n")
    missing = rf("pause", "beat")  # no database yet: reported, not created empty
    assert missing.returncode == 2 and not (tmp_path / "rf.db").exists(), missing.stderr
    assert rf("add", str(wf), "--interval", "1h").returncode == 0
    paused = rf("pause", "beat")
    assert (paused.returncode, paused.stdout) == (0, "schedule beat: paused\n")
    assert listed() == {"beat": True}
    resumed = rf("resume", "beat")
    assert resumed.returncode == 0 and resumed.stdout.startswith("schedule beat: active, next run ")
    assert listed() == {"beat": False}
    removed = rf("remove", "beat")
    assert (removed.returncode, removed.stdout) == (0, "schedule beat: removed\n")
    assert listed() == {}
    for command in ("pause", "resume", "remove"):
        unknown = rf(command, "beat")
        assert unknown.returncode == 2
        assert unknown.stderr == "error: no schedule 'beat' (see reviewflow schedule list)\n"
