"""The one python task of tests/integration/test_rules_parity.py (`call: parity_tasks:scripted`).

What an attempt does is written in its params, by attempt number, so that every mode executes
the same story whatever its timing:

- "ok": return at once; "fail": raise a retryable failure; "fatal": a non-retryable one;
- "hang": wait until cancelled (by the task's timeout, or by the run stopping);
- "stop_fail" / "stop_cancel": wait until every task named in params["barrier"] has started
  (its first attempt left a marker file), then fail for good (the run's `fail_fast` stop) or
  leave the marker "cancel-now" for the test to cancel the run, and hang.

Each attempt leaves a marker `<dir>/<task>.<attempt>` first: the barrier and the tests' controls
wait on those (progress), never on time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from reviewflow.errors import TaskFailed
from reviewflow.executors import TaskContext

BARRIER_POLLS = 3000  # 30 s at 10 ms: a barrier that never opens shows up as a parity failure


async def scripted(ctx: TaskContext) -> dict[str, Any]:
    params = ctx.params
    folder = Path(params["dir"])
    (folder / f"{ctx.task}.{ctx.attempt}").touch()
    what = params["script"].get(str(ctx.attempt), "ok")
    if what in ("stop_fail", "stop_cancel"):
        for _ in range(BARRIER_POLLS):
            if all((folder / f"{name}.1").exists() for name in params["barrier"]):
                break
            await asyncio.sleep(0.01)
        if what == "stop_fail":
            raise TaskFailed(f"{ctx.task} fails for good on attempt {ctx.attempt}", retryable=False)
        (folder / "cancel-now").touch()
        what = "hang"
    if what == "fail":
        raise TaskFailed(f"{ctx.task} fails on attempt {ctx.attempt}")
    if what == "fatal":
        raise TaskFailed(f"{ctx.task} fails for good on attempt {ctx.attempt}", retryable=False)
    if what == "hang":
        await asyncio.sleep(3600)
    return {"task": ctx.task, "attempt": ctx.attempt}
