"""Python tasks of the HTTP API tests (`call: server_tasks:<name>`; tests/server is on sys.path)."""

from __future__ import annotations

from typing import Any


def not_json(ctx: Any) -> dict[str, Any]:
    """A result JSON cannot carry as such (NaN, infinity)."""
    return {"nan": float("nan"), "inf": float("inf"), "ok": 1.5}
