"""Python tasks of the CLI tests (`call: cli_tasks:<function>`; tests/cli is on sys.path in the
test process and on PYTHONPATH for `reviewflow` subprocesses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def record(ctx: Any) -> dict[str, Any]:
    """Append `<task> <attempt>` to params.file (default done.txt); return what it saw."""
    path = Path(ctx.params.get("file", "done.txt"))
    with path.open("a") as fh:
        fh.write(f"{ctx.task} {ctx.attempt}\n")
    return {"task": ctx.task, "params": ctx.params, "meta": ctx.meta, "inputs": sorted(ctx.results)}


def boom(ctx: Any) -> None:
    raise RuntimeError(f"boom in {ctx.task}")


def fail_with(ctx: Any) -> None:
    raise RuntimeError(ctx.params["message"])


def noop(ctx: Any) -> None:
    """Does nothing: big workflows of the output tests."""
