"""Which test files a change can affect, found without running anything: by their imports.

A test file is impacted when the change touched it, or when it imports a module the change
touched or a module of the project that does, at any depth (an import inside a function
counts, and so does a module named in a string, `"pkg.mod:func"`, as registries and entry
points import them). What
no import reveals — a test that drives the code through a subprocess, a conftest, the test
configuration — is why a change to a conftest, a pytest configuration file or a module no test
file imports by name runs the whole command instead: selection may only ever make a review
faster, never let a failure through that the full command would catch in the same files.
Scripts in plain folders (`benchmarks/`, `scripts/`) are run, not imported: they select nothing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ..change import Change

CONFIG_FILES = frozenset(
    {"conftest.py", "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", "setup.py"}
)
_TEST_NAME = ("test_", "_test.py")
_DOTTED = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?::[A-Za-z_][\w.]*)?")


def is_test_file(path: str) -> bool:
    """pytest's default test file names: `test_*.py` and `*_test.py`."""
    name = PurePosixPath(path).name
    return name.endswith(".py") and (name.startswith(_TEST_NAME[0]) or name.endswith(_TEST_NAME[1]))


def module_name(path: str) -> str | None:
    """The dotted module a source path defines (`src/pkg/a/b.py` -> `pkg.a.b`)."""
    if not path.endswith(".py"):
        return None
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def _importable(root: Path, change: Change, path: str) -> bool:
    """A top-level module, or one inside a package (here or before the change); a script in
    a plain folder (`benchmarks/run.py`) is run, not imported, and selects nothing."""
    parent = PurePosixPath(path).parent
    if parent in (PurePosixPath("."), PurePosixPath("src")):
        return True
    init = (parent / "__init__.py").as_posix()
    return (root / init).is_file() or any(f.path == init for f in change.files)


def imported_modules(source: bytes, module: str | None = None, package: bool = False) -> set[str]:
    """Every module a file imports, anywhere in it; `from a import b` yields `a` and `a.b`.

    Relative imports are resolved when the file's own `module` name is given (`package`: the
    file is an `__init__.py`, so `.` is the module itself).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # "pkg.mod:func" or "pkg.mod" in a string: imported by name at run time (entry
            # points, registries, `call:` in a workflow).
            m = _DOTTED.fullmatch(node.value)
            if m:
                found.add(m.group(1))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, package)
            if base is None:
                continue
            if base:
                found.add(base)
            found.update(f"{base}.{a.name}" if base else a.name for a in node.names)
    return found


def _absolute(node: ast.ImportFrom, module: str | None, package: bool) -> str | None:
    if node.level == 0:
        return node.module
    if module is None:
        return None
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if package else 0)
    if keep < 0:
        return None
    return ".".join([*parts[:keep], *([node.module] if node.module else [])])


def impacted_tests(root: Path, change: Change, candidates: Iterable[str]) -> list[str] | None:
    """Test files (of `candidates`) the change can affect, or None: run them all.

    None when the change touched what imports cannot follow (a conftest, the test
    configuration) or a changed source module that no candidate imports by name (it may be
    reached through a subprocess or a plugin: only the whole run can tell).
    """
    changed_modules: set[str] = set()
    selected: set[str] = set()
    for f in change.files:
        name = PurePosixPath(f.path).name
        if name in CONFIG_FILES:
            return None
        if is_test_file(f.path):
            if f.status != "deleted":
                selected.add(f.path)
            continue
        for path in {f.path, f.old_path or f.path}:
            module = module_name(path)
            if module is not None and _importable(root, change, path):
                changed_modules.add(module)
    affected = _importers_closure(root, changed_modules)
    reached: set[str] = set()
    for test in sorted(set(candidates) - selected):
        try:
            imports = imported_modules((root / test).read_bytes())
        except OSError:
            continue
        hits = {m for m, origin in affected.items() if any(_names(i, m) for i in imports)}
        if hits:
            selected.add(test)
            reached |= {affected[m] for m in hits}
    if changed_modules - reached:
        return None
    return sorted(selected)


def _source_files(root: Path) -> list[str]:
    """The repository's Python files, tracked or not, never what git ignores (a virtualenv)."""
    from ..change import git

    done = git(
        root,
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        "--",
        "*.py",
        check=False,
    )
    return [p for p in done.stdout.decode("utf-8", "replace").split("\0") if p]


def _names(imported: str, module: str) -> bool:
    return imported == module or imported.startswith(module + ".")


def _importers_closure(root: Path, changed: set[str]) -> dict[str, str]:
    """The changed modules and every project module that imports one, at any depth, each
    mapped to a changed module it leads to: a test importing any of them reaches the change."""
    if not changed:
        return {}
    graph: dict[str, set[str]] = {}
    for rel in _source_files(root):
        module = module_name(rel)
        if module is None or is_test_file(rel):
            continue
        try:
            source = (root / rel).read_bytes()
        except OSError:
            continue
        graph[module] = imported_modules(source, module, rel.endswith("__init__.py"))
    affected = {m: m for m in changed}
    frontier = set(changed)
    while frontier:
        nxt: set[str] = set()
        for module, imports in graph.items():
            if module in affected:
                continue
            for target in frontier:
                if any(_names(i, target) for i in imports):
                    affected[module] = affected[target]
                    nxt.add(module)
                    break
        frontier = nxt
    return affected


__all__ = ["impacted_tests", "imported_modules", "is_test_file", "module_name"]
