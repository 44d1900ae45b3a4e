"""Where a module's tests are: a newcomer finds them by the module's name.

A module `src/reviewflow/a/b.py` is tested in `tests/**/test_b*.py` or `tests/**/test_a_b*.py`.
The modules below are not (yet) mirrored that way: each names where its behaviour is tested, so
the map stays true — a new module without a test file named after it fails here, and so does an
entry whose module gained one (delete the entry) or whose test files are gone.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "reviewflow"

DECLARATIONS = {
    "constants.py": "shared defaults, checked against their users in cli/test_cli_imports.py",
    "version.py": "the version string",
    "errors.py": "the exception hierarchy; each error's message is tested where it is raised",
    "executors/base.py": "TaskContext and the TaskType protocol",
    "server/protocol.py": "the workers' wire format, exercised by tests/server/test_api_workers.py",
}
"""Modules with no behaviour of their own to test."""

TESTED_ELSEWHERE: dict[str, list[str]] = {}


def _modules() -> list[str]:
    return sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts
    )


def _mirrored(module: str, tests: list[str]) -> bool:
    path = Path(module)
    names = {f"test_{path.stem}", f"test_{path.parent.name}_{path.stem}"}
    return any(any(t == n or t.startswith(n + "_") for n in names) for t in tests)


def test_every_module_has_tests_named_after_it_or_an_entry_saying_where() -> None:
    tests = [p.stem for p in (ROOT / "tests").rglob("test_*.py")]
    unmapped = [
        m
        for m in _modules()
        if not _mirrored(m, tests) and m not in TESTED_ELSEWHERE and m not in DECLARATIONS
    ]
    assert unmapped == [], "name a test file after the module, or say where it is tested"
    stale = [m for m in TESTED_ELSEWHERE if m not in _modules() or _mirrored(m, tests)]
    assert stale == [], "these entries are no longer needed: delete them"


def test_the_map_points_at_test_files_that_exist() -> None:
    missing = [
        f"{module}: {test}"
        for module, tests in TESTED_ELSEWHERE.items()
        for test in tests
        if not (ROOT / "tests" / test).is_file()
    ]
    assert missing == []
