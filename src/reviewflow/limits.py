"""Bounds on everything a workflow's author controls, in one place.

A workflow comes from a file, a `--set`, a POST /runs body or the Python API. Each is checked
against these numbers *before* work proportional to it is done: a few hundred bytes of YAML
aliases must not cost minutes and gigabytes, `validate /dev/zero` must not read until memory runs
out, and a value `validate` accepts must be one every process can store and execute (a year-1
date, a priority of 10**400 or a lone surrogate used to crash `run` and leave the run pending).

The CLI (`--max-file-bytes`), the server (POST /runs) and the workers read the same `LIMITS`:
`yamlsafe` applies the size, alias and nesting bounds while it builds a document, `check_data`
(below) the counts, nesting and text bounds to any workflow data, and the spec's fields the
number and time ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from .errors import SpecError

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
    max_tasks: int = 1_000_000
    """Tasks plus on_failure hooks of one workflow (a 1M-task run fits in ~2 KiB a task)."""
    max_edges: int = 10_000_000
    """Entries of all `needs` lists together (ten a task at the task limit)."""
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


def check_data(data: dict[str, Any], limits: Limits = LIMITS) -> None:
    """Refuse workflow data past `limits` before any work proportional to it is done.

    Raw data, as YAML, JSON or Python gives it: task and edge counts, nesting (a 5,000-level
    `--set` key or JSON body used to pass validation and crash the run when it was stored), and
    every string and key — no NUL (argv, paths and the environment cannot hold it, PostgreSQL
    refuses it), no lone surrogate (UTF-8 cannot encode it: no store, log or argv takes it), no
    string longer than `limits.max_string_chars`. Errors name the task and the field.
    """
    tasks = 0
    edges = 0
    for section in ("tasks", "on_failure"):
        bodies = data.get(section)
        if isinstance(bodies, dict):
            tasks += len(bodies)
            for body in bodies.values():
                needs = body.get("needs") if isinstance(body, dict) else None
                if isinstance(needs, list):
                    edges += len(needs)
    if tasks > limits.max_tasks:
        raise SpecError(f"{tasks:,} tasks: at most {limits.max_tasks:,}", field="tasks")
    if edges > limits.max_edges:
        raise SpecError(f"{edges:,} needs entries: at most {limits.max_edges:,}", field="tasks")
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= limits.max_depth:
            raise _data_error(path, f"nested deeper than {limits.max_depth} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        longest = limits.max_string_chars
        for key, item in items:
            # Inline fast path: this runs for every key and value of a 100k-task workflow.
            plain = key.__class__ is not str or (
                key.isascii() and "\x00" not in key and len(key) <= longest
            )
            if not plain and _bad_text(text := cast(str, key), limits):
                raise _data_error((*path, key), _text_problem(text, limits, "key"))
            if item.__class__ is str:
                plain = item.isascii() and "\x00" not in item and len(item) <= longest
                if not plain and _bad_text(item, limits):
                    raise _data_error((*path, key), _text_problem(item, limits, "value"))
            elif isinstance(item, dict | list):
                stack.append((item, (*path, key)))


def _bad_text(text: str, limits: Limits) -> bool:
    if len(text) > limits.max_string_chars or "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_problem(text: str, limits: Limits, what: str) -> str:
    if len(text) > limits.max_string_chars:
        return f"{what} of {len(text):,} characters: at most {limits.max_string_chars:,}"
    if "\x00" in text:
        return f"{what} contains a NUL character (\\0)"
    return f"{what} contains a lone surrogate (\\ud800-\\udfff): not text UTF-8 can hold"


def _data_error(path: tuple[Any, ...], message: str) -> SpecError:
    # A key at fault may be the bad text itself: escape it, the message must be printable.
    parts = [str(p)[:40].encode("utf-8", "backslashreplace").decode("utf-8") for p in path]
    if len(parts) > 8:
        parts = [*parts[:8], "…"]
    if len(parts) >= 2 and parts[0] in ("tasks", "on_failure"):
        return SpecError(message, task=parts[1], field=".".join(parts[2:]) or None)
    return SpecError(message, field=".".join(parts) or None)
