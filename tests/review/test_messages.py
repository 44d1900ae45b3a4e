"""Messages keep their point: a failing test says which exception and what it said, whole,
however wide pytest thinks the terminal is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import run_review

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CALC = "def add(a, b):\n    return a + b\n"
WHY = (
    "the configuration file settings.toml has no [database] table; "
    "add one with url = postgresql://localhost/app"
)
TESTS = f'''from calc import add


def test_add_handles_the_documented_large_inputs_correctly():
    raise ValueError("{WHY}")


def test_add():
    assert add(1, 2) == 4


class TestAdd:
    def test_negative_numbers_of_the_documented_range_are_added_exactly(self):
        assert add(-1, -2) == -4, "negative numbers: {WHY}"
'''


def test_a_failing_test_keeps_its_exception_type_and_message(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC})
    branch_with(repo, {"test_calc.py": TESTS})
    done = run_review(tmp_path, repo, out=tmp_path / "out")
    assert done.code == 1, str(done)
    failed = {
        f["line"]: f["message"] for f in done.report["findings"] if f["rule"] == "test-failed"
    }
    node = "test_calc.py::test_add_handles_the_documented_large_inputs_correctly"
    assert failed[4] == f"test {node} failed: ValueError: {WHY}"
    assert failed[8] == "test test_calc.py::test_add failed: AssertionError: assert 3 == 4"
    node = "test_calc.py::TestAdd::test_negative_numbers_of_the_documented_range_are_added_exactly"
    assert failed[13] == f"test {node} failed: AssertionError: negative numbers: {WHY}"
    assert f"ValueError: {WHY}" in done.markdown  # the PR comment says it too
