"""The CLI's Typer app, its shared options, exit codes, consoles and helpers.

Every command module of this package imports from here and registers its commands on `app`;
this module imports none of them (no cycle).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ..constants import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY
from ..constants import DEFAULT_RUNS_DIR as DEFAULT_RUNS_DIR
from ..constants import SUMMARY_ABOVE as SUMMARY_ABOVE
from ..errors import LeaseLost, ReviewflowError, RunNotFound, SpecError, StoreError
from ..logs import LogFormat, configure_logging, log
from ..logs import enabled as log_enabled
from ..states import RunState
from ..store import open_store, postgres_url
from ..version import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from ..spec import WorkflowSpec
    from ..store import Store

# Start-up time: every command imports this module, so the engine (pydantic, asyncio, the
# executors), rich, PostgreSQL, the server and the review tools are imported inside the
# commands that use them. benchmarks/cli_startup.py measures it; tests/cli/test_cli_imports.py
# checks that the light commands stay light.


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
SchedulesOpt = Annotated[
    bool,
    typer.Option(
        "--schedules/--no-schedules",
        help="Also fire the database's schedules (--no-schedules: leave them to"
        " `reviewflow scheduler` or other processes).",
    ),
]
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


_LOG_FORMATS: dict[str, LogFormat] = {"auto": "auto", "human": "human", "json": "json"}


def _logging(log_format: str, log_level: str) -> None:
    global _logs_asked
    _logs_asked = log_format != "auto" or bool(log_level)
    fmt = _LOG_FORMATS.get(log_format)
    if fmt is None:
        _fail(f"bad --log-format {log_format!r}: use auto, human or json")
    if log_level and log_level.lower() not in ("debug", "info", "warning", "error"):
        _fail(f"bad --log-level {log_level!r}: use debug, info, warning or error")
    level = (log_level or ("info" if log_format == "json" else "warning")).lower()
    configure_logging(fmt, level)


def _state_exit(state: str) -> int:
    return EXIT_OK if state == RunState.SUCCEEDED else EXIT_FAILED


def _shown(db: Path | str) -> str:
    """How to name the database in messages: a URL without its password."""
    url = postgres_url(db)
    if url is None:
        return str(db)
    from ..store.postgres import redact

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
    from ..config import load_workflow

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
    from .. import terminal
    from ..status import run_status

    doc = run_status(store, run_id)
    if as_json:
        _print_json(doc)
    else:
        terminal.run_summary(out.console, doc)
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
    spec: WorkflowSpec | None = None,
    stop_waiting: list[str] | None = None,
) -> int:
    """Execute a stored run here with a progress view; returns the exit code. `spec`: the
    run's spec when the caller has it (just submitted), so it is not read back and validated
    again (seconds and a second copy in memory for a 100k-task run).

    With `stop_waiting` (a list), the run stops, resumable, as soon as an approval starts
    waiting (a CI job has nobody to ask): the list gets the task's name and the exit code is
    EXIT_INTERRUPTED without the interrupted message; the caller says what to do."""
    import asyncio
    import gc
    import signal

    from ..engine import Engine, RunBusy
    from ..executors.approval import WAITING
    from ..progress import Progress

    handed = [] if spec is None else [spec]
    del spec  # the executing engine's only: freed with the run, before the report

    def execute_here() -> RunState:
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
            if (
                stop_waiting is not None
                and task is not None
                and frm == to
                and (detail or "").startswith(WAITING)
            ):
                stop_waiting.append(task)
                asyncio.get_running_loop().call_soon(engine.shutdown)
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
        if handed:
            engine.prepare(run_id, handed.pop())

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
        from ..notify.deliver import delivering

        try:
            with delivering(store):  # notifications go out on threads of their own
                state = asyncio.run(main())
        except (RunBusy, RunNotFound, LeaseLost) as exc:
            _fail(str(exc), EXIT_FAILED)
        except (
            StoreError
        ) as exc:  # a write was refused: nothing more started, nothing unsaved shown
            _fail(
                f"{exc}; run {run_id} is interrupted: continue with `reviewflow resume {run_id}`"
                " once the database can be written",
                EXIT_FAILED,
            )
        except ReviewflowError as exc:
            _fail(str(exc), EXIT_FAILED)
        return state

    state = execute_here()
    # The ended run (its spec and tasks, ~1 KiB a task) holds reference cycles: collected
    # before the report reads every task row.
    gc.collect()
    if log_enabled("info"):
        log.info("run.end", run_id=run_id, state=state.value)
    if state is RunState.RUNNING:
        if not stop_waiting:
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
