"""Start-up of the `reviewflow` command: light commands do not import what they do not use.

Every command imports `reviewflow.cli`; PostgreSQL (psycopg), the HTTP server (FastAPI, uvicorn),
the engine (pydantic, asyncio) and the review tools are imported inside the commands that use
them. Checked on sys.modules of a real subprocess (behaviour, not timing: the timing is
benchmarks/cli_startup.py's job).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import sh, write_workflow

SERVER_AND_POSTGRES = ("psycopg", "psycopg_pool", "fastapi", "starlette", "uvicorn")
ENGINE = ("reviewflow.engine", "reviewflow.cluster", "reviewflow.review", "yaml", "asyncio")
# typer (>= 0.2x) converts a command's arguments with pydantic TypeAdapters, so pydantic is only
# kept out of the commands without arguments.

PROBE = """
import atexit, json, sys
out = sys.argv[1]
def report():
    with open(out, "w") as fh:
        json.dump(sorted(sys.modules), fh)
atexit.register(report)
sys.argv = ["reviewflow", *sys.argv[2:]]
from reviewflow.cli import main
main()
"""


def imported(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Modules loaded by the time `reviewflow ARGS` exits, and the finished process."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return set(json.loads(report.read_text())), done


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_import_of_the_cli_module_is_light(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, json, reviewflow.cli; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(json.loads(done.stdout))
    assert loaded(modules, (*SERVER_AND_POSTGRES, *ENGINE, "pydantic", "structlog")) == []


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A SQLite database in tmp_path holding run `r1`, which succeeded."""
    write_workflow(tmp_path / "wf.yaml", {"a": sh("true")})
    db = tmp_path / "rf.db"
    subprocess.run(
        [sys.executable, "-m", "reviewflow", "run", "wf.yaml", "--db", str(db), "--run-id", "r1"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return db


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["status"], ["status", "r1"], ["pause", "r1"]],
    ids=" ".join,
)
def test_light_commands_import_neither_server_postgres_nor_engine(
    tmp_path: Path, finished_run: Path, args: list[str]
) -> None:
    modules, done = imported(
        tmp_path, *args, *(["--db", str(finished_run)] if args[0] in ("status", "pause") else [])
    )
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    assert loaded(modules, SERVER_AND_POSTGRES + ENGINE) == []
    if args[0].startswith("--"):
        assert loaded(modules, ("pydantic", "structlog")) == []
    if args == ["pause", "r1"]:
        assert done.stderr.strip() == "error: run r1 already ended: succeeded"
    if args[0] in ("status", "pause"):  # only the module of the command named is registered
        assert loaded(modules, ("reviewflow.cli",)) == [
            "reviewflow.cli",
            "reviewflow.cli.commands",
            "reviewflow.cli.common",
            "reviewflow.cli.runs",
        ]


def test_run_still_works_and_needs_no_server(tmp_path: Path, finished_run: Path) -> None:
    modules, done = imported(tmp_path, "run", "wf.yaml", "--db", str(finished_run))
    assert done.returncode == 0, done.stderr
    assert "reviewflow.engine" in modules
    assert loaded(modules, SERVER_AND_POSTGRES) == []


def test_option_defaults_of_the_cli_are_their_sources() -> None:
    """The CLI's option defaults come from constants.py (standard library only), so building
    its options imports nothing heavy, and they are the values the engine and workers use."""
    from reviewflow import engine, github, github_checks, terminal
    from reviewflow.cli import common as cli
    from reviewflow.cli import github as cli_github
    from reviewflow.cli import worker as cli_worker
    from reviewflow.cluster import queue, worker

    assert cli.DEFAULT_CONCURRENCY == engine.DEFAULT_CONCURRENCY
    assert cli.SUMMARY_ABOVE == terminal.SUMMARY_ABOVE
    assert cli.DEFAULT_RUNS_DIR == engine.DEFAULT_RUNS_DIR
    assert cli_worker.DEFAULT_LEASE_TTL == queue.DEFAULT_LEASE_TTL
    assert cli_worker.DEFAULT_MAX_LOST_ATTEMPTS == queue.DEFAULT_MAX_LOST_ATTEMPTS
    assert cli_worker.DEFAULT_WORKER_CONCURRENCY == worker.DEFAULT_WORKER_CONCURRENCY
    assert cli_worker.DEFAULT_POLL_INTERVAL == worker.DEFAULT_POLL_INTERVAL
    assert cli_worker.DEFAULT_GRACE == worker.DEFAULT_GRACE
    assert cli_github.DEFAULT_API_URL == github.DEFAULT_API_URL
    assert cli_github.DEFAULT_MARKER == github.DEFAULT_MARKER
    assert cli_github.DEFAULT_CHECK_NAME == github_checks.CHECK_NAME


def test_every_public_name_of_the_package_resolves() -> None:
    """`reviewflow` exports its API lazily; every name in __all__ must still import."""
    import reviewflow

    for name in reviewflow.__all__:
        assert getattr(reviewflow, name) is not None, name
    assert set(reviewflow.__all__) <= set(dir(reviewflow))


REVIEW_PROBE = """
import atexit, json, sys
out = sys.argv[1]
at_open = []
def opened(event, args):
    # The review opens its database just before it stores its run: what is loaded by then is
    # what the run's creation waited for.
    if event == "sqlite3.connect" and not at_open:
        at_open.append(sorted(sys.modules))
sys.addaudithook(opened)
def report():
    with open(out, "w") as fh:
        json.dump({"at_open": at_open[0] if at_open else None, "at_exit": sorted(sys.modules)}, fh)
atexit.register(report)
sys.argv = ["reviewflow", *sys.argv[2:]]
from reviewflow.cli import main
main()
"""

NOT_BEFORE_THE_RUN = (
    *SERVER_AND_POSTGRES,
    "asyncio",
    "reviewflow.engine",
    "reviewflow.attempts",
    "reviewflow.scheduler",
    "reviewflow.cluster",
    # the checks' own modules, which import their tools (the builder needs only api and perf)
    "reviewflow.review.checks.code",
    "reviewflow.review.checks.tests",
    "reviewflow.review.checks.testmap",
    "reviewflow.review.checks.deps",
    "reviewflow.review.checks.content",
    "reviewflow.review.checks.prose",
    "reviewflow.review.runner",
    "detect_secrets",
    "bandit",
    "coverage",
    "rich",
    "structlog",
    "statistics",
)


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_review_stores_its_run_before_importing_what_only_executing_it_needs(
    tmp_path: Path,
) -> None:
    """`reviewflow review` creates its run first (docs/benchmarks.md, "Start-up: spawn → run
    created"): the engine, asyncio, the checks' modules with their tools and rich's output are
    imported after the run is stored, and the review still runs to its verdict."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "mod.py").write_text("def one() -> int:\n    return 1\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    # A new public function: the docs check is included (the builder diffs the public API).
    (repo / "pkg" / "mod.py").write_text(
        "def one() -> int:\n    return 1\n\n\ndef two() -> int:\n    return 2\n"
    )
    _git(repo, "commit", "-qam", "change")
    template = tmp_path / "t.yaml"
    template.write_text(
        "name: t\nextends: pr\nchecks:\n"
        + "".join(f"  {c}: {{when: never}}\n" for c in ("format", "tests"))
    )
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            REVIEW_PROBE,
            str(report),
            "review",
            str(repo),
            "--base",
            "HEAD~1",
            "--template",
            str(template),
            "--db",
            str(tmp_path / "rf.db"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "checks: syntax, lint, docs" in done.stdout
    assert (tmp_path / "out" / "report.json").is_file()
    modules = json.loads(report.read_text())
    assert modules["at_open"] is not None, "the review never opened its database"
    assert loaded(set(modules["at_open"]), NOT_BEFORE_THE_RUN) == []
    assert "reviewflow.engine" in modules["at_exit"]  # it executed the run after that
