"""Python tasks of tests/cli/test_worker_cli.py (`call: worker_cli_tasks:<function>`; tests/cli
is on PYTHONPATH for the `reviewflow worker` subprocesses)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def nap_once(ctx: Any) -> dict[str, Any]:
    """The first execution creates `<task>.started` and sleeps params.seconds (a sync function:
    its thread cannot be interrupted); any later one does not sleep. Then appends
    `<task> <attempt>` to done.txt."""
    marker = Path(f"{ctx.task}.started")
    first = not marker.exists()
    if first:
        marker.touch()
        time.sleep(float(ctx.params["seconds"]))
    with Path("done.txt").open("a") as fh:
        fh.write(f"{ctx.task} {ctx.attempt}\n")
    return {"slept": first}
