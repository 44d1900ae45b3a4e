"""The content checks on real files: articles with planted problems and a clean one.

What a writer relies on: each problem is reported once, on the line to edit, with the rule
named; code samples, URLs and the project's own words are never reported as misspellings;
only the files of the change are read; and a change without articles skips the checks.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo

from reviewflow.errors import TaskFailed
from reviewflow.review.change import Change, ChangedFile
from reviewflow.review.checks import content
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.findings import CheckResult

CHECKS = ("metadata", "headings", "readability", "spelling", "links", "length")

CLEAN = """---
title: Getting started with reviewflow
description: A short guide to your first review.
date: 2024-03-01
author: Ada
---

This guide shows how to run your first review with reviewflow. It takes a few minutes.
You need a repository with some changes in it. The tool reads the changes and checks them.
Each check looks at one thing. One reads the headings. One counts the words. One looks at
the links. When a check finds a problem, it tells you the file and the line.

## Install

Install the package first. Then open a terminal in your project. Run the command below
and wait for the report. The report lists each problem with a short note.

```sh
pip install reviewflow  # recieve in a code block is not prose
```

## Read the report

Each line of the report names a file. Fix the first problem, then run the tool again.
Keep going until the report is clean. See the [setup notes](../docs/setup.md#install) and
the [install step](#install) for more. Here is the logo: ![logo](../img/logo.png)
Words in `recieve` code are fine. Visit https://example.com/recieve for news.
"""

BAD = """---
description: Notes
date: 5 January 2024
---

## Overview

We recieve many letters.

#### Details

See [x](missing.md) and ![pic](img/nope.png) and [y](../docs/setup.md#nowhere).
"""

HARD = """---
title: Institutional considerations
---

Notwithstanding the considerable institutional, organizational and methodological
complexities inherently associated with the comprehensive implementation of
interdisciplinary evaluation frameworks, administrative representatives systematically
underestimated the multidimensional ramifications of insufficiently documented
accountability mechanisms, consequently necessitating extraordinarily comprehensive
reconsideration of fundamental organizational responsibilities, institutional priorities,
and international communication infrastructures throughout the subsequent implementation
period, notwithstanding considerable institutional resistance.
"""

GUIDE = """:author: Ada
:date: 2024-03-01

=====
Guide
=====

Read the `setup notes <setup.md#install>`_ first.

Usage
-----

.. image:: missing.png

.. code-block:: python

   recieve()

Details
^^^^^^^

Options
-------

Deep
~~~~
"""

SETUP = "# Setup\n\n## Install\n\nRun the installer.\n"


def run(check: str, root: Path, change: Change, **options: object) -> CheckResult:
    ctx = CheckContext(check=check, root=root, change=change, options=options)
    return asyncio.run(getattr(content, check)(ctx))


def rows(result: CheckResult) -> list[tuple[str | None, int | None, str, str]]:
    return [(f.file, f.line, f.severity, f.rule) for f in result.findings]


def articles(root: Path, files: dict[str, str]) -> Change:
    """Files written as the work tree of a change that adds them (no git needed)."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return Change(
        root=str(root),
        base="0" * 40,
        base_ref="test",
        head=None,
        dirty=True,
        files=[ChangedFile(path=p, status="added") for p in sorted(files)],
    )


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Change]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = make_repo(
        tmp_path_factory.mktemp("content") / "repo",
        {
            "README.md": "# project\n",
            "docs/setup.md": SETUP,
            "img/logo.png": "png",
            ".reviewflow/words.txt": "# the project's words\nReviewflow\n",
            "posts/old.md": "no title, recieve, [x](gone.md)\n",
        },
    )
    change = branch_with(
        root,
        {
            "posts/clean.md": CLEAN,
            "posts/bad.md": BAD,
            "posts/hard.md": HARD,
            "docs/guide.rst": GUIDE,
            "notes.txt": "recieve [x](gone.md)\n",
        },
    )
    return root, change


# --- the planted problems, check by check ----------------------------------------------------


def test_metadata_reports_a_missing_title_a_bad_date_and_missing_recommended_keys(review):
    result = run("metadata", *review)
    assert result.status == "failed"
    assert rows(result) == [
        ("docs/guide.rst", 1, "info", "metadata-recommended"),
        ("posts/bad.md", 1, "error", "metadata-required"),
        ("posts/bad.md", 1, "info", "metadata-recommended"),
        ("posts/bad.md", 3, "warning", "metadata-date"),
        ("posts/hard.md", 1, "info", "metadata-recommended"),
        ("posts/hard.md", 1, "info", "metadata-recommended"),
        ("posts/hard.md", 1, "info", "metadata-recommended"),
    ]
    messages = [f.message for f in result.findings]
    assert "required key 'title' is missing" in messages
    assert any("5 January 2024" in m and "ISO" in m for m in messages)


def test_headings_reports_no_title_and_skipped_levels(review):
    result = run("headings", *review)
    assert result.status == "failed"
    assert rows(result) == [
        ("docs/guide.rst", 25, "warning", "heading-skip"),
        ("posts/bad.md", 1, "error", "heading-no-title"),
        ("posts/bad.md", 10, "warning", "heading-skip"),
    ]
    assert result.findings[2].message == "heading level skips from H2 to H4"


def test_a_missing_title_is_reported_once_when_metadata_runs_first(review):
    """The content template runs headings after metadata: one problem, one finding."""
    root, change = review
    metadata = run("metadata", root, change)
    assert metadata.metrics["untitled"] == ["posts/bad.md"]
    ctx = CheckContext(check="headings", root=root, change=change, upstream={"metadata": metadata})
    headings = asyncio.run(content.headings(ctx))
    assert rows(headings) == [
        ("docs/guide.rst", 25, "warning", "heading-skip"),
        ("posts/bad.md", 10, "warning", "heading-skip"),
    ]


def test_readability_flags_the_hard_paragraph_with_its_numbers(review):
    result = run("readability", *review)
    assert result.status == "passed"  # warnings only
    assert rows(result) == [("posts/hard.md", 5, "warning", "readability")]
    files = result.metrics["files"]
    assert set(files) == {"docs/guide.rst", "posts/bad.md", "posts/clean.md", "posts/hard.md"}
    hard, clean = files["posts/hard.md"], files["posts/clean.md"]
    assert hard["reading_ease"] < 30 and hard["grade"] > 14 and hard["words"] >= 50
    assert clean["reading_ease"] > 60 and clean["grade"] < 8 and clean["words"] > 100
    message = result.findings[0].message
    assert f"{hard['reading_ease']:.1f}" in message and f"{hard['grade']:.1f}" in message
    assert "(minimum 30)" in message and "(maximum 14)" in message
    assert files["posts/bad.md"]["words"] < 50  # too short to judge: numbers, no finding


def test_spelling_reports_the_typo_and_ignores_code_urls_and_project_words(review):
    result = run("spelling", *review)
    assert rows(result) == [("posts/bad.md", 8, "warning", "spelling")]
    assert result.findings[0].message == "misspelled word 'recieve' (did you mean 'receive'?)"
    assert result.metrics["engine"] == "codespell"
    assert result.metrics["unknown"] == 1


def test_links_reports_broken_links_missing_images_and_anchors(review):
    result = run("links", *review)
    assert result.status == "failed"
    assert rows(result) == [
        ("docs/guide.rst", 13, "error", "image-missing"),
        ("posts/bad.md", 12, "error", "link-broken"),
        ("posts/bad.md", 12, "error", "image-missing"),
        ("posts/bad.md", 12, "warning", "link-anchor"),
    ]
    messages = [f.message for f in result.findings]
    assert messages[1] == "link target not found: missing.md"
    assert messages[3] == "no heading or anchor #nowhere in docs/setup.md"


def test_length_reports_short_articles(review):
    result = run("length", *review)
    assert rows(result) == [
        ("docs/guide.rst", 1, "warning", "length-words"),
        ("posts/bad.md", 1, "warning", "length-words"),
        ("posts/hard.md", 1, "warning", "length-words"),
    ]
    assert result.findings[1].message == "9 words: shorter than 100"
    assert result.metrics["files"]["posts/clean.md"]["words"] > 100
    assert result.metrics["files"]["posts/clean.md"]["title_length"] == 31


def test_the_clean_article_passes_every_check(review):
    root, change = review
    clean = change.model_copy(update={"files": [change.get("posts/clean.md")]})
    for check in CHECKS:
        result = run(check, root, clean)
        assert result.status == "passed", check
        assert result.findings == [], check


def test_a_change_without_articles_skips_every_check(tmp_path: Path):
    root = make_repo(tmp_path / "repo", {"README.md": "# recieve\n\n[x](gone.md)\n"})
    change = branch_with(root, {"src/app.py": "print('recieve')\n", "notes.txt": "x\n"})
    for check in CHECKS:
        result = run(check, root, change)
        assert result.status == "skipped", check
        assert result.summary == "skipped: no Markdown/reST files changed"


# --- metadata --------------------------------------------------------------------------------


def test_front_matter_errors_name_their_line(tmp_path: Path):
    change = articles(
        tmp_path,
        {
            "a.md": "---\ntitle: ok\ntags: [one\ndate: 2024-01-01\n---\n# A\n",
            "b.md": "---\n- a list\n---\n# B\n",
            "c.md": "# No front matter\n",
            "d.md": "---\ntitle:\n---\n",
        },
    )
    result = run("metadata", tmp_path, change, recommended=[])
    assert rows(result) == [
        ("a.md", 4, "error", "metadata-invalid"),
        ("b.md", 2, "error", "metadata-invalid"),
        ("c.md", 1, "error", "metadata-missing"),
        ("d.md", 2, "error", "metadata-required"),
    ]
    assert result.findings[0].message.startswith("invalid YAML front matter")
    assert result.findings[3].message == "required key 'title' is empty"


@pytest.mark.parametrize(
    ("config", "page"),
    [
        ({"mkdocs.yml": "site_name: Docs\n"}, "docs/guide/deploy.md"),
        ({"docs/conf.py": "project = 'p'\n"}, "docs/deploy.md"),
    ],
    ids=["mkdocs", "sphinx"],
)
def test_a_page_of_a_site_titled_by_its_first_heading_needs_no_front_matter(
    tmp_path: Path, config: dict[str, str], page: str
):
    """MkDocs and Sphinx (MyST) title a page by its first H1 and read no front matter: a new
    page with a heading is not asked for one (a real MkDocs repository's new page was)."""
    for rel, text in config.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    change = articles(
        tmp_path,
        {
            page: "# Deploying\n\nCopy the site folder to the server.\n",
            page.replace("deploy", "untitled"): "Some text without any heading.\n",
        },
    )
    result = run("metadata", tmp_path, change)
    untitled = page.replace("deploy", "untitled")
    assert rows(result) == [(untitled, 1, "error", "metadata-missing")]
    assert result.metrics["untitled"] == [untitled]


def test_a_jekyll_page_still_needs_its_front_matter(tmp_path: Path):
    """Jekyll builds no page from a file without front matter: there, it is still required."""
    (tmp_path / "_config.yml").write_text("title: Blog\n", encoding="utf-8")
    change = articles(tmp_path, {"about.md": "# About\n\nWho we are.\n"})
    result = run("metadata", tmp_path, change)
    assert rows(result) == [("about.md", 1, "error", "metadata-missing")]


def test_dates_must_be_iso_and_real(tmp_path: Path):
    dates = [
        "2024-01-05",
        "2024-01-05T10:00:00Z",
        "2024-01-05 10:00:00 +0200",
        "'2024-01-05'",
        "2024-13-40",
        "yesterday",
        "05/01/2024",
    ]
    change = articles(
        tmp_path, {f"p{i}.md": f"---\ntitle: T\ndate: {d}\n---\n" for i, d in enumerate(dates)}
    )
    result = run("metadata", tmp_path, change, recommended=[])
    assert rows(result) == [(f"p{i}.md", 3, "warning", "metadata-date") for i in (4, 5, 6)]


def test_without_required_keys_a_missing_front_matter_is_only_a_hint(tmp_path: Path):
    change = articles(tmp_path, {"a.md": "# A\n", "b.rst": "Title\n=====\n\ntext\n"})
    result = run("metadata", tmp_path, change, required=[], recommended=["author"])
    assert result.status == "passed"
    assert rows(result) == [
        ("a.md", 1, "info", "metadata-recommended"),
        ("b.rst", 1, "info", "metadata-recommended"),
    ]


# --- headings --------------------------------------------------------------------------------


def test_heading_rules(tmp_path: Path):
    text = (
        "# Title\n\n## Setup\n\n### Notes\n\n## Usage\n\n### Notes\n\n### Notes\n\n"
        "## Options:\n\n#\n\n# Second title\n\n```\n# not a heading\n```\n#hashtag\n"
    )
    change = articles(tmp_path, {"a.md": text})
    result = run("headings", tmp_path, change)
    assert rows(result) == [
        ("a.md", 11, "info", "heading-duplicate"),
        ("a.md", 13, "info", "heading-punctuation"),
        ("a.md", 15, "error", "heading-empty"),
        ("a.md", 17, "warning", "heading-multiple-h1"),
    ]
    assert result.findings[0].message == "heading 'Notes' repeats line 9 under the same parent"
    assert result.findings[3].message == "more than one top-level heading (the first is on line 1)"


def test_a_front_matter_title_counts_as_the_top_heading(tmp_path: Path):
    change = articles(
        tmp_path,
        {
            "a.md": "---\ntitle: T\n---\n\n## Part\n\n### Sub\n",
            "b.md": "---\ntitle: T\n---\n\n# T\n\n## Part\n",
            "c.md": "---\ntitle: T\n---\n\n### Too deep\n",
        },
    )
    assert rows(run("headings", tmp_path, change)) == [("c.md", 5, "warning", "heading-skip")]


# --- readability -----------------------------------------------------------------------------


def test_readability_thresholds_are_options(tmp_path: Path):
    text = "---\ntitle: T\n---\n\n" + "The cat sat on the mat and it was warm. " * 10 + "\n"
    change = articles(tmp_path, {"a.md": text})
    assert run("readability", tmp_path, change).findings == []
    strict = run("readability", tmp_path, change, min_reading_ease=150, max_grade=None)
    assert rows(strict) == [("a.md", 5, "warning", "readability")]
    assert "(minimum 150)" in strict.findings[0].message
    assert "maximum" not in strict.findings[0].message
    ignored = run("readability", tmp_path, change, min_reading_ease=150, min_words=500)
    assert ignored.findings == [] and ignored.metrics["files"]["a.md"]["words"] == 100


def test_readability_never_downloads_a_dictionary(monkeypatch: pytest.MonkeyPatch):
    """textstat fetches NLTK's cmudict when it is missing; a review must not go online."""
    nltk = pytest.importorskip("nltk")

    def download(*args: object, **kwargs: object) -> None:
        raise AssertionError("nltk.download was called")

    monkeypatch.setattr(nltk, "download", download)
    content._cmudict_installed.cache_clear()
    try:
        assert content.flesch("One short sentence. And another one here.")[0] > 50
    finally:
        content._cmudict_installed.cache_clear()


def test_flesch_scores_easy_text_higher_than_hard_text():
    easy = content.flesch("The cat sat on the mat. The dog ran to the park.")
    hard = content.flesch(
        "Institutional considerations necessitate comprehensive "
        "reconsideration of organizational responsibilities."
    )
    assert easy[0] > hard[0] and easy[1] < hard[1]


# --- spelling --------------------------------------------------------------------------------


def test_project_words_come_from_the_wordlists_and_the_options(tmp_path: Path):
    change = articles(
        tmp_path,
        {
            "a.md": "---\ntitle: T\n---\n\nWe use kubectl, ansible and grafana daily.\n",
            ".wordlist.txt": "Kubectl  # comment\n# grafana\n",
            "cfg/words.txt": "ANSIBLE\n",
        },
    )
    found = run("spelling", tmp_path, change, engine="dictionary")
    assert [f.message.split("'")[1] for f in found.findings] == ["ansible", "grafana"]
    ok = run(
        "spelling",
        tmp_path,
        change,
        engine="dictionary",
        wordlist="cfg/words.txt",
        words=["Grafana"],
    )
    assert ok.findings == [] and ok.metrics["wordlist"] == 3


def test_spelling_skips_what_is_not_prose(tmp_path: Path):
    text = (
        "---\ntitle: A speling test\ndescription: >\n  Anothr line\nslug: not-a-wrd\n---\n\n"
        "NASA and APIs use JavaScript and iPhone. Version v2 and abc123 and snake_case.\n"
        "Mail bob@exampel.com or see docs/setp/guide.md and config.yml today.\n"
        "Visit <https://exampel.com> or www.exampel.com and `codde` here.\n"
        '<!-- a commment -->\n<span class="wrongg">Fine</span> words.\n'
        "Don't worry, it's the team's work. xx ab zz.\n"
    )
    change = articles(tmp_path, {"a.md": text})
    result = run("spelling", tmp_path, change)
    assert [(f.line, f.message) for f in result.findings] == [
        (2, "misspelled word 'speling' (did you mean 'spelling'?)"),
        (4, "misspelled word 'Anothr' (did you mean 'Another'?)"),
    ]


def test_spelling_findings_are_capped_per_file(tmp_path: Path):
    change = articles(tmp_path, {"a.md": "# T\n\n" + "Zorblax qwertyx.\n" * 4})
    result = run("spelling", tmp_path, change, max_per_file=3, engine="dictionary")
    assert rows(result) == [("a.md", 3, "warning", "spelling")] * 2 + [
        ("a.md", 4, "warning", "spelling"),
        ("a.md", 4, "info", "spelling"),
    ]
    assert result.findings[-1].message == "5 more unknown word(s) not listed (max_per_file: 3)"
    assert result.metrics["engine"] == "dictionary"
    assert result.metrics["unknown"] == 8


def test_an_unknown_language_skips_spelling(tmp_path: Path):
    change = articles(tmp_path, {"a.md": "# T\n"})
    result = run("spelling", tmp_path, change, language="xx", engine="dictionary")
    assert result.status == "skipped" and "'xx'" in result.summary


# --- links -----------------------------------------------------------------------------------


def test_link_forms_and_how_targets_resolve(tmp_path: Path):
    text = """# Doc

## Intro Part

[ok](other.md) [space](my%20file.md) [q](other.md?x=1#top-title) [root](/docs/x.rst)
[web](https://example.com/missing) [mail](mailto:a@b.c) [self](#intro-part) [bad](#nope)
![img](img/a.png) <img src="img/b.png"> <a href='gone.md'>gone</a> [page](other)
[html](docs/x.html) [ref][r] ![logo][l] `[code](missing.md)` [e]()
[esc](../../etc/passwd) [tpl]({{ site.url }}/x.md) [skip](drafts/y.md)

[r]: nothere.md
[l]: img/c.png

<!-- [hidden](missing.md) -->
"""
    change = articles(
        tmp_path,
        {
            "a.md": text,
            "other.md": "# Top Title\n",
            "my file.md": "x\n",
            "img/a.png": "x",
            "docs/x.rst": "X\n=\n",
        },
    )
    result = run("links", tmp_path, change, ignore=["drafts/*"])
    assert [(f.line, f.rule, f.message) for f in result.findings if f.file == "a.md"] == [
        (6, "link-anchor", "no heading or anchor #nope in this file"),
        (7, "image-missing", "image target not found: img/b.png"),
        (7, "link-broken", "link target not found: gone.md"),
        (8, "link-empty", "empty link target"),
        (9, "link-broken", "link target '../../etc/passwd' points outside the repository"),
        (11, "link-broken", "link target not found: nothere.md"),
        (12, "image-missing", "image target not found: img/c.png"),
    ]


def test_a_symlink_out_of_the_repository_is_not_followed(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("Secret text without a title\n")
    root = tmp_path / "repo"
    change = articles(root, {"a.md": "# A\n\n[s](link/secret.md)\n", "b.md": "# B\n\n[ok](a.md)\n"})
    os.symlink(outside, root / "link")
    os.symlink(outside / "secret.md", root / "c.md")
    change = change.model_copy(
        update={"files": [*change.files, ChangedFile(path="c.md", status="added")]}
    )
    result = run("links", root, change)
    assert [(f.file, f.message) for f in result.findings] == [
        ("a.md", "link target 'link/secret.md' points outside the repository")
    ]
    assert run("headings", root, change).findings == []  # c.md is not read at all


def test_rest_links_images_and_targets(tmp_path: Path):
    text = """Title
=====

See `the guide <guide.md#install>`_, `missing <gone.rst>`_ and `named`_.

.. _named: https://example.com
.. _local: nothere.md

.. figure:: img/fig.png

   A caption.

.. |logo| image:: img/logo.png

.. code-block:: rst

   .. image:: in-code.png
"""
    change = articles(
        tmp_path, {"a.rst": text, "guide.md": "# G\n\n## Setup\n", "img/logo.png": "x"}
    )
    result = run("links", tmp_path, change)
    assert [(f.line, f.rule, f.message) for f in result.findings] == [
        (4, "link-anchor", "no heading or anchor #install in guide.md"),
        (4, "link-broken", "link target not found: gone.rst"),
        (7, "link-broken", "link target not found: nothere.md"),
        (9, "image-missing", "image target not found: img/fig.png"),
    ]


# --- length ----------------------------------------------------------------------------------


def test_length_limits_are_options(tmp_path: Path):
    title = "A title that goes on and on, well past what a page of search results shows"
    change = articles(tmp_path, {"a.md": f"---\ntitle: {title}\n---\n\n" + "word " * 60})
    result = run("length", tmp_path, change, min_words=10, max_words=50)
    assert rows(result) == [
        ("a.md", 1, "warning", "length-words"),
        ("a.md", 2, "warning", "length-title"),
    ]
    assert result.findings[0].message == "60 words: longer than 50"
    assert result.findings[1].message == f"title is {len(title)} characters (maximum 70)"
    off = run("length", tmp_path, change, min_words=None, max_words=None, max_title_length=None)
    assert off.findings == [] and off.metrics["words"] == 60


def test_bad_options_are_reported(tmp_path: Path):
    """A template's bad option fails the check at once: a retry would read the same value."""
    change = articles(tmp_path, {"a.md": "# T\n"})
    with pytest.raises(TaskFailed, match="min_words") as caught:
        run("length", tmp_path, change, min_words="many")
    assert caught.value.retryable is False
    with pytest.raises(TaskFailed, match="extensions"):
        run("length", tmp_path, change, extensions=3)


def test_the_extensions_option_narrows_the_files(tmp_path: Path):
    change = articles(tmp_path, {"a.md": "no title\n", "b.rst": "no title\n"})
    result = run("headings", tmp_path, change, extensions=[".rst"])
    assert rows(result) == [("b.rst", 1, "error", "heading-no-title")]
