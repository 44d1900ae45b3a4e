"""Bounds on everything a workflow's author controls, in one place.

A workflow comes from a file, a `--set`, a POST /runs body or the Python API. Each is checked
against these numbers *before* work proportional to it is done: a few hundred bytes of YAML
aliases must not cost minutes and gigabytes, `validate /dev/zero` must not read until memory runs
out, and a value `validate` accepts must be one every process can store and execute (a year-1
date, a priority of 10**400 or a lone surrogate used to crash `run` and leave the run pending).

The CLI (`--max-file-bytes`), the server (POST /runs) and the workers read the same `LIMITS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The bounds; `LIMITS` holds the defaults (a workflow cannot raise them)."""

    max_file_bytes: int = 10 * MiB
    """Size of a workflow file (`--max-file-bytes`): at most this many bytes are ever read."""
    max_alias_nodes: int = 100_000
    """Nodes that YAML aliases (`*name`, `<<: *name`) may add to a document once expanded."""
    max_alias_chars: int = 1 * MiB
    """Characters of scalar text that aliases may add once expanded."""
    max_depth: int = 64
    """Nesting of mappings and lists (the workflow itself is 1, a task 3, its params 4)."""
    max_tasks: int = 100_000
    """Tasks plus on_failure hooks of one workflow."""
    max_edges: int = 1_000_000
    """Entries of all `needs` lists together."""
    max_string_chars: int = 1 * MiB
    """Length of any one string (a description, an argument, a param)."""
    max_priority: int = 1_000_000
    """Priorities lie within ±max_priority."""
    max_count: int = 1_000_000
    """max_concurrency, concurrency limits and max_retries lie within 1 (0 for retries) and this."""
    max_exit_code: int = 255
    """retry_on_exit_codes lie within ±max_exit_code (negative: killed by that signal)."""
    max_multiplier: float = 1_000.0
    """Largest retry backoff multiplier."""
    max_duration: float = 10 * 365 * 86400.0
    """Longest duration (timeout, delay, retry delays, relative not_before): 10 years."""
    min_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """Earliest absolute not_before (a time in the past just means "no wait")."""
    max_time: datetime = datetime(9999, 1, 1, tzinfo=UTC)
    """Absolute not_before lies before this (later times overflow when shown in local time)."""


LIMITS = Limits()
