"""Fenced code blocks of the Markdown docs, for the tests that hold the docs to what they show
(imported as `mdblocks`; tests/ is on sys.path).

A block is marked runnable by the HTML comment `<!-- runnable -->` on the line right before its
opening fence: invisible on GitHub, so marking a block never changes what a reader sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = "<!-- runnable -->"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts (1-based line of the opening fence), its language and
    its text with the list indentation removed."""

    path: Path
    line: int
    lang: str
    text: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, in order. An unclosed fence is an error: the rest
    of the page would render as code."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j]
            body.append(line[indent:] if line.startswith(" " * indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: the code block is not closed")
        info = opening["info"].strip()
        before = lines[i - 1].strip() if i > 0 else ""
        found.append(
            Block(
                path=path,
                line=i + 1,
                lang=info.split()[0] if info else "",
                text="\n".join(body) + "\n",
                runnable=before == RUNNABLE,
            )
        )
        i = j + 1
    return found


def prose(path: Path) -> list[tuple[int, str]]:
    """The lines of a Markdown file outside its fenced blocks, with their 1-based numbers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    inside: set[int] = set()
    for b in blocks(path):
        inside.update(range(b.line, b.line + b.text.count("\n") + 2))  # fences included
    return [(n, line) for n, line in enumerate(lines, 1) if n not in inside]


def doc_pages() -> list[Path]:
    """README.md and docs/*.md: the pages a user reads first."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
