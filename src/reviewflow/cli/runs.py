"""The run commands: `run`, `resume`, `cancel`, `pause`, `status`, `events`, `graph`, `validate`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ReviewflowError, RunNotFound, SpecError, StoreError
from ..limits import LIMITS
from ..owners import owner_alive
from ..states import RUN_TERMINAL, RunState
from ..store import DEFAULT_DB, postgres_url
from .common import (
    DEFAULT_CONCURRENCY,
    EXIT_FAILED,
    EXIT_OK,
    SUMMARY_ABOVE,
    ConcurrencyOpt,
    DbOpt,
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    MaxFileBytesOpt,
    MetaOpt,
    SetOpt,
    _execute,
    _fail,
    _load,
    _logging,
    _open,
    _parse_meta,
    _print_json,
    _print_state,
    _report,
    _shown,
    app,
    err,
    out,
)

if TYPE_CHECKING:
    from ..spec import WorkflowSpec
    from ..store import RunRecord, Store


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    db: DbOpt = DEFAULT_DB,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Idempotency key: an existing id is reported.")
    ] = None,
    set_: SetOpt = None,
    max_file_bytes: MaxFileBytesOpt = LIMITS.max_file_bytes,
    meta: MetaOpt = None,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    as_json: JsonOpt = False,
    submit: Annotated[
        bool,
        typer.Option(
            "--submit",
            help="Only enqueue the run for `reviewflow worker`s (PostgreSQL --db) "
            "and print its id.",
        ),
    ] = False,
    log_format: LogFormatOpt = "auto",
    log_level: LogLevelOpt = "",
) -> None:
    """Run a workflow to the end (exit 0 succeeded, 1 failed/cancelled, 2 bad input)."""
    _logging(log_format, log_level)
    if submit and postgres_url(db) is None:
        _fail(
            f"--submit needs a PostgreSQL --db (postgresql://…), not {_shown(db)}: without "
            "workers, leave --submit out and the run executes here"
        )
    spec = _load(file, set_, max_file_bytes)
    metadata = _parse_meta(meta)
    store = _open(db)
    if submit:
        raise typer.Exit(_submit(store, spec, run_id, metadata, as_json))
    from ..engine import Engine

    engine = Engine(store)
    try:
        rid, created = engine.submit(spec, run_id=run_id, meta=metadata)
    except SpecError as exc:
        _fail(f"--run-id: {exc.message}")
    except StoreError as exc:
        _fail(f"{exc}; the run was not stored", EXIT_FAILED)
    if not created:
        raise typer.Exit(_existing(store, rid, as_json))
    if not as_json:
        from rich.markup import escape

        out.print(
            f"run [bold]{escape(rid)}[/] ({spec.name}, {len(spec.tasks)} tasks,"
            f" db {escape(_shown(db))})",
            markup=True,
        )
    del engine  # the spec goes on to the engine that executes the run, not read back
    handed = [spec]
    del spec  # held by the executing engine only: freed with the run, before the report
    raise typer.Exit(
        _execute(store, db, rid, as_json=as_json, concurrency=concurrency, spec=handed.pop())
    )


def _submit(
    store: Store, spec: WorkflowSpec, run_id: str | None, meta: dict[str, str], as_json: bool
) -> int:
    """`run --submit`: enqueue for the workers, print the run id, return at once."""
    from ..cluster.queue import submit_to_workers
    from ..store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    try:
        rid, created = submit_to_workers(store, spec, run_id=run_id, meta=meta)
    except SpecError as exc:
        _fail(f"--run-id: {exc.message}")
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    if as_json:
        _print_json({"run_id": rid, "created": created})
    else:
        out.print(rid, markup=False)
        if not created:
            err.print(f"run {rid} already exists; not submitting another", markup=False)
    return EXIT_OK


def _existing(store: Store, run_id: str, as_json: bool) -> int:
    """`run --run-id` of an existing run: follow it if a live process runs it, then report."""
    record = store.get_run(run_id)
    assert record is not None
    if not as_json:
        err.print(f"run {run_id} already exists ({record.state}); not starting another")
    deadline = time.monotonic() + 24 * 3600
    while (
        RunState(record.state) not in RUN_TERMINAL
        and time.monotonic() < deadline
        and not record.mode
    ):
        if not owner_alive(record.owner, record.lease_until, time.time()):
            if not as_json:
                err.print(f"nothing is executing it: continue with `reviewflow resume {run_id}`")
            break
        time.sleep(0.5)
        record = store.get_run(run_id)
        assert record is not None
    return _report(store, run_id, as_json)


@app.command()
def resume(
    run_id: str,
    db: DbOpt = DEFAULT_DB,
    force: Annotated[
        bool, typer.Option("--force", help="Take over even if another process holds the lease.")
    ] = False,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    as_json: JsonOpt = False,
    log_format: LogFormatOpt = "auto",
    log_level: LogLevelOpt = "",
) -> None:
    """Continue a paused run, or a run whose process died (tasks it was running re-run)."""
    _logging(log_format, log_level)
    store = _open(db, must_exist=True)
    record = store.get_run(run_id)
    if record is None:
        _fail(f"no run with id {run_id!r} in {_shown(db)}")
    if RunState(record.state) in RUN_TERMINAL:
        err.print(f"run {run_id} already ended: {record.state}")
        raise typer.Exit(_report(store, run_id, as_json))
    if record.mode:
        state = _workers_control(store, run_id, "resume")
        if as_json:
            _print_json({"run_id": run_id, "state": state, "executed_by": "workers"})
        else:
            out.print(
                f"{run_id}: {state} (executed by workers: `reviewflow workers` lists them)",
                markup=False,
            )
        raise typer.Exit(EXIT_OK)
    if not force and owner_alive(record.owner, record.lease_until, time.time()):
        if record.state == RunState.PAUSED:
            store.request(run_id, "resume")
            if as_json:
                _print_json({"run_id": run_id, "state": record.state, "requested": "resume"})
            else:
                out.print(
                    f"resume requested for {run_id} (executed by {record.owner})", markup=False
                )
            raise typer.Exit(EXIT_OK)
        _fail(f"run {run_id} is being executed by {record.owner}", EXIT_FAILED)
    if not as_json:
        from rich.markup import escape

        out.print(
            f"resuming [bold]{escape(run_id)}[/] ({record.workflow}, was {record.state})",
            markup=True,
        )
    raise typer.Exit(
        _execute(store, db, run_id, as_json=as_json, force=force, concurrency=concurrency)
    )


def _unfinished_run(run_id: str, db: Path) -> tuple[Store, RunRecord]:
    """The store and the run, which must exist and not have ended (else exit 2 / 1)."""
    store = _open(db, must_exist=True)
    record = store.get_run(run_id)
    if record is None:
        _fail(f"no run with id {run_id!r} in {_shown(db)}")
    if RunState(record.state) in RUN_TERMINAL:
        _fail(f"run {run_id} already ended: {record.state}", EXIT_FAILED)
    return store, record


def _workers_control(store: Store, run_id: str, command: str) -> str:
    """Cancel/pause/resume a run executed by workers: applied here, in the database."""
    from ..cluster.queue import Cluster
    from ..store.postgres import PostgresStore

    if not isinstance(store, PostgresStore):
        _fail(f"run {run_id} is executed by workers but this is not its PostgreSQL database")
    try:
        return Cluster(store).control(run_id, command).value
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)


def _wait_for(store: Store, run_id: str, done: Any, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        record = store.get_run(run_id)
        assert record is not None
        if done(record) or time.monotonic() > deadline:
            return record.state
        time.sleep(0.1)


@app.command()
def cancel(run_id: str, db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Cancel a run: tasks not started are cancelled, running ones are stopped."""
    store, record = _unfinished_run(run_id, db)
    if record.mode:
        from ..cluster.queue import list_workers
        from ..store.postgres import PostgresStore

        state = _workers_control(store, run_id, "cancel")
        assert isinstance(store, PostgresStore)  # _workers_control failed otherwise
        alive = RunState(state) not in RUN_TERMINAL and bool(list_workers(store))
        if alive:  # running attempts stop at their workers' next heartbeat (notified now)
            state = _wait_for(store, run_id, lambda r: RunState(r.state) in RUN_TERMINAL)
        _print_state(run_id, state, as_json)
        if RunState(state) not in RUN_TERMINAL:
            err.print(
                "cancelled; its running attempts end when their workers stop them, or, for"
                " workers that died, when a worker finds their leases expired",
                markup=False,
            )
            raise typer.Exit(EXIT_OK)
        raise typer.Exit(EXIT_OK if state == RunState.CANCELLED else EXIT_FAILED)
    if owner_alive(record.owner, record.lease_until, time.time()):
        store.request(run_id, "cancel")
        # Done when the run ends, or when its process goes away without ending it (it was
        # interrupted, or died): then the cancellation is carried out here.
        state = _wait_for(
            store,
            run_id,
            lambda r: (
                RunState(r.state) in RUN_TERMINAL
                or not owner_alive(r.owner, r.lease_until, time.time())
            ),
        )
        if RunState(state) in RUN_TERMINAL:
            _print_state(run_id, state, as_json)
            raise typer.Exit(EXIT_OK if state == RunState.CANCELLED else EXIT_FAILED)
    code = _execute(store, db, run_id, as_json=False, cancel_only=True, report=not as_json)
    ended = store.get_run(run_id)
    _print_state(run_id, ended.state if ended else "?", as_json)
    raise typer.Exit(EXIT_OK if code in (EXIT_OK, EXIT_FAILED) else code)


@app.command()
def pause(run_id: str, db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Pause a run: no new task starts, running tasks finish. Undo with `resume`."""
    store, record = _unfinished_run(run_id, db)
    if record.mode:
        state = _workers_control(store, run_id, "pause")
        _print_state(run_id, state, as_json)
        raise typer.Exit(EXIT_OK if state == RunState.PAUSED else EXIT_FAILED)
    if not owner_alive(record.owner, record.lease_until, time.time()):
        _fail(
            f"run {run_id} is not being executed by any process; nothing to pause "
            f"(continue it with `reviewflow resume {run_id}`)",
            EXIT_FAILED,
        )
    store.request(run_id, "pause")
    state = _wait_for(store, run_id, lambda r: r.state != RunState.RUNNING, seconds=10.0)
    _print_state(run_id, state, as_json)
    raise typer.Exit(EXIT_OK if state == RunState.PAUSED else EXIT_FAILED)


@app.command()
def status(
    run_id: Annotated[str | None, typer.Argument(help="A run id; none lists recent runs.")] = None,
    db: DbOpt = DEFAULT_DB,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="How many runs to list.")] = 20,
    every_task: Annotated[
        bool,
        typer.Option(
            "--all",
            help=f"A row for every task, also in runs of more than {SUMMARY_ABOVE} "
            "(those are summarised: counts, failures, slowest tasks).",
        ),
    ] = False,
) -> None:
    """Show a run (tasks, attempts, waits, metrics) or list recent runs."""
    from .. import terminal
    from ..status import list_status, run_status

    store = _open(db, must_exist=True)
    if run_id is None:
        runs = list_status(store, limit)
        if as_json:
            _print_json(runs)
        else:
            terminal.run_list(out.console, runs)
        raise typer.Exit(EXIT_OK)
    try:
        doc = run_status(store, run_id)
    except RunNotFound:
        _fail(f"no run with id {run_id!r} in {_shown(db)}")
    if as_json:
        _print_json(doc)
    else:
        terminal.run_summary(out.console, doc, every_task=every_task)
        record = store.get_run(run_id)
        if (
            record is not None
            and RunState(record.state) not in RUN_TERMINAL
            and not owner_alive(record.owner, record.lease_until, time.time())
            and record.state != RunState.PENDING
            and not record.mode
        ):
            out.print(
                f"no process is executing this run: continue it with `reviewflow resume {run_id}`",
                markup=False,
            )
    raise typer.Exit(EXIT_OK)


@app.command()
def events(run_id: str, db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """The run's history: every state transition, oldest first."""
    store = _open(db, must_exist=True)
    if store.get_run(run_id) is None:
        _fail(f"no run with id {run_id!r} in {_shown(db)}")
    rows = store.get_events(run_id)
    if as_json:
        import json

        for ev in rows:
            sys.stdout.write(
                json.dumps(
                    {
                        "id": ev.id,
                        "run_id": ev.run_id,
                        "task": ev.task,
                        "from": ev.from_state,
                        "to": ev.to_state,
                        "attempt": ev.attempt,
                        "at": ev.at,
                        "detail": ev.detail,
                    }
                )
                + "\n"
            )
    else:
        from .. import terminal

        terminal.event_table(out.console, rows)


@app.command()
def graph(
    target: Annotated[str, typer.Argument(help="A workflow file or a run id.")],
    db: DbOpt = DEFAULT_DB,
    set_: SetOpt = None,
) -> None:
    """Print the DAG as a Mermaid flowchart (for a run, nodes coloured by state)."""
    from ..diagram import mermaid
    from ..spec import WorkflowSpec

    path = Path(target)
    if path.exists() or target.endswith((".yaml", ".yml")):
        sys.stdout.write(mermaid(_load(path, set_)))
        return
    if postgres_url(db) is None and not db.exists():
        _fail(f"{target!r} is neither a file nor a run id in {_shown(db)}")
    store = _open(db)
    record = store.get_run(target)
    if record is None:
        _fail(f"{target!r} is neither a file nor a run id in {_shown(db)}")
    spec = WorkflowSpec.model_validate_json(record.spec)
    states = {t.name: t.state for t in store.get_tasks(target)}
    sys.stdout.write(mermaid(spec, states))


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    set_: SetOpt = None,
    max_file_bytes: MaxFileBytesOpt = LIMITS.max_file_bytes,
    as_json: JsonOpt = False,
) -> None:
    """Check a workflow file: `ok` (exit 0), or the first problem on one line (exit 2)."""
    from ..config import load_workflow

    try:
        spec = load_workflow(file, overrides=set_ or [], max_file_bytes=max_file_bytes)
    except SpecError as exc:
        if as_json:
            _print_json({"file": str(file), "ok": False, "error": str(exc)})
        _fail(str(exc))
    if as_json:
        _print_json(
            {
                "file": str(file),
                "ok": True,
                "workflow": spec.name,
                "tasks": len(spec.tasks),
                "on_failure": len(spec.on_failure),
            }
        )
        return
    hooks = f", {len(spec.on_failure)} on_failure" if spec.on_failure else ""
    out.print(f"{file}: ok ({spec.name}: {len(spec.tasks)} tasks{hooks})", markup=False)
