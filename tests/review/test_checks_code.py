"""The code checks on real throwaway repositories: syntax, lint, format, security, secrets.

Each test plants known problems in a branch and asserts the exact findings (file, line, rule,
severity): problems in files outside the change are not reported, and file names that would
mean something to a shell or to a tool's option parser are only ever file names.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from gitrepo import branch_with, git, make_repo

from reviewflow.review.change import Change
from reviewflow.review.checks import code
from reviewflow.review.checks.base import CheckContext, ToolMissing
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

PYPROJECT = """\
[project]
name = "demo"
version = "0.1"

[tool.ruff]
line-length = 100
extend-exclude = ["generated"]

[tool.ruff.lint]
select = ["E", "F"]
"""
BASE = {
    "pyproject.toml": PYPROJECT,
    "README.md": "# demo\n",
    # Problems already on main: not part of the change, never reported.
    "old/unused.py": "import sys\n",
    "old/broken.py": "def (:\n",
    "old/shell.py": "import subprocess\n\n\ndef f(x):\n    subprocess.call(x, shell=True)\n",
}
ACCESS_KEY = "AKIAZ7Q3XK5M2PLR4TWN"  # pragma: allowlist secret
SECRET_KEY = "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"  # pragma: allowlist secret
SHELL = "import subprocess\n\n\ndef run(x):\n    return subprocess.call(x, shell=True)\n"
HOSTILE = ("$(touch pwned).py", "; touch pwned2 #.py", "-rf.py", "--version.py", "a b.py")

CheckFn = Callable[[CheckContext], Any]


def run(
    fn: CheckFn,
    name: str,
    change: Change,
    options: Mapping[str, Any] | None = None,
    upstream: Mapping[str, CheckResult] | None = None,
) -> CheckResult:
    root = Path(change.root)
    ctx = CheckContext(
        check=name,
        root=root,
        change=change,
        options=options or {},
        upstream=upstream or {},
        log_path=root.parent / f"{name}.log",
    )
    return asyncio.run(fn(ctx))


def found(result: CheckResult) -> set[tuple[str | None, int | None, str, str]]:
    return {(f.file, f.line, f.rule, f.severity) for f in result.findings}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", BASE)


# --- syntax ----------------------------------------------------------------------------------


def test_syntax_reports_each_broken_changed_file(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "src/ok.py": "x = '\\d'\n",  # an invalid escape is a warning, not a syntax error
            "src/broken.py": "x = 1\ndef f(:\n    pass\n",
            "src/indent.py": "if True:\n\tx = 1\n        y = 2\n",
            "src/nul.py": "x = 1\ny = 2\x00\n",
            "src/stub.pyi": "def f(x: int) -> int: ...\nclass\n",
        },
    )
    (repo / "src" / "latin.py").write_bytes(b"x = 1\ny = '\xff'\n")  # untracked counts too
    from reviewflow.review.change import collect_change

    change = collect_change(repo)
    result = run(code.syntax, "syntax", change)
    assert result.status == "failed"
    assert found(result) == {
        ("src/broken.py", 2, "syntax-error", "error"),
        ("src/indent.py", 3, "syntax-error", "error"),
        ("src/nul.py", 2, "syntax-error", "error"),
        ("src/latin.py", 2, "syntax-error", "error"),
        ("src/stub.pyi", 2, "syntax-error", "error"),
    }
    messages = {f.file: f.message for f in result.findings}
    assert messages["src/nul.py"] == "source code string cannot contain null bytes"
    assert "utf-8" in messages["src/latin.py"]
    assert "tabs and spaces" in messages["src/indent.py"]
    assert result.metrics == {"files": 6}
    assert result.summary == "6 Python file(s) parsed: 5 error(s), 0 warning(s)"


def test_syntax_passes_clean_files_and_skips_without_python(repo: Path) -> None:
    change = branch_with(repo, {"src/ok.py": "def f(x):\n    return x\n"})
    assert run(code.syntax, "syntax", change).status == "passed"
    docs = make_repo(repo.parent / "docs", {"README.md": "# a\n"})
    change = branch_with(docs, {"guide.md": "# guide\n", "data.json": "{}\n"})
    for fn, name in (
        (code.syntax, "syntax"),
        (code.lint, "lint"),
        (code.format_check, "format"),
        (code.security, "security"),
    ):
        result = run(fn, name, change)
        assert (result.status, result.summary) == ("skipped", "skipped: no Python files changed")


def test_deleted_python_files_are_not_checked(repo: Path) -> None:
    (repo / "old" / "broken.py").unlink()
    from reviewflow.review.change import collect_change

    change = collect_change(repo)
    assert [f.status for f in change.files] == ["deleted"]
    assert run(code.syntax, "syntax", change).status == "skipped"


# --- lint ------------------------------------------------------------------------------------


def test_lint_reports_ruff_findings_with_the_project_config(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "src/unused.py": "import os\n\n\ndef f():\n    return undefined_name\n",
            "src/style.py": "x = 1\nif x == None:\n    pass\n",
            "src/long.py": f"x = '{'a' * 120}'  # noqa: E501\ny = '{'b' * 120}'\n",
            "generated/skip.py": "import os\n",  # excluded by the project's ruff config
            "src/ok.py": "x = 1\n",
        },
    )
    result = run(code.lint, "lint", change)
    assert result.status == "failed"
    assert found(result) == {
        ("src/unused.py", 1, "F401", "error"),
        ("src/unused.py", 5, "F821", "error"),
        ("src/style.py", 2, "E711", "warning"),
        ("src/long.py", 2, "E501", "warning"),
    }
    f401 = next(f for f in result.findings if f.rule == "F401")
    assert f401.message == "`os` imported but unused" and f401.check == "lint"
    assert result.metrics["files"] == 5
    # each rule's own page, for the SARIF rules code scanning shows
    assert result.metrics["rule_urls"]["F401"] == "https://docs.astral.sh/ruff/rules/unused-import"
    assert "ruff" in (repo.parent / "lint.log").read_text()


def test_lint_options_select_ignore_and_error_rules(repo: Path) -> None:
    change = branch_with(repo, {"src/m.py": "import os\nx = 1\nif x == None:\n    pass\n"})
    result = run(code.lint, "lint", change, {"select": ["E7"]})
    assert found(result) == {("src/m.py", 3, "E711", "warning")}
    assert result.status == "passed"
    result = run(code.lint, "lint", change, {"error_rules": ["E7"], "ignore": "F401"})
    assert found(result) == {("src/m.py", 3, "E711", "error")}
    assert result.status == "failed"
    with pytest.raises(ValueError, match="rule codes"):
        run(code.lint, "lint", change, {"select": ["--fix"]})


def test_lint_reports_syntax_errors_as_errors(repo: Path) -> None:
    change = branch_with(repo, {"src/broken.py": "x = 1\ndef f(:\n    pass\n"})
    result = run(code.lint, "lint", change, {"error_rules": []})
    assert result.status == "failed"
    assert {(f.file, f.line, f.rule, f.severity) for f in result.findings} == {
        ("src/broken.py", 2, "syntax-error", "error")
    }


def test_lint_raises_when_ruff_itself_fails(repo: Path) -> None:
    change = branch_with(repo, {"src/m.py": "x = 1\n"})
    with pytest.raises(RuntimeError, match="ruff check failed"):
        run(code.lint, "lint", change, {"select": ["NOPE123"]})


# --- format ----------------------------------------------------------------------------------


def test_format_reports_files_ruff_would_reformat(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "src/messy.py": "x = 1\n\n\n\ndef f( a ):\n    return a\n",
            "src/tight.py": "x=1\n",
            "src/clean.py": "x = 1\n",
            "generated/messy.py": "x=1\n",
        },
    )
    result = run(code.format_check, "format", change)
    assert result.status == "passed"  # formatting is a warning
    assert found(result) == {
        ("src/messy.py", 4, "format", "warning"),
        ("src/tight.py", 1, "format", "warning"),
    }
    assert {f.message for f in result.findings} == {"would be reformatted by ruff format"}
    assert result.summary == "ruff format on 4 file(s): 0 error(s), 2 warning(s)"


def test_format_skips_after_syntax_errors_and_tolerates_unparsable_files(repo: Path) -> None:
    change = branch_with(repo, {"src/broken.py": "def f(:\n", "src/tight.py": "x=1\n"})
    failed = CheckResult(check="syntax", status="failed")
    result = run(code.format_check, "format", change, upstream={"syntax": failed})
    assert result.summary == "skipped: syntax errors"
    # Without the syntax check upstream, the unparsable file is left to it.
    result = run(code.format_check, "format", change)
    assert found(result) == {("src/tight.py", 1, "format", "warning")}


def test_format_diff_parsing_only_trusts_known_headers(tmp_path: Path) -> None:
    paths = code.PathMap(tmp_path, ["a.py", "-x.py", "sub/b c.py"])
    diff = (
        "--- a.py\n+++ a.py\n@@ -3,4 +3,3 @@\n x\n \n-x=1\n--- not/ours.py\n+++ y\n"
        "--- ./-x.py\n+++ ./-x.py\n@@ -0,0 +1 @@\n+x\n"
        f"--- {tmp_path}/sub/b c.py\n+++ {tmp_path}/sub/b c.py\n@@ -7 +7 @@\n"
    )
    assert code.format_diff_files(diff, paths) == [("a.py", 5), ("-x.py", 1), ("sub/b c.py", 7)]


# --- security --------------------------------------------------------------------------------


def test_security_maps_bandit_severities(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "src/shell.py": SHELL,
            "src/hashing.py": "import hashlib\n\n\ndef h(b):\n    return hashlib.md5(b)\n",
            "src/ok.py": "def f(x):\n    return x\n",
        },
    )
    result = run(code.security, "security", change)
    assert result.status == "failed"
    assert found(result) == {
        ("src/shell.py", 1, "B404", "info"),
        ("src/shell.py", 5, "B602", "error"),
        ("src/hashing.py", 5, "B324", "error"),
    }
    b602 = next(f for f in result.findings if f.rule == "B602")
    assert b602.message == "subprocess call with shell=True identified, security issue."
    assert run(code.security, "security", change, {"skip": ["B404", "B602", "B324"]}).findings == []


def test_security_reads_the_projects_bandit_config(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "pyproject.toml": PYPROJECT + '\n[tool.bandit]\nskips = ["B404"]\n',
            "src/shell.py": SHELL,
        },
    )
    result = run(code.security, "security", change)
    assert found(result) == {("src/shell.py", 5, "B602", "error")}
    with pytest.raises(ValueError, match="not a file in the repository"):
        run(code.security, "security", change, {"config": "../../etc/passwd"})


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_are_found_and_never_written_out(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "config/settings.py": f'ACCESS_KEY = "{ACCESS_KEY}"\n'
            f'aws_secret_access_key = "{SECRET_KEY}"\n',
            "deploy/notes.txt": f"use {ACCESS_KEY} for the bucket\n",
            "src/ok.py": "x = 1\n",
        },
    )
    (repo / "blob.bin").write_bytes(b"\0" * 64 + ACCESS_KEY.encode())
    from reviewflow.review.change import collect_change

    change = collect_change(repo)
    result = run(code.secrets, "secrets", change)
    assert result.status == "failed"
    assert found(result) == {
        ("config/settings.py", 1, "AWS Access Key", "error"),
        ("config/settings.py", 2, "AWS Access Key", "error"),
        ("deploy/notes.txt", 1, "AWS Access Key", "error"),
    }
    assert {f.message for f in result.findings} == {"AWS Access Key in source (value masked)"}
    assert result.secrets == [ACCESS_KEY, SECRET_KEY]
    dumped = result.model_dump_json()
    assert ACCESS_KEY not in dumped and SECRET_KEY not in dumped
    assert ACCESS_KEY[4:] not in dumped and SECRET_KEY[8:] not in dumped
    assert result.metrics == {"files": 3}  # blob.bin is binary


def test_secrets_skip_symlinks_and_binary_only_changes(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "credentials"
    outside.write_text(f'aws_access_key_id = "{ACCESS_KEY}"\n')
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "creds.txt").symlink_to(outside)
    (repo / "image.bin").write_bytes(b"\0\1\2")
    from reviewflow.review.change import collect_change

    change = collect_change(repo)
    assert {f.path for f in change.files} == {"creds.txt", "image.bin"}
    result = run(code.secrets, "secrets", change)
    assert (result.status, result.summary) == ("skipped", "skipped: no text files changed")
    assert result.secrets == []


# --- hostile file names ----------------------------------------------------------------------


def test_hostile_file_names_are_only_file_names(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        f"import os\nimport subprocess\nx=1\nsubprocess.call(x, shell=True)\nK = '{ACCESS_KEY}'\n"
    )
    change = branch_with(repo, {f"src/{name}": body for name in HOSTILE})
    assert sorted(change.paths(".py")) == sorted(f"src/{n}" for n in HOSTILE)
    monkeypatch.chdir(tmp_path)
    results = {
        "syntax": run(code.syntax, "syntax", change),
        "lint": run(code.lint, "lint", change),
        "format": run(code.format_check, "format", change),
        "security": run(code.security, "security", change),
        "secrets": run(code.secrets, "secrets", change),
    }
    for where in (repo, repo / "src", tmp_path, Path.cwd()):
        assert not (where / "pwned").exists() and not (where / "pwned2").exists()
    expected = {f"src/{n}" for n in HOSTILE}
    assert results["syntax"].status == "passed"
    lint = found(results["lint"])
    assert {(file, rule) for file, _, rule, _ in lint} == {(p, "F401") for p in expected}
    assert {(f, line) for f, line, rule, _ in lint} == {(p, 1) for p in expected}
    assert {f for f, _, _, _ in found(results["format"])} == expected
    security = found(results["security"])
    assert {(f, line, rule) for f, line, rule, _ in security if rule == "B602"} == {
        (p, 4, "B602") for p in expected
    }
    assert {(f, line) for f, line, _, _ in found(results["secrets"])} == {(p, 5) for p in expected}


# --- missing tools ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "name", "module"),
    [
        (code.lint, "lint", "ruff"),
        (code.format_check, "format", "ruff"),
        (code.security, "security", "bandit"),
        (code.secrets, "secrets", "detect_secrets"),
    ],
)
def test_missing_tool_raises_tool_missing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, fn: CheckFn, name: str, module: str
) -> None:
    change = branch_with(repo, {"src/m.py": "x = 1\n"})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda mod, *a: None if mod == module else real(mod, *a)
    )
    with pytest.raises(ToolMissing) as caught:
        run(fn, name, change)
    assert caught.value.tool == module.replace("_", "-")


# --- parsing units ---------------------------------------------------------------------------


def test_tool_paths_map_back_to_change_paths(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    paths = code.PathMap(link, ["a.py", "sub/-b.py"])
    assert paths.get("a.py") == "a.py"
    assert paths.get("./sub/-b.py") == "sub/-b.py"
    assert paths.get(str(link / "a.py")) == "a.py"
    assert paths.get(os.path.join(tmp_path, "real", "sub", "-b.py")) == "sub/-b.py"
    assert paths.get("other.py") is None and paths.get("") is None


def test_ruff_and_bandit_json_mapping(tmp_path: Path) -> None:
    paths = code.PathMap(tmp_path, ["a.py"])
    diagnostics = [
        {
            "code": "F841",
            "filename": str(tmp_path / "a.py"),
            "location": {"row": 3},
            "message": "Local variable `x` is assigned to but never used",
        },
        {
            "code": None,
            "filename": str(tmp_path / "a.py"),
            "location": {"row": 9},
            "message": "SyntaxError: Expected an expression",
        },
        {
            "code": "E999",
            "filename": str(tmp_path / "a.py"),
            "location": {"row": 10},
            "message": "SyntaxError: x",
        },
        {
            "code": "W291",
            "filename": str(tmp_path / "a.py"),
            "location": {"row": 4},
            "message": "Trailing whitespace\x1b[0m",
        },
        {
            "code": "F401",
            "filename": str(tmp_path / "elsewhere.py"),
            "location": {"row": 1},
            "message": "x",
        },
    ]
    result = code.ruff_findings(diagnostics, paths, "lint")
    assert [(f.line, f.rule, f.severity, f.message) for f in result] == [
        (3, "F841", "error", "Local variable `x` is assigned to but never used"),
        (9, "syntax-error", "error", "SyntaxError: Expected an expression"),
        (10, "syntax-error", "error", "SyntaxError: x"),
        (4, "W291", "warning", "Trailing whitespace"),
    ]
    report = {
        "results": [
            {
                "filename": "./a.py",
                "issue_severity": "MEDIUM",
                "test_id": "B108",
                "line_number": 2,
                "issue_text": "Probable insecure usage of temp file/directory.",
            },
            {
                "filename": "./b.py",
                "issue_severity": "HIGH",
                "test_id": "B602",
                "line_number": 1,
                "issue_text": "x",
            },
        ]
    }
    assert [
        (f.file, f.line, f.rule, f.severity)
        for f in code.bandit_findings(report, paths, "security")
    ] == [("a.py", 2, "B108", "warning")]
