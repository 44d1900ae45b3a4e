"""`reviewflow approve` / `reviewflow reject` with real processes on one SQLite file.

A run waits on an approval gate in one `reviewflow` process; the decision comes from another
process, while the first still waits (it carries on by itself) or after it was SIGKILLed
(`reviewflow resume` carries on). Shell tasks append `<task> <attempt>` to done.txt, so "ran
exactly once" is counted, not assumed. Errors of the two commands are one `error:` line with
the documented exit code. The content review template ends with the same gate.
"""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clihelpers import (
    Procs,
    events,
    one_line_error,
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
from typer.testing import CliRunner, Result

from reviewflow.cli import app

DB = "rf.db"
GATE = "approve"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def gate_workflow(path: Path, **gate: Any) -> Path:
    """build -> approve (alice decides) -> ship; build and ship record themselves."""
    return write_workflow(
        path,
        {
            "build": sh(record()),
            GATE: {
                "type": "approval",
                "needs": ["build"],
                "params": {"approvers": ["alice"]},
                **gate,
            },
            "ship": sh(record(), needs=[GATE]),
        },
        name="gate",
    )


def task_row(db: Path, run_id: str, task: str) -> tuple[str, str | None] | None:
    rows = try_query(
        db, "SELECT state, wait_reason FROM tasks WHERE run_id = ? AND name = ?", (run_id, task)
    )
    return rows[0] if rows else None


def is_waiting(db: Path, run_id: str, task: str = GATE) -> bool:
    row = task_row(db, run_id, task)
    return (
        row is not None
        and row[0] == "running"
        and bool(row[1])
        and row[1].startswith("waiting for approval")
    )


def approval_row(db: Path, run_id: str, task: str) -> tuple[Any, ...] | None:
    rows = query(
        db,
        "SELECT decision, approver, comment FROM approvals WHERE run_id = ? AND task = ?",
        (run_id, task),
    )
    return rows[0] if rows else None


def undecided(db: Path, run_id: str, task: str) -> bool:
    return approval_row(db, run_id, task) in (None, (None, None, None))


def details(db: Path, run_id: str, task: str) -> list[str]:
    return [e["detail"] for e in events(db, run_id) if e["task"] == task and e["detail"]]


def rf(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    """`reviewflow ARGS...` in-process (for quick reads and the many error cases)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # an exception escaping a command is a bug
    return result


def start_and_wait(procs: Procs, tmp_path: Path, run_id: str) -> subprocess.Popen[str]:
    proc = procs.start("run", "gate.yaml", "--db", DB, "--run-id", run_id, run_id=run_id)
    db = tmp_path / DB
    try:
        wait_for(lambda: is_waiting(db, run_id), "the gate to wait for approval", timeout=20)
    except AssertionError:
        proc.kill()
        raise AssertionError(f"never waited: {proc.communicate(timeout=10)}") from None
    return proc


# ---------------------------------------------------------------------------- durability


def test_approve_after_the_waiting_process_died_then_resume(procs: Procs, tmp_path: Path) -> None:
    gate_workflow(tmp_path / "gate.yaml")
    db = tmp_path / DB
    run_id = new_id("gate")
    proc = start_and_wait(procs, tmp_path, run_id)
    shown = rf("status", run_id, "--db", db, "--json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    gate = next(t for t in doc["tasks"] if t["name"] == GATE)
    assert gate["state"] == "running"
    assert gate["waiting"] == f"waiting for approval: reviewflow approve {run_id} {GATE}"
    procs.kill(proc)

    done = procs.run("approve", run_id, GATE, "--comment", "ok", "--by", "alice", "--db", DB)
    assert done.returncode == 0, done.stderr
    assert f"{run_id}/{GATE}: approved by alice: ok" in done.stdout
    assert f"nothing is executing the run: continue with `reviewflow resume {run_id}`" in (
        done.stdout
    )
    assert run_state(db, run_id) == "running"  # decided, not yet carried on
    assert recorded(tmp_path / "done.txt") == [("build", 1)]

    resumed = procs.run("resume", run_id, "--db", DB, timeout=30)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert run_state(db, run_id) == "succeeded"
    assert task_states(db, run_id) == dict.fromkeys(("build", GATE, "ship"), "succeeded")
    assert sorted(recorded(tmp_path / "done.txt")) == [("build", 1), ("ship", 1)]
    assert approval_row(db, run_id, GATE) == ("approved", "alice", "ok")

    listed = rf("events", run_id, "--db", db, "--json")
    assert listed.exit_code == 0, listed.output
    evs = [json.loads(line) for line in listed.stdout.splitlines()]
    decided = [e for e in evs if e["task"] == GATE and e["detail"] == "approved by alice: ok"]
    assert len(decided) == 1
    gate_done = [e for e in evs if e["task"] == GATE and e["to"] == "succeeded"]
    assert len(gate_done) == 1 and gate_done[0]["id"] > decided[0]["id"]
    assert len([e for e in evs if e["task"] == "ship" and e["to"] == "succeeded"]) == 1


def test_approve_from_another_process_while_the_run_waits(
    procs: Procs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first process carries on by itself; the approver comes from REVIEWFLOW_APPROVER."""
    gate_workflow(tmp_path / "gate.yaml")
    db = tmp_path / DB
    run_id = new_id("live")
    proc = start_and_wait(procs, tmp_path, run_id)
    monkeypatch.setenv("REVIEWFLOW_APPROVER", "alice")
    started = time.monotonic()
    done = procs.run("approve", run_id, GATE, "--db", DB)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{run_id}/{GATE}: approved by alice"  # nothing to resume
    code, out, err = procs.finish(proc, timeout=20)
    assert code == 0, out + err
    assert time.monotonic() - started < 5.0
    assert "Traceback" not in err
    assert run_state(db, run_id) == "succeeded"
    assert sorted(recorded(tmp_path / "done.txt")) == [("build", 1), ("ship", 1)]
    assert approval_row(db, run_id, GATE) == ("approved", "alice", None)
    assert "approved by alice" in details(db, run_id, GATE)


def test_ctrl_c_stops_the_wait_then_approve_and_resume(procs: Procs, tmp_path: Path) -> None:
    """Ctrl-C does not wait for a person: the process ends at once, resumable."""
    gate_workflow(tmp_path / "gate.yaml")
    db = tmp_path / DB
    run_id = new_id("intr")
    proc = start_and_wait(procs, tmp_path, run_id)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, out, err = procs.finish(proc, timeout=20)
    assert code == 130, out + err
    assert time.monotonic() - started < 5.0
    assert f"reviewflow resume {run_id}" in err
    assert task_row(db, run_id, GATE)[0] == "ready"  # the wait is put back, not failed
    done = procs.run("approve", run_id, GATE, "--by", "alice", "--db", DB)
    assert done.returncode == 0, done.stderr
    assert f"continue with `reviewflow resume {run_id}`" in done.stdout
    resumed = procs.run("resume", run_id, "--db", DB, timeout=30)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(recorded(tmp_path / "done.txt")) == [("build", 1), ("ship", 1)]


def test_reject_from_another_process_fails_the_run(procs: Procs, tmp_path: Path) -> None:
    gate_workflow(tmp_path / "gate.yaml")
    db = tmp_path / DB
    run_id = new_id("nay")
    proc = start_and_wait(procs, tmp_path, run_id)
    done = procs.run("reject", run_id, GATE, "--comment", "too long", "--by", "alice", "--db", DB)
    assert done.returncode == 0, done.stderr
    assert f"{run_id}/{GATE}: rejected by alice: too long" in done.stdout
    code, out, err = procs.finish(proc, timeout=20)
    assert code == 1, out + err
    assert run_state(db, run_id) == "failed"
    states = task_states(db, run_id)
    assert (states[GATE], states["ship"]) == ("failed", "cancelled")
    error = query(db, "SELECT error FROM tasks WHERE run_id = ? AND name = ?", (run_id, GATE))[0][0]
    assert error == "rejected by alice: too long"
    assert recorded(tmp_path / "done.txt") == [("build", 1)]
    assert approval_row(db, run_id, GATE) == ("rejected", "alice", "too long")


def test_a_timeout_decides_in_a_real_process(procs: Procs, tmp_path: Path) -> None:
    gate_workflow(tmp_path / "gate.yaml", timeout="0.5s", on_timeout="approve")
    db = tmp_path / DB
    run_id = new_id("auto")
    done = procs.run("run", "gate.yaml", "--db", DB, "--run-id", run_id, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert approval_row(db, run_id, GATE) == ("approved", "timeout", "no decision within 0.5s")
    assert "approved by timeout: no decision within 0.5s" in details(db, run_id, GATE)
    assert sorted(recorded(tmp_path / "done.txt")) == [("build", 1), ("ship", 1)]


# ---------------------------------------------------------------------------- errors


PARKED = "parked"
ENDED = "ended"


@dataclass
class Parked:
    """The parked database and an in-process `reviewflow` on it (environment optional)."""

    cwd: Path
    db: Path

    def __call__(self, *args: str | Path, env: dict[str, str | None] | None = None) -> Result:
        return rf(*args, env=env)


@pytest.fixture(scope="module")
def parked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parked]:
    """A run whose process was SIGKILLed while gates waited (decisions still possible), and a
    run that ended. Tests that decide use a gate of their own."""
    root = tmp_path_factory.mktemp("parked")
    procs = Procs(root)
    try:
        approval = {"type": "approval", "needs": ["build"]}
        write_workflow(
            root / "parked.yaml",
            {
                "build": sh("true"),
                "gate": {**approval, "params": {"approvers": ["alice"]}},
                "twice": approval,
                "by_default": approval,
                "by_env": approval,
                "early": {"type": "approval", "timeout": "0.1s", "on_timeout": "approve"},
                "slow": sh("sleep 30"),
                "late": {"type": "approval", "needs": ["slow"]},
                "plain": sh("true", needs=["build"]),
            },
            name="parked",
        )
        write_workflow(
            root / "ended.yaml",
            {
                "broken": sh("exit 3", retry={"max_retries": 0}),
                "gate": {"type": "approval", "needs": ["broken"]},
            },
            name="ended",
        )
        db = root / DB
        ended = procs.run("run", "ended.yaml", "--db", DB, "--run-id", ENDED, timeout=30)
        assert ended.returncode == 1, ended.stdout + ended.stderr
        proc = procs.start("run", "parked.yaml", "--db", DB, "--run-id", PARKED, run_id=PARKED)

        def ready() -> bool:
            states = dict(
                try_query(db, "SELECT name, state FROM tasks WHERE run_id = ?", (PARKED,)) or []
            )
            return all(
                is_waiting(db, PARKED, g) for g in ("gate", "twice", "by_default", "by_env")
            ) and (
                states.get("early"),
                states.get("plain"),
                states.get("slow"),
                states.get("late"),
            ) == ("succeeded", "succeeded", "running", "blocked")

        wait_for(ready, "the parked run's gates to wait", timeout=20)
        procs.kill(proc)
        yield Parked(root, db)
    finally:
        procs.cleanup()


ERRORS = [
    pytest.param(
        ["approve", "nope", "gate"], 2, "error: no run with id 'nope' in {db}", id="unknown-run"
    ),
    pytest.param(
        ["approve", PARKED, "nope"],
        2,
        f"error: run {PARKED} has no task 'nope' (approval tasks: gate, twice, "
        "by_default, by_env, early, late)",
        id="unknown-task",
    ),
    pytest.param(
        ["approve", ENDED, "nope"],
        2,
        f"error: run {ENDED} has no task 'nope' (approval tasks: gate)",
        id="unknown-task-ended-run",
    ),
    pytest.param(
        ["approve", PARKED, "plain"],
        2,
        "error: task 'plain' is not an approval task (type shell)",
        id="not-approval",
    ),
    pytest.param(
        ["reject", PARKED, "build", "--comment", "x"],
        2,
        "error: task 'build' is not an approval task (type shell)",
        id="reject-not-approval",
    ),
    pytest.param(
        ["approve", PARKED, "gate", "--by", "mallory"],
        1,
        "error: mallory may not decide on gate (approvers: alice)",
        id="not-approver",
    ),
    pytest.param(
        ["reject", PARKED, "gate", "--by", "mallory", "--comment", "no"],
        1,
        "error: mallory may not decide on gate (approvers: alice)",
        id="reject-not-approver",
    ),
    pytest.param(
        ["approve", PARKED, "late", "--by", "alice"],
        1,
        "error: task late is not waiting for approval yet (its dependencies are not done)",
        id="blocked",
    ),
    pytest.param(
        ["approve", PARKED, "early"],
        1,
        "error: task early already ended: succeeded",
        id="task-ended",
    ),
    pytest.param(
        ["approve", ENDED, "gate"], 1, f"error: run {ENDED} already ended: failed", id="run-ended"
    ),
    pytest.param(
        ["reject", PARKED, "gate", "--by", "alice", "--comment", "  "],
        2,
        "error: --comment must say why",
        id="blank-comment",
    ),
    pytest.param(
        ["approve", PARKED, "gate", "--db", "missing.db"],
        2,
        "error: no database at missing.db (run a workflow first, or pass --db)",
        id="no-database",
    ),
]


@pytest.mark.parametrize(("args", "code", "message"), ERRORS)
def test_errors_are_one_line_with_the_right_exit_code(
    parked: Parked, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    monkeypatch.chdir(parked.cwd)
    if "--db" not in args:
        args = [*args, "--db", str(parked.db)]
    result = parked(*args)
    assert result.exit_code == code, result.output
    assert one_line_error(result.stderr) == message.format(db=parked.db)
    assert result.stdout == ""
    assert undecided(parked.db, PARKED, "gate")  # nothing was written


def test_reject_needs_a_comment(parked: Parked) -> None:
    result = parked("reject", PARKED, "gate", "--by", "alice", "--db", parked.db)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    assert "Missing option" in result.stderr and "--comment" in result.stderr
    assert undecided(parked.db, PARKED, "gate")


def test_a_gate_is_decided_once(parked: Parked) -> None:
    first = parked(
        "approve", PARKED, "twice", "--by", "alice", "--comment", "ok", "--db", parked.db
    )
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        f"{PARKED}/twice: approved by alice: ok",
        f"nothing is executing the run: continue with `reviewflow resume {PARKED}`",
    ]
    again = parked("approve", PARKED, "twice", "--by", "alice", "--db", parked.db)
    assert again.exit_code == 1, again.output
    assert one_line_error(again.stderr) == "error: twice was already approved by alice"
    other = parked("reject", PARKED, "twice", "--by", "bob", "--comment", "no", "--db", parked.db)
    assert other.exit_code == 1, other.output
    assert one_line_error(other.stderr) == "error: twice was already approved by alice"
    assert approval_row(parked.db, PARKED, "twice") == ("approved", "alice", "ok")
    assert details(parked.db, PARKED, "twice").count("approved by alice: ok") == 1
    assert not [d for d in details(parked.db, PARKED, "twice") if "bob" in d]


def test_the_approver_defaults_to_the_user_name(parked: Parked) -> None:
    expected = getpass.getuser()
    result = parked(
        "approve", PARKED, "by_default", "--db", parked.db, env={"REVIEWFLOW_APPROVER": None}
    )
    assert result.exit_code == 0, result.output
    assert f"{PARKED}/by_default: approved by {expected}" in result.stdout
    assert approval_row(parked.db, PARKED, "by_default") == ("approved", expected, None)
    assert f"approved by {expected}" in details(parked.db, PARKED, "by_default")


def test_the_approver_from_the_environment(parked: Parked) -> None:
    result = parked(
        "reject",
        PARKED,
        "by_env",
        "--comment",
        "not yet",
        "--db",
        parked.db,
        env={"REVIEWFLOW_APPROVER": "dave"},
    )
    assert result.exit_code == 0, result.output
    assert f"{PARKED}/by_env: rejected by dave: not yet" in result.stdout
    assert approval_row(parked.db, PARKED, "by_env") == ("rejected", "dave", "not yet")
    assert "rejected by dave: not yet" in details(parked.db, PARKED, "by_env")


# ---------------------------------------------------------------------------- content review


ARTICLE = """---
title: Writing your first review
description: A short guide to your first review.
date: 2024-03-01
author: Ada
---

This guide shows how to run your first review. It takes a few minutes of your time.
You need a repository with some changes in it. The tool reads the changes and checks them.
Each check looks at one thing. One reads the headings. One counts the words. One looks at
the links. When a check finds a problem, it tells you the file and the line.

## Install

Install the package first. Then open a terminal in your project. Run the command below
and wait for the report. The report lists each problem with a short note. It is easy to
read and easy to fix. Most people finish in less than an hour.

## Read the report

Each line of the report names a file. Fix the first problem, then run the tool again.
Keep going until the report is clean. Ask a friend to read the text when you are done.
A second pair of eyes finds the things you missed. Then send the change for a last look.
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(root: Path, *args: str) -> None:
    import os

    subprocess.run(
        ["git", "-C", str(root), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=30,
    )


def article_repo(root: Path) -> None:
    """main with a README; branch `post` adds one clean article."""
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# site\n", encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", "base")
    git(root, "checkout", "-q", "-b", "post")
    (root / "posts").mkdir()
    (root / "posts" / "first.md").write_text(ARTICLE, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", "post")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize(
    ("command", "decision", "comment", "code", "verdict"),
    [
        ("approve", "approved", "lgtm", 0, "approve"),
        ("reject", "rejected", "too short", 1, "request_changes"),
    ],
)
def test_a_content_review_waits_for_a_person(
    procs: Procs,
    tmp_path: Path,
    command: str,
    decision: str,
    comment: str,
    code: int,
    verdict: str,
) -> None:
    article_repo(tmp_path)
    db = tmp_path / ".reviewflow" / DB  # .reviewflow/ is never part of the change
    run_id = new_id("content")
    proc = procs.start(
        "review", "--template", "content", "--db", str(db), "--run-id", run_id, run_id=run_id
    )
    try:
        wait_for(
            lambda: is_waiting(db, run_id, "approval"), "the review's approval gate", timeout=30
        )
    except AssertionError:
        proc.kill()
        raise AssertionError(f"never waited: {proc.communicate(timeout=10)}") from None
    states = task_states(db, run_id)
    assert states["summary"] == "blocked"
    assert {
        states[c] for c in ("metadata", "headings", "readability", "spelling", "links", "length")
    } == {"succeeded"}
    decided = procs.run(
        command, run_id, "approval", "--comment", comment, "--by", "alice", "--db", str(db)
    )
    assert decided.returncode == 0, decided.stderr
    rc, out, err = procs.finish(proc, timeout=30)
    assert rc == code, out + err
    assert f"verdict: {verdict}" in out
    report = tmp_path / ".reviewflow" / "reviews" / run_id
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == verdict
    assert doc["approval"] == {"decision": decision, "approver": "alice", "comment": comment}
    markdown = (report / "report.md").read_text(encoding="utf-8")
    assert f"Approval: **{decision}** by alice — {comment}" in markdown
    if command == "reject":
        assert f"rejected by alice: {comment}" in doc["reasons"]
        assert f"rejected by alice: {comment}" in out
    else:
        assert doc["reasons"] == []


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_ci_a_review_stops_at_the_gate_instead_of_hanging(procs: Procs, tmp_path: Path) -> None:
    """CI=true and no terminal: nobody can approve, so the review ends with exit 3 and the
    commands to go on; approving and resuming later finishes it with the reports."""
    article_repo(tmp_path)
    db = tmp_path / ".reviewflow" / DB
    run_id = new_id("ci")
    done = procs.run(
        "review", "--template", "content", "--db", str(db), "--run-id", run_id,
        timeout=120, env={"CI": "true"},
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "verdict: waiting_for_approval" in done.stdout
    assert "the checks' own verdict: approve, 0 finding(s)" in done.stdout
    assert f"approve: reviewflow approve {run_id} approval --db {db}" in done.stdout
    assert f"then:    reviewflow resume {run_id} --db {db}" in done.stdout
    assert "interrupted" not in done.stderr
    assert run_state(db, run_id) == "running"  # kept, resumable; nothing executes it
    assert task_states(db, run_id)["approval"] == "ready"
    # Provisional reports: the findings the person is asked about, no decision yet (what the
    # Action posts as the PR comment and as a check run that needs action).
    folder = tmp_path / ".reviewflow" / "reviews" / run_id
    assert f"report: {folder / 'report.md'}" in done.stdout
    waiting = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert waiting["verdict"] == "waiting_for_approval"
    assert waiting["reasons"][0].startswith("waiting for approval: the checks say approve")
    assert (
        (folder / "report.md")
        .read_text(encoding="utf-8")
        .startswith("## ⏳ reviewflow: waiting for approval")
    )
    sarif = json.loads((folder / "report.sarif").read_text(encoding="utf-8"))
    assert sarif["runs"][0]["results"] == []

    decided = procs.run("approve", run_id, "approval", "--by", "alice", "--db", str(db))
    assert decided.returncode == 0, decided.stderr
    assert f"continue with `reviewflow resume {run_id}`" in decided.stdout
    resumed = procs.run("resume", run_id, "--db", str(db), timeout=120, env={"CI": "true"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report = tmp_path / ".reviewflow" / "reviews" / run_id / "report.json"
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["verdict"] == "approve"
    assert doc["approval"] == {"decision": "approved", "approver": "alice", "comment": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_ci_checks_that_request_changes_end_the_review_at_once(
    procs: Procs, tmp_path: Path
) -> None:
    article_repo(tmp_path)
    broken = ARTICLE + "\nSee [the guide](missing-page.md) for more.\n"
    (tmp_path / "posts" / "first.md").write_text(broken, encoding="utf-8")
    db = tmp_path / ".reviewflow" / DB
    run_id = new_id("ci")
    done = procs.run(
        "review", "--template", "content", "--db", str(db), "--run-id", run_id,
        timeout=120, env={"CI": "true"},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: request_changes" in done.stdout
    assert "waiting_for_approval" not in done.stdout
    assert task_states(db, run_id)["approval"] == "skipped"
