"""YAML workflow files: reading (bounded), `${VAR}` interpolation, `--set` overrides, validation.

Errors are SpecErrors naming the file (and the line of the task when one is at fault), so the
CLI can print them on one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError
from .limits import LIMITS, Limits
from .plugins import load_plugin_folders
from .spec import WorkflowSpec
from .spec import validate_spec as _validate_structure
from .yamlsafe import TaskLines, _Bound, _gc_paused, _load_yaml, parse_yaml

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string; `$$` is a literal `$`.

    Returns copies of the mappings and lists (aliases no longer share them); data nested deeper
    than LIMITS.max_depth is refused rather than recursed into.
    """
    where: list[str] = []
    try:
        return _interpolate(value, env, where, LIMITS.max_depth)
    except SpecError as exc:
        field = path
        for part in reversed(where):
            field += part if part.startswith("[") or not field else f".{part}"
        raise SpecError(exc.message, field=field or None) from None


def _interpolate(value: Any, env: Mapping[str, str], where: list[str], depth: int) -> Any:
    """`interpolate` without building a path for every value: a failing value's path is
    collected into `where` (innermost first) on the way out."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise SpecError(f"environment variable {name} is not set")

        return _VAR.sub(sub, value)
    if isinstance(value, dict | list) and depth <= 0:
        raise SpecError(f"nested deeper than {LIMITS.max_depth} levels")
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            try:
                out[k] = _interpolate(v, env, where, depth - 1)
            except SpecError:
                where.append(str(k))
                raise
        return out
    if isinstance(value, list):
        items: list[Any] = []
        for i, v in enumerate(value):
            try:
                items.append(_interpolate(v, env, where, depth - 1))
            except SpecError:
                where.append(f"[{i}]")
                raise
        return items
    return value


def _short(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[:width] + "…")


def apply_overrides(
    data: dict[str, Any], overrides: Iterable[str], *, limits: Limits = LIMITS
) -> dict[str, Any]:
    """Apply `key.path=value` overrides (value parsed as YAML: `5m`, `3`, `[a, b]`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"bad --set {_short(item)}: use key.path=value")
        parts = key.split(".")
        if len(parts) > limits.max_depth:
            raise SpecError(
                f"bad --set {_short(item)}: the key has {len(parts):,} levels "
                f"(at most {limits.max_depth})"
            )
        try:
            value = _load_yaml(raw, limits) if raw.strip() else ""
        except _Bound as exc:
            raise SpecError(f"bad --set {_short(item)}: {exc.problem}") from None
        except (yaml.YAMLError, ValueError, TypeError):
            value = raw  # not YAML: the text as it is
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = {}
                node[part] = nxt
            if not isinstance(nxt, dict):
                raise SpecError(
                    f"bad --set {_short(item)}: {'.'.join(parts[: i + 1])} is not a mapping"
                )
            node = nxt
        node[parts[-1]] = value
    return data


def validate_spec(data: Any, *, file: str | None = None) -> WorkflowSpec:
    """Build a WorkflowSpec from plain data (a parsed file, the Python API, a request body),
    turning every problem into one SpecError.

    The folders named by `plugins` are loaded first (a missing one is an error), then the spec
    is validated, each task's type against the task-type registry (which those plugins may
    have added to). Validators never load code.
    """
    from .executors.registry import registry  # the executors: imported by the command using it

    if isinstance(data, dict):
        _load_plugins(data.get("plugins"), strict=True, file=file)
    return _validate_structure(data, file=file, task_types=registry)


def stored_spec(text: str, *, strict: bool = True) -> WorkflowSpec:
    """A spec read back from a store (JSON, validated when it was submitted), with its plugin
    folders loaded for its attempts to run. Its task types are not checked again.

    `strict`: a missing plugin folder is a SpecError (the engine: the run cannot start);
    otherwise only the tasks of the types it held fail, "task type unavailable" (the workers,
    which may each lack a plugin another has)."""
    spec = WorkflowSpec.model_validate_json(text)
    _load_plugins(spec.plugins, strict=strict)
    return spec


def _load_plugins(plugins: Any, *, strict: bool, file: str | None = None) -> None:
    """Load the plugin folders a workflow names (before it is validated: its tasks' types may
    come from them). Anything but a list of strings is left to validation to report."""
    if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        try:
            load_plugin_folders(plugins, strict=strict)
        except SpecError as exc:
            raise exc.with_file(file) if file else exc from None


def load_workflow_text(
    text: str,
    *,
    file: str = "<string>",
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    limits: Limits = LIMITS,
    task_lines: TaskLines | None = None,
) -> WorkflowSpec:
    """Parse, interpolate, override and validate a workflow given as YAML text. `task_lines`
    (if given) receives each task's section and line (see `parse_yaml`)."""
    lines: TaskLines = {} if task_lines is None else task_lines
    data = parse_yaml(text, file=file, limits=limits, task_lines=lines)
    if data is None:
        raise SpecError("the file is empty", file=file)
    if not isinstance(data, dict):
        raise SpecError(f"a workflow must be a mapping, got {type(data).__name__}", file=file)
    try:
        overrides = list(overrides)
        if "$" in text or "\\" in text or overrides:  # (an escape can spell `$`)
            # Copies too: an override must not change every task sharing an alias.
            data = interpolate(data, os.environ if env is None else env)
        data = apply_overrides(data, overrides, limits=limits)
        plugins = data.get("plugins")
        if isinstance(plugins, list):
            here = Path(file).parent if not file.startswith("<") else Path.cwd()
            data["plugins"] = [
                str((here / p).resolve()) if isinstance(p, str) else p for p in plugins
            ]
        with _gc_paused():
            return validate_spec(data)
    except SpecError as exc:
        line = lines[exc.task][1] if exc.task in lines else None
        where = f"{file}:{line}" if line else file
        raise exc.with_file(where) from None


def load_workflow(
    path: str | Path,
    *,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    max_file_bytes: int | None = None,
) -> WorkflowSpec:
    """Load a workflow file (see `load_workflow_text`), reading at most `max_file_bytes`
    (default LIMITS.max_file_bytes) + 1 bytes: `/dev/zero` or a runaway generator's output
    fails at once instead of filling memory."""
    path = Path(path)
    limits = LIMITS if max_file_bytes is None else replace(LIMITS, max_file_bytes=max_file_bytes)
    try:
        with path.open("rb") as stream:
            raw = stream.read(limits.max_file_bytes + 1)
    except FileNotFoundError:
        raise SpecError("no such file", file=str(path)) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc}", file=str(path)) from None
    if len(raw) > limits.max_file_bytes:
        raise SpecError(
            f"larger than {limits.max_file_bytes} bytes: pass a bigger --max-file-bytes to read it",
            file=str(path),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read: {exc}", file=str(path)) from None
    return load_workflow_text(text, file=str(path), overrides=overrides, env=env, limits=limits)
