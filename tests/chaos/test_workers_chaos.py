"""Chaos: a 2,000-task workflow on 3 real worker processes, one SIGKILLed again and again.

The product's contract: 3 worker processes, a 2,000-task workflow (mixed priorities,
fan-out/fan-in, some retries); SIGKILL a random worker every ~0.5 s and start a new one → every
task succeeded exactly once in the store, none stuck, no attempt recorded as completed by two
workers, the run finishes. Same with the PostgreSQL server restarted once mid-run.

Faults follow the run's progress, read from the database, never the clock: a worker is killed
each time another KILL_STEP tasks succeeded (40-50 kills a run, about one a second here), the
server is restarted once RESTART_AT tasks succeeded, and the killing stops at KILL_UNTIL, after
which the run must finish by itself. A busy machine makes the run slower, not the chaos
smaller or the test fail: the only time bound is STALL, a stretch with no task succeeding.

Workers are `python -m reviewflow worker` subprocesses with a 2 s lease, so the attempts of a
killed worker come back quickly; `--max-lost-attempts 20` keeps the kills from failing tasks.
Everything asserted is read back from the store: the run, its tasks and its events.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pg
from reviewflow.cluster.queue import Cluster
from reviewflow.spec import WorkflowSpec
from reviewflow.store.base import EventRecord
from reviewflow.store.postgres import PostgresStore

ROOT = Path(__file__).resolve().parents[2]
CHAOS_DIR = Path(__file__).resolve().parent  # chaos_tasks.py, on the workers' PYTHONPATH

WORKERS = 3
LEASE_TTL = 2.0
KILL_STEP = 30  # a random worker is killed (and replaced) each time this many more succeeded
KILL_UNTIL = 1600  # no kill once this many tasks succeeded: the run must end by itself
MAX_KILLS = 50
RESTART_AT = 500  # tasks succeeded when the server is restarted (the restart variant)
STALL = 120.0  # seconds without one more task succeeding: the run is stuck, the test fails
POLL = 0.05  # seconds between looks at the run's progress
CHAOS_TIMEOUT = 1800  # pytest-timeout's last resort; STALL is what fails a stuck run
TERMINAL = ("succeeded", "failed", "cancelled")
LATE = re.compile(r"late completion of attempt (\d+) by (\S+) rejected \((\w+)\)")


# --------------------------------------------------------------------------------- workflow


def chaos_workflow() -> WorkflowSpec:
    """2,000 tasks: root -> 50 -> 50x30 (fan-out) -> 50 fan-ins -> 10 fan-ins -> 388 -> final.

    Priorities cycle high/medium/low; one task in ten of the two wide layers fails its first
    attempt (and is retried after ~50 ms); attempts sleep 50-200 ms so workers die mid-attempt.
    """
    tasks: dict[str, Any] = {}
    priorities = ("high", "medium", "low")

    def task(name: str, needs: list[str], i: int, *, flaky: bool = False) -> None:
        tasks[name] = {
            "call": "chaos_tasks:work",
            "needs": needs,
            "priority": priorities[i % 3],
            "params": {"seconds": 0.05 * (1 + i % 4), "flaky": flaky},
            "retry": {"max_retries": 3, "base_delay": 0.05, "max_delay": 0.2},
            "timeout": 30,
        }

    task("root", [], 0)
    for a in range(50):
        task(f"a{a}", ["root"], a)
        for b in range(30):
            task(f"b{a}_{b}", [f"a{a}"], a + b, flaky=b % 10 == 3)
        task(f"c{a}", [f"b{a}_{b}" for b in range(30)], a)
    for d in range(10):
        task(f"d{d}", [f"c{a}" for a in range(d * 5, d * 5 + 5)], d)
    for e in range(388):
        task(f"e{e}", [f"d{e % 10}"], e, flaky=e % 10 == 7)
    task("final", [f"e{e}" for e in range(388)], 0)
    assert len(tasks) == 2000
    return WorkflowSpec.model_validate({"name": "chaos", "tasks": tasks})


FLAKY = 50 * 3 + 39  # tasks failing their first attempt (b*_3, b*_13, b*_23; e7, e17, …)


# --------------------------------------------------------------------------------- workers


def _die_with_parent() -> Callable[[], None] | None:
    """SIGKILL a worker if this test process dies (a killed test run leaves none behind)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


class Workers:
    """The worker processes of one test: started, killed, replaced, stopped."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.live: list[str] = []
        self.killed: list[str] = []
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(CHAOS_DIR), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        self.env.pop("REVIEWFLOW_DB", None)
        self.env["PYTHONFAULTHANDLER"] = "1"
        self.hung: list[Any] = []

    def start(self) -> str:
        name = f"chaos-{len(self.started) + 1}"
        with (self.logs / f"{name}.log").open("wb") as log:
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
                    "--lease-ttl",
                    str(LEASE_TTL),
                    "--poll-interval",
                    "0.1",
                    "--concurrency",
                    "16",
                    "--max-lost-attempts",
                    "20",
                    "--grace",
                    "10",
                    "--log-format",
                    "json",
                ],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        self.started[name] = proc
        self.live.append(name)
        return name

    def kill(self, name: str) -> None:
        proc = self.started[name]
        proc.kill()
        proc.wait(10)
        self.live.remove(name)
        self.killed.append(name)

    def wait_started(self, timeout: float = STALL) -> bool:
        """Until every live worker is past its start-up (registered, signal handlers set) or
        has exited; False if one is still starting after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                self.started[n].poll() is not None
                or '"worker.start"' in (self.logs / f"{n}.log").read_text(errors="replace")
                for n in self.live
            ):
                return True
            time.sleep(0.05)
        return False

    def pids(self) -> set[int]:
        return {p.pid for p in self.started.values()}

    def crashed(self) -> dict[str, int | None]:
        """Workers that ended without being killed (exit code), with their log tails."""
        return {n: self.started[n].poll() for n in self.live if self.started[n].poll() is not None}

    def stop(self) -> dict[str, int]:
        """SIGTERM the live workers (a drain); their exit codes."""
        for name in self.live:
            if self.started[name].poll() is None:
                self.started[name].send_signal(signal.SIGTERM)
        codes = {}
        deadline = time.monotonic() + 30
        for name in self.live:
            try:
                codes[name] = self.started[name].wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                codes[name] = -999
        if -999 in codes.values():  # a hung drain: what the database and the workers wait on
            self.hung = sessions(self.url)
            for name, code in codes.items():
                if code == -999:
                    self.started[name].send_signal(signal.SIGABRT)  # faulthandler: stacks
                    self.started[name].wait(10)
        return codes

    def log_tail(self, name: str, lines: int = 15) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        for proc in self.started.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.started.values():
            proc.wait(10)


@pytest.fixture
def make_workers(tmp_path: Path) -> Iterator[Callable[[str], Workers]]:
    made: list[Workers] = []

    def make(url: str) -> Workers:
        workers = Workers(url, tmp_path / "workers")
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.cleanup()


@pytest.fixture
def private_server() -> Iterator[pg.LocalServer]:
    """A PostgreSQL server of this test alone, so that it can be restarted."""
    bindir = pg.find_bindir()
    if bindir is None:
        reason = "no PostgreSQL server binaries (initdb and postgres) to start a private server"
        if pg.required():
            pytest.fail(f"{reason}, and {pg.ENV_REQUIRE}=1 requires PostgreSQL")
        pytest.skip(reason)
    server = pg.LocalServer(bindir)
    try:
        yield server
    finally:
        server.stop()


def restart(server: pg.LocalServer) -> float:
    """Fast shutdown (SIGINT: open sessions are cut), down for longer than a lease, then a start
    on the same data and port; returns when it started again (database clock)."""
    proc = server._proc
    assert proc is not None and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    time.sleep(LEASE_TTL + 1)  # the leases of attempts running meanwhile expire
    assert server._start(server.port), server.log.read_text(errors="replace")[-3000:]
    return float(
        scalar(
            server.url,
            "SELECT extract(epoch FROM pg_postmaster_start_time())::double precision",
            {},
        )
    )


# --------------------------------------------------------------------------------- the run


def scalar(url: str, sql: str, params: dict[str, Any]) -> Any:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def sessions(url: str) -> list[Any]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(
            "SELECT pid, state, wait_event_type, wait_event, xact_start, left(query, 200)"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()


def back_after(
    url: str, run_id: str, workers: Workers, names: list[str], since: float
) -> dict[str, Any]:
    """Which of these workers, since the server restarted: heartbeat (their pool reconnected),
    completed an attempt of the run (claims and records work again), and how many LISTEN
    again (no other worker is started meanwhile)."""
    pids = {str(workers.started[n].pid): n for n in names}
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        beating = {
            n
            for (n,) in conn.execute(
                "SELECT name FROM workers WHERE name = ANY(%(names)s) AND heartbeat_at > %(t)s",
                {"names": names, "t": since},
            )
        }
        working = {
            pids[p]
            for (p,) in conn.execute(
                "SELECT DISTINCT t.result::json->>'pid' FROM events e JOIN tasks t"
                " ON t.run_id = e.run_id AND t.name = e.task"
                " WHERE e.run_id = %(r)s AND e.to_state = 'succeeded' AND e.at > %(t)s",
                {"r": run_id, "t": since},
            )
            if p in pids
        }
        listening = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN reviewflow_ready'"
        ).fetchone()
    assert listening is not None
    return {"beating": sorted(beating), "working": sorted(working), "listening": int(listening[0])}


def restart_mid_run(
    url: str, run_id: str, workers: Workers, server: pg.LocalServer
) -> dict[str, Any]:
    """Restart the server under the live workers; wait (bounded) until they all work again."""
    # A worker starting while the server is down exits (it cannot register): let the newest
    # one start first, so that every live worker has to live through the restart.
    assert workers.wait_started(), {n: workers.log_tail(n) for n in workers.live}
    names = list(workers.live)
    since = restart(server)
    started = time.monotonic()
    deadline = time.monotonic() + STALL  # generous: only workers that never come back fail
    while True:
        back = back_after(url, run_id, workers, names, since)
        done = back["beating"] == back["working"] == sorted(names) and (
            back["listening"] >= len(names)
        )
        if done or time.monotonic() > deadline:
            return {
                "restarted": True,
                "through_restart": sorted(names),
                "back": back,
                "back_within": round(time.monotonic() - started, 1),
            }
        time.sleep(0.1)


class Progress:
    """The run's state and its count of succeeded tasks, read on one connection (opened again
    after the server restart; a read that fails counts as no progress)."""

    def __init__(self, url: str, run_id: str) -> None:
        self.url, self.run_id = url, run_id
        self.conn: psycopg.Connection | None = None
        self.last: tuple[str, int] = ("running", 0)

    def read(self) -> tuple[str, int]:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            row = self.conn.execute(
                "SELECT r.state, (SELECT count(*) FROM tasks t WHERE t.run_id = r.run_id"
                " AND t.state = 'succeeded') FROM runs r WHERE r.run_id = %(r)s",
                {"r": self.run_id},
            ).fetchone()
        except psycopg.OperationalError:
            self.close()
            return self.last
        assert row is not None
        self.last = (str(row[0]), int(row[1]))
        return self.last

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_chaos(
    url: str, workers: Workers, *, server: pg.LocalServer | None = None
) -> tuple[str, dict[str, Any]]:
    """Submit the workflow, kill and replace workers as it progresses (restarting `server` once,
    mid-run, if given), wait for the run's end, drain the workers."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    info: dict[str, Any] = {"seed": seed, "kills": 0, "restarted": False}
    for _ in range(WORKERS):
        workers.start()
    store = PostgresStore(url)
    try:
        run_id, created = Cluster(store).submit(chaos_workflow())
    finally:
        store.close()
    assert created

    progress = Progress(url, run_id)
    next_kill = KILL_STEP
    best, progressed = -1, time.monotonic()
    try:
        while True:
            state, succeeded = progress.read()
            if state in TERMINAL:
                break
            if succeeded > best:
                best, progressed = succeeded, time.monotonic()
            elif time.monotonic() - progressed > STALL:
                info["stalled"] = f"no task succeeded for {STALL:g}s, {succeeded} had"
                break
            if succeeded >= next_kill and succeeded < KILL_UNTIL and info["kills"] < MAX_KILLS:
                workers.kill(rng.choice(workers.live))
                info["kills"] += 1
                info.setdefault("kills_at", []).append(succeeded)
                workers.start()
                next_kill = succeeded + KILL_STEP
            if server is not None and not info["restarted"] and succeeded >= RESTART_AT:
                info.update(restart_mid_run(url, run_id, workers, server))
                progressed = time.monotonic()  # the outage is not a stall
            time.sleep(POLL)
    finally:
        progress.close()
    info["crashed"] = workers.crashed()
    # A worker killed by SIGTERM before it set its handler (still importing) exits -15: the
    # drain is only asked of workers that started.
    workers.wait_started()
    info["exit_codes"] = workers.stop()
    return run_id, info


# --------------------------------------------------------------------------------- checks


def check_exactly_once(url: str, run_id: str, workers: Workers, info: dict[str, Any]) -> None:
    """What the contract promises, read back from the store."""
    store = PostgresStore(url)
    try:
        run = store.get_run(run_id)
        tasks = {t.name: t for t in store.get_tasks(run_id)}
        events = store.get_events(run_id)
    finally:
        store.close()
    assert run is not None
    context = f"{info}; run {run.state} {run.error}"

    # the run finished, succeeded, every one of its 2,000 tasks succeeded: none stuck
    assert run.state == "succeeded", context
    assert len(tasks) == 2000
    assert Counter(t.state for t in tasks.values()) == {"succeeded": 2000}, context
    assert (
        scalar(
            url,
            "SELECT count(*) FROM tasks WHERE run_id = %(r)s AND (owner IS NOT NULL"
            " OR lease_until IS NOT NULL OR due_at IS NOT NULL OR held IS NOT NULL)",
            {"r": run_id},
        )
        == 0
    )

    # every task succeeded exactly once: one transition to succeeded, for its last attempt,
    # whose result was written by one of this test's worker processes running that attempt
    # (a rejected late completion is an event too, from and to the task's state at the time)
    successes: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        if e.task is not None and e.to_state == "succeeded" and e.from_state != "succeeded":
            successes[e.task].append(e)
    pids = workers.pids()
    for name, task in tasks.items():
        ok = successes[name]
        assert len(ok) == 1, (name, ok)
        assert ok[0].from_state == "running" and ok[0].attempt == task.attempts, (name, ok)
        assert task.result is not None
        result = json.loads(task.result)
        assert result["attempt"] == task.attempts and result["pid"] in pids, (name, result)

    # every attempt ended once: completed by one worker, or taken back once (lease expired);
    # no attempt has two completions
    ends = Counter(
        (e.task, e.attempt)
        for e in events
        if e.task is not None and e.from_state == "running" and e.to_state != "running"
    )
    twice = {k: n for k, n in ends.items() if n > 1}
    assert not twice, twice

    # a completion that came too late (its worker had lost the lease) was rejected: the
    # attempt that succeeded is another one, or (a batch sent again after the connection broke
    # during its commit) the very worker whose completion was accepted
    for e in events:
        match = LATE.match(e.detail or "")
        if match is None:
            continue
        assert e.from_state == e.to_state, e
        attempt, owner = int(match[1]), match[2]
        winner = json.loads(tasks[e.task].result or "{}")  # type: ignore[index]
        if attempt == tasks[e.task].attempts:  # type: ignore[index]
            assert owner.split(":")[1] == str(winner["pid"]), (e, winner)

    # the chaos was real: workers were killed holding running attempts, which were taken
    # back; first attempts failed and were retried
    lost = [e for e in events if (e.detail or "").startswith("lost:")]
    assert info["kills"] >= 10, context
    assert lost, context
    assert all(e.from_state == "running" and e.to_state == "ready" for e in lost), lost[:5]
    retried = {e.task for e in events if e.to_state == "retry_wait"}
    assert 0 < len(retried) <= FLAKY, context

    # workers not killed were still alive at the end and drained cleanly (exit 0)
    assert not info["crashed"], {n: workers.log_tail(n) for n in info["crashed"]}
    assert info["exit_codes"] and set(info["exit_codes"].values()) == {0}, (
        info["exit_codes"],
        workers.hung,
        {n: workers.log_tail(n, 80) for n in info["exit_codes"]},
    )


# --------------------------------------------------------------------------------- the tests


@pytest.mark.timeout(CHAOS_TIMEOUT)
def test_killed_workers_lose_nothing_and_complete_nothing_twice(
    pg_url: str,
    make_workers: Callable[[str], Workers],
) -> None:
    workers = make_workers(pg_url)
    run_id, info = run_chaos(pg_url, workers)
    check_exactly_once(pg_url, run_id, workers, info)


@pytest.mark.timeout(CHAOS_TIMEOUT)
def test_chaos_survives_a_database_restart(
    private_server: pg.LocalServer,
    make_workers: Callable[[str], Workers],
) -> None:
    url = private_server.url
    workers = make_workers(url)
    run_id, info = run_chaos(url, workers, server=private_server)
    check_exactly_once(url, run_id, workers, info)
    # the workers that lived through the restart came back: their pool (heartbeats, claims,
    # records) and their LISTEN connection reconnected
    assert info["restarted"], info
    names = info["through_restart"]
    back = info["back"]
    assert back["beating"] == names and back["working"] == names, (
        info,
        {n: workers.log_tail(n) for n in names},
    )
    assert back["listening"] >= len(names), info
