"""Safe, bounded YAML: plain data built straight from libyaml's parser events.

`parse_yaml` is what every workflow, template and POST /runs body goes through. No node graph
is composed (it held ~4x the data's memory) and aliases are not expanded: they, nesting and
size are counted against `Limits` while the data is built, so an alias bomb or a runaway file
fails at the node that passes a bound, with its line and column.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, NoReturn

import yaml

from .errors import SpecError
from .limits import LIMITS, Limits


def _event_parser(text: str) -> Any:
    """libyaml's C parser when PyYAML was built with it (10x faster than the pure-Python one).
    Its events carry line and column marks, so errors still name the line."""
    if _CParser is not None:
        return _CParser(text)
    return _PyParser(text)


_CParser: Any = getattr(getattr(yaml, "_yaml", None), "CParser", None)


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python parser (PyYAML built without libyaml): the same events."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


class _Resolver(yaml.resolver.Resolver):
    """The tags of plain scalars (`true`, `3`, `~`, `2026-12-01`, `<<`...).

    YAML 1.2 booleans: only true/false. PyYAML follows YAML 1.1, where `yes`, `no`, `on` and
    `off` are booleans too, so `run: [echo, yes]` would run `echo True`."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
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


def _fail(message: str, mark: Any, error: type[Exception] = _Bound) -> NoReturn:
    raise error(None, None, message, mark)


def _bad(message: str, mark: Any) -> NoReturn:
    _fail(message, mark, yaml.constructor.ConstructorError)


TaskLines = dict[str, tuple[str, int]]
"""Task name -> (section, 1-based line of its key): where an error about a task points."""

_NO_KEY: Any = object()
_MERGE_KEY: Any = object()
_E = yaml.events
_SCALAR, _ALIAS = _E.ScalarEvent, _E.AliasEvent
_MAP_START, _SEQ_START = _E.MappingStartEvent, _E.SequenceStartEvent
_MAP_END, _SEQ_END = _E.MappingEndEvent, _E.SequenceEndEvent


class _Frame:
    """A mapping or list being built: its data so far and what aliases need to know of it."""

    __slots__ = (
        "anchor",
        "chars",
        "data",
        "height",
        "is_map",
        "item_marks",
        "key",
        "level",
        "mark",
        "merges",
        "nodes",
        "section",
    )

    def __init__(self, data: Any, is_map: bool, anchor: str | None, mark: Any, level: int) -> None:
        self.data = data
        self.level = level  # its depth in the data built (a merge source's: its mapping's)
        self.is_map = is_map
        self.key: Any = _NO_KEY
        self.nodes = 1
        self.chars = 0
        self.height = 1
        self.anchor = anchor
        self.mark = mark
        self.merges: list[dict[Any, Any]] | None = None
        self.item_marks: list[Any] | None = None  # a merge key's list: where each source is
        self.section: str | None = None  # "tasks"/"on_failure" at the top: note its task lines


def _child_level(parent: _Frame) -> int:
    """The depth in the data of what comes next in `parent`. A merge source (`<<: {...}`, or
    each mapping of `<<: [...]`) is not a level of its own: its keys join `parent`'s mapping,
    so nesting is bounded by the data built, as when a node graph was composed first."""
    if parent.key is _MERGE_KEY or parent.item_marks is not None:
        return parent.level
    return parent.level + 1


class _Builder:
    """Plain data straight from the parser's events: no node graph is composed.

    Composing first (PyYAML's loaders) holds a node and two marks per scalar beside the data:
    ~4x the data's memory for a big workflow. Built here event by event, only the data is
    kept. Every bound is counted as it is built: aliases by the expanded size of what they
    point to (`limits.max_alias_nodes`, `max_alias_chars`; merge keys copy a mapping and
    count the same way), nesting (`limits.max_depth`), and a node containing itself. A
    malformed-but-small document's errors (duplicate key, unsupported tag...) wait for the
    end of the stream, so a syntax error later in the file is reported first, as PyYAML's
    composer did.
    """

    def __init__(self, parser: Any, limits: Limits, task_lines: TaskLines | None) -> None:
        self.parser = parser
        self.limits = limits
        self.task_lines = task_lines
        self.resolver = _Resolver()
        self.tags: dict[str, str] = {}
        self.constructor: Any = None
        # anchor -> (data, nodes, chars, height, mark of the anchored node)
        self.anchors: dict[str, tuple[Any, int, int, int, Any]] = {}
        self.active: dict[str, Any] = {}  # anchors of collections being built -> their mark
        self.extra_nodes = 0
        self.extra_chars = 0
        self.error: Exception | None = None  # the first malformed-data error, raised at the end

    def load(self) -> Any:
        get = self.parser.get_event
        get()  # StreamStart
        event = get()
        if event.__class__ is _E.StreamEndEvent:
            return None
        first = event.start_mark  # DocumentStart
        data = self._document(get)
        get()  # DocumentEnd
        event = get()
        if event.__class__ is not _E.StreamEndEvent:
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                first,
                "but found another document",
                event.start_mark,
            )
        if self.error is not None:
            raise self.error
        return data

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return event.value
            value = event.value
            tag = self.tags.get(value)
            if tag is None:
                tag = self.tags[value] = self.resolver.resolve(  # type: ignore[no-untyped-call]
                    yaml.ScalarNode, value, event.implicit
                )
        if tag in (_STR, _VALUE):  # `=` is a string, not YAML 1.1's "value" key
            return event.value
        if tag == _MERGE:
            return _MERGE_KEY
        build = _SCALARS.get(tag)
        if build is None:
            _bad(f"unsupported tag {tag!r}: use plain strings, numbers, lists and mappings",
                 event.start_mark)  # fmt: skip
        if self.constructor is None:
            self.constructor = yaml.constructor.SafeConstructor()
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return build(self.constructor, node)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            # An explicit tag on text it does not fit (`!!int ''`, `!!bool maybe`): PyYAML's
            # constructors assume the implicit resolver matched and fail in their own ways.
            _bad(f"not a valid {tag.removeprefix(_TAG)}: {event.value!r}", event.start_mark)

    def _alias(self, event: Any) -> tuple[Any, int, int, int, Any]:
        """What an alias stands for, counted against the bounds; the mark is the anchor's
        (errors about the data it stands for point where that data is written)."""
        name = event.anchor
        if name in self.active:
            _fail("a recursive alias (a node that contains itself)", self.active[name])
        found = self.anchors.get(name)
        if found is None:
            raise yaml.composer.ComposerError(None, None, "found undefined alias", event.start_mark)
        value, nodes, chars, height, mark = found
        limits = self.limits
        self.extra_nodes += nodes
        self.extra_chars += chars
        if self.extra_nodes > limits.max_alias_nodes:
            _fail(f"aliases expand to more than {limits.max_alias_nodes:,} nodes", mark)
        if self.extra_chars > limits.max_alias_chars:
            _fail(f"aliases expand to more than {limits.max_alias_chars:,} characters", mark)
        return value, nodes, chars, height, mark

    def _anchor(self, name: str, mark: Any) -> None:
        if name in self.anchors or name in self.active:
            first = self.active.get(name) or self.anchors[name][4]
            raise yaml.composer.ComposerError(
                "found duplicate anchor; first occurrence", first, "second occurrence", mark
            )

    def _document(self, get: Any) -> Any:
        """The events of one document (after its DocumentStart), built into data."""
        stack: list[_Frame] = []
        max_depth = self.limits.max_depth
        lines = self.task_lines
        while True:
            event = get()
            cls = event.__class__
            # What this event adds to the frame on top: (value, nodes, chars, height, mark).
            if cls is _SCALAR:
                mark = event.start_mark
                if event.anchor is not None:
                    self._anchor(event.anchor, mark)
                try:
                    value = (
                        event.value
                        if event.tag is None and not event.implicit[0]
                        else self._scalar(event)
                    )
                except (yaml.constructor.ConstructorError, ValueError, TypeError) as exc:
                    if isinstance(exc, _Bound):
                        raise
                    self._defer(exc)
                    value = None
                nodes, chars, height = 1, len(event.value), 0
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1, chars, 0, mark)
            elif cls is _MAP_START or cls is _SEQ_START:
                mark = event.start_mark
                is_map = cls is _MAP_START
                tag = event.tag
                if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
                    self._defer_bad(f"unsupported tag {tag!r}: use plain lists and mappings", mark)
                level = _child_level(stack[-1]) if stack else 1
                if level > max_depth:
                    _fail(f"nested deeper than {max_depth} levels", mark)
                if event.anchor is not None:
                    self._anchor(event.anchor, mark)
                    self.active[event.anchor] = mark
                frame = _Frame({} if is_map else [], is_map, event.anchor, mark, level)
                if stack:
                    parent = stack[-1]
                    if parent.is_map:
                        if parent.key is _MERGE_KEY and not is_map:
                            frame.item_marks = []
                        elif (
                            is_map
                            and lines is not None
                            and len(stack) == 1
                            and parent.key in ("tasks", "on_failure")
                        ):
                            frame.section = parent.key
                stack.append(frame)
                continue
            elif cls is _MAP_END or cls is _SEQ_END:
                frame = stack.pop()
                value = frame.data
                if frame.merges is not None:
                    value = self._merged(frame)
                nodes, chars, height = frame.nodes, frame.chars, frame.height
                mark = frame.mark
                if frame.anchor is not None:
                    del self.active[frame.anchor]
                    self.anchors[frame.anchor] = (value, nodes, chars, height, mark)
            elif cls is _ALIAS:
                value, nodes, chars, height, mark = self._alias(event)
                if (_child_level(stack[-1]) if stack else 1) + height - 1 > max_depth:
                    _fail(f"nested deeper than {max_depth} levels", event.start_mark)
            else:  # DocumentEnd cannot come before the root is complete
                raise AssertionError(f"unexpected {event!r}")
            if not stack:
                if value is _MERGE_KEY:
                    self._defer_bad(f"unsupported tag {_MERGE!r}: use plain strings, numbers,"
                                    " lists and mappings", mark)  # fmt: skip
                    value = None
                return value
            top = stack[-1]
            top.nodes += nodes
            top.chars += chars
            if top.key is _MERGE_KEY:  # merged into this mapping: one level less
                height -= 1 if value.__class__ is not list else 2
            if height >= top.height:
                top.height = height + 1
            if value is _MERGE_KEY and (not top.is_map or top.key is not _NO_KEY):
                self._defer_bad(
                    f"unsupported tag {_MERGE!r}: use plain strings, numbers, lists and mappings",
                    mark,
                )
                value = None
            if not top.is_map:
                top.data.append(value)
                if top.item_marks is not None:
                    top.item_marks.append(mark)
            elif top.key is _NO_KEY:
                if value is not _MERGE_KEY:
                    if top.section is not None and lines is not None and cls is _SCALAR:
                        lines.setdefault(event.value, (top.section, mark.line + 1))
                    try:
                        if value in top.data:
                            self._defer_bad(f"duplicate key {value!r}", mark)
                    except TypeError:
                        self._defer_bad(f"unhashable key {value!r}", mark)
                top.key = value
            else:
                key = top.key
                top.key = _NO_KEY
                if key is _MERGE_KEY:
                    marks = frame.item_marks if cls is _SEQ_END else None
                    self._merge_source(top, value, mark, marks)
                else:
                    with suppress(TypeError):  # an unhashable key: already noted
                        top.data[key] = value

    def _merge_source(self, frame: _Frame, value: Any, mark: Any, marks: list[Any] | None) -> None:
        """`<<: {mapping}` or `<<: [mappings]`: noted, merged when the mapping ends."""
        if frame.merges is None:
            frame.merges = []
        if value.__class__ is dict:
            frame.merges.append(value)
            return
        if value.__class__ is list:
            marks = marks or []
            for i, source in enumerate(value):
                if source.__class__ is not dict:
                    self._defer_bad(
                        "<< merges a mapping or a list of mappings",
                        marks[i] if i < len(marks) else mark,
                    )
                    return
                frame.merges.append(source)
            return
        self._defer_bad("<< merges a mapping or a list of mappings", mark)

    @staticmethod
    def _merged(frame: _Frame) -> dict[Any, Any]:
        """Earlier sources win, the mapping's own keys win over all of them."""
        data: dict[Any, Any] = {}
        for source in frame.merges or ():
            for k, v in source.items():
                data.setdefault(k, v)
        for k, v in frame.data.items():
            data[k] = v
        return data

    def _defer(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc

    def _defer_bad(self, message: str, mark: Any) -> None:
        self._defer(yaml.constructor.ConstructorError(None, None, message, mark))


def _load_yaml(text: str, limits: Limits, task_lines: TaskLines | None = None) -> Any:
    """The data of a YAML document (None if empty); raises PyYAML's errors."""
    parser = _event_parser(text)
    try:
        with _gc_paused():
            return _Builder(parser, limits, task_lines).load()
    finally:
        dispose = getattr(parser, "dispose", None)
        if dispose is not None:
            dispose()


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
