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

__all__ = ["COMMANDS", "MODULES", "load", "main"]

# Import order is the order of `--help`: commands first (run ... validate, review, approve,
# reject, worker, workers, serve, ui), then the groups (db, templates, github, schedule).
MODULES = ("runs", "db", "review", "worker", "github", "server", "ui", "notifications", "schedule")

COMMANDS = {
    **dict.fromkeys(
        ("run", "resume", "cancel", "pause", "status", "events", "graph", "validate"), "runs"
    ),
    **dict.fromkeys(("review", "approve", "reject", "templates"), "review"),
    **dict.fromkeys(("worker", "workers"), "worker"),
    **dict.fromkeys(("schedule", "scheduler"), "schedule"),
    "db": "db",
    "github": "github",
    "serve": "server",
    "ui": "ui",
    "notifications": "notifications",
}
"""Each command (or group) → the one module that registers it. Naming a command first loads
that module alone: typer evaluates every option of every registered command at start-up, and
the other modules would cost 10-20 ms of a command's start (`status` in scripts run in loops;
`review`, whose run should exist within 0.3 s: docs/benchmarks.md)."""


def load(command: str | None = None) -> typer.Typer:
    """The app with the module of `command` registered, or all of them (no command, an option
    such as `--help` first, or a name that is not a command: typer's own error lists them)."""
    module = COMMANDS.get(command) if command is not None else None
    for name in (module,) if module is not None else MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return app


def main() -> None:
    """Entry point: run the Typer app; turn stray ReviewflowErrors into one-line errors."""
    try:
        load(sys.argv[1] if len(sys.argv) > 1 else None)()
    except ReviewflowError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
