"""`reviewflow review` end to end: real git repositories, real tools, the real CLI.

Each scenario builds a small throwaway repository, reviews it once (typer's CliRunner on
`reviewflow.cli.app`, or a real `python -m reviewflow` process for the security-sensitive
ones) and several tests read the same result: the exact findings, the verdict, the exit code
and the three reports. Reviews are module-scoped fixtures, so each costs its tools only once.

Checks that are not under test are switched off with a template of the user's kind
(`extends: pr` plus `when: never`), which keeps a review well under a second unless it runs
the project's tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
import yaml
from gitrepo import commit, git, make_repo, write
from typer.testing import CliRunner, Result

from reviewflow.cli import app
from reviewflow.review.change import EMPTY_TREE

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text("utf-8"))

CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
MUL = "\n\ndef _mul(a, b):\n    return a * b\n"
"""Appended to CALC: lines 3-6, the `def` on line 5 and the body on line 6."""
TEST_MUL = "\n\ndef test_mul():\n    from calc import _mul\n\n    assert _mul(2, 3) == 6\n"

NO_TESTS = {"checks": {"tests": {"when": "never"}}}
"""Template overrides for reviews that do not need the project's tests run."""

# Built from pieces so that this file itself does not look like it holds a credential.
AWS_KEY_ID = "AKIA" + "Q7XK2M9PLR4TZW8N"
AWS_SECRET = "k9Zq2XvB7mWp4Lr8Ts1Y" + "d6Hf3Jn0Gc5UaVeRb2Qx"  # pragma: allowlist secret
HOSTILE = ("$(touch pwned).py", "; rm -rf x.py", "-rf.py", "new\nline.py", "x.py", "config.py")


# ---------------------------------------------------------------------------- helpers


@dataclass
class Review:
    """One finished `reviewflow review`: exit code, output and the reports it wrote."""

    code: int
    stdout: str
    stderr: str
    cwd: Path
    out: Path
    args: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @cached_property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text(encoding="utf-8"))

    @cached_property
    def markdown(self) -> str:
        return (self.out / "report.md").read_text(encoding="utf-8")

    @cached_property
    def sarif(self) -> dict[str, Any]:
        return json.loads((self.out / "report.sarif").read_text(encoding="utf-8"))

    @property
    def verdict(self) -> str:
        return self.report["verdict"]

    @property
    def findings(self) -> set[tuple[str, str | None, int | None, str, str]]:
        """(check, file, line, severity, rule) of every reported finding."""
        return {
            (f["check"], f["file"], f["line"], f["severity"], f["rule"])
            for f in self.report["findings"]
        }

    def check(self, name: str) -> dict[str, Any]:
        return self.report["checks"][name]

    @property
    def run_dir(self) -> Path:
        """The run's log folder (relative to the directory reviewflow ran in)."""
        return self.cwd / ".reviewflow" / "runs" / self.report["run_id"]

    def __str__(self) -> str:  # shown by a failing assertion
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def rf(cwd: Path, *args: str | Path) -> Result:
    """`reviewflow ARGS` in-process, in `cwd`; an exception escaping the CLI fails the test."""
    saved = list(sys.path)  # the CLI puts its cwd on sys.path (for `call:` tasks)
    with contextlib.chdir(cwd):
        try:
            result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
        finally:
            sys.path[:] = saved
            structlog.reset_defaults()  # the CLI logged to CliRunner's (now closed) stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def review(cwd: Path, repo: Path, *args: str | Path, out: str = "out") -> Review:
    """`reviewflow review REPO --db CWD/rf.db --out CWD/<out> ARGS` with CliRunner."""
    argv = ["review", repo, "--db", cwd / "rf.db", "--out", cwd / out, *args]
    result = rf(cwd, *argv)
    return Review(
        result.exit_code, result.stdout, result.stderr, cwd, cwd / out, [str(a) for a in argv]
    )


def review_process(cwd: Path, repo: Path, *args: str | Path, out: str = "out") -> Review:
    """The same as a real process: `python -m reviewflow review ...` with cwd=CWD."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("REVIEWFLOW_DB", None)
    argv = [
        sys.executable,
        "-m",
        "reviewflow",
        "review",
        str(repo),
        "--db",
        str(cwd / "rf.db"),
        "--out",
        str(cwd / out),
        *(str(a) for a in args),
    ]
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=110, start_new_session=True
    )
    return Review(done.returncode, done.stdout, done.stderr, cwd, cwd / out, argv)


def template(folder: Path, name: str, body: dict[str, Any]) -> Path:
    """A user template file extending pr."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "extends": "pr", **body}), encoding="utf-8")
    return path


def branch(repo: Path, files: dict[str, str], name: str = "feature") -> str:
    """Check out a new branch, commit `files` on it; returns the commit id."""
    git(repo, "checkout", "-q", "-b", name)
    write(repo, files)
    return commit(repo, name)


def assert_no_traceback(r: Review) -> None:
    assert "Traceback" not in r.output, r


def one_error_line(r: Review) -> str:
    """The single `error: ...` line a bad-input failure prints (and nothing else)."""
    assert r.code == 2, r
    assert_no_traceback(r)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r
    assert lines[0].startswith("error: "), r
    return lines[0]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


# ---------------------------------------------------------------------------- 1. syntax


@pytest.fixture(scope="module")
def syntax_review(tmp_path_factory: pytest.TempPathFactory) -> Review:
    cwd = tmp_path_factory.mktemp("syntax")
    repo = make_repo(cwd / "repo", {"calc.py": CALC, "tests/test_calc.py": TEST_CALC})
    branch(repo, {"calc.py": CALC + "\n\ndef _mul(a, b:\n    return a * b\n"})
    return review(cwd, repo)


def test_a_syntax_error_requests_changes_at_its_line(syntax_review: Review) -> None:
    r = syntax_review
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    assert r.check("syntax")["status"] == "failed"
    syntax = {f for f in r.findings if f[0] == "syntax"}
    assert syntax == {("syntax", "calc.py", 5, "error", "syntax-error")}
    # One problem, one finding: ruff's report of the same parse error is left out.
    assert not [f for f in r.findings if f[0] == "lint"]
    assert {f[0] for f in r.findings} <= {"syntax", "lint", "format", "tests"}
    assert any("error(s) on changed lines (max 0)" in reason for reason in r.report["reasons"])
    assert "verdict: request_changes" in r.stdout
    assert_no_traceback(r)


def test_format_and_tests_are_skipped_after_a_syntax_error(syntax_review: Review) -> None:
    r = syntax_review
    assert r.check("format")["status"] == "skipped"
    assert r.check("format")["summary"] == "skipped: syntax errors"
    assert r.check("tests")["status"] == "skipped"
    assert r.check("tests")["summary"] == "skipped: syntax errors"


# ---------------------------------------------------------------------------- 2. lint


LINTED = "import os\n\n\ndef f():\n    return 1\n"


@pytest.fixture(scope="module")
def lint_reviews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Review]:
    """An unused import that was already there (line 1) and one the change adds (line 2)."""
    cwd = tmp_path_factory.mktemp("lint")
    fast = template(cwd, "fast", NO_TESTS)
    repo = make_repo(cwd / "repo", {"m.py": LINTED})
    branch(repo, {"m.py": LINTED.replace("return 1", "return 2")})
    old = review(cwd, repo, "--template", fast, out="old")
    every = review(cwd, repo, "--template", fast, "--all-findings", out="all")
    write(repo, {"m.py": "import os\nimport sys\n\n\ndef f():\n    return 2\n"})
    commit(repo, "unused import")
    new = review(cwd, repo, "--template", fast, out="new")
    return {"old": old, "all": every, "new": new}


def test_an_unused_import_on_a_changed_line_requests_changes(lint_reviews) -> None:
    r = lint_reviews["new"]
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    assert r.findings == {("lint", "m.py", 2, "error", "F401")}
    assert r.report["counts"] == {"error": 1, "warning": 0, "info": 0, "hidden": 1}
    assert r.report["reasons"] == ["1 error(s) on changed lines (max 0)"]
    assert r.check("lint")["status"] == "failed"
    assert r.check("lint")["findings"] == 2  # the check saw both; one counts


def test_an_unused_import_on_an_unchanged_line_does_not_count(lint_reviews) -> None:
    r = lint_reviews["old"]
    assert r.code == 0, r
    assert r.verdict == "approve"
    assert r.findings == set()
    assert r.report["counts"] == {"error": 0, "warning": 0, "info": 0, "hidden": 1}
    assert r.report["reasons"] == []
    assert "1 more on unchanged lines (`--all-findings` shows them)" in r.markdown
    assert r.sarif["runs"][0]["results"] == []


def test_all_findings_shows_and_counts_unchanged_lines(lint_reviews) -> None:
    r = lint_reviews["all"]
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    assert r.findings == {("lint", "m.py", 1, "error", "F401")}
    assert r.report["counts"] == {"error": 1, "warning": 0, "info": 0, "hidden": 0}
    assert "| `m.py:1` | error | F401 |" in r.markdown


# ---------------------------------------------------------------------------- 3. coverage


@pytest.fixture(scope="module")
def coverage_reviews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Review]:
    cwd = tmp_path_factory.mktemp("coverage")
    lenient = template(cwd, "lenient", {"gates": {"min_changed_line_coverage": 0}})
    uncovered = make_repo(cwd / "uncovered", {"calc.py": CALC, "tests/test_calc.py": TEST_CALC})
    branch(uncovered, {"calc.py": CALC + MUL})
    covered = make_repo(cwd / "covered", {"calc.py": CALC, "tests/test_calc.py": TEST_CALC})
    branch(covered, {"calc.py": CALC + MUL, "tests/test_calc.py": TEST_CALC + TEST_MUL})
    return {
        "uncovered": review(cwd, uncovered, out="uncovered-report"),
        "lenient": review(cwd, uncovered, "--template", lenient, out="lenient"),
        "covered": review(cwd, covered, out="covered-report"),
    }


def test_an_uncovered_changed_line_fails_the_coverage_gate(coverage_reviews) -> None:
    r = coverage_reviews["uncovered"]
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    tests = r.check("tests")
    assert tests["status"] == "passed"
    assert tests["metrics"]["changed_line_coverage"] == 50.0
    assert tests["metrics"]["changed_executable_lines"] == 2
    assert tests["metrics"]["uncovered_changed_lines"] == 1
    assert tests["metrics"]["tests_passed"] == 1
    assert r.findings == {("tests", "calc.py", 6, "warning", "uncovered")}
    assert r.report["reasons"] == ["changed-line coverage 50.0% (min 80%)"]
    assert r.report["changed_line_coverage"] == 50.0
    assert "  - changed-line coverage 50.0% (min 80%)" in r.stdout


def test_a_fully_covered_change_is_approved(coverage_reviews) -> None:
    r = coverage_reviews["covered"]
    assert r.code == 0, r
    assert r.verdict == "approve"
    assert r.findings == set()
    assert r.check("tests")["metrics"]["changed_line_coverage"] == 100.0
    assert r.check("tests")["metrics"]["tests_passed"] == 2
    assert r.report["reasons"] == []
    assert "verdict: approve" in r.stdout


def test_a_user_template_extending_pr_can_relax_a_gate(coverage_reviews) -> None:
    r = coverage_reviews["lenient"]
    assert r.code == 0, r
    assert r.verdict == "comment"  # the uncovered line is still shown, it just does not block
    assert r.findings == {("tests", "calc.py", 6, "warning", "uncovered")}
    assert r.report["gates"]["min_changed_line_coverage"] == 0
    assert r.report["gates"]["max_errors"] == 0  # the rest of pr's gates are kept
    assert r.report["template"] == "lenient"
    assert set(r.report["checks"]) == {"syntax", "lint", "format", "tests"}


def test_a_change_that_breaks_an_existing_test_requests_changes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC, "tests/test_calc.py": TEST_CALC})
    branch(repo, {"calc.py": CALC.replace("a + b", "a - b")})
    r = review(tmp_path, repo)
    assert r.check("tests")["status"] == "failed"
    assert ("tests", "tests/test_calc.py", 4, "error", "test-failed") in r.findings
    assert r.verdict == "request_changes"
    assert r.code == 1


# ---------------------------------------------------------------------------- 4. secrets


@pytest.fixture(scope="module")
def secret_review(tmp_path_factory: pytest.TempPathFactory) -> Review:
    """A real process reviews a config.py holding an AWS key pair.

    Single quotes on purpose: `ruff format --diff` then prints the lines holding the values
    into the format check's log, and bandit quotes the value in its message.
    """
    cwd = tmp_path_factory.mktemp("secrets")
    repo = make_repo(cwd / "repo")
    branch(
        repo,
        {
            "config.py": f"AWS_ACCESS_KEY_ID = '{AWS_KEY_ID}'\n"
            f"AWS_SECRET_ACCESS_KEY = '{AWS_SECRET}'\n"
        },
    )
    return review_process(cwd, repo)


def test_a_hard_coded_key_runs_the_secret_scan_and_requests_changes(secret_review) -> None:
    r = secret_review
    assert r.code == 1, r
    assert_no_traceback(r)
    assert r.verdict == "request_changes"
    assert {"security", "secrets"} <= set(r.report["checks"])
    assert "checks: syntax, lint, format, tests, security, secrets" in r.stdout
    assert r.findings == {
        ("secrets", "config.py", 1, "error", "AWS Access Key"),
        ("secrets", "config.py", 2, "error", "AWS Access Key"),
        ("security", "config.py", 2, "info", "B105"),
        ("format", "config.py", 1, "warning", "format"),
        ("tests", None, None, "info", "no-tests"),
    }
    assert r.check("secrets")["status"] == "failed"
    assert r.report["reasons"] == [
        "2 error(s) on changed lines (max 0)",
        "no tests ran: changed-line coverage not measured (min 80%)",
    ]
    # bandit's B105 quotes the value: dropped before the result is stored
    assert "Possible hardcoded password (value not shown)" in json.dumps(r.report)


def test_the_secret_value_appears_nowhere(secret_review) -> None:
    r = secret_review
    places = {"stdout": r.stdout, "stderr": r.stderr}
    for name in ("report.md", "report.json", "report.sarif"):
        places[name] = (r.out / name).read_text(encoding="utf-8")
    logs = files_under(r.run_dir)
    assert any(p.name.startswith("format.") for p in logs), logs  # the logs were written
    for path in logs:
        places[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for value in (AWS_SECRET, AWS_KEY_ID, AWS_SECRET[4:], AWS_KEY_ID[4:]):
        leaked = [where for where, text in places.items() if value in text]
        assert leaked == [], f"{value[:4]}... found in {leaked}"


def test_the_secret_value_is_not_in_the_stored_run_either(secret_review) -> None:
    r = secret_review
    shown = rf(r.cwd, "status", r.report["run_id"], "--db", r.cwd / "rf.db", "--json")
    assert shown.exit_code in (0, 1)
    assert r.report["run_id"] in shown.stdout
    assert AWS_SECRET not in shown.stdout + shown.stderr


# ---------------------------------------------------------------------------- 5. docs


@pytest.fixture(scope="module")
def docs_reviews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Review]:
    cwd = tmp_path_factory.mktemp("docs")
    fast = template(cwd, "fast", NO_TESTS)
    lib = 'def greet(name):\n    return f"hello {name}"\n'
    repo = make_repo(cwd / "repo", {"README.md": "# lib\n", "lib.py": lib})
    changed = lib.replace("(name)", "(name, loud)", 1)
    branch(repo, {"lib.py": changed + '\n\ndef farewell(name):\n    return f"bye {name}"\n'})
    undocumented = review(cwd, repo, "--template", fast, out="undocumented")
    write(repo, {"README.md": "# lib\n\n`farewell(name)` says goodbye.\n"})
    commit(repo, "docs")
    documented = review(cwd, repo, "--template", fast, out="documented")
    return {"undocumented": undocumented, "documented": documented}


def test_a_public_api_change_without_docs_requests_changes(docs_reviews) -> None:
    r = docs_reviews["undocumented"]
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    assert "docs" in r.report["checks"]
    # A re-signed function breaks callers: an error; an added one breaks nobody: a warning.
    assert r.findings == {
        ("docs", "lib.py", 1, "error", "api-undocumented"),
        ("docs", "lib.py", 5, "warning", "api-undocumented"),
    }
    messages = sorted(f["message"] for f in r.report["findings"])
    assert messages == [
        "public function farewell(name) added; update README/docs/CHANGELOG",
        "public function greet(name, loud) changed (was greet(name)); update README/docs/CHANGELOG",
    ]
    assert r.check("docs")["status"] == "failed"


def test_the_same_change_with_a_readme_edit_passes_docs(docs_reviews) -> None:
    r = docs_reviews["documented"]
    assert r.code == 0, r
    assert r.verdict == "approve"
    assert r.findings == set()
    assert r.check("docs")["status"] == "passed"
    assert r.check("docs")["summary"] == "public API changed; docs updated (README.md)"


# ---------------------------------------------------------------------------- 6. no Python


@pytest.fixture(scope="module")
def text_review(tmp_path_factory: pytest.TempPathFactory) -> Review:
    """No remote, a feature branch off main, and main moved on after the branch was made."""
    cwd = tmp_path_factory.mktemp("text")
    repo = make_repo(cwd / "repo")
    branch(repo, {"notes.txt": "some notes\n"})
    git(repo, "checkout", "-q", "main")
    write(repo, {"later.txt": "main moved on\n"})
    commit(repo, "later on main")
    git(repo, "checkout", "-q", "feature")
    return review(cwd, repo)


def test_a_change_without_python_skips_the_code_checks_and_approves(text_review) -> None:
    r = text_review
    assert r.code == 0, r
    assert r.verdict == "approve"
    assert r.findings == set()
    assert set(r.report["checks"]) == {"syntax", "lint", "format", "tests"}
    for name in ("syntax", "lint", "format", "tests"):
        assert r.check(name)["status"] == "skipped"
        assert r.check(name)["summary"] == "skipped: no Python files changed"
    assert r.report["incomplete_checks"] == []
    assert "verdict: approve" in r.stdout


def test_without_a_remote_the_base_is_the_merge_base_with_main(text_review) -> None:
    r = text_review
    repo = Path(r.report["change"]["root"])
    change = r.report["change"]
    assert change["base"] == git(repo, "merge-base", "main", "feature")
    assert change["base"] != git(repo, "rev-parse", "main")
    assert change["base_ref"] == "merge-base with main"
    assert change["head"] == git(repo, "rev-parse", "feature")
    assert change["dirty"] is False
    assert change["files"] == [{"path": "notes.txt", "status": "added", "lines": [[1, 1]]}]


# ---------------------------------------------------------------------------- 7. dependencies


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def deps_review(tmp_path_factory: pytest.TempPathFactory) -> Review:
    """The vulnerability service is unreachable: every HTTPS request goes to a proxy on a
    closed local port (deterministic whether or not the machine has a network)."""
    cwd = tmp_path_factory.mktemp("deps")
    repo = make_repo(cwd / "repo")
    branch(repo, {"requirements.txt": "requests==2.19.0\n"})
    proxy = f"http://127.0.0.1:{_closed_port()}"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
            mp.setenv(var, proxy)
        for var in ("no_proxy", "NO_PROXY"):
            mp.delenv(var, raising=False)
        return review(cwd, repo)


def test_an_unreachable_audit_service_skips_dependencies_and_comments(deps_review) -> None:
    r = deps_review
    assert r.code == 0, r
    assert r.verdict == "comment"  # not approve: a check could not do its job
    deps = r.check("dependencies")
    assert deps["status"] == "skipped"
    assert deps["summary"] == "skipped: service unreachable"
    assert r.report["incomplete_checks"] == ["dependencies"]
    assert r.report["reasons"] == []
    assert r.findings == set()
    assert set(r.report["checks"]) == {"syntax", "lint", "format", "tests", "dependencies"}
    assert "| dependencies | ⏭️ skipped | skipped: service unreachable |" in r.markdown


# ---------------------------------------------------------------------------- 8. hostile names


@pytest.fixture(scope="module")
def hostile_review(tmp_path_factory: pytest.TempPathFactory) -> Review:
    """File names that a shell would execute or a tool would take for options; config.py
    brings in bandit and detect-secrets so that every tool of the pr template sees them."""
    cwd = tmp_path_factory.mktemp("hostile")
    repo = make_repo(cwd / "repo")
    branch(repo, dict.fromkeys(HOSTILE, "import os\n"))
    return review_process(cwd, repo)


def test_hostile_file_names_are_never_executed(hostile_review) -> None:
    r = hostile_review
    assert_no_traceback(r)
    repo = Path(r.report["change"]["root"])
    assert (repo / "x.py").read_text() == "import os\n"
    assert list(r.cwd.rglob("pwned")) == []
    assert not (Path.cwd() / "pwned").exists()
    assert sorted(f["path"] for f in r.report["change"]["files"]) == sorted(HOSTILE)
    assert {"security", "secrets"} <= set(r.report["checks"])


def test_hostile_file_names_are_named_correctly_in_findings(hostile_review) -> None:
    r = hostile_review
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    assert r.findings == {
        *{("lint", name, 1, "error", "F401") for name in HOSTILE},
        ("tests", None, None, "info", "no-tests"),
    }
    for name in ("syntax", "lint", "format", "security", "secrets"):
        assert r.check(name)["metrics"]["files"] == len(HOSTILE), name
        assert r.check(name)["status"] in ("passed", "failed"), name
    assert "| `$(touch pwned).py:1` | error | F401 |" in r.markdown
    assert "| `; rm -rf x.py:1` | error | F401 |" in r.markdown
    assert "| `new line.py:1` | error | F401 |" in r.markdown  # one table row per finding
    uris = {
        loc["physicalLocation"]["artifactLocation"]["uri"]
        for res in r.sarif["runs"][0]["results"]
        for loc in res.get("locations", [])
    }
    assert uris == {
        "%24%28touch%20pwned%29.py",
        "%3B%20rm%20-rf%20x.py",
        "-rf.py",
        "new%0Aline.py",
        "x.py",
        "config.py",
        ".",  # no tests found: a finding about no file points at the repository root
    }


# ---------------------------------------------------------------------------- 9. the base


def test_an_initial_commit_is_reviewed_whole(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": "one\ntwo\n", "README.md": "# x\n"})
    r = review(tmp_path, repo)
    assert r.code == 0, r
    change = r.report["change"]
    assert change["base"] == EMPTY_TREE
    assert change["base_ref"] == "empty tree (initial commit)"
    assert change["head"] == git(repo, "rev-parse", "HEAD")
    assert change["dirty"] is False
    assert change["files"] == [
        {"path": "README.md", "status": "added", "lines": [[1, 1]]},
        {"path": "notes.txt", "status": "added", "lines": [[1, 2]]},
    ]
    assert r.verdict == "approve"


def test_a_dirty_tree_reviews_the_uncommitted_change(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n"})
    write(repo, {"b.txt": "b\n"})
    head = commit(repo, "second")
    write(repo, {"a.txt": "one\ntwo\n", "c.txt": "new\n"})  # an edit and an untracked file
    r = review(tmp_path, repo)
    assert r.code == 0, r
    change = r.report["change"]
    assert change["base"] == head
    assert change["head"] == head
    assert change["dirty"] is True
    assert change["files"] == [
        {"path": "a.txt", "status": "modified", "lines": [[2, 2]]},
        {"path": "c.txt", "status": "added", "lines": [[1, 1]]},
    ]
    assert "+ uncommitted changes" in r.markdown


def test_reviewing_twice_from_inside_the_repository_reviews_the_same_change(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write(repo, {"notes.txt": "x\n"})
    commit(repo, "second")
    first = rf(
        repo,
        "review",
        "--db",
        repo / ".reviewflow" / "rf.db",
        "--out",
        repo / ".reviewflow" / "first",
    )
    second = rf(
        repo,
        "review",
        "--db",
        repo / ".reviewflow" / "rf.db",
        "--out",
        repo / ".reviewflow" / "second",
    )
    assert first.exit_code == 0 and second.exit_code == 0
    docs = [
        json.loads((repo / ".reviewflow" / name / "report.json").read_text())
        for name in ("first", "second")
    ]
    assert docs[0]["change"]["files"] == [
        {"path": "notes.txt", "status": "added", "lines": [[1, 1]]}
    ]
    assert docs[1]["change"]["files"] == docs[0]["change"]["files"]
    assert docs[1]["change"]["base"] == docs[0]["change"]["base"]


def test_with_a_remote_the_base_is_the_merge_base_with_origin_main(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream", {"a.txt": "a\n"})
    repo = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(repo))
    fork = git(repo, "rev-parse", "HEAD")
    write(repo, {"local.txt": "on local main only\n"})
    commit(repo, "local main moves on")  # so main and origin/main differ
    branch(repo, {"b.txt": "b\n"})
    r = review(tmp_path, repo)
    assert r.code == 0, r
    assert r.report["change"]["base"] == fork
    assert r.report["change"]["base_ref"] == "merge-base with origin/main"
    assert [f["path"] for f in r.report["change"]["files"]] == ["b.txt", "local.txt"]
    explicit = review(tmp_path, repo, "--base", "main", out="explicit")
    assert explicit.report["change"]["base_ref"] == "main"
    assert [f["path"] for f in explicit.report["change"]["files"]] == ["b.txt"]


def test_the_security_template_scans_any_change_for_secrets(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    branch(repo, {"notes.txt": f"id {AWS_KEY_ID}\n"})
    r = review(tmp_path, repo, "--template", "security")
    assert r.code == 1, r
    assert set(r.report["checks"]) == {
        "syntax",
        "lint",
        "format",
        "tests",
        "security",
        "secrets",
        "dependencies",
    }
    assert r.findings == {("secrets", "notes.txt", 1, "error", "AWS Access Key")}
    assert r.check("security")["summary"] == "skipped: no Python files changed"
    assert r.check("dependencies")["summary"] == "skipped: no dependency files changed"
    assert r.report["incomplete_checks"] == []
    assert AWS_KEY_ID not in r.output + r.markdown + json.dumps(r.report)


def test_an_unknown_base_is_bad_input(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    r = review(tmp_path, repo, "--base", "nonexistent")
    line = one_error_line(r)
    assert line.startswith("error: --base nonexistent: no such commit")
    assert not (tmp_path / "out").exists()


def test_a_path_outside_any_repository_is_bad_input(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    r = review(tmp_path, plain)
    line = one_error_line(r)
    assert line == f"error: {plain}: not a git repository (reviewflow review needs one)"


def test_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    r = review(tmp_path, tmp_path / "nowhere")
    assert "no such directory" in one_error_line(r)


def test_an_unknown_template_name_is_bad_input(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    r = review(tmp_path, repo, "--template", "nope")
    line = one_error_line(r)
    assert "no template 'nope'" in line
    assert "content, pr, security" in line


def test_a_malformed_template_file_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nchecks: [\n", encoding="utf-8")
    r = review(tmp_path, repo, "--template", bad)
    line = one_error_line(r)
    assert line.startswith(f"error: {bad}: line ")


def test_a_template_with_an_unknown_check_is_bad_input(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    typo = template(tmp_path, "typo", {"checks": {"lnit": {"when": "always"}}})
    r = review(tmp_path, repo, "--template", typo)
    line = one_error_line(r)
    assert f"{typo}: checks.lnit: unknown check 'lnit'" in line


def test_a_template_needing_an_unknown_check_is_bad_input(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    bad = template(tmp_path, "needs", {"checks": {"format": {"needs": ["nothing"]}}})
    line = one_error_line(review(tmp_path, repo, "--template", bad))
    assert str(bad) in line and "unknown check 'nothing'" in line


# ---------------------------------------------------------------------------- 10. SARIF


SARIF_REVIEWS = ["syntax_review", "secret_review", "docs_reviews", "hostile_review", "lint_reviews"]


def _reviews(request: pytest.FixtureRequest, name: str) -> list[Review]:
    value = request.getfixturevalue(name)
    return list(value.values()) if isinstance(value, dict) else [value]


@pytest.mark.parametrize("name", SARIF_REVIEWS)
def test_report_sarif_validates_against_the_sarif_schema(request, name: str) -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-04/schema#"
    validator = jsonschema.Draft4Validator(SCHEMA)
    for r in _reviews(request, name):
        errors = sorted(validator.iter_errors(r.sarif), key=lambda e: list(e.path))
        assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors]
        assert r.sarif["version"] == "2.1.0"
        (run,) = r.sarif["runs"]
        assert run["tool"]["driver"]["name"] == "reviewflow"
        assert len(run["results"]) == len(r.report["findings"])


def test_sarif_results_carry_rule_level_and_location(lint_reviews) -> None:
    r = lint_reviews["new"]
    (run,) = r.sarif["runs"]
    (result,) = run["results"]
    assert result["ruleId"] == "lint/F401"
    assert result["level"] == "error"
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "lint/F401"
    (location,) = result["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "m.py", "uriBaseId": "%SRCROOT%"}
    assert physical["region"] == {"startLine": 2}
    root = Path(r.report["change"]["root"])
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == root.as_uri() + "/"


def test_sarif_levels_follow_severities(secret_review) -> None:
    levels = {(res["ruleId"], res["level"]) for res in secret_review.sarif["runs"][0]["results"]}
    assert levels == {
        ("secrets/AWS Access Key", "error"),
        ("security/B105", "note"),
        ("format/format", "warning"),
        ("tests/no-tests", "note"),
    }
    no_file = [
        res
        for res in secret_review.sarif["runs"][0]["results"]
        if res["ruleId"] == "tests/no-tests"
    ]
    # code scanning rejects a result without a location: the repository root stands in
    assert no_file[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "."


# ---------------------------------------------------------------------------- 11. reports


REPORT_KEYS = {
    "verdict",
    "reasons",
    "run_id",
    "template",
    "generated_at",
    "change",
    "gates",
    "counts",
    "changed_line_coverage",
    "incomplete_checks",
    "approval",
    "checks",
    "findings",
}


def test_report_json_has_the_documented_keys(coverage_reviews) -> None:
    r = coverage_reviews["uncovered"]
    doc = r.report
    assert set(doc) == REPORT_KEYS
    assert doc["verdict"] in ("approve", "comment", "request_changes")
    assert re.fullmatch(r"review-pr-\S+", doc["run_id"])
    assert doc["template"] == "pr"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["generated_at"])
    assert set(doc["change"]) == {"root", "base", "base_ref", "head", "dirty", "files"}
    assert set(doc["counts"]) == {"error", "warning", "info", "hidden"}
    assert doc["approval"] is None
    for name, info in doc["checks"].items():
        assert set(info) == {"status", "summary", "metrics", "duration_s", "findings", "cached"}, (
            name
        )
        assert isinstance(info["duration_s"], float) and info["duration_s"] >= 0, name
    for finding in doc["findings"]:
        assert set(finding) == {"check", "file", "line", "severity", "rule", "message"}
        assert finding["severity"] in ("error", "warning", "info")


def test_report_md_has_verdict_tables_dag_and_timings(coverage_reviews) -> None:
    r = coverage_reviews["uncovered"]
    md = r.markdown
    assert md.startswith("## ❌ reviewflow: request changes\n")
    assert "- **changed-line coverage 50.0% (min 80%)**" in md
    assert "| check | status | summary | findings | time |" in md
    for name, info in r.report["checks"].items():
        row = re.search(rf"^\| {name} \| .+ \| (\d+) \| (\d+\.\ds) \|$", md, re.MULTILINE)
        assert row is not None, name
        assert info["status"] in row.group(0)
    assert "| `calc.py:6` | warning | uncovered | line 6 not covered by tests |" in md
    block = re.search(r"```mermaid\n(.*?)\n```", md, re.DOTALL)
    assert block is not None
    diagram = block.group(1)
    assert diagram.startswith("flowchart LR")
    nodes = dict(re.findall(r'^\s+(t\d+)\["(\w+)<br/><small>\w+</small>"\]', diagram, re.MULTILINE))
    states = dict(re.findall(r'\["(\w+)<br/><small>(\w+)</small>"\]', diagram))
    assert states == {
        "change": "succeeded",
        "syntax": "succeeded",
        "lint": "succeeded",
        "format": "succeeded",
        "tests": "succeeded",
        "summary": "failed",
    }
    ids = {name: node for node, name in nodes.items()}
    for dep, task in (
        ("syntax", "lint"),
        ("lint", "tests"),
        ("lint", "format"),
        ("tests", "summary"),
        ("format", "summary"),
    ):
        assert f"{ids[dep]} --> {ids[task]}" in diagram, (dep, task)


def test_the_review_prints_the_verdict_and_where_the_reports_are(coverage_reviews) -> None:
    r = coverage_reviews["covered"]
    assert re.search(
        r"^review review-pr-\S+ \(pr: 2 changed file\(s\) since merge-base with "
        r"main; checks: syntax, lint, format, tests\)$",
        r.stdout,
        re.MULTILINE,
    )
    assert f"report: {r.out / 'report.md'} (also report.json, report.sarif)" in r.stdout
    for name in ("report.md", "report.json", "report.sarif"):
        assert (r.out / name).is_file()


# ---------------------------------------------------------------------------- 12. templates


def test_templates_list_names_the_shipped_templates(tmp_path: Path) -> None:
    result = rf(tmp_path, "templates", "list")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert names == ["content", "pr", "security"]


@pytest.mark.parametrize("name", ["pr", "security", "content"])
def test_templates_show_prints_yaml_that_parses(tmp_path: Path, name: str) -> None:
    result = rf(tmp_path, "templates", "show", name)
    assert result.exit_code == 0
    doc = yaml.safe_load(result.stdout)
    assert doc["name"] == name
    assert isinstance(doc["checks"], dict)
    if name == "pr":
        assert list(doc["checks"])[:4] == ["syntax", "lint", "format", "tests"]
        assert doc["gates"] == {"max_errors": 0, "min_changed_line_coverage": 80}


def test_templates_show_of_an_unknown_template_is_bad_input(tmp_path: Path) -> None:
    result = rf(tmp_path, "templates", "show", "nope")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.strip().startswith("error: ")
    assert "no template 'nope'" in result.stderr


def test_templates_show_prints_a_user_file(tmp_path: Path) -> None:
    mine = template(tmp_path, "mine", {"gates": {"min_changed_line_coverage": 0}})
    result = rf(tmp_path, "templates", "show", mine)
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == {
        "name": "mine",
        "extends": "pr",
        "gates": {"min_changed_line_coverage": 0},
    }


# ---------------------------------------------------------------------------- approval gates


def test_checks_that_request_changes_end_the_review_without_asking_for_approval(
    tmp_path: Path,
) -> None:
    """No approval can override failed gates: nobody is asked, the review ends at once."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# site\n"})
    article = (
        "---\ntitle: A post\n---\n\n# A post\n\n"
        + "This article links to a page that is not there: [the guide](missing-guide.md). "
        + "It has enough words to be read as an article by the length check of the template. " * 8
        + "\n"
    )
    branch(repo, {"posts/post.md": article})
    r = review_process(tmp_path, repo, "--template", "content")
    assert r.code == 1, r
    assert r.verdict == "request_changes"
    assert r.report["approval"] is None
    assert any((f["check"], f["severity"]) == ("links", "error") for f in r.report["findings"]), (
        r.report["findings"]
    )
    assert "waiting for approval" not in r.output
    events = rf(tmp_path, "events", r.report["run_id"], "--db", tmp_path / "rf.db", "--json")
    docs = [json.loads(line) for line in events.stdout.splitlines() if line.strip()]
    states = {(e["task"], e["to"]) for e in docs if e.get("task")}
    assert ("verdict", "failed") in states and ("approval", "skipped") in states
    assert not any(t == "approval" and s == "running" for t, s in states)
