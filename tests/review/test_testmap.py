"""The tests check's coverage map (`impacted: map`) on throwaway repositories: real git, real
pytest under real coverage.

What a reviewer relies on: the first review runs the whole suite and leaves a map; a later
one runs only the tests that executed what changed (a test that reaches the code through a
subprocess included), plus new and changed tests; anything the map cannot account for (a
conftest, the configuration, a file that is not Python, a missing map) runs the whole suite;
and the check says which it did. A failure is never let through.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import branch_with, commit, git, make_repo, write
from reviewproc import Reviewed, only_checks, run_review, user_template

from reviewflow.review.change import collect_change
from reviewflow.review.checks import testmap
from reviewflow.review.checks import tests as tests_check
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CALC = (
    "LIMIT = 10\n\n\n"
    "def add(a, b):\n    return a + b\n\n\n"
    "def sub(a, b):\n    return a - b\n\n\n"
    "class Box:\n    size = 2\n\n    def area(self):\n        return self.size * self.size\n"
)
OTHER = "def mul(a, b):\n    return a * b\n"
FILES = {
    "calc.py": CALC,
    "other.py": OTHER,
    "tests/test_calc.py": "from calc import add, sub\n\n\n"
    "def test_add():\n    assert add(1, 2) == 3\n\n\n"
    "def test_sub():\n    assert sub(3, 1) == 2\n",
    "tests/test_box.py": "import calc\n\n\ndef test_area():\n    assert calc.Box().area() == 4\n",
    "tests/test_other.py": "from other import mul\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n",
    # Reaches other.py only through a child process: the map still knows.
    "tests/test_cli.py": "import subprocess\nimport sys\n\n\ndef test_cli():\n"
    "    code = 'import other; assert other.mul(2, 3) == 6'\n"
    "    subprocess.run([sys.executable, '-c', code], check=True)\n",
}
ALL = 5


def run(root: Path, **options: object) -> CheckResult:
    change = collect_change(root)
    opts = {"impacted": "map", "parallel": False, **options}
    ctx = CheckContext(check="tests", root=root, change=change, options=opts)
    return asyncio.run(tests_check.tests(ctx))


def change_and_run(root: Path, files: dict[str, str], **options: object) -> CheckResult:
    write(root, files)
    commit(root, "next")
    return run(root, **options)


@pytest.fixture
def mapped(tmp_path: Path) -> Path:
    """A repository whose first review ran the whole suite and left a coverage map."""
    root = make_repo(tmp_path / "repo", FILES)
    branch_with(root, {"calc.py": CALC.replace("return a + b", "return b + a")})
    first = run(root)
    assert (
        first.metrics["test_selection"] == "whole suite: no coverage map yet (this run makes one)"
    )
    assert first.metrics["tests_collected"] == ALL
    return root


def ran(result: CheckResult) -> int:
    return result.metrics["tests_collected"]


def test_the_first_review_leaves_a_map_outside_git(mapped: Path) -> None:
    [stored] = (mapped / ".reviewflow/cache/testmap").glob("*.json")
    doc = json.loads(stored.read_text(encoding="utf-8"))
    assert doc["commit"] == git(mapped, "rev-parse", "HEAD")
    tests = doc["tests"]
    other = {tests[i] for i in doc["files"]["other.py"]["tests"]}
    assert other == {"tests/test_other.py::test_mul", "tests/test_cli.py::test_cli"}
    # The user's tree shows nothing new: .reviewflow/ ignores itself.
    assert git(mapped, "status", "--porcelain") == ""


def test_a_change_to_a_function_runs_only_the_tests_that_executed_its_file(mapped: Path) -> None:
    result = change_and_run(mapped, {"calc.py": CALC.replace("return a - b", "return -b + a")})
    head = git(mapped, "rev-parse", "HEAD~1")[:7]
    assert result.metrics["test_selection"] == f"3 of {ALL} tests: coverage map of {head}"
    assert result.summary.startswith(f"3 of {ALL} tests: coverage map of {head}; 3 passed")
    assert result.metrics["whole_suite"] is False


def test_a_function_reached_through_a_subprocess_runs_that_test(mapped: Path) -> None:
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "b * a")})
    assert ran(result) == 2  # test_mul, and test_cli through its child process


def test_a_bug_in_a_changed_function_is_caught(mapped: Path) -> None:
    result = change_and_run(mapped, {"calc.py": CALC.replace("return a - b", "return a + b")})
    assert result.status == "failed"
    [failed] = [f for f in result.findings if f.rule == "test-failed"]
    assert failed.message.startswith("test tests/test_calc.py::test_sub failed")
    assert result.metrics["whole_suite"] is False


def test_a_change_at_import_time_runs_every_test_importing_the_module(mapped: Path) -> None:
    # A class attribute is read by the method, never "executed" by the test: only the import
    # graph sees who depends on it.
    result = change_and_run(mapped, {"calc.py": CALC.replace("size = 2", "size = 3")})
    assert result.status == "failed"
    assert {f.file for f in result.findings if f.rule == "test-failed"} == {"tests/test_box.py"}
    assert ran(result) == 3  # test_calc.py and test_box.py import calc; the rest do not


def test_a_new_test_file_runs(mapped: Path) -> None:
    new = {
        "tests/test_new.py": "from other import mul\n\n\n"
        "def test_zero():\n    assert mul(0, 5) == 0\n"
    }
    result = change_and_run(mapped, new)
    assert ran(result) == 1
    assert result.metrics["test_selection"].startswith(f"1 of {ALL} tests: coverage map of ")


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"tests/conftest.py": "import pytest\n"}, "whole suite: tests/conftest.py changed"),
        (
            {"pyproject.toml": "[tool.ruff]\nline-length = 99\n"},
            "whole suite: pyproject.toml changed",
        ),
        (
            {"data.json": "{}\n"},
            "whole suite: data.json changed (not Python: the map cannot say which tests read it)",
        ),
        ({"setup.py": "X = 1\n"}, "whole suite: setup.py changed"),
        ({"setup.cfg": "[tool:pytest]\n"}, "whole suite: setup.cfg changed"),
        ({"pytest.ini": "[pytest]\n"}, "whole suite: pytest.ini changed"),
        ({"tox.ini": "[tox]\n"}, "whole suite: tox.ini changed"),
        ({".coveragerc": "[run]\n"}, "whole suite: .coveragerc changed"),
        ({"requirements-dev.txt": "pytest\n"}, "whole suite: requirements-dev.txt changed"),
        ({"poetry.lock": "\n"}, "whole suite: poetry.lock changed"),
        ({"sitecustomize.py": "X = 1\n"}, "whole suite: sitecustomize.py changed"),
    ],
    ids=[
        "conftest",
        "config",
        "not-python",
        "setup.py",
        "setup.cfg",
        "pytest.ini",
        "tox.ini",
        "coveragerc",
        "requirements",
        "lock",
        "sitecustomize",
    ],
)
def test_what_the_map_cannot_follow_runs_the_whole_suite(
    mapped: Path, files: dict[str, str], reason: str
) -> None:
    result = change_and_run(mapped, {"other.py": OTHER + "\n\nX = 1\n", **files})
    assert result.metrics["test_selection"] == reason
    assert ran(result) == ALL


def test_a_missing_map_runs_the_whole_suite_and_the_next_review_uses_the_new_one(
    mapped: Path,
) -> None:
    shutil.rmtree(mapped / ".reviewflow" / "cache")
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "b * a")})
    assert result.metrics["test_selection"].startswith("whole suite: no coverage map yet")
    assert ran(result) == ALL
    # Remade at this commit: a change to other.py alone now runs its two tests.
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "(b * a)")})
    assert ran(result) == 2


def test_a_map_of_a_commit_the_repository_lacks_is_stale(mapped: Path) -> None:
    [stored] = (mapped / ".reviewflow/cache/testmap").glob("*.json")
    doc = json.loads(stored.read_text(encoding="utf-8"))
    stored.write_text(json.dumps({**doc, "commit": "0" * 40}), encoding="utf-8")
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "b * a")})
    assert result.metrics["test_selection"] == (
        "whole suite: the coverage map's commit 0000000 is not in this repository"
    )


def test_uncommitted_work_the_map_was_made_on_counts_as_unchanged(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FILES)
    write(root, {"other.py": OTHER.replace("a * b", "b * a")})  # dirty, never committed
    assert run(root).metrics["whole_suite"] is True
    # Nothing differs from what the suite ran on: no test needs to run again.
    assert run(root).summary.startswith("skipped: no test executed the changed files")
    write(root, {"other.py": OTHER.replace("a * b", "(b * a)")})
    result = run(root)
    assert ran(result) == 2 and result.metrics["whole_suite"] is False


def test_the_option_is_checked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FILES)
    branch_with(root, {"other.py": OTHER + "\n"})
    with pytest.raises(Exception, match="option 'impacted' must be true, false or map"):
        run(root, impacted="sometimes")


def test_a_command_that_is_not_pytest_runs_whole(tmp_path: Path) -> None:
    # `impacted: map` is the pr template's default: a unittest project still gets reviewed.
    root = make_repo(tmp_path / "repo", FILES)
    branch_with(root, {"other.py": OTHER + "\n"})
    result = run(root, command=["unittest", "discover", "-s", "tests", "-t", "."])
    assert result.metrics["test_selection"] == "whole suite: a coverage map needs a pytest command"
    assert result.summary.startswith("whole suite: a coverage map needs a pytest command; ")
    assert not (root / testmap.MAP_DIR).exists()


def test_a_map_of_another_test_command_is_stale(mapped: Path) -> None:
    result = change_and_run(
        mapped, {"other.py": OTHER.replace("a * b", "b * a")}, command=["pytest", "-q", "tests"]
    )
    assert (
        result.metrics["test_selection"] == "whole suite: no coverage map yet (this run makes one)"
    )
    # The first command's map is kept, and still is that command's.
    [stored] = [
        p
        for p in (mapped / testmap.MAP_DIR).glob("*.json")
        if json.loads(p.read_text(encoding="utf-8"))["command"] == ["pytest", "-q"]
    ]
    doc = json.loads(stored.read_text(encoding="utf-8"))
    stored.write_text(json.dumps({**doc, "command": ["pytest", "-x"]}), encoding="utf-8")
    result = run(mapped)
    assert result.metrics["test_selection"] == (
        "whole suite: the coverage map was made with another test command"
    )
    assert ran(result) == ALL


def test_an_unreadable_map_runs_the_whole_suite_and_is_remade(mapped: Path) -> None:
    [stored] = (mapped / testmap.MAP_DIR).glob("*.json")
    stored.write_text('{"format": 1, "files": ', encoding="utf-8")  # cut short
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "b * a")})
    assert result.metrics["test_selection"].startswith("whole suite: coverage map unreadable")
    assert ran(result) == ALL
    assert testmap.load(mapped, ["pytest", "-q"]) is not None


def test_a_map_made_in_another_python_environment_is_stale(
    mapped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plugin or library the tests import came in through PYTHONPATH: no file of the
    # repository changed, yet a test may now fail.
    extra = tmp_path / "site"
    extra.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(extra))
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "b * a")})
    assert result.metrics["test_selection"] == (
        "whole suite: the Python environment changed since the coverage map (interpreter, "
        "installed packages or PYTHONPATH)"
    )
    assert ran(result) == ALL
    # Remade in this environment: the next change selects again.
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "(b * a)")})
    assert ran(result) == 2


def test_a_test_the_map_named_that_is_gone_runs_the_whole_suite(mapped: Path) -> None:
    # As after a parametrisation changed: the map names a node id pytest no longer finds.
    [stored] = (mapped / testmap.MAP_DIR).glob("*.json")
    doc = json.loads(stored.read_text(encoding="utf-8"))
    doc["tests"] = [t.replace("::test_cli", "::test_gone") for t in doc["tests"]]
    stored.write_text(json.dumps(doc), encoding="utf-8")
    result = change_and_run(mapped, {"other.py": OTHER.replace("a * b", "b * a")})
    assert result.metrics["test_selection"] == (
        "whole suite: a test the coverage map named no longer exists"
    )
    assert ran(result) == ALL


def test_a_helper_in_a_test_file_reaches_the_tests_that_use_it(tmp_path: Path) -> None:
    files = {
        **FILES,
        "tests/test_helpers.py": "def check(x):\n    assert x == 6\n\n\n"
        "def test_check():\n    check(6)\n",
        "tests/test_uses.py": "from other import mul\nfrom test_helpers import check\n\n\n"
        "def test_uses():\n    check(mul(2, 3))\n",
        "tests/test_constant.py": "from test_helpers import check\n\n\n"
        "def test_constant():\n    assert check\n",
    }
    root = make_repo(tmp_path / "repo", files)
    branch_with(root, {"other.py": OTHER + "\n"})
    assert ran(run(root)) == ALL + 3
    # The helper now fails for what test_uses passes it: test_uses must run, and fail.
    result = change_and_run(
        root, {"tests/test_helpers.py": files["tests/test_helpers.py"].replace("== 6", "== 7")}
    )
    assert result.status == "failed"
    assert {f.file for f in result.findings if f.rule == "test-failed"} == {
        "tests/test_helpers.py",
        "tests/test_uses.py",
    }
    # test_constant imports the module without running the helper: it runs too.
    assert ran(result) == 3


def test_a_renamed_module_runs_every_test_importing_the_old_name(tmp_path: Path) -> None:
    # test_limit imports calc and executes none of its functions: no coverage context has it.
    limit = {"tests/test_limit.py": "import calc\n\n\ndef test_limit():\n    assert calc.LIMIT\n"}
    root = make_repo(tmp_path / "repo", {**FILES, **limit})
    branch_with(root, {"other.py": OTHER + "\n"})
    assert ran(run(root)) == ALL + 1
    # Same functions, one body changed, new file name: every importer of `calc` breaks.
    git(root, "mv", "calc.py", "calc2.py")
    result = change_and_run(root, {"calc2.py": CALC.replace("return a - b", "return -b + a")})
    assert result.status == "failed"
    broken = {f.file for f in result.findings if f.rule in ("test-failed", "test-error")}
    assert broken == {"tests/test_calc.py", "tests/test_box.py", "tests/test_limit.py"}


def test_a_deleted_module_fails_the_tests_importing_it(mapped: Path) -> None:
    (mapped / "other.py").unlink()
    result = change_and_run(mapped, {})
    assert result.status == "failed"
    assert {f.file for f in result.findings if f.rule in ("test-failed", "test-error")} >= {
        "tests/test_other.py"
    }


def test_body_lines_are_the_statements_after_a_signature() -> None:
    source = (
        b"X = 1\n"  # 1
        b"def f(a,\n"  # 2
        b"      b):\n"  # 3
        b"    return a\n"  # 4
        b"class C:\n"  # 5
        b"    y = 2\n"  # 6
        b"    def g(self): return 1\n"  # 7: body on the def line
        b"    def h(self):\n"  # 8
        b"        @dec\n"  # 9
        b"        def inner():\n"  # 10
        b"            pass\n"  # 11
    )
    assert testmap._body_lines(source) == {4, 9, 10, 11}
    assert testmap._body_lines(b"def (:\n") is None


def test_a_selection_stays_within_the_suites_own_paths(tmp_path: Path) -> None:
    outside = {"slow/test_slow.py": "from calc import add\n\n\ndef test_slow():\n    assert 0\n"}
    root = make_repo(tmp_path / "repo", {**FILES, **outside})
    branch_with(root, {"other.py": OTHER + "\n"})
    command = ["pytest", "-q", "tests"]
    assert ran(run(root, command=command)) == ALL  # slow/ is not part of this suite
    result = change_and_run(
        root, {"calc.py": CALC.replace("LIMIT = 10", "LIMIT = 11")}, command=command
    )
    # Import time: the import graph's choice among the suite's test files, not slow/'s.
    assert result.status == "passed" and ran(result) == 3


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "xdist"])
def test_a_project_measuring_branches_still_gets_its_subprocesses_mapped(
    tmp_path: Path, parallel: bool
) -> None:
    if parallel:
        pytest.importorskip("xdist")
    config = {"pyproject.toml": "[tool.coverage.run]\nbranch = true\nparallel = true\n"}
    root = make_repo(tmp_path / "repo", {**FILES, **config})
    branch_with(root, {"other.py": OTHER + "\n"})
    assert ran(run(root, parallel=parallel)) == ALL
    doc = testmap.load(root, ["pytest", "-q"])
    assert doc is not None
    tests = doc["tests"]
    other = {tests[i] for i in doc["files"]["other.py"]["tests"]}
    assert other == {"tests/test_other.py::test_mul", "tests/test_cli.py::test_cli"}


def test_functions_the_module_runs_while_imported_are_not_body_only() -> None:
    source = (
        b"import functools\n"
        b"def _build():\n"  # called at module level
        b"    return {1: 2}\n"
        b"def register(f):\n"  # a decorator: runs at import
        b"    return f\n"
        b"def default():\n"  # a default value: evaluated at import
        b"    return 3\n"
        b"def plain():\n"  # runs only when called
        b"    return 4\n"
        b"TABLE = _build()\n"
        b"@register\n"
        b"def g(x=default()):\n"
        b"    return plain()\n"
    )
    assert testmap._import_time_calls(source) == {"_build", "register", "default"}
    assert testmap._enclosing(source, {3}) == {"_build"}
    assert testmap._enclosing(source, {9}) == {"plain"}


# ------------------------------------------------------- the pr template, as a user runs it


def _tests_check(reviewed: Reviewed) -> dict[str, object]:
    return reviewed.report["checks"]["tests"]


def test_the_pr_template_records_the_map_then_reviews_a_re_push_with_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FILES)
    branch_with(root, {"other.py": OTHER.replace("a * b", "b * a")})
    keep = only_checks("pr", "syntax", "lint", "tests")
    template = user_template(tmp_path, "tests-only", keep)
    first = run_review(tmp_path, root, "--base", "main", "--template", template, out=tmp_path / "1")
    assert first.code == 0, first
    assert _tests_check(first)["summary"].startswith(
        "whole suite: no coverage map yet (this run makes one); 5 passed"
    )
    # A re-push: one line of calc.py, and a bug in it. Only calc's three tests run; one fails.
    write(root, {"calc.py": CALC.replace("return a - b", "return a + b")})
    commit(root, "re-push")
    second = run_review(
        tmp_path, root, "--base", "main", "--template", template, out=tmp_path / "2"
    )
    assert second.code == 1, second
    summary = _tests_check(second)["summary"]
    assert summary.startswith(f"3 of {ALL} tests: coverage map of "), summary
    assert second.report["verdict"] == "request_changes"
    assert ("tests", "tests/test_calc.py") in {(f[0], f[1]) for f in second.findings}
    # --no-cache trusts nothing stored: the whole suite, and the map remade.
    third = run_review(
        tmp_path, root, "--base", "main", "--template", template, "--no-cache", out=tmp_path / "3"
    )
    assert _tests_check(third)["summary"].startswith(
        "whole suite: --no-cache: the coverage map is not used (this run makes one); 4 passed, "
        "1 failed"
    )
    assert third.code == 1, third


def test_impacted_false_in_the_project_settings_runs_the_whole_suite(tmp_path: Path) -> None:
    settings = {
        "pyproject.toml": "[tool.reviewflow.review.checks.tests]\noptions = {impacted = false}\n"
    }
    root = make_repo(tmp_path / "repo", {**FILES, **settings})
    branch_with(root, {"other.py": OTHER.replace("a * b", "b * a")})
    template = user_template(tmp_path, "tests-only", only_checks("pr", "syntax", "lint", "tests"))
    for out in ("1", "2"):
        reviewed = run_review(
            tmp_path, root, "--template", template, "--no-cache", out=tmp_path / out
        )
        assert reviewed.code == 0, reviewed
        summary = _tests_check(reviewed)["summary"]
        assert summary.startswith("5 passed, 0 failed"), summary
    assert not (root / testmap.MAP_DIR).exists()


def test_a_small_selection_runs_without_xdist_workers(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    pytest.importorskip("pytest_cov")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("parallel: auto runs serially on one core anyway")
    # The project names pytest-xdist: the whole suite runs in 2+ workers.
    config = {
        "pyproject.toml": '[project]\nname = "p"\n'
        'optional-dependencies = {dev = ["pytest-xdist"]}\n'
    }
    root = make_repo(tmp_path / "repo", {**FILES, **config})
    branch_with(root, {"other.py": OTHER + "\n"})
    log = tmp_path / "tests.log"

    def logged_run() -> tuple[CheckResult, str]:
        log.unlink(missing_ok=True)
        ctx = CheckContext(
            check="tests",
            root=root,
            change=collect_change(root),
            options={"impacted": "map", "parallel": "auto"},
            log_path=log,
        )
        result = asyncio.run(tests_check.tests(ctx))
        return result, log.read_text(encoding="utf-8").splitlines()[0]

    first, argv = logged_run()
    assert ran(first) == ALL and " -n " in argv
    write(root, {"other.py": OTHER.replace("a * b", "b * a")})
    commit(root, "next")
    second, argv = logged_run()
    # Two tests: starting workers would cost more than running them.
    assert ran(second) == 2 and second.metrics["whole_suite"] is False
    # No workers: `-n 0` overrides any `-n` in the project's addopts (coverage run measures
    # this process only).
    assert " -n 0 " in argv or " -n " not in argv, argv


@pytest.mark.parametrize("how", ["relative", "absolute", "current folder"])
def test_the_plugin_is_importable_by_the_suite_of_a_checkout_found_through_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # `PYTHONPATH=lib python -m reviewflow review <repo>` from the folder holding `lib` (a
    # checkout used without pip): the recording run goes on in the repository, where `lib`
    # names nothing, and pytest failed to import the plugin (exit 4: no map was ever made).
    home = Path(testmap.__file__).resolve().parents[3]
    here = tmp_path / "here"
    here.mkdir()
    (here / "lib").symlink_to(home)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(here / "lib" if how == "current folder" else here)
    pythonpath = {"relative": "lib", "absolute": str(home), "current folder": ""}[how]
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    env = {**os.environ, **testmap.recorder(tmp_path, tmp_path / ".coverage", repo).env}
    # -S: no site-packages, so reviewflow is found through PYTHONPATH or not at all
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('reviewflow') is None)"
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=repo, env=env, check=False)
    assert done.returncode == 0
    assert env["PYTHONPATH"].split(os.pathsep)[0] == (pythonpath or str(home))  # theirs first
