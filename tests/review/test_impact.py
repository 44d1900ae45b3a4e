"""Static test impact: what a test file imports, resolved as Python would."""

from __future__ import annotations

from reviewflow.review.checks.impact import imported_modules, is_test_file, module_name


def test_relative_imports_resolve_against_the_files_own_module() -> None:
    source = b"from .engine import Engine\nfrom . import states\nfrom ..errors import E\n"
    assert imported_modules(source, "pkg.sub.cli") == {
        "pkg.sub.engine",
        "pkg.sub.engine.Engine",
        "pkg.sub",
        "pkg.sub.states",
        "pkg.errors",
        "pkg.errors.E",
    }
    # In an __init__.py, "." is the package itself.
    assert imported_modules(b"from .api import run\n", "pkg", package=True) == {
        "pkg.api",
        "pkg.api.run",
    }


def test_imports_inside_functions_and_module_names_in_strings_count() -> None:
    source = (
        b'def f():\n    import pkg.a\n\nTABLE = {"x": "pkg.checks.b:run", "y": "not a module"}\n'
    )
    assert imported_modules(source) == {"pkg.a", "pkg.checks.b"}


def test_module_names_and_test_file_names() -> None:
    assert module_name("src/pkg/a/b.py") == "pkg.a.b"
    assert module_name("pkg/__init__.py") == "pkg"
    assert module_name("README.md") is None
    assert is_test_file("tests/test_x.py") and is_test_file("x_test.py")
    assert not is_test_file("tests/conftest.py") and not is_test_file("testing.py")
