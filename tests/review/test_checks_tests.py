"""The `tests` check on real repositories: real pytest under real coverage.

What a reviewer relies on: the coverage number is about the lines the change added, the
uncovered ones are named with their line range, a failing test fails the check with the test
named, and the user's repository is left as it was (no .coverage, no caches).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, git, make_repo, write

from reviewflow.errors import TaskFailed
from reviewflow.review.change import Change, collect_change
from reviewflow.review.checks import tests as tests_check
from reviewflow.review.checks.base import CheckContext, ToolMissing
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
MUL = "\n\ndef mul(a, b):\n    # the product\n    r = a * b\n    return r\n"


def run(root: Path, change: Change, **options) -> CheckResult:
    ctx = CheckContext(check="tests", root=root, change=change, options=options)
    return asyncio.run(tests_check.tests(ctx))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"calc.py": CALC, "tests/test_calc.py": TEST_CALC})


def test_an_untested_new_function_is_reported_line_by_line(repo: Path) -> None:
    change = branch_with(repo, {"calc.py": CALC + MUL})
    assert change.get("calc.py").lines == [(7, 12)]
    result = run(repo, change)

    # Added executable lines: 9 (def, run at import), 11 and 12 (never run) -> 1 of 3.
    assert result.status == "passed"
    assert result.metrics["changed_line_coverage"] == 33.33
    assert result.metrics["changed_executable_lines"] == 3
    assert result.metrics["uncovered_changed_lines"] == 2
    assert result.metrics["tests_passed"] == 1 and result.metrics["tests_failed"] == 0
    # Only the changed files are traced: calc.py, 7 statements, 4 run (3 defs + add's
    # return). The test file beside it is not measured.
    assert result.metrics["total_coverage"] == 57.14
    [finding] = result.findings
    assert (finding.file, finding.line, finding.rule, finding.severity) == (
        "calc.py",
        11,
        "uncovered",
        "warning",
    )
    assert finding.message == "lines 11-12 not covered by tests"
    # The user's tree is as it was: no data file, no cache, no bytecode.
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_the_projects_own_coverage_setup_does_not_interfere(tmp_path: Path) -> None:
    """Parallel data files are combined; a pytest-cov threshold in addopts is switched off."""
    root = make_repo(
        tmp_path / "repo",
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n"
            "addopts = '--cov=calc --cov-fail-under=100'"
            "\n\n[tool.coverage.run]\nparallel = true\nbranch = true\n"
            "source = ['elsewhere']\n",
            "calc.py": CALC,
            "tests/test_calc.py": TEST_CALC,
        },
    )
    result = run(root, branch_with(root, {"calc.py": CALC + MUL}))
    assert result.status == "passed"
    assert result.metrics["changed_line_coverage"] == 33.33
    assert [f.line for f in result.findings] == [11]
    assert git(root, "status", "--porcelain", "--ignored") == ""


def test_covered_changes_score_100_and_test_files_do_not_count(repo: Path) -> None:
    test = (
        TEST_CALC.replace("import add", "import add, mul")
        + "\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
    )
    change = branch_with(repo, {"calc.py": CALC + MUL, "tests/test_calc.py": test})
    result = run(repo, change)
    assert result.status == "passed" and result.findings == []
    assert result.metrics["changed_line_coverage"] == 100.0
    assert result.metrics["changed_executable_lines"] == 3
    assert result.metrics["tests_passed"] == 2


def test_a_failing_test_fails_the_check_and_names_the_test(repo: Path) -> None:
    test = (
        TEST_CALC + "\n\nclass TestSub:\n    def test_sub(self):\n"
        "        from calc import sub\n        assert sub(3, 1) == 1\n"
    )
    change = branch_with(
        repo, {"calc.py": CALC.replace("a - b", "a - b  # changed"), "tests/test_calc.py": test}
    )
    result = run(repo, change)
    assert result.status == "failed"
    assert result.metrics["tests_failed"] == 1 and result.metrics["tests_passed"] == 1
    [finding] = result.findings
    assert finding.rule == "test-failed" and finding.severity == "error"
    assert (finding.file, finding.line) == ("tests/test_calc.py", 9)
    assert "tests/test_calc.py::TestSub::test_sub" in finding.message
    assert "assert 2 == 1" in finding.message
    # The changed line ran (inside the failing test): covered.
    assert result.metrics["changed_line_coverage"] == 100.0


def test_a_test_module_that_does_not_import_is_a_test_error(repo: Path) -> None:
    change = branch_with(
        repo, {"calc.py": CALC + MUL, "tests/test_broken.py": "from calc import nothing\n"}
    )
    result = run(repo, change)
    assert result.status == "failed"
    errors = [f for f in result.findings if f.rule == "test-error"]
    assert [(f.file, f.line) for f in errors] == [("tests/test_broken.py", None)]
    assert errors[0].message.startswith(
        "test tests/test_broken.py errored: ImportError: cannot import name 'nothing'"
    )


def test_only_non_python_changes_skip(repo: Path) -> None:
    change = branch_with(repo, {"README.md": "# more\n"})
    result = run(repo, change)
    assert result.status == "skipped"
    assert result.summary == "skipped: no Python files changed"


def test_syntax_errors_upstream_skip(repo: Path) -> None:
    change = branch_with(repo, {"calc.py": CALC + MUL})
    ctx = CheckContext(
        check="tests",
        root=repo,
        change=change,
        upstream={"syntax": CheckResult(check="syntax", status="failed")},
    )
    result = asyncio.run(tests_check.tests(ctx))
    assert result.status == "skipped" and "syntax errors" in result.summary


def test_no_tests_collected_is_an_info_finding(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"calc.py": CALC})
    change = branch_with(root, {"calc.py": CALC + MUL})
    result = run(root, change)
    assert result.status == "passed"
    assert [(f.rule, f.severity, f.message) for f in result.findings] == [
        ("no-tests", "info", "no tests found")
    ]
    assert result.metrics["tests_collected"] == 0
    assert result.metrics["changed_line_coverage"] is None


def test_a_pytest_usage_error_breaks_the_check(repo: Path) -> None:
    change = branch_with(repo, {"calc.py": CALC + MUL})
    with pytest.raises(TaskFailed, match=r"(?s)exit 4.*no-such-flag") as caught:
        run(repo, change, args=["--no-such-flag"])
    assert caught.value.retryable is False


def test_command_option_and_minimum_coverage(repo: Path) -> None:
    write(repo, {"other_tests/test_fail.py": "def test_fail():\n    assert False\n"})
    change = branch_with(repo, {"calc.py": CALC + MUL})
    # Only tests/ runs: the failing test in other_tests/ is not collected.
    result = run(repo, change, command=["pytest", "-q", "tests/"], min_coverage=50)
    assert result.metrics["tests_failed"] == 0
    assert result.status == "failed"
    [below] = [f for f in result.findings if f.rule == "coverage-below-threshold"]
    assert below.message == "33.33% of changed lines covered (minimum 50%)"


def test_src_layout_module_that_no_test_imports_counts_as_uncovered(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "repo",
        {
            "pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['src']\n",
            "src/pkg/__init__.py": "",
            "src/pkg/calc.py": CALC,
            "tests/test_calc.py": TEST_CALC.replace("from calc", "from pkg.calc"),
        },
    )
    change = branch_with(
        root, {"src/pkg/new.py": '"""Doc."""\n\nX = 1\n\n\ndef f():\n    return X\n'}
    )
    result = run(root, change)
    # Statements: X = 1, def f, return X (the docstring is not one).
    assert result.metrics["changed_executable_lines"] == 3
    assert result.metrics["changed_line_coverage"] == 0.0
    [finding] = result.findings
    assert (finding.file, finding.line, finding.message) == (
        "src/pkg/new.py",
        3,
        "lines 3-7 not covered by tests",
    )


def test_hostile_file_names_are_never_run(repo: Path) -> None:
    change = branch_with(
        repo, {"$(touch pwned).py": "x = 1\n", "-rf.py": "y = 2\n", "calc.py": CALC + MUL}
    )
    result = run(repo, change)
    assert result.status == "passed"
    assert not (repo / "pwned").exists() and not (repo.parent / "pwned").exists()
    assert {f.file for f in result.findings} <= {"calc.py", "$(touch pwned).py", "-rf.py"}


def test_uncommitted_work_is_measured(repo: Path) -> None:
    write(repo, {"calc.py": CALC + MUL})
    result = run(repo, collect_change(repo))
    assert result.metrics["changed_line_coverage"] == 33.33


def test_missing_runs_group_untested_lines_around_blank_ones() -> None:
    runs = tests_check._missing_runs(
        [(1, 10), (20, 22)], executed={1, 5, 21}, missing={2, 4, 6, 7, 9, 20, 22}
    )
    assert runs == [(2, 4), (6, 9), (20, 20), (22, 22)]


def test_pytest_summary_counts() -> None:
    out = "..F\nFAILED t.py::x - boom\n2 failed, 5 passed, 1 skipped, 3 errors in 0.31s\n"
    assert tests_check._counts(out) == {"failed": 2, "passed": 5, "skipped": 1, "error": 3}
    assert tests_check._counts("no tests ran in 0.01s") == {}
    assert tests_check._counts("garbage") == {}


def test_coverage_paths_map_back_to_the_repository(tmp_path: Path) -> None:
    cov = {
        "files": {
            str(tmp_path / "pkg" / "a.py"): {"executed_lines": [1], "missing_lines": [2]},
            "b.py": {"executed_lines": [3], "missing_lines": []},
            "/elsewhere/c.py": {"executed_lines": [1], "missing_lines": []},
        }
    }
    assert tests_check._line_data(cov, tmp_path) == {"pkg/a.py": ({1}, {2}), "b.py": ({3}, set())}


# -- the environment, not the change: skipped with the package to install


def test_addopts_naming_a_plugin_that_is_not_installed_skip_with_its_package(
    tmp_path: Path,
) -> None:
    """`--reruns` comes from pytest-rerunfailures, which this environment lacks."""
    root = make_repo(
        tmp_path / "repo",
        {
            "calc.py": CALC,
            "tests/test_calc.py": TEST_CALC,
            "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '--reruns=2'\n",
        },
    )
    change = branch_with(root, {"calc.py": CALC + MUL})
    with pytest.raises(ToolMissing) as caught:
        run(root, change)
    assert str(caught.value) == (
        "the project's pytest options (--reruns=2) need pytest-rerunfailures, not installed: "
        "pip install pytest-rerunfailures"
    )


def test_an_ini_option_of_an_absent_plugin_with_warnings_as_errors_skips(tmp_path: Path) -> None:
    """`timeout = 120` needs pytest-timeout; with filterwarnings=error pytest cannot start."""
    pyproject = (
        "[tool.pytest.ini_options]\ntimeout = 120\nasyncio_mode = 'auto'\n"
        "filterwarnings = ['error']\n"
    )
    root = make_repo(
        tmp_path / "repo",
        {"calc.py": CALC, "tests/test_calc.py": TEST_CALC, "pyproject.toml": pyproject},
    )
    change = branch_with(root, {"calc.py": CALC + MUL})
    installed = importlib.util.find_spec("pytest_timeout") is not None
    if installed:  # the dev environment has pytest-timeout: only asyncio_mode is unknown
        expected = "(asyncio_mode) needs pytest-asyncio, not installed: pip install pytest-asyncio"
    else:
        expected = (
            "(asyncio_mode, timeout) needs pytest-asyncio, pytest-timeout, not installed: "
            "pip install pytest-asyncio pytest-timeout"
        )
    with pytest.raises(ToolMissing) as caught:
        run(root, change)
    assert str(caught.value) == f"the project's pytest config {expected}"


def test_tests_importing_an_absent_package_skip_naming_it(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "calc.py": CALC + MUL,
            "tests/test_more.py": "import rf_absent_pkg.sub\n\n\ndef test_x():\n    pass\n",
            "tests/test_yaml.py": "import yaml_absent_mod\n",
        },
    )
    with pytest.raises(ToolMissing) as caught:
        run(repo, change)
    assert str(caught.value) == (
        "the tests import rf_absent_pkg, yaml_absent_mod, not installed: "
        "pip install rf_absent_pkg yaml_absent_mod"
    )


def test_an_absent_package_does_not_hide_a_failing_test(repo: Path) -> None:
    change = branch_with(
        repo,
        {
            "calc.py": CALC.replace("a + b", "a - b"),
            "tests/test_more.py": "import rf_absent_pkg\n",
        },
    )
    result = run(repo, change)
    assert result.status == "failed"
    assert [(f.rule, f.severity) for f in result.findings] == [
        ("test-failed", "error"),
        ("test-deps-missing", "info"),
    ]
    assert result.findings[1].message.endswith("pip install rf_absent_pkg")
    assert result.metrics["incomplete"] is True


def test_a_module_of_the_project_that_is_missing_is_the_changes_fault(repo: Path) -> None:
    """The change deleted a module the tests import: an error, not a missing package."""
    (repo / "helpers.py").write_text("X = 1\n")
    (repo / "tests/test_h.py").write_text(
        "from helpers import X\n\n\ndef test_h():\n    assert X\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "helpers")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "helpers.py").unlink()
    write(repo, {"calc.py": CALC + MUL})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "drop helpers")
    change = collect_change(repo)
    result = run(repo, change)
    assert result.status == "failed"
    assert [f.rule for f in result.findings if f.severity == "error"] == ["test-error"]


# -- one timeout, the template's; nothing left behind


def test_the_checks_timeout_stops_the_suite_once_and_says_so(repo: Path, tmp_path: Path) -> None:
    """No retry (a second try takes as long) and the tools' TMPDIR is the attempt's own."""
    tmp_dir = tmp_path / "attempt-tmp"
    slow = (
        "import os, tempfile, time\n\n\ndef test_slow():\n"
        "    open(os.path.join(tempfile.gettempdir(), 'started'), 'w').close()\n"
        "    time.sleep(600)\n"
    )
    change = branch_with(repo, {"calc.py": CALC + MUL, "tests/test_slow.py": slow})
    ctx = CheckContext(check="tests", root=repo, change=change, timeout=3.0, tmp_dir=tmp_dir)
    with pytest.raises(TaskFailed) as caught:
        asyncio.run(tests_check.tests(ctx))
    assert caught.value.retryable is False
    assert str(caught.value).endswith(
        "did not finish within 3s (the timeout of check 'tests': raise it in the template)"
    )


def test_a_timeout_option_is_refused_in_favour_of_the_checks_timeout(repo: Path) -> None:
    change = branch_with(repo, {"calc.py": CALC + MUL})
    with pytest.raises(TaskFailed, match=r"checks\.tests\.timeout"):
        run(repo, change, timeout=5)


def test_the_tools_temporary_files_go_to_the_attempts_folder(repo: Path, tmp_path: Path) -> None:
    tmp_dir = tmp_path / "attempt-tmp"
    probe = (
        "import tempfile\n\n\ndef test_tmp():\n"
        f"    assert tempfile.gettempdir() == {str(tmp_dir)!r}\n"
    )
    change = branch_with(repo, {"calc.py": CALC + MUL, "tests/test_tmp.py": probe})
    ctx = CheckContext(check="tests", root=repo, change=change, tmp_dir=tmp_dir)
    result = asyncio.run(tests_check.tests(ctx))
    assert result.metrics["tests_passed"] == 2, result


# -- test impact and parallel runs

PKG = {
    "pkg/__init__.py": "",
    "pkg/a.py": "def one():\n    return 1\n",
    "pkg/b.py": "def two():\n    return 2\n",
    "tests/test_a.py": "from pkg.a import one\n\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_b.py": "def test_two():\n    from pkg import b\n\n    assert b.two() == 3\n",
}


@pytest.fixture
def pkg_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", PKG)


def test_impacted_runs_only_the_tests_importing_the_changed_module(pkg_repo: Path) -> None:
    change = branch_with(pkg_repo, {"pkg/a.py": PKG["pkg/a.py"] + "\n\ndef uno():\n    return 1\n"})
    result = run(pkg_repo, change, impacted=True)
    # test_b (broken before the change, importing only pkg.b) is not run.
    assert result.metrics["tests_collected"] == 1 and result.metrics["tests_failed"] == 0
    # Without selection the whole suite runs, test_b included.
    assert run(pkg_repo, change).metrics["tests_failed"] == 1


def test_impacted_follows_imports_inside_functions(pkg_repo: Path) -> None:
    change = branch_with(pkg_repo, {"pkg/b.py": PKG["pkg/b.py"].replace("2", "3")})
    result = run(pkg_repo, change, impacted=True)
    assert result.metrics["tests_collected"] == 1 and result.metrics["tests_passed"] == 1


@pytest.mark.parametrize(
    "files",
    [
        {"tests/conftest.py": "import pytest\n"},
        {"pkg/c.py": "def three():\n    return 3\n"},  # imported by no test: reached how?
    ],
    ids=["conftest", "unimported-module"],
)
def test_impacted_runs_everything_when_imports_cannot_tell(
    pkg_repo: Path, files: dict[str, str]
) -> None:
    change = branch_with(pkg_repo, {"pkg/a.py": PKG["pkg/a.py"] + "\nX = 1\n", **files})
    result = run(pkg_repo, change, impacted=True)
    assert result.metrics["tests_collected"] == 2 and result.metrics["tests_failed"] == 1


def test_parallel_runs_measure_the_changed_lines_as_serial_ones_do(pkg_repo: Path) -> None:
    pytest.importorskip("xdist")
    change = branch_with(pkg_repo, {"pkg/a.py": PKG["pkg/a.py"] + MUL})
    serial = run(pkg_repo, change, parallel=False)
    parallel = run(pkg_repo, change, parallel=True)
    keys = ("changed_line_coverage", "changed_executable_lines", "tests_failed", "tests_passed")
    assert [parallel.metrics[k] for k in keys] == [serial.metrics[k] for k in keys]
    assert serial.metrics["changed_line_coverage"] == 33.33
    assert [f.rule for f in parallel.findings] == [f.rule for f in serial.findings]


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "xdist"])
def test_workers_in_the_projects_addopts_do_not_hide_the_changed_lines(
    tmp_path: Path, parallel: bool
) -> None:
    """This repository's own shape: addopts start pytest-xdist workers under pytest-cov with a
    threshold; a serial review (1 core, `parallel: false`) still measures the changed lines."""
    pytest.importorskip("pytest_cov")
    pytest.importorskip("xdist")
    pyproject = (
        "[project]\nname = 'pkg'\nversion = '0'\n"
        "[project.optional-dependencies]\ndev = ['pytest-xdist']\n"
        "[tool.pytest.ini_options]\n"
        "addopts = '-n 2 --dist loadgroup --cov=pkg --cov-report=term --cov-fail-under=100'\n"
    )
    root = make_repo(tmp_path / "repo", {**PKG, "pyproject.toml": pyproject})
    change = branch_with(root, {"pkg/a.py": PKG["pkg/a.py"] + MUL})
    result = run(root, change, parallel=parallel)
    assert result.metrics["changed_line_coverage"] == 33.33
    assert result.metrics["tests_passed"] == 1 and result.metrics["tests_failed"] == 1


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "xdist"])
def test_a_change_to_tests_only_is_not_judged_by_the_projects_coverage_gate(
    tmp_path: Path, parallel: bool
) -> None:
    """This repository's own shape: addopts carry pytest-cov and a threshold, the review runs a
    part of the suite, and the change touches only a test file (nothing to measure)."""
    pytest.importorskip("pytest_cov")
    if parallel:
        pytest.importorskip("xdist")
    root = make_repo(
        tmp_path / "repo",
        {
            **PKG,
            "tests/test_b.py": PKG["tests/test_b.py"].replace("== 3", "== 2"),
            "pyproject.toml": "[tool.pytest.ini_options]\n"
            "addopts = '--cov=pkg --cov-report=term --cov-fail-under=100'\n",
        },
    )
    extra = "\n\ndef test_one_again():\n    from pkg.a import one\n\n    assert one() == 1\n"
    change = branch_with(root, {"tests/test_a.py": PKG["tests/test_a.py"] + extra})
    result = run(root, change, parallel=parallel, command=["pytest", "-q", "tests/test_a.py"])
    assert result.status == "passed", result.summary
    assert result.findings == []
    assert result.metrics["tests_passed"] == 2 and result.metrics["tests_failed"] == 0


def test_a_conftest_importing_an_absent_package_skips_naming_it(repo: Path) -> None:
    change = branch_with(
        repo, {"calc.py": CALC + MUL, "tests/conftest.py": "import rf_absent_plugin_pkg\n"}
    )
    with pytest.raises(ToolMissing) as caught:
        run(repo, change)
    assert str(caught.value).endswith("not installed: pip install rf_absent_plugin_pkg")
