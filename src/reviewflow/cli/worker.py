"""`reviewflow worker` and `reviewflow workers`: executing runs from PostgreSQL on many machines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..constants import (
    DEFAULT_GRACE,
    DEFAULT_LEASE_TTL,
    DEFAULT_MAX_LOST_ATTEMPTS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WORKER_CONCURRENCY,
)
from ..errors import ReviewflowError
from ..store import DEFAULT_DB, postgres_url
from .common import (
    EXIT_FAILED,
    DbOpt,
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    SchedulesOpt,
    _fail,
    _logging,
    _open,
    _shown,
    app,
    out,
    require_extra,
)

# The cluster (and psycopg with it) is imported by the commands, not here: every `reviewflow`
# command imports this module. Its defaults come from constants (standard library only).


def _postgres(db: Path | str) -> str:
    url = postgres_url(db)
    if url is None:
        _fail(
            f"--db {_shown(db)}: workers need a PostgreSQL database "
            "(--db postgresql://user@host:port/dbname); without one, `reviewflow run` "
            "executes a run in its own process"
        )
    require_extra("postgres", "a PostgreSQL database")
    return url


@app.command()
def worker(
    db: DbOpt = DEFAULT_DB,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            min=1,
            envvar="REVIEWFLOW_CONCURRENCY",
            help="Attempts this worker runs at once.",
        ),
    ] = DEFAULT_WORKER_CONCURRENCY,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Shown by `reviewflow workers` (default: host-pid)."),
    ] = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            min=0.5,
            help="Seconds an attempt's lease lasts without a heartbeat "
            "(heartbeats every third of it).",
        ),
    ] = DEFAULT_LEASE_TTL,
    max_lost_attempts: Annotated[
        int,
        typer.Option(
            "--max-lost-attempts",
            min=1,
            help="Expired leases after which a task fails (reason lost).",
        ),
    ] = DEFAULT_MAX_LOST_ATTEMPTS,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.01,
            help="Seconds between checks for work without a "
            "notification; also how often delays, retries and lost leases are looked at.",
        ),
    ] = DEFAULT_POLL_INTERVAL,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            help="On SIGTERM: seconds running attempts get to finish before they are handed back.",
        ),
    ] = DEFAULT_GRACE,
    schedules: SchedulesOpt = True,
    log_format: LogFormatOpt = "auto",
    log_level: LogLevelOpt = "",
) -> None:
    """Claim and run tasks of any run in a PostgreSQL database; SIGTERM drains, exit 0."""
    _logging(log_format, log_level or "info")
    _postgres(db)
    from ..cluster.worker import run_worker
    from ..store.postgres import PostgresStore

    store = _open(db)
    assert isinstance(store, PostgresStore)
    # `call: mypkg.tasks:f` finds ./mypkg, as `reviewflow run` does.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        code = run_worker(
            store,
            name=name,
            concurrency=concurrency,
            lease_ttl=lease_ttl,
            max_lost_attempts=max_lost_attempts,
            poll_interval=poll_interval,
            grace=grace,
            schedules=schedules,
        )
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    raise typer.Exit(code)


@app.command()
def workers(
    db: DbOpt = DEFAULT_DB,
    as_json: JsonOpt = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also lost workers (silent for half their lease).")
    ] = False,
) -> None:
    """List live workers of a PostgreSQL database: name, host, pid, heartbeat age, tasks running."""
    _postgres(db)
    from ..cluster.queue import list_workers
    from ..store.postgres import PostgresStore

    store = _open(db)
    assert isinstance(store, PostgresStore)
    try:
        found = list_workers(store, include_silent=show_all)
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    if as_json:
        out.print(json.dumps(found, indent=2), markup=False)
        return
    if not found:
        out.print(f"no live workers in {_shown(db)}", markup=False)
        return
    from rich.table import Table

    table = Table("name", "host", "pid", "heartbeat", "running", "state")
    for w in found:
        table.add_row(
            w["name"],
            w["host"],
            str(w["pid"]),
            f"{w['heartbeat_age']:.1f}s ago",
            f"{w['running']}/{w['concurrency']}",
            w["state"],
        )
    out.print(table)
