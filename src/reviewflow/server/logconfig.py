"""uvicorn's log lines in the server's own format.

`reviewflow serve` logs with structlog; uvicorn logs with the standard library (its start-up
lines, warnings such as an unparsable request, the access log, and an application error's
traceback). With JSON logs (`--log-format json`, or `auto` when stderr is not a terminal) those
records go through structlog's JSON renderer too, so that every line on stderr is one JSON
object a log collector can read: access lines carry `method`, `path`, `status`, `client`, and a
traceback is a field of its line, not twenty lines of its own.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

ACCESS_LOGGER = "uvicorn.access"


def json_logs(fmt: str) -> bool:
    """Whether `--log-format fmt` means JSON lines (`auto`: when stderr is not a terminal)."""
    return fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())


def _access_fields(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """An access line's parts as fields (uvicorn passes them as the record's arguments)."""
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    access = record is not None and record.name == ACCESS_LOGGER
    if access and isinstance(args, tuple) and len(args) == 5:
        client, method, path, version, status = args
        event_dict.update(
            event="http.request",
            client=client,
            method=method,
            path=path,
            http_version=version,
            status=status,
        )
    return event_dict


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn (and any other standard-library logger of the
    server process) that writes JSON lines to stderr."""
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "pass_foreign_args": True,
        "foreign_pre_chain": [
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _access_fields,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    }
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            ACCESS_LOGGER: {"handlers": ["stderr"], "level": upper, "propagate": False},
        },
        # asyncio's "exception never retrieved", psycopg's pool, warnings: JSON as well
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def route_warnings() -> None:
    """Python warnings as log records (then JSON lines), not text on stderr."""
    logging.captureWarnings(True)
