"""No-op task callables for the engine benchmark (importable as `noop_tasks:noop`)."""

from __future__ import annotations

import asyncio
from typing import Any


async def noop(ctx: Any) -> None:
    """An async task that does nothing: measures pure engine overhead."""
    return None


def noop_sync(ctx: Any) -> None:
    """A sync task that does nothing (the python task type runs it in a worker thread)."""
    return None


async def wait_or_fail(ctx: Any) -> None:
    """Fail at once with params["fail"], wait until cancelled with params["wait"]."""
    if ctx.params.get("fail"):
        raise ValueError("failed on purpose")
    if ctx.params.get("wait"):
        await asyncio.Event().wait()
