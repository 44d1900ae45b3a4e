"""Spelling without noise: codespell's known misspellings, and the project's own words known.

A technical article is full of words no dictionary has (kubectl, asyncio, the project's own
function names). codespell reports only words it knows as misspellings; the dictionary engine
(pyspellchecker) learns the repository's vocabulary from its code and other docs first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import only_checks, run_review, user_template

from reviewflow.review.change import Change
from reviewflow.review.checks import content
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.findings import CheckResult

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("codespell_lib") is None, reason="codespell is not installed"
    ),
]

PROJECT = {
    "README.md": "# Frobber\n\nThe frobber uses zorblax queues.\n",
    "frobber/core.py": "def frobnicate_widget(qwertyx_count):\n    return qwertyx_count\n",
}
ARTICLE = """---
title: Running the frobber on Kubernetes
---

We deploy with kubectl and watch the pods in Grafana. The asyncio loop calls
frobnicate_widget for each of the zorblax queues, and the qwertyx count grows.
We recieve the results in a dashboard and teh numbers look right.
"""


def spelling(root: Path, change: Change, **options: object) -> CheckResult:
    ctx = CheckContext(check="spelling", root=root, change=change, options=options)
    return asyncio.run(content.spelling(ctx))


def test_codespell_reports_known_misspellings_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    change = branch_with(repo, {"posts/frobber.md": ARTICLE})
    result = spelling(repo, change)
    assert result.metrics["engine"] == "codespell"
    assert [(f.line, f.message) for f in result.findings] == [
        (7, "misspelled word 'recieve' (did you mean 'receive'?)"),
        (7, "misspelled word 'teh' (did you mean 'the'?)"),
    ]


def test_the_dictionary_engine_knows_the_repositorys_own_words(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    change = branch_with(repo, {"posts/frobber.md": ARTICLE})
    known = ["kubectl", "asyncio", "kubernetes", "grafana"]
    result = spelling(repo, change, engine="dictionary", words=known)
    flagged = [f.message.split("'")[1] for f in result.findings]
    # frobnicate, widget, zorblax, qwertyx and frobber come from the code and the README
    assert flagged == ["recieve", "teh"]


def test_a_typo_the_change_makes_in_code_does_not_vouch_for_itself(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    change = branch_with(
        repo,
        {"frobber/io.py": "def recieve_blorp():\n    pass\n", "posts/a.md": "# A\n\nA blorp.\n"},
    )
    result = spelling(repo, change, engine="dictionary")
    assert [f.message.split("'")[1] for f in result.findings] == ["blorp"]


def test_a_bad_engine_is_named(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    change = branch_with(repo, {"posts/a.md": "# A\n"})
    with pytest.raises(ValueError, match="option engine"):
        spelling(repo, change, engine="aspell")


def test_the_content_review_reports_only_the_real_misspellings(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", PROJECT)
    branch_with(repo, {"posts/frobber.md": ARTICLE})
    only = only_checks("content", "spelling")
    template = user_template(tmp_path, "words", only, extends="content")
    done = run_review(tmp_path, repo, "--template", template, out=tmp_path / "out")
    assert done.code == 0, str(done)  # warnings: a comment, not a request for changes
    assert done.findings == {
        ("spelling", "posts/frobber.md", 7, "spelling"),
    }
    assert [f["message"].split("'")[1] for f in done.report["findings"]] == ["recieve", "teh"]
