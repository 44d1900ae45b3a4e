"""Structured logging (structlog): human lines on a terminal, JSON lines with `json`.

structlog is imported on the first log call, not with this module: commands that log nothing
(`--version`, `status`, `pause`) must not pay for its import (~100 ms: it loads rich's traceback
machinery). Log lines are written to whatever `sys.stderr` is at that moment, so that while the
live progress table is on screen they go through rich and appear above it, never inside it.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

LogFormat = Literal["auto", "human", "json"]

_pending: tuple[str, str] | None = None
"""Settings of the last configure_logging call not yet handed to structlog."""
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
"""logging's level numbers (the logging package itself is not needed to compare them)."""
_threshold = 0
"""The level configure_logging last set: calls below it can be skipped (see `enabled`)."""


class _CurrentStderr:
    """A file that writes to the current `sys.stderr` (rich's Live swaps it for a proxy)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(fmt: LogFormat = "auto", level: str = "INFO") -> None:
    """Route structlog to stderr; `auto` picks human on a TTY and JSON otherwise.

    Applied at once if structlog is already loaded, else on the first log call."""
    global _pending, _threshold
    _pending = (fmt, level)
    _threshold = LEVELS.get(level.upper(), LEVELS["INFO"])
    if "structlog" in sys.modules:
        _apply()


def _apply() -> None:
    global _pending
    if _pending is None:
        return
    fmt, level = _pending
    _pending = None
    import structlog

    if fmt == "auto":
        fmt = "human" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            LEVELS.get(level.upper(), LEVELS["INFO"])
        ),
        # structlog types `file` as TextIO but only writes and flushes: all _CurrentStderr has.
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def enabled(level: str) -> bool:
    """Whether a `log.<level>(...)` call would print anything (lets hot paths skip building
    one: structlog makes a logger per call)."""
    return LEVELS.get(level.upper(), LEVELS["INFO"]) >= _threshold


class _Log:
    """`structlog.get_logger("reviewflow")`, made (and configured) on first use."""

    _logger: Any = None

    def __getattr__(self, name: str) -> Any:
        if _pending is not None:
            _apply()
        if self._logger is None:
            import structlog

            _Log._logger = structlog.get_logger("reviewflow")
        return getattr(self._logger, name)


log: Any = _Log()
