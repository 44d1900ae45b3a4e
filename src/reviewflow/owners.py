"""Who executes a run: owner ids (`host:pid:token`) and whether their process may still live.

Kept apart from the engine so that `reviewflow status` and `reviewflow pause` can judge a run's
lease without importing the engine (pydantic, asyncio, executors): they must start fast.
"""

from __future__ import annotations

import os

live_owners: set[str] = set()
"""Owner ids of engines alive in this process (so a dead engine's lease is recognised)."""


def owner_alive(owner: str | None, lease_until: float | None, now: float) -> bool:
    """Whether the process named by `owner` (host:pid:token) may still be running the run."""
    if not owner or lease_until is None or lease_until < now:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    import socket  # here: `reviewflow --version` has no use for it

    if host != socket.gethostname():
        return True  # cannot look: trust the lease
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return owner in live_owners
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
