"""No false alarm on what the site generator resolves: links to permalinks and site paths.

Each test builds a small site of one generator in a throwaway git repository, changes a page
that links the ways its writers do, and runs the links check on the change: every link a page
of the built site would answer passes, and only links no page answers are reported.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import only_checks, run_review, user_template

from reviewflow.review.change import Change
from reviewflow.review.checks import content
from reviewflow.review.checks.base import CheckContext

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def broken(root: Path, change: Change) -> list[tuple[str | None, int | None, str]]:
    ctx = CheckContext(check="links", root=root, change=change)
    result = asyncio.run(content.links(ctx))
    return [(f.file, f.line, f.message) for f in result.findings]


JEKYLL = {
    "_config.yml": (
        "title: Blog\nbaseurl: /blog\npermalink: pretty\n"
        "collections:\n  recipes:\n    output: true\n    permalink: /recipes/:name/\n"
    ),
    "about.md": "---\ntitle: About\npermalink: /about-us/\n---\n# About\n",
    "_posts/2024-01-05-hello-world.md": "---\ntitle: Hello\ncategories: news\n---\nHi.\n",
    "_recipes/Pancakes.md": "---\ntitle: Pancakes\n---\nFlour.\n",
    "docs/guide.md": "---\ntitle: Guide\n---\n## Install\n",
    "assets/logo.png": "png",
}
JEKYLL_POST = """---
title: Second
categories: news
---
[about](/about-us/) [with the baseurl](/blog/about-us/) [post](/news/2024/01/05/hello-world/)
[recipe](/recipes/pancakes/) [guide](/docs/guide/#install) [logo](/assets/logo.png)
[from this page](../../../01/05/hello-world/) [home](/) [file](../docs/guide.md)
[gone](/no-such-page/) [wrong day](/news/2024/01/06/hello-world/)
"""


def test_jekyll_permalinks_posts_collections_and_baseurl(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"index.md": "---\ntitle: Home\n---\n", **JEKYLL})
    change = branch_with(repo, {"_posts/2024-02-01-second.md": JEKYLL_POST})
    post = "_posts/2024-02-01-second.md"
    assert broken(repo, change) == [
        (post, 8, "link target not found: /no-such-page/"),
        (post, 8, "link target not found: /news/2024/01/06/hello-world/"),
    ]


HUGO = {
    "hugo.toml": (
        'baseURL = "https://example.org/site/"\ntitle = "Site"\n'
        '[permalinks]\n  posts = "/:year/:month/:slug/"\n'
    ),
    "content/posts/first.md": '+++\ntitle = "First Post"\ndate = 2024-01-05\nslug = "first"\n+++\n',
    "content/about/index.md": "---\ntitle: About\n---\n",
    "content/docs/_index.md": "---\ntitle: Docs\n---\n",
    "content/docs/install.md": "---\ntitle: Install\naliases: [/setup/]\n---\n## Steps\n",
    "static/img/x.png": "png",
}
HUGO_POST = """---
title: Second
date: 2024-02-01
---
[first](/2024/01/first/) [about](/about/) [docs](/docs/) [install](/docs/install/#steps)
[alias](/setup/) [image](/img/x.png) [with the base path](/site/about/)
[gone](/docs/missing/)
"""


def test_hugo_sections_bundles_permalinks_aliases_and_static_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", HUGO)
    change = branch_with(repo, {"content/posts/second.md": HUGO_POST})
    assert broken(repo, change) == [
        ("content/posts/second.md", 7, "link target not found: /docs/missing/")
    ]


MKDOCS = {
    "mkdocs.yml": (
        "site_name: Docs\nsite_url: https://example.org/proj/\n"
        "markdown_extensions:\n  - pymdownx.emoji:\n"
        "      emoji_index: !!python/name:material.extensions.emoji.twemoji\n"
    ),
    "docs/index.md": "# Home\n",
    "docs/user/install.md": "# Install\n\n## Requirements\n",
}
MKDOCS_PAGE = """# Usage

[install](../install/) [requirements](../install/#requirements) [source](install.md)
[home](../../) [site path](/user/install/) [with the base path](/proj/user/install/)
[gone](../nowhere/)
"""


def test_mkdocs_directory_urls_relative_to_the_page(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", MKDOCS)
    change = branch_with(repo, {"docs/user/usage.md": MKDOCS_PAGE})
    assert broken(repo, change) == [("docs/user/usage.md", 5, "link target not found: ../nowhere/")]


SPHINX = {
    "docs/conf.py": "project = 'p'\n",
    "docs/index.rst": "Home\n====\n",
    "docs/api.rst": "API\n===\n",
}
SPHINX_PAGE = """Guide
=====

Read the `API <api.html>`_, the `index </index.html>`_, the `API again </api/>`_ and the
`lost page <lost.html>`_.
"""


def test_sphinx_pages_by_their_html_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SPHINX)
    change = branch_with(repo, {"docs/guide.rst": SPHINX_PAGE})
    assert broken(repo, change) == [("docs/guide.rst", 5, "link target not found: lost.html")]


def test_outside_any_site_a_permalink_answers_nothing(tmp_path: Path) -> None:
    """Without a _config.yml nothing builds the page at its permalink: GitHub shows files."""
    repo = make_repo(tmp_path / "repo", {"about.md": JEKYLL["about.md"]})
    change = branch_with(repo, {"README.md": "# P\n\n[about](/about-us/) [file](about.md)\n"})
    assert broken(repo, change) == [("README.md", 3, "link target not found: /about-us/")]


def test_the_content_review_passes_a_jekyll_post_with_permalink_links(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"index.md": "---\ntitle: Home\n---\n", **JEKYLL})
    ok_post = "\n".join(JEKYLL_POST.splitlines()[:-1]) + "\n"
    branch_with(repo, {"_posts/2024-02-01-second.md": ok_post})
    links = user_template(tmp_path, "links", only_checks("content", "links"), extends="content")
    done = run_review(tmp_path, repo, "--template", links, out=tmp_path / "out")
    assert done.code == 0, str(done)
    assert done.report["checks"]["links"]["status"] == "passed"
    assert done.report["findings"] == []


def test_an_alias_bomb_in_front_matter_or_a_site_config_is_not_expanded() -> None:
    """Front matter and configs come from the change under review: bounded like workflows."""
    from reviewflow.review.checks import site

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert site._yaml(bomb) is None
    assert site._lenient_yaml(bomb) is None
    assert site._lenient_yaml("site_name: x\nplugins: [!ENV X]\n") == {
        "site_name": "x",
        "plugins": [None],
    }
