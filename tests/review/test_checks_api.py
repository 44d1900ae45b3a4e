"""The `docs` check and `public_api_changes` on real repositories.

The contract: a change to a public signature (added, removed, re-signed) needs a README, docs
or changelog change alongside; body edits, private names, private modules and tests do not.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, commit, git, make_repo

from reviewflow.review.change import Change, collect_change
from reviewflow.review.checks.api import ApiChange, docs, public_api_changes
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

MOD = '''"""A module."""


def greet(name):
    return "hi " + name


def _helper(x):
    return x


class Store(Base):
    def get(self, key: str) -> bytes:
        return b""

    def _cache(self):
        pass


async def fetch(url, *, timeout=10):
    return url
'''


def run(root: Path, change: Change, **options) -> CheckResult:
    ctx = CheckContext(check="docs", root=root, change=change, options=options)
    return asyncio.run(docs(ctx))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo", {"README.md": "# demo\n", "pkg/__init__.py": "", "pkg/mod.py": MOD}
    )


def summary(changes: list[ApiChange]) -> list[tuple[str, str, int | None, str | None, str | None]]:
    return [(c.name, c.change, c.line, c.old, c.new) for c in changes]


def test_body_only_and_private_changes_are_not_api_changes(repo: Path) -> None:
    text = MOD.replace('"hi " + name', '"hello " + name').replace(
        "def _helper(x)", "def _helper(x, y=1)"
    )
    text = text.replace("def _cache(self)", "def _cache(self, deep=False)")
    change = branch_with(
        repo,
        {
            "pkg/mod.py": text,
            "pkg/_impl.py": "def run(a):\n    pass\n",
            "tests/test_mod.py": "def test_x():\n    pass\n",
        },
    )
    assert public_api_changes(change) == []
    result = run(repo, change)
    assert result.status == "passed" and result.summary == "public API unchanged"
    assert result.findings == []


def test_signature_changes_without_docs_fail_with_one_finding_per_symbol(repo: Path) -> None:
    text = (
        MOD.replace("def greet(name)", "def greet(name, punctuation='!')")
        .replace("def get(self, key: str) -> bytes", "def get(self, key: str) -> str")
        .replace("class Store(Base)", "class Store(Base, Mapping)")
        .replace("async def fetch", "def fetch")
        + "\n\ndef new_one(a, b):\n    return a\n"
    )
    change = branch_with(repo, {"pkg/mod.py": text})
    assert summary(public_api_changes(change)) == [
        ("greet", "changed", 4, "greet(name)", "greet(name, punctuation='!')"),
        ("Store", "changed", 12, "Store(Base)", "Store(Base, Mapping)"),
        (
            "Store.get",
            "changed",
            13,
            "Store.get(self, key: str) -> bytes",
            "Store.get(self, key: str) -> str",
        ),
        ("fetch", "changed", 20, "async fetch(url, *, timeout=10)", "fetch(url, *, timeout=10)"),
        ("new_one", "added", 24, None, "new_one(a, b)"),
    ]
    result = run(repo, change)
    assert result.status == "failed"
    assert {f.rule for f in result.findings} == {"api-undocumented"}
    # Removed or re-signed: an error; added, or a new defaulted parameter (nothing that worked
    # breaks): a warning.
    assert [f.severity for f in result.findings] == ["warning"] + ["error"] * 3 + ["warning"]
    assert {f.file for f in result.findings} == {"pkg/mod.py"}
    assert result.findings[0].message == (
        "public function greet(name, punctuation='!') changed compatibly "
        "(was greet(name)): new parameters have defaults; update README/docs/CHANGELOG"
    )
    assert result.findings[1].message == (
        "public class Store(Base, Mapping) changed (was Store(Base)); update README/docs/CHANGELOG"
    )
    assert (
        result.findings[-1].message
        == "public function new_one(a, b) added; update README/docs/CHANGELOG"
    )
    assert result.metrics["api_changes"] == 5


def test_doc_changes_make_an_api_change_pass(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "pkg/mod.py": MOD.replace("(name)", "(name, loud)"),
            "README.md": "# demo\n\ngreet(name, loud)\n",
        },
    )
    result = run(repo, change)
    assert result.status == "passed"
    assert result.summary == "public API changed; docs updated (README.md)"
    assert result.metrics["symbols"] == ["greet"]


@pytest.mark.parametrize("doc", ["CHANGELOG.md", "docs/api.rst", "doc/index.md", "HISTORY.txt"])
def test_every_default_doc_path_counts(repo: Path, doc: str) -> None:
    change = branch_with(
        repo, {"pkg/mod.py": MOD.replace("(name)", "(name, loud)"), doc: "changed\n"}
    )
    assert run(repo, change).status == "passed"


def test_options_doc_paths_and_severity(repo: Path) -> None:
    change = branch_with(
        repo, {"pkg/mod.py": MOD.replace("(name)", "(name, loud)"), "README.md": "# demo\n\nmore\n"}
    )
    # README no longer counts; findings are warnings, so the check passes with them.
    result = run(repo, change, doc_paths=["manual/"], severity="warning")
    assert result.status == "passed"
    assert [(f.severity, f.line) for f in result.findings] == [("warning", 4)]
    with pytest.raises(ValueError, match="severity"):
        run(repo, change, severity="fatal")


def test_removed_symbols_and_deleted_modules(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "pkg" / "mod.py").unlink()
    commit(repo)
    changes = public_api_changes(collect_change(repo))
    # A removed class is one finding, not one more per method.
    assert summary(changes) == [
        ("greet", "removed", None, "greet(name)", None),
        ("Store", "removed", None, "Store(Base)", None),
        ("fetch", "removed", None, "async fetch(url, *, timeout=10)", None),
    ]
    assert changes[1].message == "public class Store(Base) removed; update README/docs/CHANGELOG"


def test_a_new_class_is_one_change(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "pkg/extra.py": "class Thing:\n    def __init__(self, a):\n"
            "        pass\n\n    def run(self):\n"
            "        pass\n"
        },
    )
    assert summary(public_api_changes(change)) == [("Thing", "added", 1, None, "Thing")]


def test_methods_constructors_and_properties(repo: Path) -> None:
    base = (
        "class A:\n    def __init__(self, a):\n        pass\n\n    def size(self):\n"
        "        return 1\n"
    )
    (repo / "pkg" / "a.py").write_text(base)
    commit(repo)
    new = base.replace("__init__(self, a)", "__init__(self, a, b)").replace(
        "    def size", "    @property\n    def size"
    )
    change = branch_with(repo, {"pkg/a.py": new})
    assert summary(public_api_changes(change)) == [
        ("A.__init__", "changed", 2, "A.__init__(self, a)", "A.__init__(self, a, b)"),
        ("A.size", "changed", 6, "A.size(self)", "@property A.size(self)"),
    ]


def test_dunder_all_decides_what_is_public(repo: Path) -> None:
    text = '__all__ = ["greet"]\n\n' + MOD.replace("(url,", "(uri,")
    # fetch is no longer exported: removed from the API; Store too.
    change = branch_with(repo, {"pkg/mod.py": text})
    assert [(c.name, c.change) for c in public_api_changes(change)] == [
        ("Store", "removed"),
        ("fetch", "removed"),
    ]


def test_renamed_public_module_is_a_change(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "mv", "pkg/mod.py", "pkg/module.py")
    commit(repo)
    changes = public_api_changes(collect_change(repo))
    assert summary(changes) == [("pkg.module", "renamed", None, "pkg.mod", "pkg.module")]
    assert (
        changes[0].message
        == "public module pkg.mod moved to pkg.module; update README/docs/CHANGELOG"
    )


def test_files_that_do_not_parse_are_left_to_the_syntax_check(repo: Path) -> None:
    change = branch_with(
        repo, {"pkg/mod.py": MOD + "\ndef broken(:\n", "pkg/other.py": "def ok(a):\n    pass\n"}
    )
    assert [c.name for c in public_api_changes(change)] == ["ok"]


def test_first_commit_compares_with_the_empty_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"lib.py": "def api(x):\n    return x\n"})
    change = collect_change(root)
    assert summary(public_api_changes(change)) == [("api", "added", 1, None, "api(x)")]


def test_hostile_file_names_reach_git_as_arguments_only(repo: Path) -> None:
    (repo / "pkg/$(touch pwned).py").write_text("def a(x):\n    pass\n")
    (repo / "pkg/-rf.py").write_text("def b(x):\n    pass\n")
    commit(repo)
    change = branch_with(
        repo,
        {
            "pkg/$(touch pwned).py": "def a(x, y):\n    pass\n",
            "pkg/-rf.py": "def b(x, y):\n    pass\n",
        },
    )
    assert sorted(summary(public_api_changes(change))) == [
        ("a", "changed", 1, "a(x)", "a(x, y)"),
        ("b", "changed", 1, "b(x)", "b(x, y)"),
    ]
    assert not (repo / "pwned").exists() and not (repo.parent / "pwned").exists()


def test_scripts_outside_packages_are_not_api(repo: Path) -> None:
    """benchmarks/ and scripts/ are run, not imported: their functions are nobody's API."""
    change = branch_with(
        repo,
        {
            "benchmarks/bench.py": "def main(argv):\n    pass\n",
            "scripts/tool.py": "def run(a, b):\n    pass\n",
            "setup_helper.py": "def build(x):\n    pass\n",
        },
    )
    assert public_api_changes(change) == []


def test_a_package_all_decides_what_its_modules_export(tmp_path: Path) -> None:
    """With `__all__` in the package, a helper added to a submodule is not public API."""
    init = '"""pkg."""\nfrom .engine import Engine\nfrom . import util\n\n__all__ = ["Engine"]\n'
    engine = "class Engine:\n    def run(self, spec):\n        pass\n"
    root = make_repo(tmp_path / "repo", {"src/pkg/__init__.py": init, "src/pkg/engine.py": engine})
    change = branch_with(
        root,
        {
            "src/pkg/engine.py": engine.replace("(self, spec)", "(self, spec, fast=False)")
            + "\n\ndef run_id_for(name):\n    return name\n",
        },
    )
    assert summary(public_api_changes(change)) == [
        ("Engine.run", "changed", 2, "Engine.run(self, spec)", "Engine.run(self, spec, fast=False)")
    ]


def test_a_name_dropped_from_a_module_all_is_a_removal(repo: Path) -> None:
    module = "__all__ = ['a', 'b']\n\ndef a(x):\n    pass\n\ndef b(y):\n    pass\n"
    (repo / "pkg/exp.py").write_text(module)
    commit(repo)
    change = branch_with(repo, {"pkg/exp.py": module.replace("'a', 'b'", "'a'")})
    assert summary(public_api_changes(change)) == [("b", "removed", None, "b(y)", None)]


OLD_SIGNATURE = "def sign(value, salt=None, /, key=b'k', *args, sep='.', **extra) -> bytes:\n"


@pytest.mark.parametrize(
    ("new", "compatible"),
    [
        # Before *args it would take a positional argument *args took.
        ("def sign(value, salt=None, /, key=b'k', digest=None, *args, sep='.', **extra)", False),
        ("def sign(value, salt=None, /, key=b'k', *args, sep='.', strict=False, **extra)", True),
        ("def sign(value, salt=b'', /, key=b'k', *args, sep='.', **extra)", False),
        ("def sign(value=b'', salt=None, /, key=b'k', *args, sep='.', **extra)", True),
        ("def sign(value, salt=None, /, key=b'k', *args, sep='.', depth, **extra)", False),
        ("def sign(value, salt=None, /, key=b'k', *args, **extra)", False),
        ("def sign(value, salt=None, /, secret=b'k', *args, sep='.', **extra)", False),
        ("def sign(salt, value=None, /, key=b'k', *args, sep='.', **extra)", False),
        ("def sign(value, salt=None, key=b'k', /, *args, sep='.', **extra)", False),
        ("def sign(value, salt=None, /, key=b'k', *, sep='.', **extra)", False),
        ("def sign(value, salt=None, /, key=b'k', *args, sep='.')", False),
        ("def sign(value, salt=None, /, key: bytes = b'k', *args, sep='.', **extra)", False),
        ("async def sign(value, salt=None, /, key=b'k', *args, sep='.', **extra)", False),
        ("def sign(value, salt=None, /, key=b'k', *args, sep='.', **extra) -> str", False),
    ],
)
def test_only_defaulted_additions_are_compatible(repo: Path, new: str, compatible: bool) -> None:
    """New parameters with defaults keep every call working: a warning. Removing, renaming,
    reordering, a new required parameter, a changed default or annotation: an error."""
    body = "    return b''\n"
    (repo / "pkg" / "sig.py").write_text(OLD_SIGNATURE + body)
    commit(repo)
    line = new + ("" if "->" in new else " -> bytes") + ":\n"
    change = branch_with(repo, {"pkg/sig.py": line + body})
    [api] = public_api_changes(change)
    assert (api.change, api.compatible) == ("changed", compatible)
    [finding] = run(repo, change).findings
    assert finding.severity == ("warning" if compatible else "error")


def test_a_new_defaulted_parameter_of_a_method_is_a_warning(repo: Path) -> None:
    text = MOD.replace("def get(self, key: str)", "def get(self, key: str, default=None)")
    change = branch_with(
        repo, {"pkg/mod.py": text.replace("*, timeout=10", "*, timeout=10, retries=3")}
    )
    result = run(repo, change)
    assert [(f.line, f.severity) for f in result.findings] == [(13, "warning"), (20, "warning")]
    assert result.status == "passed"
