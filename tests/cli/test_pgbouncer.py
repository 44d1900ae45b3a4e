"""Workers through PgBouncer in transaction mode (docs/scaling.md): a server connection is
lent per transaction, so nothing may outlive one — no prepared statements by name, no session
state. `reviewflow run --submit`, `worker` and `status` go through a real PgBouncer in front of
the test's PostgreSQL; the run's rows are checked on a direct connection.

Skipped when the `pgbouncer` binary is missing (`apt-get install pgbouncer`); .ci/run installs
it and sets REVIEWFLOW_REQUIRE_PGBOUNCER=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from clihelpers import Procs, cli_env, record, recorded, sh, wait_for, write_workflow
from psycopg.conninfo import conninfo_to_dict

ENV_REQUIRE = "REVIEWFLOW_REQUIRE_PGBOUNCER"
N, RUNS = 20, 2
"""Tasks a run, runs: enough statements per pooled connection that psycopg would prepare
them (it does after 5 executions of one statement on a connection)."""


def _binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def bouncer_url(pg_url: str) -> Iterator[str]:
    """`pg_url`'s database through a PgBouncer in transaction mode (stopped after the test)."""
    binary = _binary()
    if binary is None:
        if os.environ.get(ENV_REQUIRE) == "1":
            pytest.fail(f"no pgbouncer binary, and {ENV_REQUIRE}=1 requires it")
        pytest.skip("no pgbouncer binary (apt-get install pgbouncer; .ci/run installs it)")
    target = conninfo_to_dict(pg_url)
    base = Path(tempfile.mkdtemp(prefix="reviewflow-pgbouncer-"))
    # PgBouncer refuses to run as root: as root it runs as the server's `postgres` user.
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    (base / "users.txt").write_text(f'"{target["user"]}" ""\n')
    port = _free_port()
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target['host']} port={target['port']}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {base / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    log = (base / "pgbouncer.log").open("wb")
    proc = subprocess.Popen(
        [binary, str(base / "pgbouncer.ini")],
        cwd=base,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **({"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}),
    )
    url = f"postgresql://{target['user']}@127.0.0.1:{port}/{target['dbname']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (base / "pgbouncer.log").read_text(errors="replace")
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "pgbouncer did not accept connections"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(300)  # ~60 s on 2 idle cores, 2 min at load 13
def test_workers_submit_and_status_work_through_pgbouncer_in_transaction_mode(
    bouncer_url: str, pg_url: str, tmp_path: Path
) -> None:
    # A statement prepared by name on one server connection is not there in the next
    # transaction, which PgBouncer may run on another.
    tasks = {f"t{i}": sh(record()) for i in range(N)}
    tasks["last"] = {"type": "python", "call": "cli_tasks:record", "needs": list(tasks)}
    wf = write_workflow(tmp_path / "wf.yaml", tasks)
    procs = Procs(tmp_path)

    def rf(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "reviewflow", *args],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    try:
        runs = []
        for _ in range(RUNS):
            done = rf("run", str(wf), "--db", bouncer_url, "--submit")
            assert done.returncode == 0, done.stderr
            runs.append(done.stdout.strip())
            procs.run_ids.add(runs[-1])
        log_path = tmp_path / "worker.log"
        with log_path.open("w") as log:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reviewflow",
                    "worker",
                    "--db",
                    bouncer_url,
                    "--poll-interval",
                    "0.1",  # LISTEN does not reach a client through transaction pooling
                    "--concurrency",
                    "2",
                ],
                cwd=tmp_path,
                env=cli_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        procs.started.append(worker)
        with psycopg.connect(pg_url, autocommit=True) as direct:

            def ended() -> list[str] | None:
                states = [
                    direct.execute("SELECT state FROM runs WHERE run_id = %s", (r,)).fetchone()[0]
                    for r in runs
                ]
                return (
                    states
                    if all(s in ("succeeded", "failed", "cancelled") for s in states)
                    else None
                )

            states = wait_for(ended, "both runs to end", timeout=60)
            assert states == ["succeeded"] * RUNS, log_path.read_text(errors="replace")
            for rid in runs:
                rows = direct.execute(
                    "SELECT name, state, attempts FROM tasks WHERE run_id = %s", (rid,)
                ).fetchall()
                assert {(n, s, a) for n, s, a in rows} == {(n, "succeeded", 1) for n in tasks}
        assert sorted(recorded(tmp_path / "done.txt")) == sorted([(n, 1) for n in tasks] * RUNS)
        shown = rf("status", runs[0], "--db", bouncer_url)
        assert shown.returncode == 0, shown.stderr
        assert "succeeded" in shown.stdout.splitlines()[0], shown.stdout
        worker.terminate()
        assert worker.wait(30) == 0, log_path.read_text(errors="replace")
        text = log_path.read_text(errors="replace")
        assert "prepared statement" not in text and "Traceback" not in text, text
    finally:
        procs.cleanup()
