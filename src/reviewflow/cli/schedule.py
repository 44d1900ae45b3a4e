"""`reviewflow schedule add|list|pause|resume|remove` and `reviewflow scheduler`: runs that start
by themselves (reviewflow.schedules).

`schedule add FILE` stores the workflow with its `schedules:` (or one schedule from --cron /
--interval); `reviewflow serve`, workers and `reviewflow scheduler --db DB` fire them, exactly
one run per slot however many of them share the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..store import DEFAULT_DB, postgres_url
from .common import (
    DEFAULT_CONCURRENCY,
    ConcurrencyOpt,
    DbOpt,
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    MetaOpt,
    _fail,
    _load,
    _logging,
    _open,
    _parse_meta,
    _print_json,
    app,
    out,
)

schedule_app = typer.Typer(
    name="schedule",
    help="Schedules: runs of a workflow that start by themselves (cron or interval).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(schedule_app, name="schedule")

IdArg = Annotated[str, typer.Argument(metavar="SCHEDULE", help="The schedule's id.")]


@schedule_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="Workflow YAML (its `schedules:` are added).")],
    db: DbOpt = DEFAULT_DB,
    name: Annotated[
        str | None, typer.Option("--name", help="Id of the schedule given by flags.")
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option("--cron", help="Cron: 5 fields, or 6 with seconds first (instead of FILE's)."),
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="Fixed interval, e.g. 30s, 5m (instead).")
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone of a cron.")] = "UTC",
    catchup: Annotated[
        str, typer.Option("--catchup", help="After downtime: skip, one or all missed slots.")
    ] = "one",
    jitter: Annotated[
        str | None, typer.Option("--jitter", help="Delay each slot by up to this (e.g. 10s).")
    ] = None,
    meta: MetaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store FILE's workflow with its schedules (a schedule with the same id is replaced)."""
    from ..errors import SpecError
    from ..schedules import ScheduleError, from_fields, register

    spec = _load(file, None)
    if cron is not None or interval is not None:
        try:
            entry = from_fields(
                name=name or None,
                cron=cron,
                interval=interval,
                timezone=timezone,
                catchup=catchup,
                jitter=jitter,
                meta=_parse_meta(meta) if meta else None,
            )
        except ScheduleError as exc:
            _fail(f"schedule flags: {exc}")
        spec = spec.model_copy(update={"schedules": [entry]})
    elif any(v is not None for v in (name, jitter)) or meta:
        _fail("--name, --jitter and --meta go with --cron or --interval")
    if not spec.schedules:
        _fail(f"{file}: no schedules: add `schedules:` to the workflow or pass --cron/--interval")
    store = _open(db)
    try:
        rows = register(store, spec)
    except (ScheduleError, SpecError) as exc:
        _fail(str(exc))
    finally:
        store.close()
    if as_json:
        _print_json([_doc(r) for r in rows])
        return
    for row in rows:
        when = "paused (see schedule resume)" if row.paused else f"next run {_when(row.next_slot)}"
        out.print(f"schedule {row.id}: {when}", highlight=False)


@schedule_app.command("list")
def list_(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """The schedules of the database: cadence, next slot, last run, and why the last slot of
    a failing schedule could not fire."""
    store = _open(db, must_exist=postgres_url(db) is None)
    try:
        rows = store.list_schedules()
    finally:
        store.close()
    if as_json:
        _print_json([_doc(r) for r in rows])
        return
    if not rows:
        out.print("no schedules (add one: reviewflow schedule add FILE)")
        return
    from rich.table import Table

    errors = any(r.last_error for r in rows)
    table = Table(box=None, pad_edge=False)
    columns = ["schedule", "workflow", "when", "catchup", "state", "next", "last run", "runs"]
    for column in columns + (["error"] if errors else []):
        table.add_column(column, overflow="fold")
    for r in rows:
        doc = _doc(r)
        cells = [
            r.id,
            r.workflow,
            doc["when"],
            doc["catchup"],
            "paused" if r.paused else ("failing" if r.last_error else "active"),
            "-" if r.paused else _when(r.next_slot),
            r.last_run or "-",
            str(r.fired),
        ]
        table.add_row(*cells, *([r.last_error or "-"] if errors else []))
    out.print(table)


def _doc(r: Any) -> dict[str, Any]:
    from ..schedules import describe

    return describe(r)


def _when(slot: float) -> str:
    from ..cadence import slot_text

    return slot_text(slot)


def _pause(schedule_id: str, db: Path, paused: bool) -> None:
    from ..schedules import set_paused

    store = _open(db, must_exist=postgres_url(db) is None)
    try:
        if not set_paused(store, schedule_id, paused):
            _fail(f"no schedule {schedule_id!r} (see reviewflow schedule list)")
        row = store.get_schedule(schedule_id)
    finally:
        store.close()
    if paused:
        out.print(f"schedule {schedule_id}: paused", highlight=False)
    else:
        shown = "?" if row is None else _when(row.next_slot)  # removed meanwhile
        out.print(f"schedule {schedule_id}: active, next run {shown}", highlight=False)


@schedule_app.command("pause")
def pause(schedule_id: IdArg, db: DbOpt = DEFAULT_DB) -> None:
    """Stop firing the schedule (runs already started go on)."""
    _pause(schedule_id, db, True)


@schedule_app.command("resume")
def resume(schedule_id: IdArg, db: DbOpt = DEFAULT_DB) -> None:
    """Fire the schedule again from its next slot (slots missed while paused stay missed)."""
    _pause(schedule_id, db, False)


@schedule_app.command("remove")
def remove(schedule_id: IdArg, db: DbOpt = DEFAULT_DB) -> None:
    """Delete the schedule (its runs stay)."""
    store = _open(db, must_exist=postgres_url(db) is None)
    try:
        if not store.remove_schedule(schedule_id):
            _fail(f"no schedule {schedule_id!r} (see reviewflow schedule list)")
    finally:
        store.close()
    out.print(f"schedule {schedule_id}: removed", highlight=False)


@app.command()
def scheduler(
    db: DbOpt = DEFAULT_DB,
    execute: Annotated[
        bool | None,
        typer.Option(
            "--execute/--no-execute",
            help="Execute the runs it starts here (default on SQLite), or only store them for"
            " workers (default on PostgreSQL).",
            show_default=False,
        ),
    ] = None,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    log_format: LogFormatOpt = "auto",
    log_level: LogLevelOpt = "",
) -> None:
    """Fire the database's schedules until interrupted (any number of schedulers may share a
    database: each slot still starts one run)."""
    import asyncio
    import signal

    from ..schedules import Scheduler, run_async

    _logging(log_format, log_level or "info")
    store = _open(db)
    pg = postgres_url(db) is not None
    execute = not pg if execute is None else execute
    engine = None
    if execute:
        from ..engine import Engine
        from .common import DEFAULT_RUNS_DIR

        engine = Engine(store, runs_dir=DEFAULT_RUNS_DIR, max_concurrency=concurrency)
        submit = _engine_submit(engine)
    else:
        if not pg:
            _fail("--no-execute needs a PostgreSQL database (workers execute the runs)")
        from ..cluster.queue import Cluster
        from ..store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)  # postgres_url(db) said so
        cluster = Cluster(store)
        submit = _cluster_submit(cluster)
    many: Any = None if engine is not None else cluster.submit_many
    sched = Scheduler(store, submit, submit_many=many)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        running: set[asyncio.Task[Any]] = set()

        def started(run_id: str) -> None:
            if engine is not None:
                task = loop.create_task(engine.execute(run_id))
                running.add(task)
                task.add_done_callback(running.discard)

        out.print(f"scheduler {sched.owner}: firing the schedules of {db}", highlight=False)
        await run_async(sched, stop, started)
        if engine is not None:
            engine.shutdown()
            if running:
                await asyncio.wait(running, timeout=30)

    try:
        asyncio.run(main())
    finally:
        store.close()
    raise typer.Exit(0)


def _engine_submit(engine: Any) -> Any:
    def submit(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
        rid, created = engine.submit(spec, run_id=run_id, meta=meta)
        return str(rid), bool(created)

    return submit


def _cluster_submit(cluster: Any) -> Any:
    def submit(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
        rid, created = cluster.submit(spec, run_id=run_id, meta=meta)
        return str(rid), bool(created)

    return submit
