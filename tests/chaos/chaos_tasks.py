"""Python tasks of the chaos tests (`call: chaos_tasks:<name>`; the tests put tests/chaos on the
workers' PYTHONPATH).

Each returns which process ran which attempt, so the test can tell from the stored result which
worker's completion was the one accepted.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from reviewflow.errors import TaskFailed
from reviewflow.executors import TaskContext


async def work(ctx: TaskContext) -> dict[str, Any]:
    """Sleep params["seconds"] (default 0); fail the first attempt if params["flaky"]."""
    await asyncio.sleep(float(ctx.params.get("seconds", 0)))
    if ctx.params.get("flaky") and ctx.attempt == 1:
        raise TaskFailed(f"{ctx.task}: first attempt fails on purpose")
    return {"pid": os.getpid(), "attempt": ctx.attempt}
