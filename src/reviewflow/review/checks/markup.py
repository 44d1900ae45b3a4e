"""Just enough Markdown and reST structure for the content checks, with line numbers intact.

Not a renderer: the checks need to know which lines are prose (not code, front matter or
comments), where the headings are, what links point at and which anchors a file offers. Every
per-line view keeps one entry per source line, so a finding names the line a writer sees.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

RST_SUFFIXES = (".rst", ".rest")
MARKUP_SUFFIXES = (".md", ".markdown", *RST_SUFFIXES)


@dataclass(frozen=True, slots=True)
class Heading:
    line: int
    level: int
    text: str
    """Plain text: inline markup, closing `#`s and `{#id}` removed."""
    anchor: str | None = None
    """An explicit id (`## Title {#custom}`), which replaces the generated slug."""


@dataclass(frozen=True, slots=True)
class Link:
    line: int
    target: str
    image: bool = False


@dataclass(slots=True)
class Document:
    path: str
    kind: Literal["markdown", "rst"]
    lines: list[str]
    hidden: list[bool]
    """Lines no check reads: code blocks, comments, front matter."""
    structure: set[int] = field(default_factory=set)
    """0-based lines that are markup, not prose (directives, link definitions, field lists)."""
    meta: dict[str, Any] | None = None
    """Front matter (Markdown YAML) or leading field list (reST); None when there is none."""
    meta_lines: dict[str, int] = field(default_factory=dict)
    meta_error: tuple[int, str] | None = None
    headings: list[Heading] = field(default_factory=list)
    heading_lines: set[int] = field(default_factory=set)
    """0-based lines that belong to a heading (its text, underline and overline)."""

    @property
    def title(self) -> tuple[str, int] | None:
        """The article's title and its line: the metadata title, else the first top heading."""
        value = (self.meta or {}).get("title")
        if value not in (None, ""):
            return str(value).strip(), self.meta_lines.get("title", 1)
        for h in self.headings:
            if h.level == 1:
                return h.text, h.line
        return None


def parse(path: str, text: str) -> Document:
    """Split front matter, hide code and comments, and find the headings of one file."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    kind: Literal["markdown", "rst"] = "rst" if path.lower().endswith(RST_SUFFIXES) else "markdown"
    doc = Document(path=path, kind=kind, lines=lines, hidden=[False] * len(lines))
    if kind == "markdown":
        _front_matter(doc)
        _hide_markdown(doc)
        _markdown_headings(doc)
    else:
        _hide_rst(doc)
        _rst_headings(doc)
        _rst_fields(doc)
    return doc


# --- front matter ---------------------------------------------------------------------------


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: `date: 2024-13-40` becomes a finding instead of a
    crash, and every date is validated the same way whether YAML recognised it or not."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _front_matter(doc: Document) -> None:
    lines = doc.lines
    if not lines or lines[0].rstrip() != "---":
        return
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:  # an opening rule with no closing one is a thematic break, not metadata
        return
    for i in range(end + 1):
        doc.hidden[i] = True
    loader = _FrontMatterLoader("\n".join(lines[1:end]))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = min(2 + mark.line, end + 1) if mark is not None else 1
        doc.meta_error = (line, f"invalid YAML front matter: {exc.problem or exc.context}")
        return
    except (yaml.YAMLError, ValueError) as exc:
        doc.meta_error = (1, f"invalid YAML front matter: {exc}")
        return
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        doc.meta_error = (2, "front matter is not a mapping of `key: value` lines")
        return
    doc.meta = {str(k): v for k, v in data.items()}
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            doc.meta_lines.setdefault(str(key.value), 2 + key.start_mark.line)


_FIELD = re.compile(r"^:([^:\s][^:]*):(?:\s+(.*))?$")


def _rst_fields(doc: Document) -> None:
    """Field lists before the text (after the title, docinfo style, or before it, Sphinx
    file-wide metadata style) are the document's metadata."""
    lines, i = doc.lines, 0
    fields: dict[str, str] = {}
    where: dict[str, int] = {}
    while i < len(lines):
        if not lines[i].strip() or doc.hidden[i] or i in doc.heading_lines or i in doc.structure:
            i += 1
            continue
        m = _FIELD.match(lines[i])
        if not m:
            break
        key, first = m.group(1).strip().lower(), i
        value = [(m.group(2) or "").strip()]
        doc.structure.add(i)
        i += 1
        while i < len(lines) and lines[i][:1] in (" ", "\t") and lines[i].strip():
            value.append(lines[i].strip())
            doc.structure.add(i)
            i += 1
        fields.setdefault(key, " ".join(v for v in value if v))
        where.setdefault(key, first + 1)
    if fields:
        doc.meta, doc.meta_lines = fields, where


# --- hiding code -----------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")  # indented too: fences sit in list items
_RAW_HTML = re.compile(r"^\s*<(pre|script|style|textarea)\b", re.IGNORECASE)


def _hide_markdown(doc: Document) -> None:
    fence: tuple[str, int] | None = None
    closer: str | None = None
    for i, line in enumerate(doc.lines):
        if doc.hidden[i]:
            continue
        if fence is not None:
            doc.hidden[i] = True
            m = _FENCE.match(line)
            if (
                m
                and m.group(1)[0] == fence[0]
                and len(m.group(1)) >= fence[1]
                and not m.group(2).strip()
            ):
                fence = None
            continue
        if closer is not None:
            doc.hidden[i] = True
            if closer in line.lower():
                closer = None
            continue
        m = _FENCE.match(line)
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = (m.group(1)[0], len(m.group(1)))
            doc.hidden[i] = True
            continue
        start = line.find("<!--")
        if start >= 0 and "-->" not in line[start + 4 :]:
            doc.hidden[i], closer = True, "-->"
            continue
        raw = _RAW_HTML.match(line)
        if raw and f"</{raw.group(1).lower()}" not in line.lower():
            doc.hidden[i], closer = True, f"</{raw.group(1).lower()}"
        elif _MD_DEFINITION.match(line):
            doc.structure.add(i)


_EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s|$)")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:\|[^|]+\|\s+)?([\w:.+-]+)::(?:\s|$)")
_OPTION = re.compile(r"^\s+:[\w -]+:")
LITERAL_DIRECTIVES = frozenset(
    {
        "code",
        "code-block",
        "sourcecode",
        "literalinclude",
        "raw",
        "math",
        "highlight",
        "csv-table",
        "toctree",
        "graphviz",
        "mermaid",
        "uml",
        "testcode",
        "testoutput",
        "doctest",
        "testsetup",
        "parsed-literal",
        "productionlist",
        "autosummary",
        "include",
    }
)


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """End (exclusive) of the block indented deeper than `indent` that starts at `start`."""
    end, j = start, start
    while j < len(lines):
        if lines[j].strip():
            if _indent(lines[j]) <= indent:
                break
            end = j + 1
        j += 1
    return end


def _hide_rst(doc: Document) -> None:
    lines, i = doc.lines, 0
    while i < len(lines):
        line = lines[i]
        if _EXPLICIT.match(line):
            end = _block_end(lines, i + 1, _indent(line))
            directive = _DIRECTIVE.match(line)
            body = line.lstrip()[2:].lstrip()
            if directive is None and body.startswith("["):  # a footnote: its text is prose
                i += 1
                continue
            doc.structure.add(i)
            if directive is None or directive.group(1).lower() in LITERAL_DIRECTIVES:
                # A comment is hidden whole; a target (`.. _x: url`) and a code directive's
                # first line stay visible to the link check, the code itself is hidden.
                comment = directive is None and not body.startswith("_")
                for j in range(i, end):
                    doc.structure.add(j)
                    doc.hidden[j] = comment or (directive is not None and j > i)
                i = max(end, i + 1)
                continue
            i += 1  # other directives (note, figure) hold prose after their options
            while i < len(lines) and _OPTION.match(lines[i]):
                doc.structure.add(i)
                i += 1
            continue
        if line.rstrip().endswith("::"):  # `Example::` introduces a literal block
            end = _block_end(lines, i + 1, _indent(line))
            for j in range(i + 1, end):
                doc.hidden[j] = True
            i = max(end, i + 1)
            continue
        if line.lstrip().startswith(">>> "):
            while i < len(lines) and lines[i].strip():
                doc.hidden[i] = True
                i += 1
            continue
        i += 1


# --- headings --------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_HTML_HEADING = re.compile(r"^\s*<h([1-6])\b[^>]*>(.*?)</h\1>", re.IGNORECASE)
_ANCHOR_ATTR = re.compile(r"\{#([\w:.-]+)[^{}]*\}\s*$")
ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,9}[.)]|#\.)(?:\s|$)")
_NOT_PARAGRAPH = re.compile(r"^(?: {0,3}(?:#|>|\||<)| {4})")


def _paragraph_line(doc: Document, i: int) -> bool:
    line = doc.lines[i]
    return (
        bool(line.strip())
        and not doc.hidden[i]
        and i not in doc.heading_lines
        and i not in doc.structure
        and not _NOT_PARAGRAPH.match(line)
        and not ITEM.match(line)
    )


def _markdown_headings(doc: Document) -> None:
    found: list[Heading] = []
    for i, line in enumerate(doc.lines):
        if doc.hidden[i]:
            continue
        atx = _ATX.match(line)
        html = _HTML_HEADING.match(line)
        setext = _SETEXT.match(line)
        if atx:
            raw = re.sub(r"(?:^|(?<![ \t])[ \t]+)#+[ \t]*$", "", (atx.group(2) or "").strip())
            found.append(_heading(i + 1, len(atx.group(1)), raw))
            doc.heading_lines.add(i)
        elif html:
            found.append(_heading(i + 1, int(html.group(1)), re.sub(r"<[^>]*>", "", html.group(2))))
            doc.heading_lines.add(i)
        elif setext and i > 0 and _paragraph_line(doc, i - 1):
            start = i - 1
            while start > 0 and _paragraph_line(doc, start - 1):
                start -= 1
            text = " ".join(doc.lines[j].strip() for j in range(start, i))
            found.append(_heading(start + 1, 1 if setext.group(1)[0] == "=" else 2, text))
            doc.heading_lines.update(range(start, i + 1))
    doc.headings = sorted(found, key=lambda h: h.line)


def _heading(line: int, level: int, raw: str) -> Heading:
    anchor = _ANCHOR_ATTR.search(raw)
    if anchor:
        raw = raw[: anchor.start()]
    return Heading(line, level, plain(raw), anchor.group(1) if anchor else None)


_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:._])\1*\s*$")


def _long_enough(underline: str, text: str) -> bool:
    """As docutils: an underline as long as the title, or a short one of 4+ characters
    (which docutils warns about but still renders as a title)."""
    n = len(underline.rstrip())
    return n >= 2 and (n >= len(text.rstrip()) or n >= 4)


def _rst_headings(doc: Document) -> None:
    lines, styles, found = doc.lines, [], []
    usable = [not h and bool(line.strip()) for h, line in zip(doc.hidden, lines, strict=True)]

    def adornment(i: int) -> str | None:
        m = _ADORNMENT.match(lines[i]) if 0 <= i < len(lines) and usable[i] else None
        return m.group(1) if m else None

    i = 0
    while i < len(lines):
        over, text_line = adornment(i), i + 1
        if (
            over
            and i + 2 < len(lines)
            and usable[text_line]
            and adornment(i + 2) == over
            and adornment(text_line) is None
            and len(lines[i + 2].rstrip()) >= len(lines[text_line].strip())
        ):
            style, span = (over, True), (i, i + 3)
        elif (
            usable[i]
            and adornment(i) is None
            and not lines[i][:1].isspace()
            and (char := adornment(i + 1))
            and _long_enough(lines[i + 1], lines[i])
        ):
            style, span, text_line = (char, False), (i, i + 2), i
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        found.append(
            Heading(
                text_line + 1, styles.index(style) + 1, plain(lines[text_line].strip(), rst=True)
            )
        )
        doc.heading_lines.update(range(*span))
        i = span[1]
    doc.headings = found


# --- inline text -----------------------------------------------------------------------------

_MD_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_RST_CODE = re.compile(r"``.+?``|:[\w.+-]+(?::[\w.+-]+)?:`[^`]*`")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)")


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group(0))


def code_free(doc: Document) -> list[str]:
    """Every line with hidden lines emptied and inline code blanked (columns kept)."""
    out = []
    for i, line in enumerate(doc.lines):
        if doc.hidden[i]:
            out.append("")
        elif doc.kind == "markdown":
            out.append(_HTML_COMMENT.sub(_blank, _MD_CODE.sub(_blank, line)))
        else:
            out.append(_RST_CODE.sub(_blank, line))
    return out


Rules = list[tuple[re.Pattern[str], str]]
_MD_BLOCK: Rules = [
    (re.compile(r"^ {0,3}#{1,6}(?=\s|$)|\s#+\s*$|\{#[^{}]*\}\s*$"), " "),
    (re.compile(r"^(?:\s*>)+"), " "),
    (re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+(?:\[[ xX]\]\s+)?"), " "),
    (re.compile(r"^\s*+\|?\s*+:?-{2,}:?\s*+(?:\|\s*+:?-{2,}:?\s*+)*+\|?\s*+$"), ""),
    (re.compile(r"^\s*+([-*_])(?:\s*+\1){2,}+\s*+$"), ""),
]
_MD_INLINE: Rules = [
    (re.compile(r"\{%[^{}]*%\}|\{\{[^{}]*\}\}"), " "),
    (re.compile(r"!\[[^\[\]]*\](?:\([^()]*\)|\[[^\[\]]*\])?"), " "),
    (re.compile(r"\[\^[^\[\]]*\]:?"), " "),
    (re.compile(r"\[([^\[\]]*)\](?:\([^()]*\)|\[[^\[\]]*\])"), r"\1"),
    (re.compile(r"<[a-zA-Z][\w+.-]*:[^<>\s]*>|<[^@<>\s]+@[^<>\s]+>"), " "),
    (re.compile(r"(?<!\w)[*_~]+|[*_~]+(?!\w)"), ""),
    (re.compile(r"\\([^\w\s])"), r"\1"),
]
_RST_BLOCK: Rules = [
    (re.compile(r"^\s*\.\.\s+\[[^\]]+\]\s*"), " "),
    (re.compile(r"^\s*\+[-=+]+\+\s*$|^\s*=+(?:\s+=+)+\s*$"), ""),
    (re.compile(r"^\s*(?:[-*+•]|\d{1,9}[.)]|#\.)\s+"), " "),
    (re.compile(r"::\s*$"), ":"),
]
_RST_INLINE: Rules = [
    (re.compile(r"`([^`<]*?)\s*<[^<>`]+>`__?"), r"\1"),
    (re.compile(r"`([^`]+)`__?"), r"\1"),
    (re.compile(r"`[^`]*`"), " "),
    (re.compile(r"\[(?:#[\w-]*|\*|\d+|[\w-]+)\]_"), " "),
    (re.compile(r"(?<![\w|])\|[^|\s](?:[^|]*[^|\s])?\|(?!\w)"), " "),
    (re.compile(r"(\w)__?(?=[\s.,;:!?)]|$)"), r"\1"),
    (re.compile(r"(?<!\w)\*+|\*+(?!\w)"), ""),
]
_TAGS: Rules = [(re.compile(r"</?[a-zA-Z][^<>]*>|&#?\w+;"), " ")]
_COMMON: Rules = [
    *_TAGS,
    (re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+"), " "),
    (re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)+"), " "),
    (re.compile(r"\|"), " "),
]


def plain(text: str, rst: bool = False) -> str:
    """Inline text as a reader sees it: markup removed, link text and code content kept."""
    text = re.sub(r"``(.+?)``" if rst else r"`+([^`]*)`+", r"\1", text)
    for rx, repl in [*(_RST_INLINE if rst else _MD_INLINE), *_TAGS]:
        text = rx.sub(repl, text)
    return " ".join(text.split())


def prose_lines(doc: Document, *, headings: bool = True) -> list[str]:
    """Per line, the words a reader reads: no code, markup, URLs, e-mail addresses or tags."""
    if doc.kind == "markdown":
        rules = [*_MD_BLOCK, *_MD_INLINE, *_COMMON]
    else:
        rules = [*_RST_BLOCK, *_RST_INLINE, *_COMMON]
    out = []
    for i, line in enumerate(code_free(doc)):
        heading = i in doc.heading_lines
        if (
            not line.strip()
            or i in doc.structure
            or (heading and not headings)
            or (heading and doc.kind == "rst" and _ADORNMENT.match(line))
            or (heading and _SETEXT.match(line))
        ):
            out.append("")
            continue
        for rx, repl in rules:
            line = rx.sub(repl, line)
        out.append(line)
    return out


def paragraphs(doc: Document) -> list[tuple[int, str]]:
    """Prose blocks without headings, each with its first line and ending a sentence, so a
    bullet list or a table does not read as one endless sentence."""
    blocks: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0

    def flush() -> None:
        text = " ".join(current).strip()
        if text:
            blocks.append((start, text if text[-1] in ".!?" else text + "."))
        current.clear()

    for i, text in enumerate(prose_lines(doc, headings=False)):
        raw = doc.lines[i]
        if not text.strip():
            flush()
            continue
        if ITEM.match(raw) or raw.lstrip().startswith("|"):
            flush()
        if not current:
            start = i + 1
        current.append(text.strip())
    flush()
    return blocks


WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


def count_words(text: str) -> int:
    return len(WORD.findall(text))


# --- links and anchors -----------------------------------------------------------------------

_MD_LINK = re.compile(
    r"(!?)\[((?:[^\[\]\\]|\\.|\[(?:[^\[\]\\]|\\.)*\])*)\]"
    r"\(\s*+(<[^<>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
    r"(?:\s++(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*+\)"
)
_MD_DEFINITION = re.compile(r"^ {0,3}\[([^\]^][^\]]*)\]:\s*(<[^>]*>|\S+)")
_MD_IMAGE_REF = re.compile(r"!\[([^\[\]]*)\]\[([^\[\]]*)\]|!\[([^\[\]]+)\](?![\[(])")
_HTML_LINK = re.compile(
    r"<(img|a)\b[^<>]*?\b(src|href)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.IGNORECASE
)
_RST_EMBEDDED = re.compile(r"`[^`<]*<([^<>`]+)>`__?")
_RST_IMAGE = re.compile(r"^\s*\.\.\s+(?:\|[^|]+\|\s+)?(image|figure|include)::\s+(\S(?:.*\S)?)\s*$")
_RST_TARGET = re.compile(r"^\s*\.\.\s+_[^:]+:\s+(\S+)\s*$")


def links(doc: Document) -> list[Link]:
    """Every link and image target with its line (targets as written: not yet resolved)."""
    found: list[Link] = []
    lines = code_free(doc)
    if doc.kind == "rst":
        for i, line in enumerate(lines):
            for m in _RST_EMBEDDED.finditer(line):
                if not m.group(1).endswith("_"):
                    found.append(Link(i + 1, m.group(1).strip()))
            embed = _RST_IMAGE.match(line)
            if embed and not embed.group(2).startswith("<"):
                found.append(Link(i + 1, embed.group(2), image=embed.group(1) != "include"))
            anchor = _RST_TARGET.match(line)
            if anchor and not anchor.group(1).endswith("_"):
                found.append(Link(i + 1, anchor.group(1)))
        return found
    image_refs = {
        (m.group(2) or m.group(1) or m.group(3) or "").strip().lower()
        for line in lines
        for m in _MD_IMAGE_REF.finditer(line)
    }

    def inline(text: str, line: int) -> None:
        for m in _MD_LINK.finditer(text):
            target = m.group(3)
            found.append(
                Link(
                    line, target[1:-1] if target.startswith("<") else target, image=bool(m.group(1))
                )
            )
            inline(m.group(2), line)

    for i, line in enumerate(lines):
        inline(line, i + 1)
        d = _MD_DEFINITION.match(line)
        if d:
            target = d.group(2)[1:-1] if d.group(2).startswith("<") else d.group(2)
            found.append(Link(i + 1, target, image=d.group(1).strip().lower() in image_refs))
        for m in _HTML_LINK.finditer(line):
            found.append(
                Link(
                    i + 1,
                    m.group(3) if m.group(3) is not None else m.group(4),
                    image=m.group(1).lower() == "img",
                )
            )
    return found


def github_slug(text: str) -> str:
    """GitHub's heading id: lowercase, punctuation dropped (not - or _), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def docutils_id(text: str) -> str:
    """docutils' section id: ASCII, lowercase, runs of other characters to one hyphen."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"^[-0-9]+|-+$", "", re.sub(r"[^a-z0-9]+", "-", text))


_HTML_ID = re.compile(r"<[a-zA-Z][^<>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")
_RST_NAMED = re.compile(r"^\s*\.\.\s+_([^:]+):\s*$")


def anchors(doc: Document) -> set[str]:
    """The fragment ids a link may name in this file (`file.md#section`)."""
    ids: set[str] = set()
    if doc.kind == "rst":
        ids.update(docutils_id(h.text) for h in doc.headings)
        ids.update(docutils_id(m.group(1)) for line in doc.lines if (m := _RST_NAMED.match(line)))
        return ids
    seen: dict[str, int] = {}
    for h in doc.headings:
        if h.anchor:
            ids.add(h.anchor)
            continue
        slug = github_slug(h.text)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    ids.update(m.group(1) for line in code_free(doc) for m in _HTML_ID.finditer(line))
    return ids
