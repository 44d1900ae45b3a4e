"""Only what the change touched counts: git's hunk headers say which lines are new.

A file whose hunks only delete lines has no new line, so what the checks find in the rest of
it is debt the change did not add. A test the change broke counts wherever it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import run_review, user_template

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

OLD_DEBT = (
    "import os\n\n\ndef add(a, b):\n    return a + b\n\n\ndef _sub(a, b):\n    return a - b\n"
)
"""An unused import on line 1 (ruff F401, an error by default): debt from before the change."""
NO_SUB = "import os\n\n\ndef add(a, b):\n    return a + b\n"


def test_deleting_code_does_not_blame_the_change_for_old_debt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": OLD_DEBT})
    branch_with(repo, {"calc.py": NO_SUB})
    quiet = user_template(tmp_path, "quiet", {"checks": {"tests": {"when": "never"}}})
    done = run_review(tmp_path, repo, "--template", quiet, out=tmp_path / "out")
    assert done.code == 0, str(done)
    assert done.report["verdict"] == "approve"
    assert done.report["counts"]["hidden"] == 1  # F401 on line 1: shown by --all-findings
    every = run_review(tmp_path, repo, "--template", quiet, "--all-findings", out=tmp_path / "all")
    assert ("lint", "calc.py", 1, "F401") in every.findings


def test_a_test_the_deletion_broke_counts_even_in_a_file_of_deletions_only(
    tmp_path: Path,
) -> None:
    tests = (
        "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
        "def test_sub():\n    from calc import _sub\n\n    assert _sub(3, 2) == 1\n"
    )
    repo = make_repo(tmp_path / "repo", {"calc.py": OLD_DEBT, "test_calc.py": tests})
    branch_with(repo, {"calc.py": NO_SUB})
    done = run_review(tmp_path, repo, out=tmp_path / "out")
    assert done.code == 1, str(done)
    assert ("tests", "test_calc.py", 8, "test-failed") in done.findings
    assert ("lint", "calc.py", 1, "F401") not in done.findings


def test_a_broken_test_on_an_unchanged_line_of_a_changed_test_file_counts(
    tmp_path: Path,
) -> None:
    tests = (
        "from calc import add\n\n\ndef helper():\n    return 3\n\n\n"
        "def test_add():\n    assert add(1, 2) == helper()\n"
    )
    repo = make_repo(tmp_path / "repo", {"calc.py": NO_SUB, "test_calc.py": tests})
    branch_with(repo, {"test_calc.py": tests.replace("    return 3\n", "    return 4\n")})
    done = run_review(tmp_path, repo, out=tmp_path / "out")
    assert done.code == 1, str(done)
    assert ("tests", "test_calc.py", 8, "test-failed") in done.findings
