"""The `reviewflow` command: a thin layer over the engine, the store and the status views.

Exit codes: 0 the run succeeded (or the command did what was asked), 1 the run failed or was
cancelled (or the command could not act on the run), 2 bad input (file, flag, unknown run id),
130 interrupted (the run stays resumable).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from . import __version__
from .errors import ReviewflowError, RunNotFound, SpecError
from .limits import LIMITS
from .logs import configure_logging, log
from .logs import enabled as log_enabled
from .owners import owner_alive
from .states import RUN_TERMINAL, RunState
from .store import DEFAULT_DB, open_store, postgres_url

if TYPE_CHECKING:
    from rich.console import Console

    from .spec import WorkflowSpec
    from .store import RunRecord, Store

# Start-up time: every command imports this module, so the engine (pydantic, asyncio, the
# executors), rich, PostgreSQL, the server and the review tools are imported inside the
# commands that use them. benchmarks/cli_startup.py measures it; tests/cli/test_cli_imports.py
# checks that the light commands stay light.

DEFAULT_CONCURRENCY = 64
"""engine.DEFAULT_CONCURRENCY, repeated so option defaults need no engine (a test compares)."""
DEFAULT_RUNS_DIR = Path(".reviewflow") / "runs"
"""engine.DEFAULT_RUNS_DIR, likewise."""
SUMMARY_ABOVE = 50
"""render.SUMMARY_ABOVE (render imports rich): runs with more tasks are summarised."""


class LazyConsole:
    """A rich Console made on first use. Plain text (`markup=False`) is written straight to the
    stream, so `--version`, `pause` and one-line answers never import rich (~40 ms)."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The real Console (for rich renderables, Live displays and tables)."""
        if self._console is None:
            from rich.console import Console

            console = Console(stderr=self._stderr, highlight=False, soft_wrap=True, markup=False)
            if not console.is_terminal:
                # Pipes and files get whole lines: an id or a path is never cut or wrapped
                # at 80 columns (tables size their columns to their content instead).
                console.width = 100_000
            self._console = console
        return self._console

    def print(self, *objects: Any, markup: bool | None = None, **kwargs: Any) -> None:
        """Console.print; plain strings without markup bypass rich."""
        plain = kwargs.keys() <= {"highlight", "end"} and all(type(o) is str for o in objects)
        if plain and not markup:
            stream = sys.stderr if self._stderr else sys.stdout
            stream.write(" ".join(objects) + kwargs.get("end", "\n"))
            stream.flush()
            return
        self.console.print(*objects, markup=markup, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


app = typer.Typer(
    name="reviewflow",
    help="Durable review workflows: DAGs of checks with priorities, retries and timeouts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = LazyConsole()
err = LazyConsole(stderr=True)

DbOpt = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="REVIEWFLOW_DB",
        help="SQLite database file, or postgresql://user@host:port/dbname.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="Log format on stderr: auto, human or json.")
]
LogLevelOpt = Annotated[
    str,
    typer.Option(
        "--log-level",
        help="debug, info, warning, error (default: info with --log-format json, else warning).",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: key.path=value (repeatable)."),
]
MaxFileBytesOpt = Annotated[
    int,
    typer.Option(
        "--max-file-bytes",
        min=1,
        help="Refuse a workflow file larger than this; no more is ever read.",
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency",
        min=1,
        envvar="REVIEWFLOW_CONCURRENCY",
        help="Global limit: tasks running at once in this process, all runs together.",
    ),
]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option("--meta", help="Run metadata key=value, e.g. pr=42 (repeatable)."),
]

LOG_LEVELS = {
    "failed": "warning",
    "retry_wait": "warning",
    "timed_out": "warning",
    "succeeded": "info",
    "cancelled": "info",
    "skipped": "info",
}
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    if sys.stderr.isatty():
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    else:
        err.print(f"error: {message}")
    raise typer.Exit(code)


_logs_asked = False
"""Whether --log-format/--log-level were given: then transitions are logged even while the
progress view prints them (else each would show twice)."""


def _logging(log_format: str, log_level: str) -> None:
    global _logs_asked
    _logs_asked = log_format != "auto" or bool(log_level)
    if log_format not in ("auto", "human", "json"):
        _fail(f"bad --log-format {log_format!r}: use auto, human or json")
    if log_level and log_level.lower() not in ("debug", "info", "warning", "error"):
        _fail(f"bad --log-level {log_level!r}: use debug, info, warning or error")
    level = (log_level or ("info" if log_format == "json" else "warning")).lower()
    configure_logging(log_format, level)  # type: ignore[arg-type]


def _state_exit(state: str) -> int:
    return EXIT_OK if state == RunState.SUCCEEDED else EXIT_FAILED


def _shown(db: Path | str) -> str:
    """How to name the database in messages: a URL without its password."""
    url = postgres_url(db)
    if url is None:
        return str(db)
    from .store.postgres import redact

    return redact(url)


EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg", "psycopg_pool"),
    "server": ("fastapi", "uvicorn", "prometheus_client"),
}
"""Optional dependency groups of pyproject.toml and the modules that show they are installed."""

_command = "reviewflow"
"""The command being run (`reviewflow serve`), for messages that name it."""


def require_extra(extra: str, what: str) -> None:
    """Exit 2 with one line naming the extra to install when one of its modules is missing:
    `reviewflow serve: the HTTP server needs the server extra: pip install 'reviewflow[server]'`."""
    from importlib.util import find_spec

    for module in EXTRAS[extra]:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install, or a module set to None
            found = False
        if not found:
            err.print(
                f"{_command}: {what} needs the {extra} extra: pip install 'reviewflow[{extra}]'"
            )
            raise typer.Exit(EXIT_BAD_INPUT)


def _open(db: Path, *, must_exist: bool = False) -> Store:
    if postgres_url(db) is not None:
        require_extra("postgres", "a PostgreSQL database")
    elif must_exist and not db.exists():
        _fail(f"no database at {db} (run a workflow first, or pass --db)")
    try:
        return open_store(db)
    except ReviewflowError as exc:
        _fail(str(exc))


def _parse_meta(items: list[str] | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"bad --meta {item!r}: use key=value")
        meta[key.strip()] = value
    return meta


def _load(
    file: Path, overrides: list[str] | None, max_file_bytes: int | None = None
) -> WorkflowSpec:
    from .config import load_workflow

    try:
        return load_workflow(file, overrides=overrides or [], max_file_bytes=max_file_bytes)
    except SpecError as exc:
        _fail(str(exc))


def _print_json(doc: Any) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _print_state(run_id: str, state: str, as_json: bool) -> None:
    """What cancel and pause answer: `RUN: STATE`, or {"run_id", "state"} with --json."""
    if as_json:
        _print_json({"run_id": run_id, "state": str(state)})
    else:
        out.print(f"{run_id}: {state}", markup=False)


def _report(store: Store, run_id: str, as_json: bool) -> int:
    from . import render
    from .status import run_status

    doc = run_status(store, run_id)
    if as_json:
        _print_json(doc)
    else:
        render.run_summary(out.console, doc)
    return _state_exit(doc["state"])


def _execute(
    store: Store,
    db: Path,
    run_id: str,
    *,
    as_json: bool,
    force: bool = False,
    cancel_only: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    report: bool = True,
) -> int:
    """Execute a stored run here with a progress view; returns the exit code."""
    import asyncio
    import signal

    from .engine import Engine, RunBusy
    from .progress import Progress

    progress = Progress(out.console, enabled=not as_json and not cancel_only)

    def observe(
        rid: str,
        task: str | None,
        frm: str | None,
        to: str,
        attempt: int | None,
        detail: str | None,
    ) -> None:
        progress.on_transition(rid, task, frm, to, attempt, detail)
        level = LOG_LEVELS.get(to, "debug") if task else "info"
        if not log_transitions or not log_enabled(level):
            return
        getattr(log, level)(
            "transition",
            run_id=rid,
            task=task,
            from_state=frm,
            to_state=to,
            attempt=attempt,
            detail=detail,
        )

    # One line per event: the plain progress view prints transitions, so they are logged only
    # when it does not (a terminal's live table, --json) or when logs were asked for.
    log_transitions = _logs_asked or not progress.prints_lines
    engine = Engine(
        # Logs go to .reviewflow/runs/<run_id>/ under the current directory wherever the
        # database is: --db moves the state, not the logs.
        store,
        runs_dir=DEFAULT_RUNS_DIR,
        observer=observe,
        max_concurrency=concurrency,
    )

    async def main() -> RunState:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.shutdown)
        task = asyncio.ensure_future(engine.execute(run_id, force=force, cancel=cancel_only))
        await progress.follow(engine, run_id, task)
        return await task

    # `call: mypkg.tasks:f` finds ./mypkg, as `python -m` would.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if log_enabled("info"):  # structlog is only imported when something is logged
        log.info("run.start", run_id=run_id, db=_shown(db))
    try:
        state = asyncio.run(main())
    except RunBusy as exc:
        _fail(str(exc), EXIT_FAILED)
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    if log_enabled("info"):
        log.info("run.end", run_id=run_id, state=state.value)
    if state is RunState.RUNNING:
        err.print(f"interrupted: continue with `reviewflow resume {run_id}`")
        return EXIT_INTERRUPTED
    if not report:
        return _state_exit(state.value)
    return _report(store, run_id, as_json)


def _version(value: bool) -> None:
    if value:
        out.print(f"reviewflow {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", help="Show the version.", is_eager=True, callback=_version),
    ] = False,
) -> None:
    global _command, _logs_asked
    _logs_asked = False
    _command = f"reviewflow {ctx.invoked_subcommand}" if ctx.invoked_subcommand else "reviewflow"
    configure_logging("auto", "warning")  # logs go to stderr whatever the command


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
    from .engine import Engine

    engine = Engine(store)
    try:
        rid, created = engine.submit(spec, run_id=run_id, meta=metadata)
    except SpecError as exc:
        _fail(f"--run-id: {exc.message}")
    if not created:
        raise typer.Exit(_existing(store, rid, as_json))
    if not as_json:
        from rich.markup import escape

        out.print(
            f"run [bold]{escape(rid)}[/] ({spec.name}, {len(spec.tasks)} tasks,"
            f" db {escape(_shown(db))})",
            markup=True,
        )
    raise typer.Exit(_execute(store, db, rid, as_json=as_json, concurrency=concurrency))


def _submit(
    store: Store, spec: WorkflowSpec, run_id: str | None, meta: dict[str, str], as_json: bool
) -> int:
    """`run --submit`: enqueue for the workers, print the run id, return at once."""
    from .cluster.queue import submit_to_workers
    from .store.postgres import PostgresStore

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
    from .cluster.queue import Cluster
    from .store.postgres import PostgresStore

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
        from .cluster.queue import list_workers

        state = _workers_control(store, run_id, "cancel")
        alive = RunState(state) not in RUN_TERMINAL and bool(list_workers(store))  # type: ignore[arg-type]
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
    from . import render
    from .status import list_status, run_status

    store = _open(db, must_exist=True)
    if run_id is None:
        runs = list_status(store, limit)
        if as_json:
            _print_json(runs)
        else:
            render.run_list(out.console, runs)
        raise typer.Exit(EXIT_OK)
    try:
        doc = run_status(store, run_id)
    except RunNotFound:
        _fail(f"no run with id {run_id!r} in {_shown(db)}")
    if as_json:
        _print_json(doc)
    else:
        render.run_summary(out.console, doc, every_task=every_task)
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
        from . import render

        render.event_table(out.console, rows)


@app.command()
def graph(
    target: Annotated[str, typer.Argument(help="A workflow file or a run id.")],
    db: DbOpt = DEFAULT_DB,
    set_: SetOpt = None,
) -> None:
    """Print the DAG as a Mermaid flowchart (for a run, nodes coloured by state)."""
    from .spec import WorkflowSpec
    from .viz import mermaid

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
    from .config import load_workflow

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


def main() -> None:
    """Entry point: run the Typer app; turn stray ReviewflowErrors into one-line errors."""
    try:
        app()
    except ReviewflowError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)


db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Apply missing schema migrations (idempotent; also done on first use of an empty one)."""
    url = postgres_url(db)
    try:
        if url is None:
            open_store(db).close()  # SQLite applies its schema when it opens
            if as_json:
                _print_json({"db": str(db), "applied": []})
            else:
                out.print(f"{db}: schema current", markup=False)
            return
        require_extra("postgres", "a PostgreSQL database")
        from .store.migrate import upgrade

        applied = upgrade(url)
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    shown = _shown(url)
    if as_json:
        _print_json({"db": shown, "applied": applied})
    elif applied:
        out.print(f"{shown}: applied {', '.join(applied)}", markup=False)
    else:
        out.print(f"{shown}: schema current (nothing to apply)", markup=False)


# The review and GitHub commands live in their own modules; importing them registers them.
from . import cli_review, cli_worker  # noqa: E402,F401
from .cli_github import github_app  # noqa: E402

app.add_typer(github_app, name="github")
from . import cli_server, cli_ui  # noqa: E402,F401
