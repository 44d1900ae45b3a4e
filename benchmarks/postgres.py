"""Workers-mode benchmark on PostgreSQL: throughput, scaling, commits per step, latencies.

    python benchmarks/postgres.py --repeat 3 --wait-idle 600  # the numbers in docs/benchmarks.md
    python benchmarks/postgres.py                          # 1, 2, 4 workers, once (~1 min)
    python benchmarks/postgres.py --workers 4 --only wide  # names containing a word
    python benchmarks/postgres.py --only wide --statements # + server time per SQL statement
    python benchmarks/postgres.py --only none --profile    # cProfile of one in-process Worker
    python benchmarks/postgres.py --db postgresql://u@127.0.0.1/bench   # an existing database
    PYTHONPATH=/tmp/copy/src python benchmarks/postgres.py # benchmark another copy of src

Unless `--db` is given, a throwaway PostgreSQL server is started from the server binaries with
tests/pg.py's `LocalServer`, keeping PostgreSQL's default durability (fsync, synchronous_commit
and full_page_writes on; `--fast` keeps the tests' settings, all three off). Every run gets a
fresh database, a copy of a migrated template, created and dropped between measurements. With
`--db` every run goes into that one database (each under its own run id: use an empty one).

One JSON line per measurement on stdout, then a table with targets and pass/fail:

- `baseline_tx`: one connection, 2,000 transactions of one small INSERT and one UPDATE each.
- `wide_10k_wN`: N `python -m reviewflow worker --db URL --concurrency C --poll-interval P`
  processes (cwd and PYTHONPATH benchmarks/, so `noop_tasks:noop` imports) are started and
  waited for until all are registered in the workers table. Then a workflow of --tasks
  independent no-op python tasks is submitted (`Cluster.submit`: all ready at once). tasks/s =
  tasks / (last finished_at - first started_at) over the run's task rows, on the database clock.
  `wall_s` runs from the moment all workers were up to the run's finished_at, submit included.
  Also reported: CPU seconds of the worker processes and of the server's processes (/proc; own
  server only) and of everything else on the machine (`cpu_other_s`, ~0 when undisturbed).
- `latency_chain_200_wN`, `latency_diamond_100_wN`: then, on the same workers, a 200-task chain
  and a 1 -> 100 -> 1 diamond. An edge's latency = the time the dependent's body ran - the
  time the dependency's body ran (`postgres:whoami`, in this file, returns time.time() and its
  worker's pid; for the sink, its latest dependency). So it covers everything in between: the
  worker noticing the end, the record transaction and its commit, then either the hand-off
  (the recording worker starts the dependent itself) or NOTIFY, wake-up and claim, and the
  start of the attempt. Database timestamps cannot serve: a handed-off dependent's started_at
  is its dependency's finished_at (the same transaction). The pids split edges into
  same-worker and cross-worker.
- `commit_latency` (and `commit_latency_end`, after the worker runs): the database's commit
  round trip in this run, 300 autocommit one-row UPDATEs each timed.
- `chain_commits_wN`: write transactions (transaction ids assigned on the server) of the whole
  200-task chain run, submit included, per step: counted, not timed, so a busy machine does
  not change it. `chain_step_wN`: the chain's body-to-body p50 in commit latencies.
- `io_2k_wN`: 2,000 tasks that sleep 20 ms (`--io-concurrency` per worker, the same for every
  N), tasks/s over the run's span, write commits per task; `scaling_io_w4_w1` and
  `scaling_noop_w4_w1` (the wide no-op runs): the most workers' throughput over one's.
- `claim_bB_pP`: the claim call alone, with B = 1 and B = --concurrency, P = 1 and P = the largest
  worker count. P client processes (no task execution) share one run of --tasks ready tasks.
  Each loops `Cluster.claim(B)` then `Cluster.record` of those attempts as succeeded (at most
  300 rounds), timing each call with `time.perf_counter`: pool checkout, BEGIN, db_now, the
  claim statement, COMMIT, building the attempts. A process's first claim also parses the run's
  spec; it is reported apart (`first_claim_ms`). Record calls are timed the same way.
  Queue wait (ready_at -> started_at) is not claim latency and is not reported as such.
- `record_fanout_100`: the transaction behind a fan-out edge, in this process: `Cluster.record`
  of the success of a task with 100 dependents (which it makes ready), on a fresh diamond run
  each time; 10 runs after one warm-up.

Bounded: every run has a deadline (`--run-timeout`); workers get SIGTERM at the end and SIGKILL
if they have not exited 30 s later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from engine import percentile, spec_data  # noqa: E402  (benchmarks/engine.py: one of each)

NOOP = "noop_tasks:noop"
WHOAMI = "postgres:whoami"  # this file, imported by the workers (cwd = benchmarks/)

# name prefix -> (metric key, comparison, threshold, unit shown)
TARGETS: dict[str, tuple[str, str, float, str]] = {
    "wide_10k_w4": ("tasks_per_s", ">=", 2_000, "tasks/s"),
    "latency_": ("p50_ms", "<=", 10.0, "ms"),
    "chain_step_": ("commit_round_trips", "<=", 2.0, "commit latencies"),
    "chain_commits_": ("commits_per_step", "<=", 2.0, "commits"),
    "scaling_io_w4_w1": ("ratio", ">=", 3.0, "x"),
    "scaling_noop_w4_w1": ("ratio", ">=", 1.0, "x"),
}


IO_SLEEP = "postgres:io_sleep"


async def io_sleep(ctx: Any) -> None:
    """An I/O-bound task: waits 20 ms (a network call, say) and does nothing else."""
    await asyncio.sleep(0.02)


async def whoami(ctx: Any) -> dict[str, Any]:
    """A no-op task that returns its worker's pid (to tell same- from cross-worker edges) and
    the wall-clock time its body ran (one machine: all workers share the clock)."""
    return {"pid": os.getpid(), "at": time.time()}


# ---------------------------------------------------------------------------------- helpers


def spread(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p99/min/max (milliseconds by default) of a list of seconds."""
    if not values:
        return {}
    return {
        "p50_ms": percentile(values, 50) * scale,
        "p99_ms": percentile(values, 99) * scale,
        "min_ms": min(values) * scale,
        "max_ms": max(values) * scale,
        "samples": len(values),
    }


def label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat (user, nice,
    system, idle, iowait, irq, softirq; busy leaves out idle and iowait)."""
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:8]]
    except (OSError, ValueError):
        return 0.0, 0.0
    return (sum(values) - values[3] - values[4]) / CLK_TCK, sum(values) / CLK_TCK


def wait_idle(limit: float) -> None:
    """Wait (at most `limit` seconds) until the CPUs are < 8% busy for 3 seconds in a row."""
    deadline = time.monotonic() + limit
    calm, said = 0, False
    while calm < 3 and time.monotonic() < deadline:
        busy0, total0 = machine_busy()
        time.sleep(1.0)
        busy1, total1 = machine_busy()
        if total1 <= total0:
            return
        busy = 100 * (busy1 - busy0) / (total1 - total0)
        calm = calm + 1 if busy < 8 else 0
        if calm == 0 and not said:
            print(f"waiting for idle CPUs ({busy:.0f}% busy)...", file=sys.stderr, flush=True)
            said = True
    if calm < 3:
        print(f"warning: CPUs still busy after {limit:g} s; going on", file=sys.stderr)


# ---------------------------------------------------------------------------------- database


class Databases:
    """Fresh databases: on a throwaway server started here (tests/pg.py `LocalServer`), each a
    copy of a migrated template, created and dropped synchronously (nothing runs in the
    background during a measurement); or the one database given with --db."""

    def __init__(self, url: str | None, *, fast: bool, statements: bool) -> None:
        import psycopg

        from reviewflow.store import migrate

        self.given = url
        self.local: Any = None
        self.admin: Any = None
        self.statements = statements
        self.settings: dict[str, str] = {}
        self.count = 0
        if url is None:
            sys.path.insert(0, str(ROOT / "tests"))
            import pg  # tests/pg.py

            bindir = pg.find_bindir()
            if bindir is None:
                raise SystemExit("no PostgreSQL server binaries (initdb, postgres); use --db")
            if not fast:  # PostgreSQL's defaults: every commit flushed to disk
                for key in ("fsync", "synchronous_commit", "full_page_writes"):
                    pg.SETTINGS.pop(key, None)
            if statements:
                pg.SETTINGS["shared_preload_libraries"] = "'pg_stat_statements'"
            self.local = pg.LocalServer(bindir)
            self.with_database = pg.with_database
            self.admin = psycopg.connect(self.local.url, autocommit=True)
            self.admin.execute("CREATE DATABASE rfbench_template TEMPLATE template0")
            migrate.upgrade(self.with_database(self.local.url, "rfbench_template"))
        with psycopg.connect(self.any_url(), autocommit=True) as conn:
            for key in (
                "server_version",
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "shared_buffers",
                "max_connections",
            ):
                self.settings[key] = conn.execute(f"SHOW {key}").fetchone()[0]  # type: ignore[index]

    def any_url(self) -> str:
        return self.given or self.local.url

    def new(self) -> str:
        """A migrated database for one run (the given one, every time, with --db)."""
        import psycopg

        if self.given is not None:
            from reviewflow.store.postgres import PostgresStore

            PostgresStore(self.given, max_size=1).close()  # migrates an empty database
            url = self.given
        else:
            self.count += 1
            name = f"rfbench_{self.count}"
            self.admin.execute(f"CREATE DATABASE {name} TEMPLATE rfbench_template")
            url = self.with_database(self.local.url, name)
        if self.statements:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return url

    def done(self, url: str) -> None:
        if self.given is None:
            name = url.rsplit("/", 1)[1]
            self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.local is not None:
            self.local.stop()


def open_store(url: str, size: int = 2) -> Any:
    from reviewflow.store.postgres import PostgresStore

    return PostgresStore(url, max_size=size)


def db_now(store: Any) -> float:
    with store.session() as conn:
        return float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])


def server_pids(store: Any) -> list[int]:
    """Every process of the server (backends and background processes) it reports."""
    with store.session() as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity")]


def submit(store: Any, shape: str, n: int, call: str) -> tuple[str, float]:
    """Submit a workflow to the workers; (run id, seconds the submit took)."""
    from reviewflow.cluster.queue import Cluster
    from reviewflow.config import validate_spec

    spec = validate_spec(spec_data(shape, n, call))
    t0 = time.perf_counter()
    run_id, _ = Cluster(store).submit(spec)
    return run_id, time.perf_counter() - t0


def wait_run(store: Any, run_id: str, deadline: float) -> tuple[str, float | None]:
    """Poll the run's row (every 50 ms) until it ends or the deadline passes."""
    while True:
        with store.session() as conn:
            state, finished = conn.execute(
                "SELECT state, finished_at FROM runs WHERE run_id = %s", (run_id,)
            ).fetchone()
        if state in ("succeeded", "failed", "cancelled"):
            return state, finished
        if time.monotonic() > deadline:
            return "timeout", None
        time.sleep(0.05)


def write_commits(store: Any) -> int:
    """Transactions that wrote on the server so far (each got a transaction id; its commit
    waited for the disk). Read-only ones get none: the benchmark's own polling is not counted.
    Server-wide: nothing else may write meanwhile (own server; with --db, a quiet one)."""
    with store.session() as conn:
        row = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        return int(row.fetchone()[0])


def task_rows(store: Any, run_id: str) -> list[tuple[Any, ...]]:
    with store.session() as conn:
        return conn.execute(
            "SELECT name, state, attempts, ready_at, started_at, finished_at, result"
            " FROM tasks WHERE run_id = %s",
            (run_id,),
        ).fetchall()


def top_statements(store: Any, limit: int = 12) -> list[dict[str, Any]]:
    """pg_stat_statements of this database, by total execution time."""
    with store.session() as conn:
        rows = conn.execute(
            "SELECT calls, total_exec_time, mean_exec_time, rows, query"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
            " WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [
        {
            "calls": c,
            "total_ms": round(t, 1),
            "mean_ms": round(m, 4),
            "rows": r,
            "query": " ".join(q.split())[:110],
        }
        for c, t, m, r, q in rows
    ]


class WaitSampler:
    """What the workers' backends are doing, sampled from pg_stat_activity every `every`
    seconds on a connection of its own while a run goes: fractions of the samples of
    backends inside a transaction (waiting for a row lock, for the client, for the WAL
    flush, running) are ratios measured in the same run, so a busy machine moves them less
    than a wall time. `run_lock`: samples waiting in the run's lock statement;
    `run_row_at_commit`: in the count-off of a record holding the run's gate shared."""

    def __init__(self, url: str, every: float = 0.01) -> None:
        import threading

        self.url, self.every = url, every
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).fetchall()
                self.samples += 1
                for state, wtype, wevent, text in rows:
                    if state == "idle":
                        continue
                    if wtype == "Lock":
                        text = " ".join((text or "").split())
                        if "FROM runs, gate" in text or "FOR NO KEY UPDATE" in text:
                            key = "run_lock"  # lock_cluster_run: the run's gate and row
                        elif "lock_shared" in text:
                            key = "run_gate_shared"
                        elif text.startswith("UPDATE runs SET open_main"):
                            key = "run_row_at_commit"  # count_off_run
                        else:
                            key = f"lock:{wevent}:{text[:40]}"
                    elif wtype == "Client":
                        key = "client"  # the backend waits for the worker's next statement
                    elif wtype in ("IO", "LWLock") and wevent and "WAL" in wevent.upper():
                        key = "wal"
                    elif wtype is None:
                        key = "cpu"
                    else:
                        key = f"{wtype}:{wevent}"
                    self.counts[key] = self.counts.get(key, 0) + 1
                time.sleep(self.every)

    def shares(self) -> dict[str, float]:
        total = sum(self.counts.values()) or 1
        return {k: round(v / total, 3) for k, v in sorted(self.counts.items())}


def reset_statements(store: Any) -> None:
    with store.session() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


# ---------------------------------------------------------------------------------- workers


@dataclass
class WorkerProcs:
    """N `reviewflow worker` subprocesses on one database."""

    url: str
    n: int
    concurrency: int
    poll_interval: float
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    completed: list[int | None] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    stop_s: float = 0.0

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
        for i in range(self.n):
            name = f"bench-{os.getpid()}-{len(self.names)}-{i}"
            log = (self.logs / f"{name}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "reviewflow",
                        "worker",
                        "--db",
                        self.url,
                        "--concurrency",
                        str(self.concurrency),
                        "--poll-interval",
                        str(self.poll_interval),
                        "--name",
                        name,
                        "--log-format",
                        "json",
                        "--log-level",
                        "info",
                    ],
                    cwd=HERE,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            )
            log.close()
            self.names.append(name)

    def wait_up(self, store: Any, timeout: float = 60.0) -> float:
        """Until every worker is registered; returns the database time then."""
        from reviewflow.cluster.queue import list_workers

        deadline = time.monotonic() + timeout
        while True:
            for name, proc in zip(self.names, self.procs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"worker {name} exited ({proc.returncode}):\n" + self.log_of(name)[-2000:]
                    )
            up = {w["name"] for w in list_workers(store)}
            if up >= set(self.names):
                return db_now(store)
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not up within {timeout:g} s: {sorted(up)}")
            time.sleep(0.05)

    def log_of(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def cpu(self) -> list[float | None]:
        return [cpu_seconds(p.pid) for p in self.procs]

    def stop(self) -> None:
        """SIGTERM (drain), then SIGKILL after 30 s; `completed`: each worker's count (log)."""
        t0 = time.monotonic()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(30)
        self.stop_s = time.monotonic() - t0
        self.exit_codes = [p.returncode for p in self.procs]
        completed: list[int | None] = []
        for name in self.names:
            done = None
            for line in self.log_of(name).splitlines():
                if '"worker.stop"' in line:
                    with suppress(ValueError):
                        done = json.loads(line).get("completed")
            completed.append(done)
        self.completed = completed


@contextmanager
def workers(url: str, n: int, args: argparse.Namespace, tmp: Path) -> Iterator[WorkerProcs]:
    procs = WorkerProcs(url, n, args.concurrency, args.poll_interval, tmp)
    try:
        procs.start()
        yield procs
    finally:
        procs.stop()


# ---------------------------------------------------------------------------------- measurements


class Reporter:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def emit(self, result: dict[str, Any]) -> None:
        for prefix, (key, op, threshold, unit) in TARGETS.items():
            if result["name"].startswith(prefix) and result.get(key) is not None:
                value = result[key]
                result["target"] = f"{op} {threshold:g} {unit}"
                result["pass"] = bool(value >= threshold if op == ">=" else value <= threshold)
        self.results.append(result)
        print(json.dumps(result), flush=True)

    def table(self) -> None:
        rows = [
            (
                r["name"],
                describe(r),
                r.get("target", ""),
                "" if r.get("pass") is None else ("PASS" if r["pass"] else "FAIL"),
            )
            for r in self.results
            if r.get("kind") not in ("meta", "statements")
        ]
        heads = ("measurement", "result", "target", "pass")
        width = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(heads)]
        print("  ".join(h.ljust(w) for h, w in zip(heads, width, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))
        judged = [r for r in self.results if r.get("pass") is not None]
        missed = [r["name"] for r in judged if not r["pass"]]
        print(
            f"targets met: {len(judged) - len(missed)}/{len(judged)}"
            + (f"; missed: {', '.join(missed)}" if missed else "")
        )


def describe(r: dict[str, Any]) -> str:
    kind = r.get("kind")
    if kind == "baseline":
        return f"{r['tx_per_s']:,.0f} tx/s (INSERT+UPDATE per transaction, one connection)"
    if kind == "throughput":
        return (
            f"median {r['tasks_per_s']:,.0f} tasks/s, best {r['best_tasks_per_s']:,.0f}"
            f" (span {r['span_s']:.2f} s, wall {r['wall_s']:.2f} s, submit"
            f" {r['submit_s']:.2f} s; CPU workers {r['cpu_workers_s']:.1f} s, server"
            f" {r['cpu_server_s']:.1f} s)"
        )
    if kind == "latency":
        return (
            f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms (max {r['max_ms']:.1f};"
            f" n={r['samples']}, cross-worker {r['cross_worker']})"
        )
    if kind == "claim":
        return (
            f"claim p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; record p50"
            f" {r['record_p50_ms']:.2f} ms, p99 {r['record_p99_ms']:.2f} ms; first claim"
            f" {r['first_claim_ms']:.0f} ms; {r['tasks_per_s']:,.0f} tasks/s"
        )
    if kind == "fanout":
        return (
            f"record of 1 success readying {r['dependents']}: p50 {r['p50_ms']:.2f} ms,"
            f" min {r['min_ms']:.2f}, max {r['max_ms']:.2f} (n={r['samples']})"
        )
    if kind == "commit":
        return (
            f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms (autocommit UPDATE of one row;"
            f" n={r['samples']})"
        )
    if kind == "chain_step":
        return (
            f"{r['step_p50_ms']:.2f} ms a step (p50) = {r['commit_round_trips']:.2f} commit round"
            f" trips of {r['commit_p50_ms']:.2f} ms"
        )
    if kind == "chain_commits":
        return (
            f"{r['commits_per_step']:.2f} write commits a step (transaction ids; runs:"
            f" {r['write_commits']})"
        )
    if kind == "io":
        return (
            f"median {r['tasks_per_s']:,.0f} tasks/s, best {r['best_tasks_per_s']:,.0f}"
            f" ({r['tasks']} tasks of 20 ms, --concurrency {r['concurrency']}; span"
            f" {r['span_s']:.2f} s; ideal {r['ideal_tasks_per_s']:,.0f} tasks/s;"
            f" {r['write_commits_per_task']:.2f} commits and {r['cpu_ms_per_task']:.2f} ms CPU"
            f" a task; load {r['loadavg'][0]:.1f})"
        )
    if kind == "scaling":
        a, b = r["from_tasks_per_s"], r["to_tasks_per_s"]
        return f"{r['ratio']:.2f}x ({a:,.0f} -> {b:,.0f} tasks/s)"
    if kind == "profile":
        return f"{r['tasks_per_s']:,.0f} tasks/s in-process (under cProfile)"
    return json.dumps(r)


COMMIT: dict[str, Any] = {}
"""The commit latency measured in this run (for the per-step chain latency)."""


def baseline(rep: Reporter, dbs: Databases, n: int = 2000) -> None:
    import psycopg

    url = dbs.new()
    try:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE bench_tx (id serial PRIMARY KEY, v int)")
            conn.commit()
            t0 = time.perf_counter()
            for i in range(n):
                with conn.transaction():
                    (row_id,) = conn.execute(
                        "INSERT INTO bench_tx (v) VALUES (%s) RETURNING id", (i,)
                    ).fetchone()
                    conn.execute("UPDATE bench_tx SET v = v + 1 WHERE id = %s", (row_id,))
            seconds = time.perf_counter() - t0
    finally:
        dbs.done(url)
    rep.emit(
        {
            "kind": "baseline",
            "name": "baseline_tx",
            "transactions": n,
            "seconds": seconds,
            "tx_per_s": n / seconds,
        }
    )


def commit_latency(
    rep: Reporter, dbs: Databases, n: int = 300, name: str = "commit_latency"
) -> dict[str, Any]:
    """The database's commit round trip: autocommit UPDATEs of one row, each timed alone."""
    import psycopg

    url = dbs.new()
    samples: list[float] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_commit (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO bench_commit VALUES (1, 0)")
            for _ in range(n):
                t0 = time.perf_counter()
                conn.execute("UPDATE bench_commit SET v = v + 1 WHERE id = 1")
                samples.append(time.perf_counter() - t0)
    finally:
        dbs.done(url)
    result = {"kind": "commit", "name": name, **spread(samples)}
    rep.emit(result)
    return result


@dataclass
class Span:
    tasks: int
    succeeded: int
    retried: int
    span_s: float
    first_start: float
    last_finish: float


def span_of(rows: list[tuple[Any, ...]]) -> Span:
    starts = [r[4] for r in rows if r[4] is not None]
    ends = [r[5] for r in rows if r[5] is not None]
    return Span(
        len(rows),
        sum(1 for r in rows if r[1] == "succeeded"),
        sum(1 for r in rows if r[2] > 1),
        max(ends) - min(starts),
        min(starts),
        max(ends),
    )


def run_to_end(store: Any, run_id: str, args: argparse.Namespace) -> float:
    state, finished = wait_run(store, run_id, time.monotonic() + args.run_timeout)
    if state != "succeeded" or finished is None:
        raise RuntimeError(f"run {run_id} ended {state} (expected succeeded)")
    return float(finished)


def edges(shape: str, n: int) -> list[tuple[str, list[str]]]:
    """(task, its dependencies) for every task with dependencies."""
    if shape == "chain":
        return [(f"t{i}", [f"t{i - 1}"]) for i in range(1, n)]
    return [(f"m{i}", ["src"]) for i in range(n)] + [("sink", [f"m{i}" for i in range(n)])]


def latency_samples(
    rows: list[tuple[Any, ...]], shape: str, n: int
) -> tuple[list[float], list[float]]:
    """Dependency -> start latencies (seconds): (same worker, cross-worker)."""
    by = {r[0]: r for r in rows}
    same: list[float] = []
    cross: list[float] = []
    ran = {name: json.loads(r[6]) for name, r in by.items()}
    for task, deps in edges(shape, n):
        last = max(deps, key=lambda d: ran[d]["at"])
        value = ran[task]["at"] - ran[last]["at"]
        (same if ran[last]["pid"] == ran[task]["pid"] else cross).append(value)
    return same, cross


def cluster_runs(
    rep: Reporter, dbs: Databases, args: argparse.Namespace, tmp: Path, words: list[str]
) -> None:
    """For each worker count, per repeat: fresh database and workers, the wide run, then the
    latency runs on the same workers."""
    lat_shapes = [("chain", 200), ("diamond", 100)]
    for n in args.workers:
        wide_name = f"wide_{label(args.tasks)}_w{n}"
        lat_names = {s: f"latency_{s}_{k}_w{n}" for s, k in lat_shapes}
        do_wide = wanted(words, wide_name)
        do_lat = [s for s in lat_shapes if wanted(words, lat_names[s[0]])]
        if not do_wide and not do_lat:
            continue
        spans: list[dict[str, Any]] = []
        samples: dict[str, tuple[list[float], list[float]]] = {s: ([], []) for s, _ in lat_shapes}
        commits: dict[str, list[int]] = {s: [] for s, _ in lat_shapes}
        statements: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            url = dbs.new()
            store = open_store(url)
            if args.wait_idle:
                wait_idle(args.wait_idle)
            try:
                with workers(url, n, args, tmp) as procs:
                    up_at = procs.wait_up(store)
                    if do_wide:
                        spans.append(wide_once(store, procs, args, up_at))
                        if dbs.statements:
                            statements = top_statements(store)
                    for shape, k in do_lat:
                        before = write_commits(store)
                        run_id, _ = submit(store, shape, k, WHOAMI)
                        run_to_end(store, run_id, args)
                        commits[shape].append(write_commits(store) - before)
                        same, cross = latency_samples(task_rows(store, run_id), shape, k)
                        samples[shape][0].extend(same)
                        samples[shape][1].extend(cross)
            finally:
                store.close()
                dbs.done(url)
            if do_wide:
                spans[-1].update(
                    completed_per_worker=procs.completed,
                    worker_exit_codes=procs.exit_codes,
                    stop_s=procs.stop_s,
                )
        if do_wide:
            emit_wide(rep, wide_name, n, args, spans)
            if statements:
                rep.emit(
                    {"kind": "statements", "name": f"statements_{wide_name}", "top": statements}
                )
                print(
                    f"\n=== {wide_name}: server time per statement (pg_stat_statements,"
                    " last repeat) ===",
                    file=sys.stderr,
                )
                for s in statements:
                    print(
                        f"{s['total_ms']:>10.1f} ms {s['calls']:>7} calls {s['mean_ms']:>8.3f}"
                        f" ms/call {s['rows']:>7} rows  {s['query']}",
                        file=sys.stderr,
                    )
        for shape, k in do_lat:
            same, cross = samples[shape]
            result = {
                "kind": "latency",
                "name": lat_names[shape],
                "shape": shape,
                "n": k,
                "workers": n,
                "concurrency": args.concurrency,
                "repeats": args.repeat,
                **spread(same + cross),
                "cross_worker": len(cross),
                "same_worker": spread(same),
                "cross": spread(cross),
            }
            rep.emit(result)
            if shape == "chain":
                # Write transactions of the whole run (submit included) over its k - 1 steps:
                # counted, so the same on a busy machine as on an idle one.
                per_step = statistics.median(commits[shape]) / (k - 1)
                rep.emit(
                    {
                        "kind": "chain_commits",
                        "name": f"chain_commits_w{n}",
                        "workers": n,
                        "write_commits": commits[shape],
                        "commits_per_step": per_step,
                    }
                )
            if shape == "chain" and COMMIT:
                commit_ms = COMMIT["p50_ms"]
                rep.emit(
                    {
                        "kind": "chain_step",
                        "name": f"chain_step_w{n}",
                        "workers": n,
                        "step_p50_ms": result["p50_ms"],
                        "commit_p50_ms": commit_ms,
                        "commit_round_trips": result["p50_ms"] / commit_ms,
                    }
                )


def wide_once(
    store: Any, procs: WorkerProcs, args: argparse.Namespace, up_at: float
) -> dict[str, Any]:
    spids = server_pids(store) if args.db is None else []  # the server's pids are ours to read
    server_before = {pid: cpu_seconds(pid) for pid in spids}
    workers_before = procs.cpu()
    busy0, total0 = machine_busy()
    self0 = time.process_time()
    if args.statements:
        reset_statements(store)
    run_id, submit_s = submit(store, "wide", args.tasks, NOOP)
    finished = run_to_end(store, run_id, args)
    busy1, total1 = machine_busy()
    cpu_self = time.process_time() - self0
    workers_after = procs.cpu()
    server_after = {pid: cpu_seconds(pid) for pid in server_pids(store)} if args.db is None else {}
    rows = task_rows(store, run_id)
    span = span_of(rows)
    if span.succeeded != args.tasks:
        raise RuntimeError(f"{span.succeeded}/{args.tasks} tasks succeeded")
    cpu_workers = sum(
        (a or 0) - (b or 0) for a, b in zip(workers_after, workers_before, strict=True)
    )
    cpu_server = sum(
        (after or 0) - (server_before.get(pid) or 0) for pid, after in server_after.items()
    )
    waits = [r[4] - r[3] for r in rows if r[3] is not None and r[4] is not None]
    return {
        "tasks": span.tasks,
        "span_s": span.span_s,
        "tasks_per_s": span.tasks / span.span_s,
        "wall_s": finished - up_at,
        "submit_s": submit_s,
        "first_start_after_up_s": span.first_start - up_at,
        "retried": span.retried,
        "cpu_workers_s": cpu_workers,
        "cpu_server_s": cpu_server,
        "cpu_machine_busy_s": busy1 - busy0,
        "cpu_machine_total_s": total1 - total0,
        "cpu_other_s": (busy1 - busy0) - cpu_workers - cpu_server - cpu_self,
        "queue_wait_p50_ms": percentile(waits, 50) * 1000,
    }


WIDE: dict[int, dict[str, Any]] = {}
"""Wide no-op results by worker count (for the 4-vs-1 ratio)."""


def emit_wide(
    rep: Reporter, name: str, n: int, args: argparse.Namespace, spans: list[dict[str, Any]]
) -> None:
    rates = [s["tasks_per_s"] for s in spans]
    mid = spans[rates.index(statistics.median_low(rates))]
    WIDE[n] = {"tasks_per_s": statistics.median(rates)}
    rep.emit(
        {
            "kind": "throughput",
            "name": name,
            "workers": n,
            "concurrency": args.concurrency,
            "poll_interval": args.poll_interval,
            "tasks": args.tasks,
            "repeats": len(spans),
            "rates": [round(r, 1) for r in rates],
            "tasks_per_s": statistics.median(rates),
            "best_tasks_per_s": max(rates),
            **{
                k: mid[k]
                for k in (
                    "span_s",
                    "wall_s",
                    "submit_s",
                    "first_start_after_up_s",
                    "retried",
                    "cpu_workers_s",
                    "cpu_server_s",
                    "cpu_machine_busy_s",
                    "cpu_machine_total_s",
                    "cpu_other_s",
                    "queue_wait_p50_ms",
                    "completed_per_worker",
                    "worker_exit_codes",
                    "stop_s",
                )
            },
        }
    )


def io_runs(rep: Reporter, dbs: Databases, args: argparse.Namespace, tmp: Path) -> None:
    """Wide runs of I/O-bound tasks (a 20 ms sleep) on 1..N workers of the same concurrency:
    what adding workers buys when tasks wait rather than compute."""
    by_workers: dict[int, dict[str, Any]] = {}
    io_args = argparse.Namespace(**{**vars(args), "concurrency": args.io_concurrency})
    for n in args.workers:
        name = f"io_{label(args.io_tasks)}_w{n}"
        if not wanted(WORDS, name) and not wanted(WORDS, "scaling_io"):
            continue
        rates: list[float] = []
        spans: list[float] = []
        commits: list[int] = []
        cpu: list[float] = []  # workers' and server's CPU seconds (load-independent)
        waits: list[dict[str, float]] = []  # what the backends in a transaction did
        for _ in range(args.repeat):
            url = dbs.new()
            store = open_store(url)
            if args.wait_idle:
                wait_idle(args.wait_idle)
            try:
                with workers(url, n, io_args, tmp) as procs:
                    procs.wait_up(store)
                    spids = server_pids(store) if args.db is None else []
                    cpu0 = sum(c or 0 for c in [*procs.cpu(), *map(cpu_seconds, spids)])
                    before = write_commits(store)
                    run_id, _ = submit(store, "wide", args.io_tasks, IO_SLEEP)
                    with WaitSampler(url) as sampler:
                        run_to_end(store, run_id, args)
                    waits.append(sampler.shares())
                    commits.append(write_commits(store) - before)
                    cpu1 = sum(c or 0 for c in [*procs.cpu(), *map(cpu_seconds, spids)])
                    cpu.append(cpu1 - cpu0)
                    span = span_of(task_rows(store, run_id))
            finally:
                store.close()
                dbs.done(url)
            if span.succeeded != args.io_tasks:
                raise RuntimeError(f"{span.succeeded}/{args.io_tasks} tasks succeeded")
            rates.append(span.tasks / span.span_s)
            spans.append(span.span_s)
        result = {
            "kind": "io",
            "name": name,
            "workers": n,
            "concurrency": args.io_concurrency,
            "tasks": args.io_tasks,
            "repeats": len(rates),
            "rates": [round(r, 1) for r in rates],
            "tasks_per_s": statistics.median(rates),
            "best_tasks_per_s": max(rates),
            "span_s": statistics.median(spans),
            "ideal_tasks_per_s": n * args.io_concurrency / 0.02,
            "write_commits_per_task": statistics.median(commits) / args.io_tasks,
            "cpu_ms_per_task": statistics.median(cpu) / args.io_tasks * 1000,
            "backend_waits": waits[-1],
            "loadavg": os.getloadavg(),
        }
        by_workers[n] = result
        rep.emit(result)
    scale(rep, "scaling_io_w4_w1", by_workers)


def scale(rep: Reporter, name: str, by_workers: dict[int, dict[str, Any]]) -> None:
    """The ratio of the most workers' throughput to one worker's (medians)."""
    if 1 not in by_workers or len(by_workers) < 2:
        return
    most = max(by_workers)
    a, b = by_workers[1]["tasks_per_s"], by_workers[most]["tasks_per_s"]
    rep.emit(
        {
            "kind": "scaling",
            "name": name if most == 4 else name.replace("w4", f"w{most}"),
            "ratio": b / a,
            "from_tasks_per_s": a,
            "to_tasks_per_s": b,
        }
    )


# ---------------------------------------------------------------------------------- claim harness


def claim_child(url: str, batch: int, limit: int, start_at: float) -> None:
    """One harness process: claim(batch) + record until the run is drained or `limit` calls."""
    from reviewflow.cluster.queue import Cluster, Outcome, Pending

    store = open_store(url)
    cluster = Cluster(store)
    claims: list[float] = []
    records: list[float] = []
    tasks = 0
    with store.session() as conn:  # connections ready before the clock starts
        conn.execute("SELECT 1")
    time.sleep(max(0.0, start_at - time.time()))
    t_begin = time.perf_counter()
    first = None
    for _ in range(limit):
        t0 = time.perf_counter()
        claimed = cluster.claim(batch)
        t1 = time.perf_counter()
        if not claimed:
            break
        if first is None:
            first = t1 - t0
        else:
            claims.append(t1 - t0)
        cluster.record(
            Pending(
                [Outcome(c.run_id, c.name, c.attempt, "succeeded") for c in claimed],
                [c.event for c in claimed],
            )
        )
        records.append(time.perf_counter() - t1)
        tasks += len(claimed)
    seconds = time.perf_counter() - t_begin
    store.close()
    print(
        json.dumps(
            {
                "claims": claims,
                "records": records,
                "first": first,
                "tasks": tasks,
                "seconds": seconds,
            }
        )
    )


def claim_latency(rep: Reporter, dbs: Databases, args: argparse.Namespace) -> None:
    for batch in sorted({1, args.concurrency}):
        for procs in sorted({1, max(args.workers)}):
            name = f"claim_b{batch}_p{procs}"
            if not wanted(WORDS, name):
                continue
            if args.wait_idle:
                wait_idle(args.wait_idle)
            url = dbs.new()
            store = open_store(url)
            try:
                submit(store, "wide", args.tasks, NOOP)
                limit = max(2, min(args.tasks // batch // procs, 300))
                start_at = time.time() + 1.5  # after the children's imports
                children = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(Path(__file__).resolve()),
                            "--claim-child",
                            url,
                            str(batch),
                            str(limit),
                            repr(start_at),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                        cwd=HERE,
                    )
                    for _ in range(procs)
                ]
                outs = []
                for child in children:
                    out, _ = child.communicate(timeout=args.run_timeout)
                    if child.returncode != 0:
                        raise RuntimeError(f"claim harness failed ({child.returncode})")
                    outs.append(json.loads(out.strip().splitlines()[-1]))
            finally:
                store.close()
                dbs.done(url)
            claims = [c for o in outs for c in o["claims"]]
            records = [c for o in outs for c in o["records"]]
            tasks = sum(o["tasks"] for o in outs)
            seconds = max(o["seconds"] for o in outs)
            rep.emit(
                {
                    "kind": "claim",
                    "name": name,
                    "batch": batch,
                    "processes": procs,
                    **spread(claims),
                    "record_p50_ms": percentile(records, 50) * 1000,
                    "record_p99_ms": percentile(records, 99) * 1000,
                    "first_claim_ms": statistics.median(o["first"] for o in outs) * 1000,
                    "tasks": tasks,
                    "seconds": seconds,
                    "tasks_per_s": tasks / seconds,
                }
            )


def fanout_record(
    rep: Reporter, dbs: Databases, args: argparse.Namespace, n: int = 100, runs: int = 10
) -> None:
    """The transaction behind a fan-out edge: `Cluster.record` of a task whose success readies
    `n` dependents (a fresh diamond run each time, in this process; one untimed warm-up)."""
    from reviewflow.cluster.queue import Cluster, Outcome, Pending

    name = f"record_fanout_{n}"
    if not wanted(WORDS, name):
        return
    if args.wait_idle:
        wait_idle(args.wait_idle)
    samples: list[float] = []
    for i in range(runs + 1):
        url = dbs.new()
        store = open_store(url)
        try:
            submit(store, "diamond", n, NOOP)
            cluster = Cluster(store)
            (src,) = cluster.claim(1)
            cluster.record(Pending([], [src.event]))  # its start, as its worker would first
            t0 = time.perf_counter()
            cluster.record(Pending([Outcome(src.run_id, src.name, src.attempt, "succeeded")]))
            if i:
                samples.append(time.perf_counter() - t0)
        finally:
            store.close()
            dbs.done(url)
    rep.emit({"kind": "fanout", "name": name, "dependents": n, **spread(samples)})


# ---------------------------------------------------------------------------------- profile


def profile_worker(rep: Reporter, dbs: Databases, args: argparse.Namespace) -> None:
    """One in-process Worker under cProfile: its event loop thread and its claim/record thread
    (a second profiler enabled from inside that thread), printed apart on stderr."""
    import cProfile
    import pstats

    from reviewflow.cluster.worker import Worker
    from reviewflow.logs import configure_logging

    configure_logging("human", "WARNING")
    sys.path.insert(0, str(HERE))
    url = dbs.new()
    store = open_store(url, size=4)
    loop_prof, hot_prof = cProfile.Profile(), cProfile.Profile()
    try:
        worker = Worker(
            store,
            name="bench-profile",
            concurrency=args.concurrency,
            poll_interval=args.poll_interval,
        )

        async def main() -> str:
            running = asyncio.ensure_future(worker.run())
            await asyncio.sleep(0.5)  # registered, listening
            worker._hot.submit(hot_prof.enable).result()  # runs on the claim/record thread
            run_id, _ = await asyncio.to_thread(submit, store, "wide", args.tasks, NOOP)
            loop_prof.enable()
            deadline = time.monotonic() + args.run_timeout
            while time.monotonic() < deadline:
                state, _ = await asyncio.to_thread(wait_run, store, run_id, 0)
                if state != "timeout":
                    break
                await asyncio.sleep(0.05)
            loop_prof.disable()
            worker._hot.submit(hot_prof.disable).result()
            worker.drain()
            await running
            return run_id

        run_id = asyncio.run(main())
        span = span_of(task_rows(store, run_id))
    finally:
        store.close()
        dbs.done(url)
    rep.emit(
        {
            "kind": "profile",
            "name": f"profile_wide_{label(args.tasks)}_inprocess",
            "tasks_per_s": span.tasks / span.span_s,
            "span_s": span.span_s,
            "concurrency": args.concurrency,
        }
    )
    for title, prof in (("event loop thread", loop_prof), ("claim/record thread", hot_prof)):
        print(
            f"\n=== profile: in-process Worker, wide {label(args.tasks)}: {title} ===",
            file=sys.stderr,
        )
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(20)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)


# ---------------------------------------------------------------------------------- main

WORDS: list[str] = []


def wanted(words: list[str], name: str) -> bool:
    return not words or any(w in name for w in words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workers", default="1,2,4", help="worker process counts, comma-separated (default 1,2,4)"
    )
    parser.add_argument("--tasks", type=int, default=10_000, help="width of the wide run")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="--concurrency of each worker (attempts at once; claim batch)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument(
        "--io-tasks", type=int, default=2_000, help="width of the I/O-bound (20 ms sleep) runs"
    )
    parser.add_argument(
        "--io-concurrency",
        type=int,
        default=8,
        help="--concurrency of each worker in the I/O-bound runs (the worker's default)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="fresh database and workers per repeat (median reported)",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="an existing database instead of a server started here (runs accumulate in it)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="own server with the tests' settings (fsync, synchronous_commit,"
        " full_page_writes off)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated words: measurements whose name contains one"
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="server time per SQL statement of the wide runs (own server)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one in-process Worker under cProfile (stderr)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=300.0,
        help="seconds one run may take before the benchmark gives up",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to SECONDS for idle CPUs (< 8%% busy 3 s in a row)",
    )
    parser.add_argument("--claim-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.claim_child:
        url, batch, limit, start_at = args.claim_child
        claim_child(url, int(batch), int(limit), float(start_at))
        return
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    WORDS[:] = [w.strip() for w in args.only.split(",") if w.strip()]
    if args.statements and args.db:
        parser.error("--statements needs the server started here (pg_stat_statements preloaded)")

    import reviewflow

    rep = Reporter()
    started = time.perf_counter()
    dbs = Databases(args.db, fast=args.fast, statements=args.statements)
    try:
        rep.emit(
            {
                "kind": "meta",
                "name": "meta",
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "python": platform.python_version(),
                "nproc": os.cpu_count(),
                "platform": platform.platform(),
                "reviewflow": str(Path(reviewflow.__file__).parent),
                "server": "given --db" if args.db else "started here",
                "settings": dbs.settings,
                "workers": args.workers,
                "tasks": args.tasks,
                "concurrency": args.concurrency,
                "poll_interval": args.poll_interval,
                "repeat": args.repeat,
                "loadavg": os.getloadavg(),
            }
        )
        if os.getloadavg()[0] > 0.5:
            print(
                f"warning: 1-minute load average is {os.getloadavg()[0]:.2f}: results on a"
                " busy machine are slower and noisier",
                file=sys.stderr,
            )
        if wanted(WORDS, "baseline_tx"):
            if args.wait_idle:
                wait_idle(args.wait_idle)
            baseline(rep, dbs)
        if wanted(WORDS, "commit_latency") or wanted(WORDS, "chain"):
            COMMIT.update(commit_latency(rep, dbs))
        with tempfile.TemporaryDirectory(prefix="rfbench-pg-") as tmp:
            cluster_runs(rep, dbs, args, Path(tmp), WORDS)
            scale(rep, "scaling_noop_w4_w1", WIDE)
            io_runs(rep, dbs, args, Path(tmp))
        if COMMIT:  # again at the end: the disk's latency moves with other load
            commit_latency(rep, dbs, name="commit_latency_end")
        claim_latency(rep, dbs, args)
        fanout_record(rep, dbs, args)
        if args.profile:
            profile_worker(rep, dbs, args)
    finally:
        dbs.stop()
    rep.emit(
        {
            "kind": "meta",
            "name": "total",
            "seconds": time.perf_counter() - started,
            "loadavg": os.getloadavg(),
        }
    )
    rep.table()


if __name__ == "__main__":
    main()
