"""Python tasks of tests/integration/test_workers.py (`call: workers_tasks:<function>`;
tests/integration is on sys.path while those tests run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from reviewflow.executors import TaskContext


async def flaky_slow(ctx: TaskContext) -> dict[str, Any]:
    """Hang (30 s) on the first params["slow_times"] executions (counted in params["counter"]),
    then succeed at once: a task that times out, then passes on a retry."""
    counter = Path(ctx.params["counter"])
    with counter.open("a") as fh:
        fh.write(f"{ctx.task} attempt {ctx.attempt}\n")
    n = len(counter.read_text().splitlines())
    if n <= int(ctx.params["slow_times"]):
        await asyncio.sleep(30)
    return {"executions": n}


async def whoami(ctx: TaskContext) -> dict[str, Any]:
    """Which attempt produced the result (to tell one worker's result from another's)."""
    await asyncio.sleep(float(ctx.params.get("seconds", 0)))
    return {"attempt": ctx.attempt}
