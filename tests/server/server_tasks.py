"""Python tasks of the HTTP API tests (`call: server_tasks:<name>`; tests/server is on sys.path),
and the gates a test plugin waits on while the server reads a workflow."""

from __future__ import annotations

import threading
from typing import Any

READING = threading.Event()
"""Set by the gate plugin once the server is importing it, i.e. reading the workflow."""
RELEASE = threading.Event()
"""The gate plugin's import waits on this (at most GATE_WAIT seconds)."""
GATE_WAIT = 15.0


def not_json(ctx: Any) -> dict[str, Any]:
    """A result JSON cannot carry as such (NaN, infinity)."""
    return {"nan": float("nan"), "inf": float("inf"), "ok": 1.5}
