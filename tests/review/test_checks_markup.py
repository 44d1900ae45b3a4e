"""Markdown and reST structure for the content checks (`review/checks/markup.py`): which lines
are prose, where the headings are, what links point at and which anchors a file offers — every
view keeping the source's line numbers, so a finding names the line a writer sees."""

from __future__ import annotations

from pathlib import Path

from reviewflow.review.checks import markup


def test_setext_headings_and_thematic_breaks(tmp_path: Path):
    text = "Title\n=====\n\nSection\n-------\n\ntext\n\n---\n\nmore text\n"
    doc = markup.parse("a.md", text)
    assert [(h.line, h.level, h.text) for h in doc.headings] == [(1, 1, "Title"), (4, 2, "Section")]


def test_rest_title_levels_follow_the_order_of_first_use():
    text = (
        "=====\nTitle\n=====\n\n:author: Ada\n\nOne\n---\n\nTwo\n~~~\n\nThree\n-----\n\n"
        "::\n\n   Code\n   ----\n\nFour\n^^^^\n\nNot a title\n~~\n\nShort underline\n~~~~\n"
    )
    doc = markup.parse("a.rst", text)
    assert [(h.line, h.level, h.text) for h in doc.headings] == [
        (2, 1, "Title"),
        (7, 2, "One"),
        (10, 3, "Two"),
        (13, 2, "Three"),
        (21, 4, "Four"),
        (27, 3, "Short underline"),
    ]
    assert doc.meta == {"author": "Ada"} and doc.meta_lines == {"author": 5}
    assert doc.title == ("Title", 2)


def test_readability_ignores_code_headings_and_link_targets():
    text = (
        "# A very long heading with many extraordinarily complicated words\n\n"
        "Short words. [Link](https://example.com/a/very/long/path) here.\n\n"
        "```\nsupercalifragilistic expialidocious\n```\n\n- item one\n- item two\n"
    )
    blocks = markup.paragraphs(markup.parse("a.md", text))
    assert [(line, " ".join(t.split())) for line, t in blocks] == [
        (3, "Short words. Link here."),
        (9, "item one."),
        (10, "item two."),
    ]


def test_github_slugs():
    doc = markup.parse(
        "a.md",
        "# Hello, World!\n\n## `code` and [link](x)\n\n## Hello, World\n"
        '\n## Ünïcode ok_name\n\n### Custom {#my-id}\n<a name="old"></a>\n',
    )
    assert markup.anchors(doc) == {
        "hello-world",
        "code-and-link",
        "hello-world-1",
        "ünïcode-ok_name",
        "my-id",
        "old",
    }
    assert markup.docutils_id("1. Ünïcode Title!") == "unicode-title"


def test_code_is_hidden_with_line_numbers_kept():
    text = (
        "````md\n```\nnot the end\n```\n````\ntext\n~~~\ncode\n~~~\n<!--\nhidden\n-->\n"
        "<pre>\nraw\n</pre>\nlast\n1. step\n\n    ```\n    code in a list\n    ```\n"
    )
    doc = markup.parse("a.md", text)
    visible = [i + 1 for i, line in enumerate(markup.prose_lines(doc)) if line.strip()]
    assert visible == [6, 16, 17]
    assert len(doc.lines) == 21


def test_front_matter_needs_a_closing_line():
    doc = markup.parse("a.md", "---\ntitle: x\n\nSome text\n")
    assert doc.meta is None and doc.meta_error is None and not any(doc.hidden)


def found_links(path: str, text: str) -> list[tuple[int, str, bool]]:
    return [(link.line, link.target, link.image) for link in markup.links(markup.parse(path, text))]


def test_markdown_links_and_images_in_every_form_with_their_lines() -> None:
    text = (
        'See [the guide](guide.md#setup "title") and ![logo](<img/my logo.png>).\n'
        "[![badge](badge.svg)](https://ci.example/x)\n"
        "\n"
        "```\n[not a link](nowhere.md)\n```\n"
        "![chart][c] and [ref]\n"
        "\n"
        "[c]: charts/c.png\n"
        "[ref]: <other page.md>\n"
        "<a href=\"raw.html\">raw</a> <img src='pic.gif'>\n"
    )
    found = [
        (link.line, link.target, link.image) for link in markup.links(markup.parse("a.md", text))
    ]
    assert found == [
        (1, "guide.md#setup", False),
        (1, "img/my logo.png", True),
        (2, "https://ci.example/x", False),
        (2, "badge.svg", True),
        (9, "charts/c.png", True),
        (10, "other page.md", False),
        (11, "raw.html", False),
        (11, "pic.gif", True),
    ]


def test_rest_links_images_includes_and_targets() -> None:
    text = (
        "Title\n=====\n\n"
        "Read `the guide <guide.rst>`_ or `a ref <other_>`_.\n\n"
        ".. image:: img/a.png\n"
        ".. include:: part.rst\n"
        ".. _site: https://example.com\n"
    )
    found = [
        (link.line, link.target, link.image) for link in markup.links(markup.parse("a.rst", text))
    ]
    assert found == [
        (4, "guide.rst", False),
        (6, "img/a.png", True),
        (7, "part.rst", False),
        (8, "https://example.com", False),
    ]


def test_words_are_counted_with_contractions_and_hyphens_as_one() -> None:
    assert markup.count_words("Don't re-run the well-known tests, 3 times.") == 7


def test_front_matter_is_read_with_its_lines_and_hidden_from_prose() -> None:
    doc = markup.parse("a.md", "---\ntitle: Hello\ndate: 2024-01-02\n---\n\n# Hello\n\nText\n")
    assert doc.meta == {"title": "Hello", "date": "2024-01-02"}
    assert doc.meta_lines == {"title": 2, "date": 3}
    assert [line.strip() for line in markup.prose_lines(doc) if line.strip()] == ["Hello", "Text"]
