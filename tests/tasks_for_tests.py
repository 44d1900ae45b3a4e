"""Python task functions used by the tests (`call: tasks_for_tests:<name>`).

Each receives the TaskContext. Side effects that must survive attempts (or processes) go to files
whose paths the test passes in `params`. Long-running functions are async so that cancellation
and timeouts really stop them (a sync function keeps running in its worker thread).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from reviewflow.executors import TaskContext


def _append(path: str, line: str) -> int:
    """Append a line to `path`; return how many lines it now has."""
    p = Path(path)
    with p.open("a") as fh:
        fh.write(line + "\n")
    return len(p.read_text().splitlines())


def noop(ctx: TaskContext) -> None:
    return None


async def anoop(ctx: TaskContext) -> None:
    return None


async def asleep(ctx: TaskContext) -> str:
    """Sleep params["seconds"] (default 0.1) seconds; log start/end if params["log"]."""
    log = ctx.params.get("log")
    if log:
        _append(log, f"start {ctx.task} {ctx.attempt} {time.time()!r}")
    await asyncio.sleep(float(ctx.params.get("seconds", 0.1)))
    if log:
        _append(log, f"end {ctx.task} {ctx.attempt} {time.time()!r}")
    return ctx.task


def flaky(ctx: TaskContext) -> dict[str, Any]:
    """Fail with ValueError on the first params["fail_times"] executions (counted in a file)."""
    n = _append(ctx.params["counter"], f"{ctx.task} attempt {ctx.attempt}")
    if n <= int(ctx.params["fail_times"]):
        raise ValueError(f"flaky failure {n}")
    return {"executions": n}


class CustomError(Exception):
    """An exception only a `retry_on` naming it should retry."""


_ERRORS = {"ValueError": ValueError, "KeyError": KeyError, "CustomError": CustomError}


def raise_named(ctx: TaskContext) -> None:
    """Count the execution in params["counter"], then raise the exception named params["exc"]."""
    n = _append(ctx.params["counter"], f"{ctx.task} attempt {ctx.attempt}")
    raise _ERRORS[ctx.params["exc"]](f"raised on execution {n}")


async def fail(ctx: TaskContext) -> None:
    """Fail after params["seconds"] (default 0) seconds."""
    await asyncio.sleep(float(ctx.params.get("seconds", 0)))
    raise RuntimeError(f"{ctx.task} failed on purpose")


async def record(ctx: TaskContext) -> dict[str, Any]:
    """Append `<task> <attempt>` to params["log"] (a file), sleep params["seconds"] (default 0)."""
    _append(ctx.params["log"], f"{ctx.task} {ctx.attempt}")
    await asyncio.sleep(float(ctx.params.get("seconds", 0)))
    return {"task": ctx.task}


def context_echo(ctx: TaskContext) -> dict[str, Any]:
    """Return what the context carried, so a test can check what a task was given."""
    return {
        "run_id": ctx.run_id,
        "task": ctx.task,
        "attempt": ctx.attempt,
        "params": ctx.params,
        "results": ctx.results,
        "meta": ctx.meta,
    }


def failures_echo(ctx: TaskContext) -> dict[str, Any]:
    """Return the dependencies that did not succeed, as a `trigger: all_done` task sees them."""
    return {"failures": dict(ctx.failures), "results": ctx.results}


async def fail_now(ctx: TaskContext) -> None:
    """Fail on the first step, without yielding to the loop."""
    raise RuntimeError(f"{ctx.task} failed at once")
