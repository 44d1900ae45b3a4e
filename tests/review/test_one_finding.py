"""One problem, one finding: a reader fixes it once and sees it counted once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import only_checks, run_review, user_template

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CALC = "def add(a, b):\n    return a + b\n"


def test_a_syntax_error_is_one_finding_not_one_per_tool(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC})
    branch_with(repo, {"calc.py": CALC + "\n\ndef _mul(a, b:\n    return a * b\n"})
    quiet = user_template(tmp_path, "quiet", {"checks": {"tests": {"when": "never"}}})
    done = run_review(tmp_path, repo, "--template", quiet, out=tmp_path / "out")
    assert done.code == 1, str(done)
    parse = [f for f in done.report["findings"] if f["rule"] == "syntax-error"]
    assert [(f["check"], f["file"], f["line"]) for f in parse] == [("syntax", "calc.py", 5)]
    assert done.report["checks"]["lint"]["status"] == "passed"  # ruff ran, said nothing new
    assert done.report["counts"]["error"] == 1


def test_a_missing_title_is_one_finding_in_the_content_review(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    words = " ".join(["The review reads every line of this short post."] * 20)
    branch_with(repo, {"posts/untitled.md": f"---\ndate: 2024-03-01\n---\n\n{words}\n"})
    checks = only_checks("content", "metadata", "headings", "length")
    content = user_template(tmp_path, "article", checks, extends="content")
    done = run_review(tmp_path, repo, "--template", content, out=tmp_path / "out")
    assert done.code == 1, str(done)
    about_title = [
        (f["check"], f["rule"])
        for f in done.report["findings"]
        if "title" in f["message"] or "title" in f["rule"]
    ]
    assert about_title == [("metadata", "metadata-required")]
