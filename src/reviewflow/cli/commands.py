"""Every command of the CLI, registered on the app in the order `reviewflow --help` lists them.

`common` holds the Typer app, the shared options and helpers; each other module is one group of
commands and registers them on that app when imported. None imports another command module.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ..errors import ReviewflowError
from .common import EXIT_BAD_INPUT, app, err

__all__ = ["MODULES", "RUNS_COMMANDS", "load", "main"]

# Import order is the order of `--help`: commands first (run ... validate, review, approve,
# reject, worker, workers, serve, ui), then the groups (db, templates, github, schedule).
MODULES = ("runs", "db", "review", "worker", "github", "server", "ui", "notifications", "schedule")

RUNS_COMMANDS = frozenset(
    {"run", "resume", "cancel", "pause", "status", "events", "graph", "validate"}
)
"""The commands of the `runs` module: the ones people type most and scripts call in loops.
Naming one of them first loads that module alone: typer evaluates every option of every
registered command at start-up, and the eight other modules cost ~10 ms (docs/benchmarks.md)."""


def load(command: str | None = None) -> typer.Typer:
    """The app with every command, or only the `runs` module's when `command` is one of them
    (the app's own `--help`, which lists them all, is then never what gets shown)."""
    for name in ("runs",) if command in RUNS_COMMANDS else MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return app


def main() -> None:
    """Entry point: run the Typer app; turn stray ReviewflowErrors into one-line errors."""
    try:
        load(sys.argv[1] if len(sys.argv) > 1 else None)()
    except ReviewflowError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
