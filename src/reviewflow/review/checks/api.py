"""The `docs` check: a change to the public API should come with a change to its documentation.

Users read the README, the docs and the changelog, not the diff, so a removed or re-signed
public function that no doc change mentions is an undocumented break (an added one is at most
a warning: nothing that worked stops working; so is a compatible re-signing, new parameters
with defaults, which every existing call still fits). Only signatures count (name, parameters,
return annotation; a class's bases): body edits are not an API change. The comparison is
between the base commit (`git show`) and the work tree.

What is public is what a user can import: modules inside a package (a folder with
`__init__.py`), never scripts (`benchmarks/`, `scripts/`, a `setup.py`); files outside any
package count only in a repository that has no package at all (a single-module library). In a
module, `__all__` decides; without one, the names the nearest package `__init__.py` exports
from it (its `__all__`) decide; without either, every name not starting with `_`.

`public_api_changes(change)` is synchronous so the workflow builder can decide whether to
include the check at all.

Options:
    doc_paths  changed paths that count as documentation (default README*, CHANGELOG*, CHANGES*,
               HISTORY*, docs/, doc/; matched with `path_matches`)
    exclude    Python files that are not public API (default tests/, test/, test_*.py,
               *_test.py, conftest.py, setup.py, noxfile.py)
    severity   of each undocumented removal or change (default "error"); an undocumented
               addition is at most a warning
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from ..change import EMPTY_TREE, Change, ChangedFile, ChangeError, git, path_matches
from ..findings import SEVERITIES, CheckResult, Finding, Severity
from .base import CheckContext

DEFAULT_DOC_PATHS = ("README*", "CHANGELOG*", "CHANGES*", "HISTORY*", "docs/", "doc/")
DEFAULT_EXCLUDE = (
    "tests/",
    "test/",
    "test_*.py",
    "*_test.py",
    "conftest.py",
    "setup.py",
    "noxfile.py",
)
DOC_HINT = "update README/docs/CHANGELOG"
_KEEP_DECORATORS = {
    "property",
    "staticmethod",
    "classmethod",
    "abstractmethod",
    "overload",
    "setter",
    "getter",
    "deleter",
    "cached_property",
}

SymbolKind = Literal["function", "class", "method", "module"]
ChangeKind = Literal["added", "removed", "changed", "renamed"]


@dataclass(frozen=True, slots=True)
class ApiChange:
    """One public symbol whose signature differs between the base and the work tree.

    `old`/`new` are the rendered signatures (`foo(a, b=1) -> int`, `A(Base)`), None on
    the side where the symbol does not exist. `line` is in the new file (None if removed).
    """

    file: str
    line: int | None
    name: str
    kind: SymbolKind
    change: ChangeKind
    old: str | None = None
    new: str | None = None
    compatible: bool = False
    """A re-signed function every existing call still fits (new parameters with defaults):
    at most a warning, like an addition."""

    @property
    def message(self) -> str:
        what = f"public {self.kind}"
        if self.compatible:
            return (
                f"{what} {self.new} changed compatibly (was {self.old}): new parameters "
                f"have defaults; {DOC_HINT}"
            )
        if self.change == "renamed":
            return f"{what} {self.old} moved to {self.new}; {DOC_HINT}"
        if self.change == "added":
            return f"{what} {self.new} added; {DOC_HINT}"
        if self.change == "removed":
            return f"{what} {self.old} removed; {DOC_HINT}"
        return f"{what} {self.new} changed (was {self.old}); {DOC_HINT}"


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    annotation: str | None
    default: str | None
    """The default's source text; None for a required parameter."""


@dataclass(frozen=True, slots=True)
class _Params:
    """A function's parameters as callers see them (for `_compatible`)."""

    positional: tuple[_Param, ...]
    positional_only: int
    keyword_only: tuple[_Param, ...]
    varargs: bool
    varkw: bool
    outside: str
    """Everything else of the signature: decorators kept, async, the return annotation."""


@dataclass(frozen=True, slots=True)
class _Symbol:
    kind: SymbolKind
    signature: str
    line: int
    params: _Params | None = None
    """For a function or method defined once; None for classes and overloaded names."""


async def docs(ctx: CheckContext) -> CheckResult:
    """Fail (by default) when the public API changed and no documentation did."""
    opts = ctx.options
    doc_paths = _patterns(opts.get("doc_paths", DEFAULT_DOC_PATHS))
    exclude = _patterns(opts.get("exclude", DEFAULT_EXCLUDE))
    severity = opts.get("severity", "error")
    if severity not in SEVERITIES:
        raise ValueError(f"docs: option 'severity' must be one of {', '.join(SEVERITIES)}")
    # git show per file: off the event loop, other checks keep running meanwhile.
    import asyncio  # not at import: the review's builder imports this module (start-up)

    changes = await asyncio.to_thread(public_api_changes, ctx.change, exclude)
    updated = ctx.change.matching(doc_paths)
    metrics = {
        "api_changes": len(changes),
        "symbols": [c.name for c in changes],
        "docs_changed": updated,
    }
    if not changes:
        return CheckResult(check=ctx.check, summary="public API unchanged", metrics=metrics)
    if updated:
        shown = ", ".join(updated[:3]) + (
            f" and {len(updated) - 3} more" if len(updated) > 3 else ""
        )
        return CheckResult(
            check=ctx.check, metrics=metrics, summary=f"public API changed; docs updated ({shown})"
        )
    findings = [
        Finding(
            check=ctx.check,
            file=c.file,
            line=c.line,
            severity=_at_most_warning(severity)
            if c.change == "added" or c.compatible
            else severity,
            rule="api-undocumented",
            message=c.message,
        )
        for c in changes
    ]
    return ctx.result(findings, what="public API changed, docs not updated", metrics=metrics)


def _at_most_warning(severity: Severity) -> Severity:
    return "warning" if severity == "error" else severity


def _patterns(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise ValueError("docs: path options must be a list of patterns")


def public_api_changes(
    change: Change, exclude: Iterable[str] = DEFAULT_EXCLUDE, *, at_least: int | None = None
) -> list[ApiChange]:
    """Added, removed and re-signed public symbols of the change's public Python modules.

    A file that does not parse on either side is left out: the syntax check reports it.
    `at_least`: stop after the file that brings the count to it (the first ones, in order):
    the workflow builder only names three, and each file costs two parses.
    """
    root = Path(change.root)
    patterns = list(exclude)
    packages = _Packages(root, change.base)
    old_paths = [
        c.old_path if c.status == "renamed" else c.path for c in change.files if c.status != "added"
    ]
    packages.prefetch(p for p in old_paths if _may_be_public(p, patterns))
    out: list[ApiChange] = []
    for changed in change.files:
        old_path = changed.old_path if changed.status == "renamed" else changed.path
        new_path = None if changed.status == "deleted" else changed.path
        old_public = (
            old_path is not None
            and changed.status != "added"
            and _is_public_module(old_path, patterns, packages, base=True)
        )
        new_public = new_path is not None and _is_public_module(new_path, patterns, packages)
        if not (old_public or new_public):
            continue
        try:
            old = (
                _symbols(packages.source(old_path, True), packages.exports(old_path, True))
                if old_public and old_path is not None
                else {}
            )
            new = (
                _symbols(_work_source(root, new_path), packages.exports(new_path, False))
                if new_public
                else {}
            )
        except (SyntaxError, ValueError):
            continue
        out.extend(_compare(changed, old, new))
        if at_least is not None and len(out) >= at_least:
            break
    return out


class _Packages:
    """Which files are in a package, and what each package `__init__.py` exports, per side."""

    def __init__(self, root: Path, base: str) -> None:
        self.root = root
        self.base = base
        self._sources: dict[tuple[str, bool], bytes | None] = {}
        self._has_package: dict[bool, bool] = {}
        self._trees: dict[tuple[str, bool], ast.Module | None] = {}

    def prefetch(self, paths: Iterable[str | None]) -> None:
        """Read the base side of `paths`, and of the `__init__.py` files of their folders, in
        one `git cat-file --batch` (not one `git show` each: the review's builder runs this
        before its run exists, docs/benchmarks.md)."""
        if self.base == EMPTY_TREE:
            return
        wanted: dict[str, None] = {}
        for path in paths:
            if path is None:
                continue
            wanted[path] = None
            folder = PurePosixPath(path).parent
            while folder != PurePosixPath("."):
                wanted[f"{folder}/__init__.py"] = None
                folder = folder.parent
        names = [p for p in wanted if (p, True) not in self._sources and "\n" not in p]
        if not names:
            return
        request = "".join(f"{self.base}:{p}\n" for p in names).encode("utf-8", "surrogateescape")
        try:
            done = git(self.root, "cat-file", "--batch", stdin=request, check=False)
        except ChangeError:
            return  # each source is then read on its own, as without this
        try:
            blobs = list(_batch(done.stdout)) if done.returncode == 0 else []
        except ValueError:  # cut short
            blobs = []
        if len(blobs) == len(names):
            self._sources.update(((p, True), b) for p, b in zip(names, blobs, strict=True))

    def source(self, path: str, base: bool) -> bytes | None:
        key = (path, base)
        if key not in self._sources:
            self._sources[key] = (
                _base_source(self.root, self.base, path) if base else _work_source(self.root, path)
            )
        return self._sources[key]

    def _init_tree(self, path: str, base: bool) -> ast.Module | None:
        """A package `__init__.py` parsed once per side (every module of the package asks)."""
        key = (path, base)
        if key not in self._trees:
            init = self.source(path, base)
            try:
                self._trees[key] = ast.parse(init) if init is not None else None
            except (SyntaxError, ValueError):
                self._trees[key] = None
        return self._trees[key]

    def in_package(self, path: str, base: bool) -> bool:
        parent = PurePosixPath(path).parent
        return (
            parent != PurePosixPath(".") and self.source(f"{parent}/__init__.py", base) is not None
        )

    def has_package(self, base: bool) -> bool:
        """Any package at the top or under src/: then loose files are scripts, not modules."""
        if base not in self._has_package:
            if base:
                try:
                    done = git(self.root, "ls-tree", "-r", "--name-only", self.base, check=False)
                    names = done.stdout.decode("utf-8", "replace").splitlines()
                except ChangeError:
                    names = []
                found = any(_top_package(n) for n in names)
            else:
                found = any(self.root.glob("*/__init__.py")) or any(
                    self.root.glob("src/*/__init__.py")
                )
            self._has_package[base] = found
        return self._has_package[base]

    def exports(self, path: str | None, base: bool) -> set[str] | None:
        """Names the nearest package `__init__` with an `__all__` exports from module `path`.

        None when no enclosing `__init__` declares `__all__` (then `_` decides).
        """
        if path is None or PurePosixPath(path).name == "__init__.py":
            return None
        module = PurePosixPath(path).with_suffix("")
        folder = module.parent
        while folder != PurePosixPath("."):
            tree = self._init_tree(f"{folder}/__init__.py", base)
            if tree is None:
                return None
            listed = _dunder_all(tree)
            if listed is not None:
                relative = module.relative_to(folder).as_posix().replace("/", ".")
                return _imported_from(tree, relative, folder.as_posix()) & listed
            folder = folder.parent
        return None


def _batch(output: bytes) -> Iterator[bytes | None]:
    """The objects of `git cat-file --batch` output, in request order: a blob's bytes, or None
    for a name that is missing (or not a blob: a folder, a submodule)."""
    at = 0
    while at < len(output):
        end = output.index(b"\n", at)
        header = output[at:end].split(b" ")
        at = end + 1
        if len(header) != 3 or not header[2].isdigit():  # `<name> missing`, `ambiguous`
            yield None
            continue
        size = int(header[2])
        yield output[at : at + size] if header[1] == b"blob" else None
        at += size + 1  # the object, then a newline


def _top_package(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return parts[-1:] == ("__init__.py",) and (
        len(parts) == 2 or (len(parts) == 3 and parts[0] == "src")
    )


def _imported_from(tree: ast.Module, relative: str, folder: str) -> set[str]:
    """Names an `__init__` binds from its submodule `relative` (`from .mod import a as b`)."""
    dotted = folder.removeprefix("src/").replace("/", ".") + "." + relative
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if (node.level, node.module) in ((1, relative), (0, dotted)):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _may_be_public(path: str | None, exclude: list[str]) -> bool:
    """A Python file that is not excluded and not private by its name: public if in a package
    (or if the repository has no package at all)."""
    if path is None or not path.endswith(".py") or path_matches(path, exclude):
        return False
    parts = PurePosixPath(path).parts
    return not any(p.startswith("_") and p != "__init__.py" for p in parts)


def _is_public_module(
    path: str | None, exclude: list[str], packages: _Packages, *, base: bool = False
) -> bool:
    if path is None or not _may_be_public(path, exclude):
        return False
    parts = PurePosixPath(path).parts
    if packages.in_package(path, base):
        return True
    return len(parts) == 1 and not packages.has_package(base)


def _base_source(root: Path, base: str, path: str | None) -> bytes | None:
    if path is None or base == EMPTY_TREE:
        return None
    try:
        done = git(root, "show", f"{base}:{path}", check=False)
    except ChangeError:
        return None
    return done.stdout if done.returncode == 0 else None


def _work_source(root: Path, path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return (root / path).read_bytes()
    except OSError:
        return None


def _symbols(source: bytes | None, exports: set[str] | None = None) -> dict[str, _Symbol]:
    """Public top-level functions and classes, and public methods of public classes.

    A module-level `__all__` of literal strings decides which top-level names are public;
    without one, `exports` (what the package re-exports from this module) does, if known.
    Names defined more than once (overloads, property setters) keep every signature.
    """
    if source is None:
        return {}
    tree = ast.parse(source)
    listed = _dunder_all(tree)
    exported = listed if listed is not None else exports

    def public(name: str) -> bool:
        return name in exported if exported is not None else not name.startswith("_")

    out: dict[str, _Symbol] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and public(node.name):
            _add(out, node.name, _Symbol("function", _function(node), node.lineno, _params(node)))
        elif isinstance(node, ast.ClassDef) and public(node.name):
            _add(out, node.name, _Symbol("class", _class(node), node.lineno))
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _public_member(
                    item.name
                ):
                    _add(
                        out,
                        f"{node.name}.{item.name}",
                        _Symbol("method", _function(item, node.name), item.lineno, _params(item)),
                    )
    return out


def _add(out: dict[str, _Symbol], name: str, symbol: _Symbol) -> None:
    if name in out:
        first = out[name]
        symbol = _Symbol(first.kind, f"{first.signature}; {symbol.signature}", first.line)
    out[name] = symbol


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> _Params:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)

    def param(arg: ast.arg, default: ast.expr | None) -> _Param:
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else None
        return _Param(arg.arg, annotation, ast.unparse(default) if default is not None else None)

    outside = _function(node).replace(f"({ast.unparse(args)})", "()", 1)
    return _Params(
        positional=tuple(param(a, d) for a, d in zip(positional, defaults, strict=True)),
        positional_only=len(args.posonlyargs),
        keyword_only=tuple(
            param(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
        ),
        varargs=args.vararg is not None,
        varkw=args.kwarg is not None,
        outside=outside,
    )


def _kept(old: _Param, new: _Param) -> bool:
    """`new` accepts whatever `old` did: same name and annotation, same default (or a default
    where there was none)."""
    return (
        old.name == new.name
        and old.annotation == new.annotation
        and (old.default is None or old.default == new.default)
    )


def _compatible(old: _Params, new: _Params) -> bool:
    """Every call that fits `old` fits `new` the same way: parameters are only added, each
    with a default (positional ones after the existing ones, and not where `*args` took the
    extra positional arguments), and none is removed, renamed, reordered, made positional-only
    or required. Anything else (a new annotation, another return type) is not compatible."""
    if old.outside != new.outside or len(new.positional) < len(old.positional):
        return False
    if (old.varargs and not new.varargs) or (old.varkw and not new.varkw):
        return False
    if not all(_kept(a, b) for a, b in zip(old.positional, new.positional, strict=False)):
        return False
    if min(new.positional_only, len(old.positional)) > old.positional_only:
        return False  # a parameter callers could name is positional-only now
    added = new.positional[len(old.positional) :]
    if added and (old.varargs or any(p.default is None for p in added)):
        return False
    new_keywords = {p.name: p for p in new.keyword_only}
    for p in old.keyword_only:
        if p.name not in new_keywords or not _kept(p, new_keywords.pop(p.name)):
            return False
    return all(p.default is not None for p in new_keywords.values())


def _public_member(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _dunder_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        targets: list[ast.expr]
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            if isinstance(value, ast.List | ast.Tuple):
                names = [
                    e.value
                    for e in value.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                ]
                if len(names) == len(value.elts):  # only string literals: a static __all__
                    return set(names)
            return None
    return None


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, owner: str | None = None) -> str:
    decorators = [_decorator_name(d) for d in node.decorator_list]
    marks = "".join(f"@{d} " for d in decorators if d.rsplit(".", 1)[-1] in _KEEP_DECORATORS)
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    name = f"{owner}.{node.name}" if owner else node.name
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{marks}{prefix}{name}({ast.unparse(node.args)}){returns}"


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


def _class(node: ast.ClassDef) -> str:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    return f"{node.name}({', '.join(bases)})" if bases else node.name


def _compare(
    changed: ChangedFile, old: dict[str, _Symbol], new: dict[str, _Symbol]
) -> list[ApiChange]:
    out: list[ApiChange] = []
    if changed.status == "renamed" and changed.old_path and old and new:
        out.append(
            ApiChange(
                file=changed.path,
                line=None,
                name=_module(changed.path),
                kind="module",
                change="renamed",
                old=_module(changed.old_path),
                new=_module(changed.path),
            )
        )
    gone_classes = {n for n, s in old.items() if s.kind == "class" and n not in new}
    new_classes = {n for n, s in new.items() if s.kind == "class" and n not in old}
    for name in sorted(old.keys() | new.keys(), key=lambda n: _order(n, old, new)):
        owner = name.split(".", 1)[0] if "." in name else None
        if owner in gone_classes or owner in new_classes:
            continue  # the class itself is reported
        before, after = old.get(name), new.get(name)
        if before is not None and after is not None and before.signature == after.signature:
            continue
        symbol = after if after is not None else before
        assert symbol is not None  # the name comes from one of the two
        kind = symbol.kind
        what: ChangeKind = "added" if before is None else "removed" if after is None else "changed"
        out.append(
            ApiChange(
                file=changed.path,
                line=after.line if after else None,
                name=name,
                kind=kind,
                change=what,
                old=_shown(before),
                new=_shown(after),
                compatible=(
                    before is not None
                    and after is not None
                    and before.kind == after.kind
                    and before.params is not None
                    and after.params is not None
                    and _compatible(before.params, after.params)
                ),
            )
        )
    return out


def _order(name: str, old: dict[str, _Symbol], new: dict[str, _Symbol]) -> tuple[int, int, str]:
    """Symbols in the new file in its order, then removed ones in the old file's order."""
    if name in new:
        return (0, new[name].line, name)
    return (1, old[name].line, name)


def _shown(symbol: _Symbol | None) -> str | None:
    return None if symbol is None else symbol.signature


def _module(path: str) -> str:
    return path[:-3].replace("/", ".").removesuffix(".__init__")


__all__ = ["DEFAULT_DOC_PATHS", "DEFAULT_EXCLUDE", "ApiChange", "docs", "public_api_changes"]
