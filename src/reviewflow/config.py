"""YAML workflow files: safe loading, `${VAR}` interpolation, `--set` overrides, validation.

Errors are SpecErrors naming the file (and the line of the task when one is at fault), so the
CLI can print them on one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError
from .spec import WorkflowSpec, validate_spec

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.2 booleans: only true/false. PyYAML follows YAML 1.1, where `yes`, `no`, `on` and `off`
# are booleans too, so `run: [echo, yes]` would run `echo True`.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string; `$$` is a literal `$`."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise SpecError(f"environment variable {name} is not set", field=path or None)

        return _VAR.sub(sub, value) if "$" in value else value
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (value parsed as YAML: `5m`, `3`, `[a, b]`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"bad --set {item!r}: use key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = {}
                node[part] = nxt
            if not isinstance(nxt, dict):
                raise SpecError(f"bad --set {item!r}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return data


def parse_yaml(text: str, *, file: str = "<string>") -> Any:
    """Load YAML text safely, with one-line errors that give the line and column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{where}{problem}", file=file) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}".splitlines()[0], file=file) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise SpecError(f"invalid YAML: {exc}", file=file) from None


def load_workflow_text(
    text: str,
    *,
    file: str = "<string>",
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> WorkflowSpec:
    """Parse, interpolate, override and validate a workflow given as YAML text."""
    data = parse_yaml(text, file=file)
    if data is None:
        raise SpecError("the file is empty", file=file)
    if not isinstance(data, dict):
        raise SpecError(f"a workflow must be a mapping, got {type(data).__name__}", file=file)
    try:
        data = interpolate(data, os.environ if env is None else env)
        data = apply_overrides(data, overrides)
        plugins = data.get("plugins")
        if isinstance(plugins, list):
            here = Path(file).parent if not file.startswith("<") else Path.cwd()
            data["plugins"] = [
                str((here / p).resolve()) if isinstance(p, str) else p for p in plugins
            ]
        return validate_spec(data)
    except SpecError as exc:
        line = _task_line(text, exc.task) if exc.task else None
        where = f"{file}:{line}" if line else file
        raise exc.with_file(where) from None


def load_workflow(
    path: str | Path,
    *,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> WorkflowSpec:
    """Load a workflow file (see `load_workflow_text`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", file=str(path)) from None
    return load_workflow_text(text, file=str(path), overrides=overrides, env=env)


def _task_line(text: str, task: str) -> int | None:
    """1-based line where `task` is defined under `tasks:` or `on_failure:`, if found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value in ("tasks", "on_failure") and isinstance(value, yaml.MappingNode):
            for tkey, _ in value.value:
                if tkey.value == task:
                    return int(tkey.start_mark.line) + 1
    return None
