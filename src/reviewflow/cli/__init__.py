"""The `reviewflow` command: a thin layer over the engine, the store and the status views.

Exit codes: 0 the run succeeded (or the command did what was asked), 1 the run failed or was
cancelled (or the command could not act on the run), 2 bad input (file, flag, unknown run id),
130 interrupted (the run stays resumable).

The package: `common` (the Typer app, shared options and helpers), one module per group of
commands (`runs`, `db`, `review`, `worker`, `github`, `server`, `ui`, `notifications`), and
`commands`, which imports them in `--help` order. This `__init__` imports none of them until
asked: `reviewflow --version` alone is answered without typer (its import is most of the
command's start-up; docs/benchmarks.md).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .common import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point (`reviewflow`, `python -m reviewflow`): run the Typer app; stray
    ReviewflowErrors become one-line errors (exit 2)."""
    if sys.argv[1:] == ["--version"]:  # what typer's eager --version prints, without typer
        from ..version import __version__

        sys.stdout.write(f"reviewflow {__version__}\n")
        sys.stdout.flush()
        return
    from .commands import main as run

    run()


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app with every command registered (for CliRunner, docs)
        from .commands import load

        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
