"""Content review of articles and blog posts: metadata, headings, readability, spelling, links
and length of the changed Markdown and reST files.

Each check reads the changed files through `markup` (front matter, code blocks and comments set
aside, line numbers kept), so a misspelling in a code sample or a link in a comment is never a
finding, and every finding names the line the writer edits. The work is CPU-bound and runs in a
worker thread, so the review's event loop keeps running the other checks meanwhile.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import importlib.util
import posixpath
import re
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ...errors import TaskFailed
from ..findings import CheckResult, Finding, Severity
from . import markup, site
from .base import CheckContext, ToolMissing

EXTENSIONS = (".md", ".markdown", ".rst")
NOTHING = "no Markdown/reST files changed"
MAX_SUGGEST_LETTERS = 20
"""Longer unknown words get no suggestion (their edit neighbourhood is big and rarely useful)."""


# --- shared ----------------------------------------------------------------------------------


def _documents(ctx: CheckContext) -> list[markup.Document]:
    """The changed Markdown/reST files, parsed. Files that are not text, or that are links
    pointing outside the repository, are left out: their content is not the article's."""
    extensions = tuple(_strings(ctx, "extensions", list(EXTENSIONS)))
    root = ctx.root.resolve()
    docs = []
    for rel in ctx.files(*extensions):
        text = _read(root, rel)
        if text is not None:
            docs.append(markup.parse(rel, text))
    return docs


def read_text_file(root: Path, rel: str) -> str | None:
    """The file's text; None for a binary file or a link out of the repository."""
    try:
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        data = path.read_bytes()
    except (OSError, RuntimeError):
        return None
    return None if b"\0" in data[:8192] else data.decode("utf-8", "replace")


def string_option(ctx: CheckContext, name: str, default: list[str]) -> list[str]:
    """A list-of-strings option (a single string is a list of one); a bad value is the
    template's fault: no retry."""
    value = ctx.options.get(name, default)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise TaskFailed(
            f"option {name}: expected a list of strings, got {value!r}", retryable=False
        )
    return [str(v) for v in value]


_read = read_text_file
_strings = string_option


def _number(ctx: CheckContext, name: str, default: float | None) -> float | None:
    """A numeric option; null switches the limit off."""
    value = ctx.options.get(name, default)
    if value is None:
        return None
    bad = TaskFailed(f"option {name}: expected a number, got {value!r}", retryable=False)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad
    try:
        return float(value)
    except ValueError:
        raise bad from None


def _finding(
    ctx: CheckContext,
    doc: markup.Document,
    line: int | None,
    severity: Severity,
    rule: str,
    message: str,
) -> Finding:
    return Finding(
        check=ctx.check, file=doc.path, line=line, severity=severity, rule=rule, message=message
    )


def _what(docs: list[markup.Document]) -> str:
    return f"{len(docs)} Markdown/reST file(s)"


# --- metadata --------------------------------------------------------------------------------


async def metadata(ctx: CheckContext) -> CheckResult:
    """Front matter (Markdown YAML) or the leading field list (reST): what site generators
    and feeds read. Options: `required` ([title]), `recommended` ([description, date, author]),
    `date_keys` ([date]), `extensions`."""
    return await asyncio.to_thread(_metadata, ctx)


def _metadata(ctx: CheckContext) -> CheckResult:
    docs = _documents(ctx)
    if not docs:
        return ctx.skip(NOTHING)
    required = _strings(ctx, "required", ["title"])
    recommended = [
        k
        for k in _strings(ctx, "recommended", ["description", "date", "author"])
        if k not in required
    ]
    date_keys = _strings(ctx, "date_keys", ["date"])
    findings: list[Finding] = []
    untitled: list[str] = []
    headed = _titled_by_heading(ctx, docs)
    for doc in docs:
        if doc.meta_error is not None:
            untitled.append(doc.path)  # the title may be in there: the finding says what to fix
            findings.append(
                _finding(
                    ctx, doc, doc.meta_error[0], "error", "metadata-invalid", doc.meta_error[1]
                )
            )
            continue
        meta = dict(doc.meta or {})
        if doc.kind == "rst" and doc.headings and "title" not in meta:
            meta["title"] = doc.headings[0].text  # reST's title is its first heading
        if doc.path in headed and _empty(meta.get("title")):
            assert doc.title is not None
            meta["title"] = doc.title[0]  # MkDocs and Sphinx title a page by its first H1
            if not doc.meta and set(required) <= {"title"}:
                continue  # and read no front matter: nothing to ask of a page without one
        if "title" in required and _empty(meta.get("title")):
            untitled.append(doc.path)
        where = "front matter" if doc.kind == "markdown" else "field list (:key: value)"
        if not meta:
            if required:
                findings.append(
                    _finding(
                        ctx,
                        doc,
                        1,
                        "error",
                        "metadata-missing",
                        f"no {where}; required: {', '.join(required)}",
                    )
                )
            elif recommended:
                findings.append(
                    _finding(
                        ctx,
                        doc,
                        1,
                        "info",
                        "metadata-recommended",
                        f"no {where}; recommended: {', '.join(recommended)}",
                    )
                )
            continue
        for key in required:
            if _empty(meta.get(key)):
                state = "is empty" if key in meta else "is missing"
                findings.append(
                    _finding(
                        ctx,
                        doc,
                        doc.meta_lines.get(key, 1),
                        "error",
                        "metadata-required",
                        f"required key {key!r} {state}",
                    )
                )
        for key in recommended:
            if _empty(meta.get(key)):
                findings.append(
                    _finding(
                        ctx,
                        doc,
                        doc.meta_lines.get(key, 1),
                        "info",
                        "metadata-recommended",
                        f"recommended key {key!r} is missing",
                    )
                )
        for key in date_keys:
            if not _empty(meta.get(key)) and not _iso_date(meta[key]):
                findings.append(
                    _finding(
                        ctx,
                        doc,
                        doc.meta_lines.get(key, 1),
                        "warning",
                        "metadata-date",
                        f"{key} {meta[key]!s:.40} is not an ISO date (YYYY-MM-DD)",
                    )
                )
    # The headings check (run after this one) leaves a missing title to this finding.
    return ctx.result(findings, what=_what(docs), metrics={"untitled": untitled})


HEADING_TITLED = frozenset({"mkdocs", "sphinx"})
"""Site generators whose Markdown pages take their title from the first top-level heading when
the front matter gives none (Jekyll and Hugo need front matter to build a page at all)."""


def _titled_by_heading(ctx: CheckContext, docs: list[markup.Document]) -> set[str]:
    """The Markdown documents without a front-matter title whose site titles them by their
    first H1 — which they have. The sites are looked for only when such a document exists."""
    candidates = [
        d
        for d in docs
        if d.kind == "markdown"
        and d.meta_error is None
        and _empty((d.meta or {}).get("title"))
        and d.title is not None
    ]
    if not candidates:
        return set()
    sites = site.find_sites(ctx.root.resolve())
    found = set()
    for doc in candidates:
        owner = next((s for s in sites if s.owns(doc.path)), None)
        if owner is not None and owner.kind in HEADING_TITLED:
            found.add(doc.path)
    return found


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    r"\s*(?:Z|[+-]\d{2}:?\d{2})?"
)


def _iso_date(value: Any) -> bool:
    """`2024-01-05`, optionally with a time and offset (Jekyll's `2024-01-05 10:00 +0200`)."""
    if isinstance(value, date | datetime):
        return True
    m = _ISO.fullmatch(str(value).strip())
    if m is None:
        return False
    try:
        date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if m.group(4):
            time(int(m.group(4)), int(m.group(5)), int(m.group(6) or 0))
    except ValueError:
        return False
    return True


# --- headings --------------------------------------------------------------------------------


async def headings(ctx: CheckContext) -> CheckResult:
    """One title, no skipped levels, no empty or repeated headings: the outline readers and
    screen readers navigate by, and the table of contents generators build."""
    return await asyncio.to_thread(_headings, ctx)


def _headings(ctx: CheckContext) -> CheckResult:
    docs = _documents(ctx)
    if not docs:
        return ctx.skip(NOTHING)
    # One problem, one finding: a title the metadata check already asked for is not asked
    # for again.
    untitled = {
        path
        for r in ctx.upstream.values()
        for path in r.metrics.get("untitled", ())
        if isinstance(path, str)
    }
    findings: list[Finding] = []
    for doc in docs:
        found = sorted(_outline(ctx, doc), key=lambda f: f.line or 0)
        if doc.path in untitled:
            found = [f for f in found if f.rule != "heading-no-title"]
        findings += found
    return ctx.result(findings, what=_what(docs))


def _outline(ctx: CheckContext, doc: markup.Document) -> list[Finding]:
    findings: list[Finding] = []
    hs = doc.headings
    meta_title = not _empty((doc.meta or {}).get("title"))
    tops = [h for h in hs if h.level == 1 and h.text.strip()]
    if not tops and not meta_title:
        findings.append(
            _finding(
                ctx,
                doc,
                1,
                "error",
                "heading-no-title",
                "no title: add a top-level heading or a title in the front matter",
            )
        )
    for h in tops[1:]:
        findings.append(
            _finding(
                ctx,
                doc,
                h.line,
                "warning",
                "heading-multiple-h1",
                f"more than one top-level heading (the first is on line {tops[0].line})",
            )
        )
    previous = 1 if tops or meta_title else (hs[0].level if hs else 1)
    parents: list[markup.Heading] = []
    seen: dict[tuple[int, str], int] = {}
    for h in hs:
        if h.level > previous + 1:
            findings.append(
                _finding(
                    ctx,
                    doc,
                    h.line,
                    "warning",
                    "heading-skip",
                    f"heading level skips from H{previous} to H{h.level}",
                )
            )
        previous = h.level
        while parents and parents[-1].level >= h.level:
            parents.pop()
        parent = parents[-1].line if parents else 0
        parents.append(h)
        text = h.text.strip()
        if not text:
            findings.append(_finding(ctx, doc, h.line, "error", "heading-empty", "empty heading"))
            continue
        key = (parent, text.casefold())
        if key in seen:
            findings.append(
                _finding(
                    ctx,
                    doc,
                    h.line,
                    "info",
                    "heading-duplicate",
                    f"heading {text!r} repeats line {seen[key]} under the same parent",
                )
            )
        seen.setdefault(key, h.line)
        if text[-1] in ".:;," and not text.endswith(".."):
            findings.append(
                _finding(
                    ctx,
                    doc,
                    h.line,
                    "info",
                    "heading-punctuation",
                    f"heading ends with {text[-1]!r}",
                )
            )
    return findings


# --- readability -----------------------------------------------------------------------------


async def readability(ctx: CheckContext) -> CheckResult:
    """Flesch reading ease and Flesch-Kincaid grade of the prose (no code, headings, URLs or
    tags). Options: `min_reading_ease` (30), `max_grade` (14), `min_words` (50): shorter
    texts get numbers but no finding, since a few sentences make the scores swing."""
    return await asyncio.to_thread(_readability, ctx)


def _readability(ctx: CheckContext) -> CheckResult:
    docs = _documents(ctx)
    if not docs:
        return ctx.skip(NOTHING)
    min_ease = _number(ctx, "min_reading_ease", 30)
    max_grade = _number(ctx, "max_grade", 14)
    min_words = _number(ctx, "min_words", 50) or 0
    findings: list[Finding] = []
    files: dict[str, dict[str, Any]] = {}
    for doc in docs:
        blocks = markup.paragraphs(doc)
        text = " ".join(t for _, t in blocks)
        words = markup.count_words(text)
        entry: dict[str, Any] = {"reading_ease": None, "grade": None, "words": words}
        files[doc.path] = entry
        if not words:
            continue
        ease, grade = flesch(text)
        entry.update(reading_ease=ease, grade=grade)
        if words < min_words:
            continue
        low = min_ease is not None and ease < min_ease
        high = max_grade is not None and grade > max_grade
        if low or high:
            hardest = max(
                ((flesch(t)[1], line) for line, t in blocks if markup.count_words(t) >= 10),
                default=(grade, blocks[0][0]),
            )
            limits = (
                f" (minimum {min_ease:g})" if low else "",
                f" (maximum {max_grade:g})" if high else "",
            )
            findings.append(
                _finding(
                    ctx,
                    doc,
                    blocks[0][0],
                    "warning",
                    "readability",
                    f"hard to read: Flesch reading ease {ease:.1f}{limits[0]}, Flesch-Kincaid "
                    f"grade {grade:.1f}{limits[1]}; hardest paragraph on line {hardest[1]}: "
                    f"shorter sentences and words help",
                )
            )
    return ctx.result(findings, what=_what(docs), metrics={"files": files})


_FRE = (206.835, 1.015, 84.6)


def flesch(text: str) -> tuple[float, float]:
    """(Flesch reading ease, Flesch-Kincaid grade), rounded to one decimal."""
    try:
        import textstat
    except ImportError:
        raise ToolMissing("textstat") from None
    if _cmudict_installed():
        ease, grade = textstat.flesch_reading_ease(text), textstat.flesch_kincaid_grade(text)
    else:
        words = markup.WORD.findall(text)
        sentences = max(1, textstat.sentence_count(text))
        per_sentence = len(words) / sentences
        per_word = sum(_syllables(w) for w in words) / max(1, len(words))
        ease = _FRE[0] - _FRE[1] * per_sentence - _FRE[2] * per_word
        grade = 0.39 * per_sentence + 11.8 * per_word - 15.59
    return round(float(ease), 1), round(float(grade), 1)


@functools.cache
def _cmudict_installed() -> bool:
    """textstat >= 0.7.4 looks English syllables up in NLTK's cmudict and downloads it when it
    is missing. A review must not reach the network, so without a local copy the syllables
    come from pyphen, which is what textstat itself uses for words cmudict does not know."""
    try:
        import nltk

        nltk.data.find("corpora/cmudict")
    except (ImportError, LookupError):
        return False
    return True


@functools.lru_cache(maxsize=65536)
def _syllables(word: str) -> int:
    hyphenator = _hyphenator()
    if hyphenator is None:  # pragma: no cover - textstat depends on pyphen
        return max(1, len(re.findall(r"[aeiouy]+", word.lower())))
    return len(hyphenator.positions(word.lower())) + 1


@functools.cache
def _hyphenator() -> Any:
    try:
        import pyphen
    except ImportError:  # pragma: no cover
        return None
    return pyphen.Pyphen(lang="en_US")


# --- spelling --------------------------------------------------------------------------------


async def spelling(ctx: CheckContext) -> CheckResult:
    """Misspelled words in the prose (and the title and description), with a suggestion.

    With codespell installed (the default engine, `auto`), only words codespell's lists know
    as misspellings are reported: jargon, names and new words are never noise. Without it
    (or with `engine: dictionary`), pyspellchecker reports words its dictionary lacks. Either
    way the words of the repository's own code (and, for the dictionary, its other docs)
    count as known, as do the project's word lists. Options: `engine` (auto, codespell,
    dictionary), `language` (en; dictionary engine), `wordlist` (.reviewflow/words.txt;
    `.wordlist.txt` is always read too), `words` (extra allowed words), `max_per_file` (50).
    """
    return await asyncio.to_thread(_spelling, ctx)


ENGINES = ("auto", "codespell", "dictionary")


def _spelling(ctx: CheckContext) -> CheckResult:
    docs = _documents(ctx)
    if not docs:
        return ctx.skip(NOTHING)
    engine = str(ctx.options.get("engine", "auto"))
    if engine not in ENGINES:
        raise ValueError(f"option engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        engine = "codespell" if importlib.util.find_spec("codespell_lib") else "dictionary"
    cap = int(_number(ctx, "max_per_file", 50) or 0)
    allowed = _wordlist(ctx)
    changed = {f.path for f in ctx.change.files}
    if engine == "codespell":
        misspelled = _codespell_words()
        known = allowed | repository_words(ctx.root, changed, docs=False)

        def flagged(words: set[str]) -> set[str]:
            return {w for w in words if w in misspelled and w not in known}

        def suggest(word: str) -> str | None:
            return misspelled.get(word.lower())

        label = "misspelled word"
    else:
        try:
            from spellchecker import SpellChecker
        except ImportError:
            raise ToolMissing("pyspellchecker") from None
        language = str(ctx.options.get("language", "en"))
        try:  # distance 1 keeps a suggestion to milliseconds (distance 2: up to seconds a word)
            spell = SpellChecker(language=language, distance=1)
        except ValueError:
            return ctx.skip(f"pyspellchecker has no dictionary for language {language!r}")
        known = allowed | repository_words(ctx.root, changed, docs=True)
        cache: dict[str, str | None] = {}

        def flagged(words: set[str]) -> set[str]:
            return {w for w in spell.unknown(words) if w not in known}

        def suggest(word: str) -> str | None:
            return _suggest(spell, word, cache)

        label = "unknown word"
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    for doc in docs:
        found = spelling_words(doc)
        bad_words = flagged({w.lower() for _, w in found})
        bad = [(line, w) for line, w in found if w.lower() in bad_words]
        counts[doc.path] = len(bad)
        for line, word in bad[:cap] if cap else bad:
            hint = suggest(word)
            if hint and word[:1].isupper():
                hint = hint[:1].upper() + hint[1:]
            findings.append(
                _finding(
                    ctx,
                    doc,
                    line,
                    "warning",
                    "spelling",
                    f"{label} {word!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
                )
            )
        if cap and len(bad) > cap:
            findings.append(
                _finding(
                    ctx,
                    doc,
                    bad[cap][0],
                    "info",
                    "spelling",
                    f"{len(bad) - cap} more {label}(s) not listed (max_per_file: {cap})",
                )
            )
    metrics = {
        "engine": engine,
        "unknown": sum(counts.values()),
        "files": counts,
        "wordlist": len(allowed),
    }
    return ctx.result(findings, what=_what(docs), metrics=metrics)


@functools.cache
def _codespell_words() -> dict[str, str | None]:
    """codespell's default lists (clear and rare): misspelling → first correction."""
    import codespell_lib

    data = Path(codespell_lib.__file__).parent / "data"
    out: dict[str, str | None] = {}
    for name in ("dictionary.txt", "dictionary_rare.txt"):
        try:
            text = (data / name).read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            wrong, _, fixes = line.partition("->")
            first = next((f.strip() for f in fixes.split(",") if f.strip()), None)
            out.setdefault(wrong.strip().lower(), first)
    return out


CODE_SUFFIXES = (
    ".py", ".pyi", ".js", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".c", ".h",
    ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".scala", ".sh", ".toml", ".yaml", ".yml",
    ".json", ".cfg", ".ini",
)  # fmt: skip
DOC_SUFFIXES = (".md", ".markdown", ".rst", ".rest", ".txt")
MAX_VOCABULARY_FILES = 5000
MAX_VOCABULARY_BYTES = 1_000_000
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HUMP = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def repository_words(root: Path, changed: set[str], *, docs: bool) -> frozenset[str]:
    """Lowercased words of the repository's code (identifiers split at `_` and humps) and,
    with `docs`, of its other documents: the project's own vocabulary. The changed files are
    left out, so a typo the change makes does not vouch for itself."""
    suffixes = CODE_SUFFIXES + (DOC_SUFFIXES if docs else ())
    return _vocabulary(str(root), tuple(sorted(changed)), suffixes)


def _vocabulary(root: str, changed: tuple[str, ...], suffixes: tuple[str, ...]) -> frozenset[str]:
    from ..change import git

    try:
        listed = git(Path(root), "ls-files", "-z").stdout.split(b"\0")
    except Exception:  # not a git work tree: no vocabulary, not an error
        return frozenset()
    skip = set(changed)
    words: set[str] = set()
    files = 0
    for raw in listed:
        rel = raw.decode("utf-8", "replace")
        if not rel or rel in skip or not rel.lower().endswith(suffixes):
            continue
        files += 1
        if files > MAX_VOCABULARY_FILES:
            break
        try:
            small = (Path(root) / rel).stat().st_size < MAX_VOCABULARY_BYTES
        except OSError:  # deleted in the work tree
            continue
        text = _read(Path(root), rel) if small else None
        if text is None:
            continue
        for ident in set(_IDENT.findall(text)):
            words.add(ident.lower())
            for part in _HUMP.findall(ident.replace("_", " ")):
                words.add(part.lower())
    return frozenset(words)


def _suggest(spell: Any, word: str, cache: dict[str, str | None]) -> str | None:
    key = word.lower()
    if key not in cache:
        hint = spell.correction(key) if len(key) <= MAX_SUGGEST_LETTERS else None
        cache[key] = hint if hint and hint != key else None
    hint = cache[key]
    return hint.capitalize() if hint and word[:1].isupper() else hint


def project_words(ctx: CheckContext) -> set[str]:
    """The project's own words, as written: the `words` option, then the word list files
    (`wordlist`, default .reviewflow/words.txt, and .wordlist.txt): one a line, `#` comments."""
    words = {w.strip() for w in _strings(ctx, "words", []) if w.strip()}
    root = ctx.root.resolve()
    for rel in [*_strings(ctx, "wordlist", [".reviewflow/words.txt"]), ".wordlist.txt"]:
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = line.split(" #", 1)[0].strip()
            if entry and not entry.startswith("#"):
                words.add(entry)
    return words


def _wordlist(ctx: CheckContext) -> set[str]:
    """The project's own words for spelling, where case does not matter."""
    return {w.lower() for w in project_words(ctx)}


_DOTTED = re.compile(r"\w+(?:\.\w+)+")
_TOKEN = re.compile(r"[\w'\u2019-]+")
_META_KEY = re.compile(r"^\s*+:?[\"']?[\w -]+[\"']?:\s*[|>]?[-+]?")


def spelling_words(doc: markup.Document) -> list[tuple[int, str]]:
    """(line, word) for each word worth checking. Left out: code, URLs, paths, words with
    digits or underscores, ALL-CAPS acronyms, CamelCase and iPhone-style names, words under
    three letters, and metadata other than the title and description."""
    lines = markup.prose_lines(doc)
    for key in ("title", "description"):
        first = doc.meta_lines.get(key)
        if first is None or doc.meta is None:
            continue
        i = first - 1
        lines[i] = _META_KEY.sub("", doc.lines[i])
        while (
            i + 1 < len(lines)
            and doc.lines[i + 1][:1].isspace()
            and (doc.hidden[i + 1] or i + 1 in doc.structure)
        ):
            i += 1
            lines[i] = doc.lines[i]
    out = []
    for i, text in enumerate(lines):
        for chunk in text.split():
            if any(c in chunk for c in "/\\@") or _DOTTED.fullmatch(chunk.strip(_EDGES)):
                continue  # a path, a file name, a domain, an address: not words
            for token in _TOKEN.findall(chunk):
                for part in token.replace("\u2019", "'").split("-"):
                    word = part.strip("'")
                    if word.lower().endswith("'s"):
                        word = word[:-2]
                    if len(word) >= 3 and word.replace("'", "").isalpha() and not _name_like(word):
                        out.append((i + 1, word))
    return out


_EDGES = ".,;:!?()[]{}\"'"


def _name_like(word: str) -> bool:
    return (
        word.isupper()
        or bool(re.fullmatch(r"[A-Z]{2,}s", word))
        or bool(re.search(r"[a-z][A-Z]", word))
        or (word[0].islower() and not word.islower())
    )


# --- links -----------------------------------------------------------------------------------


async def links(ctx: CheckContext) -> CheckResult:
    """Relative links and images must point at files in the work tree or at pages the site
    generator builds (Jekyll permalinks, posts and collections, Hugo, MkDocs, Sphinx: see
    `site`), and at headings that exist. Absolute URLs are not fetched. Options: `ignore`
    (globs of targets to skip), `site_roots` (folders that `/x` links may also be relative
    to, like `static`)."""
    return await asyncio.to_thread(_links, ctx)


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def _links(ctx: CheckContext) -> CheckResult:
    docs = _documents(ctx)
    if not docs:
        return ctx.skip(NOTHING)
    ignore = _strings(ctx, "ignore", [])
    site_roots = [r.strip("/") for r in _strings(ctx, "site_roots", [])]
    root = ctx.root.resolve()
    parsed: dict[str, markup.Document | None] = {d.path: d for d in docs}
    sites: list[site.Site] | None = None  # found on the first link the file tree cannot answer

    def served(source: str, target: str) -> str | None:
        nonlocal sites
        if sites is None:
            sites = site.find_sites(root)
        for s in sites:
            if s.owns(source):
                return s.resolve(root, source, target)
        return None

    findings: list[Finding] = []
    checked = 0
    for doc in docs:
        for link in markup.links(doc):
            target = link.target.strip()
            if (
                _SCHEME.match(target)
                or "{{" in target
                or "{%" in target
                or any(fnmatch.fnmatchcase(target, p) for p in ignore)
            ):
                continue
            checked += 1
            finding = _check_link(ctx, root, doc, link, target, site_roots, parsed, served)
            if finding is not None:
                findings.append(finding)
    return ctx.result(findings, what=_what(docs), metrics={"links": checked})


def _check_link(
    ctx: CheckContext,
    root: Path,
    doc: markup.Document,
    link: markup.Link,
    target: str,
    site_roots: list[str],
    parsed: dict[str, markup.Document | None],
    served: Callable[[str, str], str | None] = lambda source, target: None,
) -> Finding | None:
    kind, rule = ("image", "image-missing") if link.image else ("link", "link-broken")
    if not target:
        return _finding(ctx, doc, link.line, "warning", "link-empty", f"empty {kind} target")
    path, _, anchor = target.partition("#")
    path, anchor = unquote(path.split("?", 1)[0]), unquote(anchor)
    rel: str | None
    if not path:
        rel = doc.path
    else:
        rel, outside = _locate(root, doc.path, path, site_roots)
        if rel is None:
            # Not a file: maybe a page the site generator builds (a permalink, a directory
            # URL, a post's dated URL).
            rel = served(doc.path, path)
            outside = outside and rel is None
        if outside:
            return _finding(
                ctx,
                doc,
                link.line,
                "error",
                rule,
                f"{kind} target {target!r} points outside the repository",
            )
        if rel is None:
            return _finding(
                ctx, doc, link.line, "error", rule, f"{kind} target not found: {target}"
            )
    if (
        not anchor
        or re.fullmatch(r"L\d+(?:-L\d+)?", anchor)
        or not rel.lower().endswith(markup.MARKUP_SUFFIXES)
    ):
        return None
    if rel not in parsed:
        text = _read(root, rel)
        parsed[rel] = markup.parse(rel, text) if text is not None else None
    other = parsed[rel]
    if other is None or anchor.lower() in {a.lower() for a in markup.anchors(other)}:
        return None
    where = "this file" if rel == doc.path else rel
    return _finding(
        ctx, doc, link.line, "warning", "link-anchor", f"no heading or anchor #{anchor} in {where}"
    )


def _locate(root: Path, source: str, target: str, site_roots: list[str]) -> tuple[str | None, bool]:
    """(repo-relative path the target names, or None; whether it leaves the repository).

    `/x` is tried against the repository root, each site root and each folder above the file
    (Sphinx reads it from the documentation root); `page.html` is found as its source
    `page.rst`/`page.md`, and `page` as `page.md`, as site generators build them.
    """
    folder = posixpath.dirname(source)
    if target.startswith("/"):
        bases = ["", *site_roots]
        while folder:
            bases.append(folder)
            folder = posixpath.dirname(folder)
        candidates = [posixpath.join(b, target.lstrip("/")) for b in bases]
    else:
        candidates = [posixpath.join(folder, target)]
    outside = False
    for candidate in candidates:
        rel = posixpath.normpath(candidate)
        if rel == ".." or rel.startswith("../"):
            outside = True
            continue
        stem, suffix = posixpath.splitext(rel)
        alternatives = [rel]
        if suffix == ".html":
            alternatives += [stem + s for s in markup.MARKUP_SUFFIXES]
        elif not suffix:
            alternatives += [rel + s for s in markup.MARKUP_SUFFIXES]
        for alt in alternatives:
            try:
                full = root / alt
                if not full.exists():
                    continue
                if not full.resolve().is_relative_to(root):
                    outside = True
                    continue
            except (OSError, ValueError, RuntimeError):  # NUL, too long, a symlink loop
                continue
            return alt, False
    return None, outside


# --- length ----------------------------------------------------------------------------------


async def length(ctx: CheckContext) -> CheckResult:
    """Word count of the prose and length of the title (search results cut titles near 70
    characters). Options: `min_words` (100), `max_words` (5000), `max_title_length` (70);
    null switches a limit off."""
    return await asyncio.to_thread(_length, ctx)


def _length(ctx: CheckContext) -> CheckResult:
    docs = _documents(ctx)
    if not docs:
        return ctx.skip(NOTHING)
    min_words = _number(ctx, "min_words", 100)
    max_words = _number(ctx, "max_words", 5000)
    max_title = _number(ctx, "max_title_length", 70)
    findings: list[Finding] = []
    files: dict[str, dict[str, Any]] = {}
    for doc in docs:
        words = markup.count_words(" ".join(t for _, t in markup.paragraphs(doc)))
        title = doc.title
        files[doc.path] = {"words": words, "title_length": len(title[0]) if title else None}
        if min_words is not None and words < min_words:
            findings.append(
                _finding(
                    ctx,
                    doc,
                    1,
                    "warning",
                    "length-words",
                    f"{words} words: shorter than {min_words:g}",
                )
            )
        if max_words is not None and words > max_words:
            findings.append(
                _finding(
                    ctx,
                    doc,
                    1,
                    "warning",
                    "length-words",
                    f"{words} words: longer than {max_words:g}",
                )
            )
        if title and max_title is not None and len(title[0]) > max_title:
            findings.append(
                _finding(
                    ctx,
                    doc,
                    title[1],
                    "warning",
                    "length-title",
                    f"title is {len(title[0])} characters (maximum {max_title:g})",
                )
            )
    total = sum(f["words"] for f in files.values())
    return ctx.result(findings, what=_what(docs), metrics={"files": files, "words": total})
