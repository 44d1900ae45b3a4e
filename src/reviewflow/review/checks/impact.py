"""Which test files a change can affect, found without running anything: by their imports.

A test file is impacted when the change touched it, or when it imports a module the change
touched (at any depth of the file: a test that imports inside a function counts too). What
no import reveals — a test that drives the code through a subprocess, a conftest, the test
configuration — is why a change to a conftest, a pytest configuration file or a module no test
file imports by name runs the whole command instead: selection may only ever make a review
faster, never let a failure through that the full command would catch in the same files.
Scripts in plain folders (`benchmarks/`, `scripts/`) are run, not imported: they select nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ..change import Change

CONFIG_FILES = frozenset(
    {"conftest.py", "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", "setup.py"}
)
_TEST_NAME = ("test_", "_test.py")


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


def imported_modules(source: bytes) -> set[str]:
    """Every module a file imports, anywhere in it; `from a import b` yields `a` and `a.b`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


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
    reached: set[str] = set()
    for test in sorted(set(candidates) - selected):
        try:
            imports = imported_modules((root / test).read_bytes())
        except OSError:
            continue
        hits = {m for m in changed_modules if any(i == m or i.startswith(m + ".") for i in imports)}
        if hits:
            selected.add(test)
            reached |= hits
    if changed_modules - reached:
        return None
    return sorted(selected)


__all__ = ["impacted_tests", "imported_modules", "is_test_file", "module_name"]
