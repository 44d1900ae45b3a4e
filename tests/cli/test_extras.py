"""Optional extras: a command that needs one that is not installed says which, in one line.

`pip install reviewflow` is the embedded engine and the CLI on SQLite; PostgreSQL and the HTTP
server are the `postgres` and `server` extras. Instead of uninstalling packages, each test runs
a real `reviewflow` process with a sitecustomize that hides modules (`sys.modules[name] = None`
makes `import name` fail as if it were not installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import sh, write_workflow

POSTGRES = ("psycopg", "psycopg_pool")
SERVER = ("fastapi", "uvicorn", "prometheus_client")
PG_URL = "postgresql://nobody@127.0.0.1:1/none"
POSTGRES_LINE = (
    "reviewflow {command}: a PostgreSQL database needs the postgres extra: "
    "pip install 'reviewflow[postgres]'"
)
SERVER_LINE = (
    "reviewflow serve: the HTTP server needs the server extra: pip install 'reviewflow[server]'"
)


def reviewflow_without(
    tmp_path: Path, hidden: tuple[str, ...], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m reviewflow ARGS` in tmp_path as if `hidden` were not installed."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        f"import sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")])),
    }
    env.pop("REVIEWFLOW_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "reviewflow", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_shim_really_hides_a_module(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['psycopg'] = None\n")
    probe = subprocess.run(
        [sys.executable, "-c", "import psycopg"],
        env={**os.environ, "PYTHONPATH": str(shim)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0
    assert "ModuleNotFoundError" in probe.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--db", PG_URL],
        ["run", "wf.yaml", "--db", PG_URL],
        ["run", "wf.yaml", "--submit", "--db", PG_URL],
        ["worker", "--db", PG_URL],
        ["workers", "--db", PG_URL],
        ["db", "upgrade", "--db", PG_URL],
    ],
    ids=lambda args: " ".join(a for a in args if a != PG_URL),
)
def test_postgres_without_the_postgres_extra(tmp_path: Path, args: list[str]) -> None:
    write_workflow(tmp_path / "wf.yaml", {"a": sh("true")})
    done = reviewflow_without(tmp_path, POSTGRES, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [POSTGRES_LINE.format(command=args[0])]
    assert done.stdout == ""


def test_serve_without_the_server_extra(tmp_path: Path) -> None:
    done = reviewflow_without(tmp_path, SERVER, "serve", "--port", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [SERVER_LINE]


def test_serve_on_postgres_with_the_server_extra_only(tmp_path: Path) -> None:
    done = reviewflow_without(tmp_path, POSTGRES, "serve", "--db", PG_URL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [POSTGRES_LINE.format(command="serve")]


def test_the_core_runs_a_workflow_on_sqlite_without_either_extra(tmp_path: Path) -> None:
    """`pip install reviewflow` alone: run, status, events, graph on SQLite."""
    write_workflow(tmp_path / "wf.yaml", {"a": sh("true"), "b": sh("true", needs=["a"])})
    hidden = POSTGRES + SERVER
    ran = reviewflow_without(tmp_path, hidden, "run", "wf.yaml", "--run-id", "r1")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for args in (["status", "r1"], ["events", "r1"], ["graph", "r1"], ["--help"]):
        done = reviewflow_without(tmp_path, hidden, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stderr == "", args


def test_the_python_api_names_the_extra_too() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from reviewflow import open_store, StoreError\n"
        "try:\n"
        f"    open_store({PG_URL!r})\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == (
        "a PostgreSQL database needs the postgres extra: pip install 'reviewflow[postgres]'"
    )
