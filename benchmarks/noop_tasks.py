"""No-op task callables for the engine benchmark (importable as `noop_tasks:noop`)."""

from __future__ import annotations

from typing import Any


async def noop(ctx: Any) -> None:
    """An async task that does nothing: measures pure engine overhead."""
    return None


def noop_sync(ctx: Any) -> None:
    """A sync task that does nothing (the python task type runs it in a worker thread)."""
    return None
