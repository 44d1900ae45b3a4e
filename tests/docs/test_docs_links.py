"""Every link of README.md and docs/*.md leads somewhere: a relative link to a file of this
repository (and, with a #fragment, to a heading of that page), and every file path the prose
names in backticks exists. A reader who follows a dead link stops reading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mdblocks import ROOT, doc_pages, prose

LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(?P<target>\S+)")
CODE = re.compile(r"`([^`\s]+)`")
# A file path in backticks: words and slashes, ending in an extension a reader would open.
PATH = re.compile(r"(\.{1,2}/)*[\w.-]+(/[\w.-]+)+\.(md|py|ya?ml|toml|sql|json|cfg|ini)")
EXTERNAL = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:
PACKAGE = Path("src", "reviewflow")  # design.md names modules as `cluster/dag.py`


def slugs(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, and -1,
    -2... for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose(page):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    found = []
    for n, line in prose(page):
        text = re.sub(r"`[^`]*`", "", line)  # a link shown as code is not a link
        found += [(n, m["target"].strip("<>")) for m in LINK.finditer(text)]
        if ref := REFERENCE.match(text):
            found.append((n, ref["target"]))
    return found


def dead_links(page: Path, root: Path = ROOT) -> list[str]:
    dead = []
    for n, target in links(page):
        if EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{n}: {target}"
        if not dest.is_relative_to(root) or not dest.exists():
            dead.append(f"{where} (no such file in the repository)")
        elif fragment and dest.suffix == ".md" and fragment not in slugs(dest):
            dead.append(f"{where} (no heading #{fragment} in {dest.relative_to(root)})")
    return dead


def missing_paths(page: Path, root: Path = ROOT) -> list[str]:
    """Backticked paths that claim a place in the repository (they start with ../ or with a
    folder that exists) but name no file there."""
    missing = []
    for n, line in prose(page):
        for token in CODE.findall(line):
            if not PATH.fullmatch(token):
                continue
            first = token.split("/")[0]
            if first in (".", ".."):
                bases: tuple[Path, ...] = (page.parent,)
            else:
                bases = tuple(b for b in (root, root / PACKAGE) if (b / first).is_dir())
                if not bases:
                    continue  # not a repository path: `.github/workflows/x.yml` in your repo
            if not any((b / token).resolve().is_file() for b in bases):
                missing.append(f"{page.relative_to(root)}:{n}: `{token}`")
    return missing


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    assert dead_links(page) == []


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(page: Path) -> None:
    assert missing_paths(page) == []


def test_the_checks_catch_dead_links_and_paths(tmp_path: Path) -> None:
    (tmp_path / "src" / "reviewflow" / "cluster").mkdir(parents=True)
    (tmp_path / "src" / "reviewflow" / "cluster" / "dag.py").write_text("", encoding="utf-8")
    (tmp_path / "README.md").write_text("# reviewflow\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "design.md"
    page.write_text(
        "# A page\n\n"
        "[ok](design.md) [ok](../README.md#reviewflow) [ok](#a-page) [web](https://x.org)\n"
        "[gone](../shared/ARCHITECTURE.md) [bad anchor](design.md#no-such-heading)\n"
        "`../shared/ARCHITECTURE.md` `src/reviewflow/nope.py` `cluster/dag.py`\n"
        "`.github/workflows/reviewflow.yml` `tests/**.py` `[not](a-link.md)`\n"
        "```\n[in code](nowhere.md) `src/reviewflow/in_code.py`\n```\n",
        encoding="utf-8",
    )
    assert dead_links(page, tmp_path) == [
        "docs/design.md:4: ../shared/ARCHITECTURE.md (no such file in the repository)",
        "docs/design.md:4: design.md#no-such-heading (no heading #no-such-heading in "
        "docs/design.md)",
    ]
    assert missing_paths(page, tmp_path) == [
        "docs/design.md:5: `../shared/ARCHITECTURE.md`",
        "docs/design.md:5: `src/reviewflow/nope.py`",
    ]
