"""`reviewflow run --submit`, `reviewflow worker`, `reviewflow workers` and run control of
workers-mode runs, as a user drives them: real `python -m reviewflow` processes on a real
PostgreSQL database, real signals (SIGTERM drains, SIGKILL loses the lease).

What ran is counted independently of the database: tasks append `<task> <attempt>` to a file
in the test's directory (the workers' cwd). Long tasks first create `<task>.started` so the
test knows their process is really running before it signals anyone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from clihelpers import Procs, cli_env, record, recorded, sh, wait_for, write_workflow

CMD_TIMEOUT = 30.0  # any one CLI command; a hung command fails the test instead of hanging it


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def once_then_quick(name: str, first_sleep: float = 30.0) -> str:
    """Its first execution creates `<name>.started` and sleeps; any later one records itself
    at once. (An attempt handed back by a draining worker keeps its number, so the attempt
    number cannot tell them apart.)"""
    return (
        f"if [ -e {name}.started ]; then {record()}; "
        f"else touch {name}.started; sleep {first_sleep}; {record()}; fi"
    )


def started(name: str, sleep: float) -> str:
    """Creates `<name>.started`, sleeps, records itself."""
    return f"touch {name}.started; sleep {sleep}; {record()}"


def one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("error:"), stderr
    assert stderr.count("\n") == 1, stderr


class Db:
    """Read-only look at the database, as an operator would (one autocommit connection)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def run_state(self, run_id: str) -> str | None:
        rows = self.rows("SELECT state FROM runs WHERE run_id = %s", run_id)
        return rows[0][0] if rows else None

    def task(self, run_id: str, name: str) -> dict[str, Any]:
        ((state, attempts, owner, lost),) = self.rows(
            "SELECT state, attempts, owner, lost_attempts FROM tasks"
            " WHERE run_id = %s AND name = %s",
            run_id,
            name,
        )
        return {"state": state, "attempts": attempts, "owner": owner, "lost": lost}

    def worker(self, name: str) -> str | None:
        """The state a worker last reported (running, draining), None if not registered."""
        rows = self.rows("SELECT state FROM workers WHERE name = %s", name)
        return rows[0][0] if rows else None

    def states(self, run_id: str) -> dict[str, str]:
        return dict(self.rows("SELECT name, state FROM tasks WHERE run_id = %s", run_id))

    def events(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        rows = self.rows(
            "SELECT task, from_state, to_state, attempt, detail FROM events WHERE run_id = %s"
            " ORDER BY id",
            run_id,
        )
        keys = ("task", "from", "to", "attempt", "detail")
        found = [dict(zip(keys, r, strict=True)) for r in rows]
        return [e for e in found if task is None or e["task"] == task]

    def wait_run(self, run_id: str, *states: str, timeout: float = 20.0) -> str:
        return wait_for(
            lambda: (s := self.run_state(run_id)) in states and s,
            f"run {run_id} to be {'/'.join(states)}",
            timeout,
            0.05,
        )

    def close(self) -> None:
        self.conn.close()


class Rf:
    """`python -m reviewflow` processes of one test, in its directory, all against `url`.

    Workers log to files (never to an unread pipe); at teardown every process still running is
    SIGKILLed with its process group, and so is any task process left over from the test's runs
    (found by the REVIEWFLOW_RUN_ID in their environment), via `Procs.cleanup`.
    """

    def __init__(self, cwd: Path, url: str, procs: Procs) -> None:
        self.cwd, self.url, self.procs = cwd, url, procs
        self.logs: dict[int, Path] = {}

    def __call__(
        self, *args: str, timeout: float = CMD_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "reviewflow", *args],
            cwd=self.cwd,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def submit(self, workflow: Path, run_id: str | None = None) -> str:
        extra = ["--run-id", run_id] if run_id else []
        done = self("run", str(workflow), "--db", self.url, "--submit", *extra)
        assert done.returncode == 0, done.stderr
        rid = done.stdout.strip()
        self.procs.run_ids.add(rid)
        return rid

    def worker(self, name: str, *options: str) -> subprocess.Popen[str]:
        """Start `reviewflow worker --db URL --name NAME [options]` (quick polling)."""
        log_path = self.cwd / f"worker-{name}-{len(self.logs)}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reviewflow",
                    "worker",
                    "--db",
                    self.url,
                    "--name",
                    name,
                    "--poll-interval",
                    "0.1",
                    *options,
                ],
                cwd=self.cwd,
                env=cli_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        self.procs.started.append(proc)
        self.logs[proc.pid] = log_path
        return proc

    def log(self, proc: subprocess.Popen[str]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def stop(
        self, proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 15.0
    ) -> int:
        """Signal the worker (only it) and wait for its exit; its exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {proc.pid} still running {timeout}s after signal {sig}:\n" + self.log(proc)
            ) from None

    def workers(self) -> list[dict[str, Any]]:
        done = self("workers", "--db", self.url, "--json")
        assert done.returncode == 0, done.stderr
        found: list[dict[str, Any]] = json.loads(done.stdout)
        return found

    def live(self, name: str) -> dict[str, Any] | None:
        return next((w for w in self.workers() if w["name"] == name), None)


def leftovers(run_id: str) -> list[int]:
    """Pids of processes still running a task of `run_id`."""
    found = []
    marker = f"REVIEWFLOW_RUN_ID={run_id}"
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
            if (
                f"REVIEWFLOW_RUN_ID={env.get('REVIEWFLOW_RUN_ID')}" == marker
                and p.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture
def db(pg_url: str) -> Iterator[Db]:
    handle = Db(pg_url)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def rf(tmp_path: Path, pg_url: str, db: Db) -> Iterator[Rf]:
    # Depends on `db` so that its processes are gone before the connection and the database.
    procs = Procs(tmp_path)
    try:
        yield Rf(tmp_path, pg_url, procs)
    finally:
        procs.cleanup()


def two_tasks(tmp_path: Path, first: str, *, name: str = "wf", **fields: Any) -> Path:
    """`a` (a shell script) then `b` (a python task, after `a`)."""
    return write_workflow(
        tmp_path / f"{name}.yaml",
        {
            "a": sh(first),
            "b": {"type": "python", "call": "cli_tasks:record", "needs": ["a"]},
        },
        name=name,
        **fields,
    )


# ------------------------------------------------------------------------------ submit


def test_submit_prints_only_the_run_id_and_leaves_the_run_to_workers(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    wf = two_tasks(tmp_path, record())
    done = rf("run", str(wf), "--db", rf.url, "--submit")
    assert done.returncode == 0, done.stderr
    rid = done.stdout.strip()
    assert done.stdout == rid + "\n" and rid, done.stdout
    # Nobody executes it: the run waits for workers with its root task ready.
    assert db.run_state(rid) == "running"
    assert db.rows("SELECT mode FROM runs WHERE run_id = %s", rid)[0][0] is not None
    assert db.states(rid) == {"a": "ready", "b": "blocked"}
    assert not (tmp_path / "done.txt").exists()

    # `status` says where it is, without claiming that nothing will ever execute it.
    shown = rf("status", rid, "--db", rf.url)
    assert shown.returncode == 0, shown.stderr
    assert rid in shown.stdout and "running" in shown.stdout
    assert "no process is executing this run" not in shown.stdout + shown.stderr
    assert "no live worker: tasks stay ready/running until a worker starts" in shown.stdout

    # --run-id is an idempotency key: the second submission reports the same id.
    first = rf("run", str(wf), "--db", rf.url, "--submit", "--run-id", "pr-42")
    again = rf("run", str(wf), "--db", rf.url, "--submit", "--run-id", "pr-42")
    assert (first.returncode, first.stdout) == (0, "pr-42\n"), first.stderr
    assert (again.returncode, again.stdout) == (0, "pr-42\n"), again.stderr
    assert "already exists" in again.stderr
    assert "already exists" not in first.stderr
    as_json = rf("run", str(wf), "--db", rf.url, "--submit", "--run-id", "pr-42", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"run_id": "pr-42", "created": False}
    assert db.rows("SELECT count(*) FROM runs")[0][0] == 2
    assert (
        db.rows(
            "SELECT count(*) FROM events WHERE run_id = 'pr-42' AND task IS NULL"
            " AND to_state = 'running'"
        )[0][0]
        == 1
    )


def test_submit_with_a_sqlite_database_is_a_one_line_error(rf: Rf, tmp_path: Path) -> None:
    wf = two_tasks(tmp_path, record())
    done = rf("run", str(wf), "--db", "rf.db", "--submit")
    assert done.returncode == 2
    one_line_error(done.stderr)
    assert "--submit" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "rf.db").exists()  # nothing was created, nothing ran
    assert not (tmp_path / "done.txt").exists()


# ------------------------------------------------------------------------------ worker


def test_a_worker_executes_submitted_runs_and_workers_lists_it_until_sigterm(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    wf = two_tasks(tmp_path, record())
    runs = [rf.submit(wf) for _ in range(2)]
    w1 = rf.worker("w1", "--concurrency", "2", "--lease-ttl", "3")  # heartbeats every 1 s
    for rid in runs:
        db.wait_run(rid, "succeeded", "failed", "cancelled")
    for rid in runs:
        assert db.run_state(rid) == "succeeded", db.events(rid)
        assert db.states(rid) == {"a": "succeeded", "b": "succeeded"}
    shown = rf("status", runs[0], "--db", rf.url)
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout.splitlines()[0], shown.stdout
    as_json = json.loads(rf("status", runs[1], "--db", rf.url, "--json").stdout)
    assert as_json["state"] == "succeeded"
    result = next(t["result"] for t in as_json["tasks"] if t["name"] == "b")
    assert result["inputs"] == ["a"]  # the python task saw its dependency's result
    assert sorted(recorded(tmp_path / "done.txt")) == [("a", 1)] * 2 + [("b", 1)] * 2

    # `reviewflow workers`: the live worker, by name, host, pid, heartbeat age, running.
    # (the count is as of the worker's last heartbeat: wait for one after the runs ended)
    (listed,) = wait_for(
        lambda: [w for w in rf.workers() if w["running"] == 0],
        "the worker to report no running attempt",
    )
    assert {"name", "host", "pid", "heartbeat_age", "running"} <= set(listed)
    assert (listed["name"], listed["host"], listed["pid"], listed["running"]) == (
        "w1",
        socket.gethostname(),
        w1.pid,
        0,
    )
    assert isinstance(listed["heartbeat_age"], float) and listed["heartbeat_age"] >= 0
    table = rf("workers", "--db", rf.url)
    assert table.returncode == 0, table.stderr
    line = next((x for x in table.stdout.splitlines() if "w1" in x), None)
    assert line is not None, table.stdout
    assert str(w1.pid) in line and socket.gethostname() in line and "s ago" in line
    assert "0/2" in line  # running/concurrency
    for header in ("name", "host", "pid", "heartbeat", "running"):
        assert header in table.stdout

    # SIGTERM: exit 0, and the worker leaves the list.
    assert rf.stop(w1) == 0, rf.log(w1)
    assert "Traceback" not in rf.log(w1)
    assert rf.workers() == []
    gone = rf("workers", "--db", rf.url)
    assert gone.returncode == 0 and "no live workers" in gone.stdout, gone.stdout


def test_worker_needs_postgresql_and_says_so_in_one_line(rf: Rf, tmp_path: Path) -> None:
    for cmd in ("worker", "workers"):
        done = rf(cmd, "--db", "some.sqlite")
        assert done.returncode == 2, done.stdout + done.stderr
        one_line_error(done.stderr)
        assert "PostgreSQL" in done.stderr
    assert not (tmp_path / "some.sqlite").exists()


def test_worker_without_a_reachable_database_fails_in_one_line(rf: Rf) -> None:
    # Nothing listens on port 1: the worker must not retry forever, nor print a traceback.
    url = "postgresql://rf:s3cret-pw@127.0.0.1:1/x"  # pragma: allowlist secret
    for args in (("worker", "--db", url, "--name", "w"), ("workers", "--db", url)):
        done = rf(*args, timeout=60)
        assert done.returncode != 0
        one_line_error(done.stderr)
        assert "s3cret-pw" not in done.stdout + done.stderr


# ------------------------------------------------------------------------------ draining


def test_sigterm_hands_a_long_attempt_back_uncounted_and_another_worker_runs_it(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    wf = write_workflow(tmp_path / "wf.yaml", {"long": sh(once_then_quick("long"))})
    rid = rf.submit(wf)
    w1 = rf.worker("w1", "--grace", "0.5")
    wait_for(lambda: (tmp_path / "long.started").exists(), "the task's process to start")
    assert db.task(rid, "long")["state"] == "running"

    assert rf.stop(w1, timeout=10) == 0, rf.log(w1)
    # Handed back: ready again, the attempt not counted, nothing recorded as done.
    assert db.task(rid, "long") == {"state": "ready", "attempts": 0, "owner": None, "lost": 0}
    assert db.run_state(rid) == "running"
    last = db.events(rid, "long")[-1]
    assert (last["from"], last["to"]) == ("running", "ready"), last
    assert not (tmp_path / "done.txt").exists()
    wait_for(lambda: not leftovers(rid), "the attempt's process to be stopped", timeout=10)

    w2 = rf.worker("w2")
    assert db.wait_run(rid, "succeeded", "failed") == "succeeded", db.events(rid)
    assert db.task(rid, "long")["attempts"] == 1
    assert recorded(tmp_path / "done.txt") == [("long", 1)]
    assert rf.stop(w2) == 0


def test_a_second_signal_hands_back_at_once_even_a_python_task(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    wf = write_workflow(
        tmp_path / "wf.yaml",
        {
            "p": {"type": "python", "call": "worker_cli_tasks:nap_once", "params": {"seconds": 30}},
        },
    )
    rid = rf.submit(wf)
    w1 = rf.worker("w1", "--grace", "30", "--lease-ttl", "60")  # heartbeats every 20 s
    wait_for(lambda: (tmp_path / "p.started").exists(), "the task to start")
    os.kill(w1.pid, signal.SIGINT)  # Ctrl-C drains like SIGTERM: the attempt gets its grace
    # `reviewflow workers` shows it draining at once, not at its next heartbeat
    wait_for(
        lambda: w1.poll() is not None or db.worker("w1") == "draining",
        "the worker to report draining",
        timeout=10,
    )
    assert w1.poll() is None, rf.log(w1)
    assert rf.live("w1")["state"] == "draining"  # type: ignore[index]
    assert rf.stop(w1, timeout=10) == 0, rf.log(w1)  # the second signal: hand back now
    assert db.task(rid, "p") == {"state": "ready", "attempts": 0, "owner": None, "lost": 0}
    assert not (tmp_path / "done.txt").exists()

    w2 = rf.worker("w2")
    assert db.wait_run(rid, "succeeded", "failed") == "succeeded", db.events(rid)
    assert recorded(tmp_path / "done.txt") == [("p", 1)]
    assert rf.stop(w2) == 0, rf.log(w2)


def test_sigterm_lets_a_short_attempt_finish_and_claims_nothing_more(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    wf = two_tasks(tmp_path, started("a", 1.5))
    rid = rf.submit(wf)
    w1 = rf.worker("w1", "--grace", "30")
    wait_for(lambda: (tmp_path / "a.started").exists(), "the task's process to start")

    assert rf.stop(w1, timeout=20) == 0, rf.log(w1)
    # The attempt finished during the grace period; its dependent became ready, unclaimed.
    assert db.task(rid, "a")["state"] == "succeeded"
    assert db.task(rid, "a")["attempts"] == 1
    assert db.task(rid, "b")["state"] == "ready"
    assert recorded(tmp_path / "done.txt") == [("a", 1)]
    assert rf.workers() == []


def test_a_sigkilled_workers_task_is_taken_over_after_its_lease_expires(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    wf = write_workflow(tmp_path / "wf.yaml", {"t": sh(once_then_quick("t"))})
    rid = rf.submit(wf)
    w1 = rf.worker("w1", "--lease-ttl", "1")
    wait_for(lambda: (tmp_path / "t.started").exists(), "the task's process to start")
    wait_for(
        lambda: db.rows("SELECT pid FROM tasks WHERE run_id = %s", rid)[0][0],
        "the task's process to be recorded",
    )
    assert rf.stop(w1, signal.SIGKILL) == -signal.SIGKILL

    w2 = rf.worker("w2", "--lease-ttl", "1")
    assert db.wait_run(rid, "succeeded", "failed") == "succeeded", db.events(rid)
    task = db.task(rid, "t")
    assert (task["state"], task["attempts"], task["lost"]) == ("succeeded", 2, 1)
    evs = db.events(rid, "t")
    lost = [e for e in evs if (e["detail"] or "").startswith("lost:")]
    assert len(lost) == 1 and (lost[0]["from"], lost[0]["to"]) == ("running", "ready"), evs
    assert [e["attempt"] for e in evs if e["to"] == "succeeded"] == [2], evs
    assert recorded(tmp_path / "done.txt") == [("t", 2)]
    # The dead worker's `sleep 30` does not outlive it: the taker-over killed it.
    wait_for(lambda: not leftovers(rid), "the orphaned attempt to be killed", timeout=10)
    assert rf.stop(w2) == 0


def test_a_sigkilled_worker_leaves_the_list_and_status_says_nothing_takes_the_run(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    """A killed worker never says goodbye: once its heartbeat lapses `reviewflow workers` stops
    listing it (shown as lost with --all), and `status` says the run has nobody to take it.
    Liveness is judged on the database clock: the test shifts the heartbeat instead of waiting."""
    wf = two_tasks(tmp_path, started("a", 30))
    rid = rf.submit(wf)
    w1 = rf.worker("w1")  # the default lease: 30 s, heartbeats every 10 s
    wait_for(lambda: (tmp_path / "a.started").exists(), "the task's process to start")
    shown = rf("status", rid, "--db", rf.url)
    assert shown.returncode == 0, shown.stderr
    assert "no live worker" not in shown.stdout
    assert json.loads(rf("status", rid, "--db", rf.url, "--json").stdout)["workers"] == {"live": 1}

    assert rf.stop(w1, signal.SIGKILL) == -signal.SIGKILL
    db.rows("UPDATE workers SET heartbeat_at = heartbeat_at - 20 WHERE name = 'w1' RETURNING 1")

    assert rf.workers() == []
    listed = rf("workers", "--db", rf.url)
    assert listed.returncode == 0 and "no live workers" in listed.stdout, listed.stdout
    every = rf("workers", "--db", rf.url, "--all", "--json")
    assert every.returncode == 0, every.stderr
    ((name, state, pid),) = [(w["name"], w["state"], w["pid"]) for w in json.loads(every.stdout)]
    assert (name, state, pid) == ("w1", "lost", w1.pid)
    table = rf("workers", "--db", rf.url, "--all")
    assert "lost" in table.stdout and "w1" in table.stdout, table.stdout

    shown = rf("status", rid, "--db", rf.url)
    assert shown.returncode == 0, shown.stderr
    assert "no live worker: tasks stay ready/running until a worker starts" in shown.stdout
    doc = json.loads(rf("status", rid, "--db", rf.url, "--json").stdout)
    assert doc["workers"] == {
        "live": 0,
        "note": "no live worker: tasks stay ready/running until a worker starts",
    }
    assert db.task(rid, "a")["state"] == "running"  # its lease has not expired yet


# ------------------------------------------------------------------------------ control


def test_cancel_stops_the_running_attempt_at_its_worker(rf: Rf, db: Db, tmp_path: Path) -> None:
    wf = two_tasks(tmp_path, started("a", 30))
    rid = rf.submit(wf)
    w1 = rf.worker("w1")
    wait_for(lambda: (tmp_path / "a.started").exists(), "the task's process to start")

    shown = rf("status", rid, "--db", rf.url)
    assert shown.returncode == 0, shown.stderr
    assert "running" in shown.stdout.splitlines()[0], shown.stdout
    assert "no process is executing this run" not in shown.stdout + shown.stderr

    done = rf("cancel", rid, "--db", rf.url, timeout=40)
    assert (done.returncode, done.stdout) == (0, f"{rid}: cancelled\n"), done.stderr
    assert db.run_state(rid) == "cancelled"
    assert db.states(rid) == {"a": "cancelled", "b": "cancelled"}
    wait_for(lambda: not leftovers(rid), "the cancelled attempt's process to stop", timeout=10)
    assert not (tmp_path / "done.txt").exists()
    # The worker carries on, and exits 0 on SIGTERM.
    assert w1.poll() is None
    assert rf.live("w1") is not None
    assert rf.stop(w1) == 0, rf.log(w1)

    again = rf("cancel", rid, "--db", rf.url)
    assert again.returncode == 1 and "already ended" in again.stderr


def test_pause_and_resume_a_workers_run(rf: Rf, db: Db, tmp_path: Path) -> None:
    wf = two_tasks(tmp_path, record())
    rid = rf.submit(wf)

    paused = rf("pause", rid, "--db", rf.url)
    assert (paused.returncode, paused.stdout) == (0, f"{rid}: paused\n"), paused.stderr
    # `resume` applies to the database and returns: with no worker, nothing executes the run
    # (not the CLI process either).
    resumed = rf("resume", rid, "--db", rf.url)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"{rid}: running"), resumed.stdout
    assert db.run_state(rid) == "running"
    assert db.task(rid, "a") == {"state": "ready", "attempts": 0, "owner": None, "lost": 0}
    assert not (tmp_path / "done.txt").exists()

    # A paused run is not worked on by a live worker...
    assert rf("pause", rid, "--db", rf.url).stdout == f"{rid}: paused\n"
    w1 = rf.worker("w1")
    wait_for(lambda: db.worker("w1"), "the worker to be live")
    time.sleep(0.5)  # several polls of the worker
    assert db.task(rid, "a")["state"] == "ready"
    assert not (tmp_path / "done.txt").exists()
    status = rf("status", rid, "--db", rf.url)
    assert status.returncode == 0 and "paused" in status.stdout.splitlines()[0]
    # ...until it is resumed.
    resumed = rf("resume", rid, "--db", rf.url)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"{rid}: running"), resumed.stdout
    assert db.wait_run(rid, "succeeded", "failed") == "succeeded", db.events(rid)
    assert recorded(tmp_path / "done.txt") == [("a", 1), ("b", 1)]
    assert rf.stop(w1) == 0, rf.log(w1)


def test_pause_lets_the_running_attempt_finish_and_starts_nothing_new(
    rf: Rf, db: Db, tmp_path: Path
) -> None:
    gate = "i=0; while [ ! -e go ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
    wf = two_tasks(tmp_path, "touch a.started; " + gate + record())
    rid = rf.submit(wf)
    w1 = rf.worker("w1")
    wait_for(lambda: (tmp_path / "a.started").exists(), "the task's process to start")

    paused = rf("pause", rid, "--db", rf.url)
    assert (paused.returncode, paused.stdout) == (0, f"{rid}: paused\n"), paused.stderr
    (tmp_path / "go").touch()
    wait_for(lambda: db.task(rid, "a")["state"] == "succeeded", "the running attempt to end")
    time.sleep(0.5)  # several polls of the worker
    assert db.task(rid, "b")["state"] == "ready"
    assert db.run_state(rid) == "paused"

    resumed = rf("resume", rid, "--db", rf.url)
    assert resumed.returncode == 0 and resumed.stdout.startswith(f"{rid}: running")
    assert db.wait_run(rid, "succeeded", "failed") == "succeeded", db.events(rid)
    assert recorded(tmp_path / "done.txt") == [("a", 1), ("b", 1)]
    assert rf.stop(w1) == 0, rf.log(w1)


def test_a_second_live_worker_with_the_same_name_is_refused(rf: Rf, tmp_path: Path) -> None:
    """Names tell workers apart (`reviewflow workers`, task owners in logs): two live ones may
    not share one."""
    w1 = rf.worker("same", "--lease-ttl", "3")
    wait_for(lambda: rf.live("same"), "the first worker to register")
    second = rf.worker("same")
    assert second.wait(timeout=30) == 1
    assert "already named 'same'" in rf.log(second)
    assert "Traceback" not in rf.log(second)
    assert rf.live("same")["pid"] == w1.pid  # type: ignore[index]
    assert rf.stop(w1) == 0


def test_cancel_without_any_live_worker_does_not_wait(rf: Rf, db: Db, tmp_path: Path) -> None:
    """No worker alive: cancel applies what it can and says what is left, at once."""
    wf = two_tasks(tmp_path, started("a", 30))
    run_id = rf.submit(wf)
    done = rf("cancel", run_id, "--db", rf.url, timeout=20)
    assert done.returncode == 0, done.stderr
    assert db.run_state(run_id) == "cancelled"  # nothing was running: everything cancelled
    assert db.states(run_id) == {"a": "cancelled", "b": "cancelled"}
