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

import gc
import os
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

    if sys.argv[1:2] != ["validate"]:
        run()
        return
    # `validate` builds one object graph (the file's data, then its spec) that lives until the
    # process ends: the collector's passes over it and the interpreter's teardown freeing it
    # object by object are pure cost (~0.15 s of ~0.65 s of CPU for a 10,000-task file).
    gc.disable()
    try:
        run()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        raise SystemExit(code)  # a message to print: the usual way
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app with every command registered (for CliRunner, docs)
        from .commands import load

        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
