"""Process-level durability and cross-process control, with real `reviewflow` processes on one
SQLite file.

A run process is SIGKILLed mid-run and `reviewflow resume` (another process) finishes the run:
no task is lost, no task is recorded as succeeded twice, dependencies are respected across the
crash. Other processes cancel, pause and resume a run that a live process executes, and several
processes share the database without "database is locked".

Tasks are shell commands that append `<task> <attempt>` to a file when they finish their work,
so what actually ran is counted independently of what the database says.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from clihelpers import (
    Procs,
    events,
    pid_gone,
    query,
    record,
    recorded,
    run_state,
    sh,
    task_states,
    try_query,
    wait_for,
    write_workflow,
)

DB = "rf.db"

DAG: dict[str, list[str]] = {
    "t01": [],
    "t02": [],
    "t03": ["t01"],
    "t04": ["t01", "t02"],
    "t05": ["t03"],
    "t06": ["t04"],
    "t07": ["t05", "t06"],
    "t08": ["t04"],
    "t09": ["t07"],
    "t10": ["t07", "t08"],
    "t11": ["t09"],
    "t12": ["t10", "t11"],
}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


GATED = (
    "i=0; while [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; " + record()
)
"""Waits (at most 30 s) until the test creates `release`, then records itself."""


def count_in_state(db: Path, run_id: str, state: str) -> int | None:
    rows = try_query(
        db, "SELECT count(*) FROM tasks WHERE run_id = ? AND state = ?", (run_id, state)
    )
    return rows[0][0] if rows else None


def task_row(db: Path, run_id: str, task: str) -> tuple[str, int, int | None] | None:
    rows = try_query(
        db,
        "SELECT state, attempts, pid FROM tasks WHERE run_id = ? AND name = ?",
        (run_id, task),
    )
    return rows[0] if rows else None


def is_running(db: Path, run_id: str, task: str) -> bool:
    row = task_row(db, run_id, task)
    return row is not None and row[0] == "running"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and not pid_gone(p.pid):
                members.append(p.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def assert_dependencies_respected(evs: list[dict[str, Any]], needs: dict[str, list[str]]) -> None:
    """Every `running` event of a task comes after the `succeeded` event of each dependency."""
    succeeded = {e["task"]: e for e in evs if e["to"] == "succeeded" and e["task"]}
    for task, deps in needs.items():
        for start in (e for e in evs if e["task"] == task and e["to"] == "running"):
            for dep in deps:
                assert dep in succeeded, f"{task} ran but {dep} never succeeded"
                assert start["id"] > succeeded[dep]["id"], (task, dep)
                assert start["at"] >= succeeded[dep]["at"], (task, dep)


def assert_succeeded_exactly_once(db: Path, run_id: str, names: list[str]) -> None:
    assert run_state(db, run_id) == "succeeded"
    assert task_states(db, run_id) == dict.fromkeys(names, "succeeded")
    evs = events(db, run_id)
    done = [e["task"] for e in evs if e["to"] == "succeeded" and e["task"]]
    assert sorted(done) == sorted(names), "each task has exactly one succeeded event"
    run_ends = [e for e in evs if e["task"] is None and e["to"] == "succeeded"]
    assert len(run_ends) == 1


# ---------------------------------------------------------------------------- SIGKILL and resume


def test_sigkill_mid_run_then_resume_loses_nothing(procs: Procs, tmp_path: Path) -> None:
    run_id = new_id("crash")
    db = tmp_path / DB
    write_workflow(
        tmp_path / "wf.yaml",
        {name: sh(record(sleep=0.2), needs=deps) for name, deps in DAG.items()},
        max_concurrency=2,
    )
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    wait_for(
        lambda: (count_in_state(db, run_id, "succeeded") or 0) >= 3,
        "three tasks to succeed",
        timeout=30,
    )
    procs.kill(proc)
    assert proc.returncode == -9, "the run ended before it could be killed"

    # What the dead process left behind: a running run, some tasks done, some running.
    assert run_state(db, run_id) == "running"
    before = task_states(db, run_id)
    done_before = {n for n, s in before.items() if s == "succeeded"}
    running_before = {n for n, s in before.items() if s == "running"}
    assert 3 <= len(done_before) < len(DAG)
    attempts_before = dict(
        query(db, "SELECT name, attempts FROM tasks WHERE run_id = ?", (run_id,))
    )

    resumed = procs.run("resume", run_id, "--db", DB, timeout=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming {run_id}" in resumed.stdout

    assert_succeeded_exactly_once(db, run_id, list(DAG))
    evs = events(db, run_id)
    assert_dependencies_respected(evs, DAG)
    attempts = dict(query(db, "SELECT name, attempts FROM tasks WHERE run_id = ?", (run_id,)))
    for name in done_before:
        assert attempts[name] == 1
    for name in running_before:
        assert attempts[name] == attempts_before[name] + 1
        lost = [
            e for e in evs if e["task"] == name and e["from"] == "running" and e["to"] == "ready"
        ]
        assert len(lost) == 1 and "lost" in (lost[0]["detail"] or ""), lost
    for name in set(DAG) - running_before:
        assert attempts[name] == 1
    assert any(e["task"] is None and "taken over" in (e["detail"] or "") for e in evs)

    # What really ran: every task's final attempt did its work; tasks the store had recorded as
    # succeeded before the crash did not run again.
    lines = recorded(tmp_path / "done.txt")
    for name in DAG:
        mine = sorted(a for n, a in lines if n == name)
        assert mine, f"{name} never ran"
        assert mine[-1] == attempts[name], (name, mine)
        assert len(mine) == len(set(mine)), (name, mine)
        if name in done_before:
            assert mine == [1]


def test_sigkill_during_a_long_task_reruns_it(procs: Procs, tmp_path: Path) -> None:
    run_id = new_id("long")
    db = tmp_path / DB
    long_script = (
        'if [ "$REVIEWFLOW_ATTEMPT" = 1 ]; then touch long.started; sleep 60; fi; ' + record()
    )
    needs = {"prep": [], "long": ["prep"], "after": ["long"]}
    write_workflow(
        tmp_path / "wf.yaml",
        {
            "prep": sh(record()),
            "long": sh(long_script, needs=["prep"]),
            "after": sh(record(), needs=["long"]),
        },
    )
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)

    def long_pid() -> int | None:
        row = task_row(db, run_id, "long")
        if row and row[0] == "running" and row[2] and (tmp_path / "long.started").exists():
            return row[2]
        return None

    pgid = wait_for(long_pid, "the long task to run", timeout=30)
    procs.kill(proc)
    orphans = group_members(pgid)
    assert orphans, "the long task's process group outlives its engine"

    resumed = procs.run("resume", run_id, "--db", DB, timeout=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    assert all(pid_gone(pid) for pid in orphans), "the dead attempt's processes were stopped"
    assert_succeeded_exactly_once(db, run_id, list(needs))
    evs = events(db, run_id)
    assert_dependencies_respected(evs, needs)
    long_path = [(e["from"], e["to"], e["attempt"]) for e in evs if e["task"] == "long"]
    assert long_path == [
        ("blocked", "ready", 0),
        ("ready", "running", 1),
        ("running", "ready", 1),
        ("ready", "running", 2),
        ("running", "succeeded", 2),
    ]
    lost = next(
        e for e in evs if e["task"] == "long" and e["to"] == "ready" and e["from"] == "running"
    )
    assert "lost" in lost["detail"]
    assert task_row(db, run_id, "long")[1] == 2
    assert sorted(recorded(tmp_path / "done.txt")) == [("after", 1), ("long", 2), ("prep", 1)]


# ------------------------------------------------------------ control from other processes


def test_cancel_from_another_process(procs: Procs, tmp_path: Path) -> None:
    run_id = new_id("cancel")
    db = tmp_path / DB
    write_workflow(
        tmp_path / "wf.yaml",
        {
            "slow1": sh("sleep 60"),
            "slow2": sh("sleep 60"),
            "later": sh(record(), needs=["slow1"]),
        },
        max_concurrency=2,
    )
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)

    def both_running() -> list[int] | None:
        rows = try_query(
            db,
            "SELECT pid FROM tasks WHERE run_id = ? AND state = 'running' AND pid IS NOT NULL",
            (run_id,),
        )
        return [r[0] for r in rows] if rows and len(rows) == 2 else None

    pgids = wait_for(both_running, "both slow tasks to run", timeout=30)
    members = [pid for pgid in pgids for pid in group_members(pgid)]
    busy = procs.run("resume", run_id, "--db", DB)
    assert busy.returncode == 1
    assert "is being executed by" in busy.stderr

    cancelled = procs.run("cancel", run_id, "--db", DB, timeout=60)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"{run_id}: cancelled"

    code, out, err = procs.finish(proc, timeout=30)
    assert code == 1, out + err
    assert "database is locked" not in out + err
    assert run_state(db, run_id) == "cancelled"
    assert task_states(db, run_id) == {
        "slow1": "cancelled",
        "slow2": "cancelled",
        "later": "cancelled",
    }
    assert all(pid_gone(pid) for pid in members), "the cancelled tasks' processes were stopped"
    assert not (tmp_path / "done.txt").exists()
    again = procs.run("cancel", run_id, "--db", DB)
    assert again.returncode == 1


def test_pause_and_resume_from_other_processes(procs: Procs, tmp_path: Path) -> None:
    run_id = new_id("pause")
    db = tmp_path / DB
    needs = {"a": [], "b": ["a"], "c": ["b"], "d": []}
    write_workflow(
        tmp_path / "wf.yaml",
        {
            "a": sh(GATED),
            "b": sh(record(), needs=["a"]),
            "c": sh(record(), needs=["b"]),
            "d": sh(record(), priority="low"),
        },
        max_concurrency=1,
    )
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    wait_for(lambda: is_running(db, run_id, "a"), "task a to run", timeout=30)

    paused = procs.run("pause", run_id, "--db", DB, timeout=30)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"{run_id}: paused"
    assert run_state(db, run_id) == "paused"
    assert task_states(db, run_id)["a"] == "running"

    # The running task finishes; nothing new starts while the run is paused.
    (tmp_path / "release").touch()
    wait_for(
        lambda: (task_row(db, run_id, "a") or ("",))[0] == "succeeded",
        "task a to finish while paused",
        timeout=30,
    )
    time.sleep(1.0)  # a few heartbeats of the executing process
    states = task_states(db, run_id)
    assert states["b"] in ("blocked", "ready") and states["d"] in ("blocked", "ready"), states
    assert states["c"] == "blocked"
    assert run_state(db, run_id) == "paused"
    assert proc.poll() is None
    status = procs.run("status", run_id, "--db", DB, "--json")
    doc = json.loads(status.stdout)
    assert doc["state"] == "paused"
    waiting = {t["name"]: t.get("waiting") for t in doc["tasks"]}
    assert "paused" in (waiting["b"] or waiting["d"] or ""), waiting

    resumed = procs.run("resume", run_id, "--db", DB, timeout=30)
    assert resumed.returncode == 0, resumed.stderr
    assert "resume requested" in resumed.stdout

    code, out, err = procs.finish(proc, timeout=30)
    assert code == 0, out + err
    assert_succeeded_exactly_once(db, run_id, list(needs))
    evs = events(db, run_id)
    assert_dependencies_respected(evs, needs)
    pause_at = next(e["id"] for e in evs if e["task"] is None and e["to"] == "paused")
    resume_at = next(e["id"] for e in evs if e["task"] is None and e["from"] == "paused")
    started_while_paused = [
        e["task"]
        for e in evs
        if e["to"] == "running" and e["task"] and pause_at < e["id"] < resume_at
    ]
    assert started_while_paused == []
    assert sorted(recorded(tmp_path / "done.txt")) == [("a", 1), ("b", 1), ("c", 1), ("d", 1)]


def test_resume_a_run_killed_while_paused(procs: Procs, tmp_path: Path) -> None:
    run_id = new_id("paused-kill")
    db = tmp_path / DB
    needs = {"a": [], "b": ["a"], "c": ["b"]}
    write_workflow(
        tmp_path / "wf.yaml",
        {
            "a": sh(GATED),
            "b": sh(record(), needs=["a"]),
            "c": sh(record(), needs=["b"]),
        },
    )
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    wait_for(lambda: is_running(db, run_id, "a"), "task a to run", timeout=30)
    paused = procs.run("pause", run_id, "--db", DB, timeout=30)
    assert paused.returncode == 0, paused.stderr
    procs.kill(proc)
    assert run_state(db, run_id) == "paused"
    assert task_states(db, run_id) == {"a": "running", "b": "blocked", "c": "blocked"}

    # Nobody executes it now: pause is refused, resume takes the run over (a re-runs).
    assert procs.run("pause", run_id, "--db", DB).returncode == 1
    (tmp_path / "release").touch()
    resumed = procs.run("resume", run_id, "--db", DB, timeout=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "was paused" in resumed.stdout
    assert_succeeded_exactly_once(db, run_id, list(needs))
    assert_dependencies_respected(events(db, run_id), needs)
    lines = recorded(tmp_path / "done.txt")
    attempts = dict(query(db, "SELECT name, attempts FROM tasks WHERE run_id = ?", (run_id,)))
    for name in needs:
        mine = sorted(a for n, a in lines if n == name)
        assert mine and mine[-1] == attempts[name], (name, mine, attempts)
    assert attempts == {"a": 2, "b": 1, "c": 1}
    lost = [e for e in events(db, run_id) if e["task"] == "a" and e["from"] == "running"]
    assert [e["to"] for e in lost] == ["ready", "succeeded"]
    assert "lost" in lost[0]["detail"]


# ---------------------------------------------------------------- many processes, one file


def test_processes_share_one_database(procs: Procs, tmp_path: Path) -> None:
    db = tmp_path / DB
    ids = {k: new_id(k) for k in ("one", "two", "victim")}
    chain = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(5)}
    for key in ("one", "two"):
        write_workflow(
            tmp_path / f"{key}.yaml",
            {
                name: sh(record(f"{key}.txt", sleep=0.15), needs=deps)
                for name, deps in chain.items()
            },
            name=key,
            max_concurrency=2,
        )
    write_workflow(
        tmp_path / "victim.yaml",
        {"slow": sh("sleep 60"), "never": sh(record("victim.txt"), needs=["slow"])},
        name="victim",
    )

    runs = {
        key: procs.start("run", f"{key}.yaml", "--db", DB, "--run-id", rid, run_id=rid)
        for key, rid in ids.items()
    }
    wait_for(lambda: is_running(db, ids["victim"], "slow"), "the victim to run", timeout=30)
    wait_for(
        lambda: (try_query(db, "SELECT count(*) FROM runs") or [(0,)])[0][0] == 3,
        "the three runs to be stored",
        timeout=30,
    )
    follower = procs.start("run", "one.yaml", "--db", DB, "--run-id", ids["one"])
    cancel = procs.start("cancel", ids["victim"], "--db", DB)

    statuses: list[Any] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and (
        len(statuses) < 4 or runs["one"].poll() is None or runs["two"].poll() is None
    ):
        listing = procs.run("status", "--db", DB, "--json")
        assert listing.returncode == 0, listing.stderr
        statuses.append(json.loads(listing.stdout))
        one = procs.run("status", ids["one"], "--db", DB, "--json")
        assert one.returncode == 0, one.stderr
        assert json.loads(one.stdout)["state"] in ("pending", "running", "succeeded")

    results = {key: procs.finish(proc, timeout=30) for key, proc in runs.items()}
    results["follower"] = procs.finish(follower, timeout=30)
    results["cancel"] = procs.finish(cancel, timeout=30)
    for key, (_, out, err) in results.items():
        assert "database is locked" not in out + err, key
        assert "Traceback" not in err, (key, err)
    expected = {"one": 0, "two": 0, "victim": 1, "follower": 0, "cancel": 0}
    assert {k: r[0] for k, r in results.items()} == expected, results

    assert all({r["run_id"] for r in listing} == set(ids.values()) for listing in statuses)
    assert run_state(db, ids["victim"]) == "cancelled"
    for key in ("one", "two"):
        assert_succeeded_exactly_once(db, ids[key], list(chain))
        assert sorted(recorded(tmp_path / f"{key}.txt")) == [(n, 1) for n in sorted(chain)]
    follower_err = results["follower"][2]
    assert f"run {ids['one']} already exists" in follower_err
    assert f"{ids['one']} succeeded" in results["follower"][1]
    assert not (tmp_path / "victim.txt").exists()
    assert sorted(r[0] for r in query(db, "SELECT run_id FROM runs")) == sorted(ids.values())


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupted_run_is_resumable(procs: Procs, tmp_path: Path, signame: str) -> None:
    """SIGINT/SIGTERM stop the run process with exit 130; the run resumes and succeeds."""
    import signal

    run_id = new_id("int")
    db = tmp_path / DB
    write_workflow(
        tmp_path / "wf.yaml",
        {
            "a": sh("if [ ! -e a.once ]; then touch a.once; sleep 60; fi; " + record()),
            "b": sh(record(), needs=["a"]),
        },
    )
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    wait_for(
        lambda: (task_row(db, run_id, "a") or ("", 0, None))[2],
        "task a to start its process",
        timeout=30,
    )
    proc.send_signal(getattr(signal, signame))
    code, out, err = procs.finish(proc, timeout=30)
    assert code == 130, out + err
    assert f"reviewflow resume {run_id}" in err
    assert run_state(db, run_id) == "running"
    assert task_states(db, run_id)["a"] == "ready"

    resumed = procs.run("resume", run_id, "--db", DB, timeout=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_succeeded_exactly_once(db, run_id, ["a", "b"])
    # an interrupted attempt is not counted: the attempt that finished is attempt 1 again
    assert sorted(recorded(tmp_path / "done.txt")) == [("a", 1), ("b", 1)]


def test_cancel_a_paused_run_from_another_process(procs: Procs, tmp_path: Path) -> None:
    run_id = new_id("pause-cancel")
    db = tmp_path / DB
    write_workflow(tmp_path / "wf.yaml", {"a": sh(GATED), "b": sh(record(), needs=["a"])})
    proc = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    wait_for(lambda: is_running(db, run_id, "a"), "task a to run", timeout=30)
    assert procs.run("pause", run_id, "--db", DB, timeout=30).returncode == 0
    (tmp_path / "release").touch()
    wait_for(
        lambda: (task_row(db, run_id, "a") or ("",))[0] == "succeeded",
        "task a to finish while paused",
        timeout=30,
    )
    cancelled = procs.run("cancel", run_id, "--db", DB, timeout=30)
    assert cancelled.returncode == 0, cancelled.stderr
    code, out, err = procs.finish(proc, timeout=30)
    assert code == 1, out + err
    assert run_state(db, run_id) == "cancelled"
    assert task_states(db, run_id) == {"a": "succeeded", "b": "cancelled"}
    assert recorded(tmp_path / "done.txt") == [("a", 1)]
    run_path = [
        (e["from"], e["to"])
        for e in events(db, run_id)
        if e["task"] is None and e["from"] != e["to"]
    ]
    assert run_path == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "paused"),
        ("paused", "cancelled"),
    ]


def test_resume_force_takes_over_a_live_run(procs: Procs, tmp_path: Path) -> None:
    """`resume --force`: the new process owns the run and finishes it; the old owner's late
    writes are refused, so every task is still recorded as succeeded exactly once."""
    run_id = new_id("force")
    db = tmp_path / DB
    needs = {"a": [], "b": ["a"]}
    write_workflow(tmp_path / "wf.yaml", {"a": sh(GATED), "b": sh(record(), needs=["a"])})
    old = procs.start("run", "wf.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    wait_for(lambda: is_running(db, run_id, "a"), "task a to run", timeout=30)
    old_owner = query(db, "SELECT owner FROM runs WHERE run_id = ?", (run_id,))[0][0]

    new = procs.start("resume", run_id, "--db", DB, "--force")
    wait_for(
        lambda: new.poll() is not None or (task_row(db, run_id, "a") or ("", 0))[1] == 2,
        "the new owner to restart task a",
        timeout=30,
    )
    if new.poll() is not None:
        code, out, err = procs.finish(new)
        pytest.fail(f"resume --force exited {code} instead of taking over: {out}{err}")
    owner = query(db, "SELECT owner FROM runs WHERE run_id = ?", (run_id,))[0][0]
    assert owner != old_owner

    (tmp_path / "release").touch()
    new_code, new_out, new_err = procs.finish(new, timeout=30)
    assert new_code == 0, new_out + new_err
    old_code, old_out, old_err = procs.finish(old, timeout=30)
    assert old_code == 1, old_out + old_err
    assert "Traceback" not in old_err
    assert_succeeded_exactly_once(db, run_id, list(needs))
    assert_dependencies_respected(events(db, run_id), needs)
    assert ("b", 1) in recorded(tmp_path / "done.txt")
