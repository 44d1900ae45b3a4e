"""Fixtures of the CLI tests: an in-process runner (typer's CliRunner on `reviewflow.cli.app`)
and a manager of real `reviewflow` processes. Both work in tmp_path and always pass `--db`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

CLI_DIR = Path(__file__).resolve().parent
if str(CLI_DIR) not in sys.path:
    sys.path.insert(0, str(CLI_DIR))  # clihelpers, cli_tasks

from clihelpers import Cli, Procs  # noqa: E402


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVIEWFLOW_DB", raising=False)
    yield Cli(tmp_path, tmp_path / "rf.db")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    manager = Procs(tmp_path)
    try:
        yield manager
    finally:
        manager.cleanup()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """The CLI configures structlog globally to print to the stderr it sees (CliRunner's, closed
    after the call); put the defaults back so no later log call writes to a closed stream."""
    yield
    structlog.reset_defaults()
