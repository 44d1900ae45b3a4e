"""Safe, bounded YAML: plain data from libyaml's C parser, built without expanding aliases.

`parse_yaml` is what every workflow, template and POST /runs body goes through. Aliases,
nesting and size are counted against `Limits` while the data is built, so an alias bomb or a
runaway file fails at the node that passes a bound, with its line and column.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import yaml

from .errors import SpecError
from .limits import LIMITS, Limits

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's C parser when PyYAML was built with it (10x faster than the pure-Python one); its
nodes carry line and column marks too, so errors still name the line."""


class _Loader(_Parser):  # type: ignore[misc]  # libyaml's class or PyYAML's: chosen at import
    """Composes YAML into nodes; `_construct` (below) turns them into data."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # The C composer asks for every node's tag. A plain scalar's depends on its text only,
        # and a workflow repeats the same few texts (`true`, `30s`, ...); any other node gets
        # its kind's default tag (no path resolvers are registered).
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR
            tag = self._tags.get(value)
            if tag is None:
                tag = self._tags[value] = super().resolve(kind, value, implicit)
            return tag
        return _MAP if kind is yaml.MappingNode else _SEQ

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


def _scalar(loader: Any, node: yaml.Node) -> Any:
    # A yaml.ScalarNode: callers test `node.__class__ is` (faster than isinstance on every node).
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

    def merges(node: yaml.Node) -> list[yaml.Node]:  # a yaml.MappingNode
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


TaskLines = dict[str, tuple[str, int]]
"""Task name -> (section, 1-based line of its key): where an error about a task points."""


def _task_lines(root: yaml.Node, into: TaskLines) -> None:
    """Note the line of every task key under the top-level `tasks:` and `on_failure:`."""
    if root.__class__ is not yaml.MappingNode:
        return
    for key, value in root.value:
        if key.value in ("tasks", "on_failure") and value.__class__ is yaml.MappingNode:
            section = key.value
            for task_key, _ in value.value:
                if task_key.__class__ is yaml.ScalarNode:
                    into.setdefault(task_key.value, (section, task_key.start_mark.line + 1))


def _load_yaml(text: str, limits: Limits, task_lines: TaskLines | None = None) -> Any:
    """The data of a YAML document (None if empty); raises PyYAML's errors."""
    loader = _Loader(text)
    try:
        with _gc_paused():
            node = loader.get_single_node()
            if node is None:
                return None
            if task_lines is not None:
                _task_lines(node, task_lines)
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


def parse_yaml(
    text: str,
    *,
    file: str = "<string>",
    limits: Limits = LIMITS,
    task_lines: TaskLines | None = None,
) -> Any:
    """Load YAML text safely, with one-line errors that give the line and column.

    Plain data only (strings, numbers, booleans, null, timestamps, lists, mappings); duplicate
    keys are errors; aliases, nesting and the text itself are bounded by `limits`. With
    `task_lines`, the section and line of each workflow task are noted there (so an error
    about a task names its line without parsing the text again).
    """
    if len(text) > limits.max_file_bytes:
        raise SpecError(
            f"larger than {limits.max_file_bytes} bytes: pass a bigger --max-file-bytes to read it",
            file=file,
        )
    try:
        return _load_yaml(text, limits, task_lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{where}{problem}", file=file) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}".splitlines()[0], file=file) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise SpecError(f"invalid YAML: {exc}", file=file) from None
