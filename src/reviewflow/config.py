"""YAML workflow files: safe loading, `${VAR}` interpolation, `--set` overrides, validation.

Errors are SpecErrors naming the file (and the line of the task when one is at fault), so the
CLI can print them on one line.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .errors import SpecError
from .limits import LIMITS, Limits
from .spec import WorkflowSpec, validate_spec

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's C parser when PyYAML was built with it (10x faster than the pure-Python one); its
nodes carry line and column marks too, so errors still name the line."""


class _Loader(_Parser):
    """Composes YAML into nodes; `_construct` (below) turns them into data."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # The C composer asks for every scalar's tag; a plain scalar's depends on its text
        # only, and a workflow repeats the same few texts (`true`, `30s`, task names).
        if kind is yaml.ScalarNode and implicit[0]:
            tag = self._tags.get(value)
            if tag is None:
                tag = self._tags[value] = super().resolve(kind, value, implicit)
            return tag
        return super().resolve(kind, value, implicit)

    # Path resolvers (tags chosen by a node's place in the document) are not used: skip the
    # bookkeeping the C composer asks for at every node.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


# YAML 1.2 booleans: only true/false. PyYAML follows YAML 1.1, where `yes`, `no`, `on` and `off`
# are booleans too, so `run: [echo, yes]` would run `echo True`.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE, _VALUE = (_TAG + t for t in ("str", "map", "seq", "merge", "value"))
_SCALARS = {
    _TAG + t: yaml.SafeLoader.yaml_constructors[_TAG + t]
    for t in ("null", "bool", "int", "float", "timestamp")
}
"""Plain data only: no !!binary (bytes no store keeps as text), !!set, !!omap or Python tags."""


class _Bound(yaml.constructor.ConstructorError):
    """A document past one of the limits (not merely malformed)."""


def _fail(message: str, node: yaml.Node, error: type[Exception] = _Bound) -> NoReturn:
    raise error(None, None, message, node.start_mark)


def _bad(message: str, node: yaml.Node) -> NoReturn:
    _fail(message, node, yaml.constructor.ConstructorError)


def _scalar(loader: Any, node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag in (_STR, _VALUE):  # `=` is a string, not YAML 1.1's "value" key
        return node.value
    build = _SCALARS.get(tag)
    if build is None:
        _bad(f"unsupported tag {tag!r}: use plain strings, numbers, lists and mappings", node)
    return build(loader, node)


def _construct(loader: Any, root: yaml.Node, limits: Limits) -> Any:
    """Data from a composed node graph, in one iterative pass that bounds what aliases add.

    An alias is a second reference to a node: the data shares one object, but everything
    downstream (interpolation, validation, the stored JSON) sees it expanded. Each further
    reference therefore counts the expanded size of what it points to, and the pass stops as soon
    as the count passes `limits.max_alias_nodes` or `max_alias_chars`, before building anything
    bigger. Merge keys (`<<: *base`) copy a mapping, and count the same way. Nesting deeper than
    `limits.max_depth` and a node that contains itself are refused too.
    """
    built: dict[int, tuple[Any, int, int, int]] = {}  # id(node) -> (data, nodes, chars, depth)
    active: set[int] = set()  # collections being built: the path from the root
    seen: set[int] = set()  # nodes referenced once already: a second reference is an alias
    extra = [0, 0]  # nodes, chars added by aliases

    def use(child: yaml.Node) -> tuple[Any, int, int, int]:
        key = id(child)
        if child.__class__ is yaml.ScalarNode:
            value = _scalar(loader, child)
            size = (value, 1, len(child.value), 0)
        else:
            size = built[key]
        if key in seen:
            extra[0] += size[1]
            extra[1] += size[2]
            if extra[0] > limits.max_alias_nodes:
                _fail(f"aliases expand to more than {limits.max_alias_nodes:,} nodes", child)
            if extra[1] > limits.max_alias_chars:
                _fail(f"aliases expand to more than {limits.max_alias_chars:,} characters", child)
        else:
            seen.add(key)
        return size

    def merges(node: yaml.MappingNode) -> list[yaml.Node]:
        sources: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                items = value_node.value if value_node.__class__ is yaml.SequenceNode else None
                for source in items if items is not None else [value_node]:
                    if source.__class__ is not yaml.MappingNode:
                        _bad("<< merges a mapping or a list of mappings", source)
                    sources.append(source)
        return sources

    if root.__class__ is yaml.ScalarNode:
        return _scalar(loader, root)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        key = id(node)
        if not ready:
            if key in built:
                continue
            if key in active:
                _fail("a recursive alias (a node that contains itself)", node)
            if node.tag not in (_MAP, _SEQ):
                _bad(f"unsupported tag {node.tag!r}: use plain lists and mappings", node)
            active.add(key)
            stack.append((node, True))
            if node.__class__ is yaml.SequenceNode:
                children = node.value
            else:
                children = [n for pair in node.value for n in pair if n.tag != _MERGE]
                children += merges(node)
            for child in reversed(children):
                if child.__class__ is not yaml.ScalarNode and id(child) not in built:
                    if id(child) in active:
                        _fail("a recursive alias (a node that contains itself)", child)
                    stack.append((child, False))
            continue
        active.discard(key)
        nodes, chars, depth = 1, 0, 0
        data: Any
        if node.__class__ is yaml.SequenceNode:
            data = []
            for child in node.value:
                value, n, c, d = use(child)
                data.append(value)
                nodes, chars, depth = nodes + n, chars + c, max(depth, d)
        else:
            data = {}
            for source in merges(node):  # earlier sources win, the mapping's own keys win
                value, n, c, d = use(source)
                nodes, chars, depth = nodes + n, chars + c, max(depth, d - 1)
                for k, v in value.items():
                    data.setdefault(k, v)
            own: set[Any] = set()
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    continue
                k, n1, c1, d1 = use(key_node)
                try:
                    hash(k)
                except TypeError:
                    _bad(f"unhashable key {k!r}", key_node)
                if k in own:
                    _bad(f"duplicate key {k!r}", key_node)
                own.add(k)
                v, n2, c2, d2 = use(value_node)
                data[k] = v
                nodes, chars, depth = nodes + n1 + n2, chars + c1 + c2, max(depth, d1, d2)
        depth += 1
        if depth > limits.max_depth:
            _fail(f"nested deeper than {limits.max_depth} levels", node)
        built[key] = (data, nodes, chars, depth)
    return use(root)[0]


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


def _load_yaml(text: str, limits: Limits) -> Any:
    """The data of a YAML document (None if empty); raises PyYAML's errors."""
    loader = _Loader(text)
    try:
        with _gc_paused():
            node = loader.get_single_node()
            if node is None:
                return None
            if "&" in text or "<<" in text:  # anchors or merge keys: count what they add
                return _construct(loader, node, limits)
            return _tree(loader, node, limits.max_depth, limits.max_depth)
    finally:
        loader.dispose()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building ~10 objects a line with the collector on costs twice as much: its full passes
    rescan every node built so far. Nothing built here is garbage until the load ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _tree(loader: Any, node: yaml.Node, depth: int, limit: int) -> Any:
    """`_construct` for a document without anchors or merge keys: a tree, built recursively
    (`depth` levels left, so the recursion itself is bounded)."""
    cls = node.__class__
    if cls is yaml.ScalarNode:
        return node.value if node.tag == _STR else _scalar(loader, node)
    if depth <= 0:
        _fail(f"nested deeper than {limit} levels", node)
    if cls is yaml.SequenceNode:
        if node.tag != _SEQ:
            _bad(f"unsupported tag {node.tag!r}: use plain lists and mappings", node)
        return [
            c.value
            if c.__class__ is yaml.ScalarNode and c.tag == _STR
            else _tree(loader, c, depth - 1, limit)
            for c in node.value
        ]
    if node.tag != _MAP:
        _bad(f"unsupported tag {node.tag!r}: use plain lists and mappings", node)
    data: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.__class__ is yaml.ScalarNode and key_node.tag == _STR:
            key = key_node.value
        else:
            key = _tree(loader, key_node, depth - 1, limit)
        try:
            if key in data:
                _bad(f"duplicate key {key!r}", key_node)
        except TypeError:
            _bad(f"unhashable key {key!r}", key_node)
        if value_node.__class__ is yaml.ScalarNode and value_node.tag == _STR:
            data[key] = value_node.value
        else:
            data[key] = _tree(loader, value_node, depth - 1, limit)
    return data


def parse_yaml(text: str, *, file: str = "<string>", limits: Limits = LIMITS) -> Any:
    """Load YAML text safely, with one-line errors that give the line and column.

    Plain data only (strings, numbers, booleans, null, timestamps, lists, mappings); duplicate
    keys are errors; aliases, nesting and the text itself are bounded by `limits`.
    """
    if len(text) > limits.max_file_bytes:
        raise SpecError(f"larger than {limits.max_file_bytes} bytes (--max-file-bytes)", file=file)
    try:
        return _load_yaml(text, limits)
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
    limits: Limits = LIMITS,
) -> WorkflowSpec:
    """Parse, interpolate, override and validate a workflow given as YAML text."""
    data = parse_yaml(text, file=file, limits=limits)
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
        line = _task_line(text, exc.task) if exc.task else None
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
            f"larger than {limits.max_file_bytes} bytes (--max-file-bytes)", file=str(path)
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read: {exc}", file=str(path)) from None
    return load_workflow_text(text, file=str(path), overrides=overrides, env=env, limits=limits)


def _task_line(text: str, task: str) -> int | None:
    """1-based line where `task` is defined under `tasks:` or `on_failure:`, if found."""
    try:
        root = yaml.compose(text, Loader=_Loader)
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
