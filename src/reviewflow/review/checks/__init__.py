"""Review checks: each turns a tool's output into findings of one shape (see findings.py)."""

from .base import CheckContext, ServiceUnreachable, ToolMissing, ToolResult
from .registry import CheckNotFound, CheckRegistry, checks

__all__ = [
    "CheckContext",
    "CheckNotFound",
    "CheckRegistry",
    "ServiceUnreachable",
    "ToolMissing",
    "ToolResult",
    "checks",
]
