"""Helpers of the CLI and process-level tests (tests/cli is on sys.path; import `clihelpers`).

Everything is real: workflow files are written under tmp_path, `reviewflow` runs as the installed
console script (a real process with its own SQLite connection), and the database is inspected
with plain read-only sqlite3 queries, as an operator would.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click.testing
import psutil
import typer.main
import yaml
from typer.testing import Result

from reviewflow.cli import app

CLI_DIR = Path(__file__).resolve().parent
RF = Path(sys.executable).parent / "reviewflow"
"""The installed console script (`reviewflow.cli:main`)."""

_T = TypeVar("_T")


# ---------------------------------------------------------------------------- workflows


def sh(script: str, **body: Any) -> dict[str, Any]:
    """A shell task body running `sh -c <script>` (argv form: no shell parses the YAML)."""
    return {"type": "shell", "run": ["sh", "-c", script], **body}


def write_workflow(
    path: Path, tasks: dict[str, dict[str, Any]], *, name: str = "wf", **fields: Any
) -> Path:
    """Write a workflow YAML file and return its path."""
    doc = {"name": name, **fields, "tasks": tasks}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


RECORD = 'echo "$REVIEWFLOW_TASK $REVIEWFLOW_ATTEMPT" >> "{file}"'
"""Shell snippet appending `<task> <attempt>` to a file (relative to the run's cwd)."""


def record(file: str = "done.txt", sleep: float = 0.0) -> str:
    """A script that (optionally) sleeps, then records its task and attempt in `file`."""
    line = RECORD.format(file=file)
    return f"sleep {sleep}; {line}" if sleep else line


def recorded(path: Path) -> list[tuple[str, int]]:
    """The `(task, attempt)` lines a workflow of `record` tasks wrote."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        name, attempt = line.split()
        out.append((name, int(attempt)))
    return out


def review_workflow(path: Path, **fields: Any) -> Path:
    """lint and tests (independent), then summary; every task records itself in done.txt."""
    return write_workflow(
        path,
        {
            "lint": sh(record(), priority="high"),
            "tests": sh(record()),
            "summary": {"type": "python", "call": "cli_tasks:record", "needs": ["lint", "tests"]},
        },
        name="review",
        **fields,
    )


def one_line_error(stderr: str) -> str:
    """The single error line of a failed command (and nothing else on stderr)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


# ---------------------------------------------------------------------------- the database


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the SQLite file (a fresh connection each time)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


def try_query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]] | None:
    """`query`, or None while the file does not exist yet or cannot be read right now."""
    if not db.exists():
        return None
    try:
        return query(db, sql, params)
    except sqlite3.OperationalError:
        return None


def task_states(db: Path, run_id: str) -> dict[str, str]:
    return dict(query(db, "SELECT name, state FROM tasks WHERE run_id = ?", (run_id,)))


def run_state(db: Path, run_id: str) -> str | None:
    rows = query(db, "SELECT state FROM runs WHERE run_id = ?", (run_id,))
    return rows[0][0] if rows else None


def events(db: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's events, oldest first, as dicts."""
    rows = query(
        db,
        "SELECT id, task, from_state, to_state, attempt, at, detail FROM events"
        " WHERE run_id = ? ORDER BY id",
        (run_id,),
    )
    keys = ("id", "task", "from", "to", "attempt", "at", "detail")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def wait_for(
    probe: Callable[[], _T | None], what: str, timeout: float = 20.0, interval: float = 0.05
) -> _T:
    """Poll `probe` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------- in-process CLI


@functools.cache
def _command() -> click.Command:
    return typer.main.get_command(app)


@dataclass
class Cli:
    """`reviewflow` in-process: `cli("run", "wf.yaml", "--db", cli.db)` (cwd is `cwd`)."""

    cwd: Path
    db: Path

    def __call__(self, *args: str | Path) -> Result:
        # typer's CliRunner builds the whole click command tree from the app on every call
        # (~0.1 s idle, most of a short command's time); the tree is built once here instead.
        result = click.testing.CliRunner().invoke(
            _command(), [str(a) for a in args], catch_exceptions=True
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # An exception escaping a command is a bug (the CLI promises one-line errors);
            # let it fail the test with its traceback.
            raise result.exception
        return result


# ---------------------------------------------------------------------------- processes


def cli_env() -> dict[str, str]:
    """Environment of a `reviewflow` subprocess: python tasks of tests/cli importable."""
    env = dict(os.environ)
    env.pop("REVIEWFLOW_DB", None)
    env.pop("CI", None)  # `reviewflow review` stops at an approval gate in CI: tests choose
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CLI_DIR), env.get("PYTHONPATH", "")) if p)
    env["NO_COLOR"] = "1"
    return env


def pid_gone(pid: int) -> bool:
    """True once `pid` executes nothing (gone, or a zombie PID 1 has not reaped yet)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


class Procs:
    """Starts `reviewflow` processes for one test and leaves nothing running behind it.

    Every run process gets its own session (`start_new_session=True`); cleanup kills those
    process groups and any leftover task process whose environment names one of the test's
    run ids (shell tasks run in process groups of their own, so they outlive a killed engine).
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[str]] = []
        self.run_ids: set[str] = set()

    def run(
        self,
        *args: str,
        timeout: float = 60.0,
        check_clean: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `reviewflow ARGS...` to its end in the test's directory (stdin: /dev/null),
        with `env` on top of `cli_env()`."""
        done = subprocess.run(
            [str(RF), *args],
            cwd=self.cwd,
            env={**cli_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        if check_clean:
            assert "Traceback" not in done.stderr, done.stderr
            assert "database is locked" not in done.stderr + done.stdout
        return done

    def start(self, *args: str, run_id: str | None = None) -> subprocess.Popen[str]:
        """Start `reviewflow ARGS...` in the background (own session, output captured)."""
        if run_id:
            self.run_ids.add(run_id)
        proc = subprocess.Popen(
            [str(RF), *args],
            cwd=self.cwd,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        """SIGKILL the process (only it: its task processes live on, as after a crash) and
        reap it, so that its pid no longer looks alive to the next owner."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    @staticmethod
    def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
        """Wait for a background process; (exit code, stdout, stderr)."""
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)
        if not self.run_ids:
            return
        markers = {f"REVIEWFLOW_RUN_ID={rid}" for rid in self.run_ids}
        for p in psutil.process_iter(["pid"]):
            try:
                env = p.environ()
            except (psutil.Error, OSError):
                continue
            if f"REVIEWFLOW_RUN_ID={env.get('REVIEWFLOW_RUN_ID')}" in markers:
                with contextlib.suppress(psutil.Error):
                    p.kill()
