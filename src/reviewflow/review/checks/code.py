"""Code checks of a pull request: syntax, lint, format, security scan and secret scan.

Each check looks at the changed files only and reports every finding in them; narrowing to the
changed lines is the summary's job, so a check never filters by line.

File names come from the pull request and are untrusted (`$(touch x).py`, `-rf.py`): tools get
argv lists (no shell) with the files after `--`, and the files read in-process are regular
files of the work tree (a symlink could point anywhere on the reviewer's machine).

Options:
    lint      select       rule codes or prefixes for `ruff check --select` (default: the
                           project's ruff configuration)
              ignore       rule codes or prefixes for `ruff check --ignore` (default none)
              error_rules  code prefixes reported as errors, the rest are warnings
                           (default ["F", "E9"]: pyflakes and syntax-level errors)
    security  skip         bandit test ids not to run, e.g. ["B101"] (default none)
              config       bandit configuration file relative to the repository (default
                           pyproject.toml when it has a [tool.bandit] table)
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import os
import re
import threading
import tomllib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..findings import CheckResult, Finding, Severity, clean_message
from .base import CheckContext, ToolMissing

PYTHON = (".py", ".pyi")
BATCH = 500
"""Files per tool run: a pull request touching thousands of files must not overflow argv."""
DEFAULT_ERROR_RULES = ("F", "E9")
_RULE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_HUNK = re.compile(r"^@@ -(\d+)")
_BANDIT_SEVERITY: dict[str, Severity] = {"HIGH": "error", "MEDIUM": "warning", "LOW": "info"}
_GENERIC_SECRETS = ("Base64 High Entropy String", "Hex High Entropy String", "Secret Keyword")
_SECRETS_LOCK = threading.Lock()
"""detect-secrets keeps its settings in process-wide state: one scan at a time."""


async def syntax(ctx: CheckContext) -> CheckResult:
    """Parse each changed Python file in-process: no tool to install, and nothing executed."""
    files = _regular(ctx, PYTHON)
    if not files:
        return ctx.skip("no Python files changed")
    root = Path(ctx.root)

    async def parse(batch: list[str]) -> tuple[list[Finding], dict[str, Any]]:
        return await asyncio.to_thread(_parse_all, root, batch, ctx.check), {}

    findings, _ = await ctx.each_file(files, parse)
    return ctx.result(
        findings, what=f"{len(files)} Python file(s) parsed", metrics={"files": len(files)}
    )


def _parse_all(root: Path, files: list[str], check: str) -> list[Finding]:
    with warnings.catch_warnings():
        # An invalid escape sequence and the like are warnings, not syntax errors (and with
        # warnings turned into errors, as in a test run, they would pass for them).
        warnings.simplefilter("ignore")
        return [f for path in files if (f := _parse(root, path, check)) is not None]


def _parse(root: Path, path: str, check: str) -> Finding | None:
    try:
        source = (root / path).read_bytes()
    except OSError as exc:
        return Finding(
            check=check,
            file=path,
            severity="error",
            rule="unreadable",
            message=clean_message(f"cannot read the file: {exc.strerror or exc}"),
        )
    try:
        ast.parse(source, filename=path)
    except SyntaxError as exc:
        line = exc.lineno if exc.lineno else _null_line(source)
        return Finding(
            check=check,
            file=path,
            line=line,
            severity="error",
            rule="syntax-error",
            message=clean_message(exc.msg or str(exc)),
        )
    except ValueError as exc:  # null bytes (Python < 3.12), undecodable source
        return Finding(
            check=check,
            file=path,
            line=_null_line(source),
            severity="error",
            rule="syntax-error",
            message=clean_message(str(exc)),
        )
    return None


def _null_line(source: bytes) -> int | None:
    at = source.find(b"\0")
    return source.count(b"\n", 0, at) + 1 if at >= 0 else None


async def lint(ctx: CheckContext) -> CheckResult:
    """`ruff check` with the project's own configuration (found from the repository root).

    A file the syntax check (run before, in the template) found a parse error in keeps that
    one finding: ruff's own report of the same error is left out."""
    files = _regular(ctx, PYTHON)
    if not files:
        return ctx.skip("no Python files changed")
    ruff = ctx.python_module("ruff")
    select = _rules(ctx.options.get("select"), "select")
    ignore = _rules(ctx.options.get("ignore"), "ignore")
    error_rules = tuple(_rules(ctx.options.get("error_rules", DEFAULT_ERROR_RULES), "error_rules"))
    argv = [
        *ruff,
        "check",
        "--output-format=json",
        "--no-cache",
        "--no-fix",
        "--force-exclude",
        "--exit-zero",
    ]
    if select:
        argv.append(f"--select={','.join(select)}")
    if ignore:
        argv.append(f"--ignore={','.join(ignore)}")

    async def check(todo: list[str]) -> tuple[list[Finding], dict[str, Any]]:
        paths = PathMap(ctx.root, todo)
        found: list[Finding] = []
        urls: dict[str, str] = {}
        for batch in _batches(todo):
            run = await ctx.run_tool([*argv, "--", *batch])
            try:
                diagnostics = json.loads(run.stdout or "[]")
            except json.JSONDecodeError:
                diagnostics = None
            if run.returncode != 0 or not isinstance(diagnostics, list):
                raise RuntimeError(
                    f"ruff check failed (exit {run.returncode}): {_tail(run.stderr or run.stdout)}"
                )
            found += ruff_findings(diagnostics, paths, ctx.check, error_rules)
            urls.update(rule_urls(diagnostics, "code", "url"))
        return found, _urls_by_file(found, urls)

    findings, data = await ctx.each_file(files, check)
    urls = {k: v for d in data.values() for k, v in d.get("rule_urls", {}).items()}
    # One problem, one finding: a parse error the syntax check reported is not reported again.
    parsed = {f.file for r in ctx.upstream.values() for f in r.findings if f.rule == "syntax-error"}
    findings = [f for f in findings if not (f.rule == "syntax-error" and f.file in parsed)]
    return ctx.result(
        findings,
        what=f"ruff check on {len(files)} file(s)",
        metrics={"files": len(files), "rule_urls": urls},
    )


def _urls_by_file(findings: Iterable[Finding], urls: Mapping[str, str]) -> dict[str, Any]:
    """Each file's rule documentation links, for the rules found in it (kept with its
    findings when they are cached)."""
    out: dict[str, Any] = {}
    for f in findings:
        if f.file is not None and f.rule in urls:
            out.setdefault(f.file, {"rule_urls": {}})["rule_urls"][f.rule] = urls[f.rule]
    return out


def rule_urls(items: Iterable[Mapping[str, Any]], code: str, url: str) -> dict[str, str]:
    """Each rule's documentation page as the tool names it (code scanning links to it)."""
    out: dict[str, str] = {}
    for item in items:
        rule, link = item.get(code), item.get(url)
        if isinstance(rule, str) and isinstance(link, str) and link.startswith("https://"):
            out.setdefault(rule, link)
    return out


def ruff_findings(
    diagnostics: Iterable[Mapping[str, Any]],
    paths: PathMap,
    check: str,
    error_rules: Sequence[str] = DEFAULT_ERROR_RULES,
) -> list[Finding]:
    """Findings from `ruff check --output-format=json`, for the files in `paths` only.

    Syntax errors have no rule code in some ruff versions and `invalid-syntax` or E999 in
    others; all of them are errors whatever `error_rules` says.
    """
    findings: list[Finding] = []
    for item in diagnostics:
        file = paths.get(str(item.get("filename") or ""))
        if file is None:
            continue
        code = item.get("code")
        syntax_error = code in (None, "", "invalid-syntax", "E999")
        rule = "syntax-error" if syntax_error else str(code)
        severity: Severity = (
            "error" if syntax_error or rule.startswith(tuple(error_rules)) else "warning"
        )
        location = item.get("location") or {}
        line = location.get("row") if isinstance(location, Mapping) else None
        findings.append(
            Finding(
                check=check,
                file=file,
                line=line if isinstance(line, int) else None,
                severity=severity,
                rule=rule,
                message=clean_message(str(item.get("message") or rule)),
            )
        )
    return findings


async def format_check(ctx: CheckContext) -> CheckResult:
    """`ruff format --check --diff`: one warning per file the formatter would change."""
    files = _regular(ctx, PYTHON)
    if not files:
        return ctx.skip("no Python files changed")
    upstream = ctx.upstream.get("syntax")
    if upstream is not None and upstream.status == "failed":
        return ctx.skip("syntax errors")
    ruff = ctx.python_module("ruff")

    async def check(todo: list[str]) -> tuple[list[Finding], dict[str, Any]]:
        paths = PathMap(ctx.root, todo)
        found: list[Finding] = []
        for batch in _batches(todo):
            argv = [*ruff, "format", "--check", "--diff", "--no-cache", "--force-exclude"]
            run = await ctx.run_tool([*argv, "--", *batch])
            if run.returncode == 2 and not _only_parse_errors(run.stderr):
                # Files ruff cannot parse are the syntax check's findings; anything else
                # (a broken configuration, say) means the check could not run.
                raise RuntimeError(f"ruff format failed (exit 2): {_tail(run.stderr)}")
            if run.returncode not in (0, 1, 2):
                raise RuntimeError(
                    f"ruff format failed (exit {run.returncode}): {_tail(run.stderr)}"
                )
            for file, line in format_diff_files(run.stdout, paths):
                found.append(
                    Finding(
                        check=ctx.check,
                        file=file,
                        line=line,
                        severity="warning",
                        rule="format",
                        message="would be reformatted by ruff format",
                    )
                )
        return found, {}

    findings, _ = await ctx.each_file(files, check)
    return ctx.result(
        findings, what=f"ruff format on {len(files)} file(s)", metrics={"files": len(files)}
    )


def format_diff_files(diff: str, paths: PathMap) -> list[tuple[str, int | None]]:
    """(file, first line the formatter changes) per file in a `ruff format --diff` output.

    A header only counts when it names one of our files: a reformatted line that itself starts
    with `-- ` looks like a header inside a hunk.
    """
    out: list[tuple[str, int | None]] = []
    seen: set[str] = set()
    lines = diff.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("--- ") and lines[i + 1].startswith("+++ ")):
            continue
        file = paths.get(line[4:].split("\t", 1)[0])
        if file is None or file in seen:
            continue
        seen.add(file)
        out.append((file, _first_change(lines[i + 2 :])))
    return out


def _first_change(lines: list[str]) -> int | None:
    """The line of the file that the first hunk changes: its start plus leading context."""
    for at, line in enumerate(lines):
        m = _HUNK.match(line)
        if not m:
            continue
        number = int(m.group(1))
        for body in lines[at + 1 :]:
            if not body.startswith(" "):
                break
            number += 1
        return max(number, 1)
    return None


def _only_parse_errors(stderr: str) -> bool:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    return bool(errors) and all(ln.startswith("error: Failed to parse") for ln in errors)


async def security(ctx: CheckContext) -> CheckResult:
    """bandit on the changed Python files (HIGH is an error, MEDIUM a warning, LOW info)."""
    files = _regular(ctx, (".py",))
    if not files:
        return ctx.skip("no Python files changed")
    bandit = ctx.python_module("bandit")
    root = Path(ctx.root)
    argv = [*bandit, "-f", "json", "-q"]
    skip = _rules(ctx.options.get("skip"), "skip")
    if skip:
        argv.append(f"--skip={','.join(skip)}")
    config = _bandit_config(root, ctx.options.get("config"))
    if config is not None:
        argv += ["-c", config]

    async def check(todo: list[str]) -> tuple[list[Finding], dict[str, Any]]:
        paths = PathMap(root, todo)
        found: list[Finding] = []
        urls: dict[str, str] = {}
        unscanned: list[str] = []
        for batch in _batches(todo):
            run = await ctx.run_tool([*argv, "--", *batch])
            try:
                report = json.loads(run.stdout)
            except json.JSONDecodeError:
                report = None
            if run.returncode not in (0, 1) or not isinstance(report, dict):
                raise RuntimeError(
                    f"bandit failed (exit {run.returncode}): {_tail(run.stderr or run.stdout)}"
                )
            found += bandit_findings(report, paths, ctx.check)
            urls.update(rule_urls(report.get("results") or (), "test_id", "more_info"))
            unscanned += [
                f
                for e in report.get("errors") or ()
                if (f := paths.get(str(e.get("filename") or ""))) is not None
            ]
        data = _urls_by_file(found, urls)
        for path in unscanned:
            data.setdefault(path, {})["not_scanned"] = True
        return found, data

    findings, data = await ctx.each_file(files, check)
    urls = {k: v for d in data.values() for k, v in d.get("rule_urls", {}).items()}
    not_scanned = [path for path, d in data.items() if d.get("not_scanned")]
    return ctx.result(
        findings,
        what=f"bandit on {len(files)} file(s)",
        metrics={
            "files": len(files),
            "not_scanned": sorted(set(not_scanned)),
            "rule_urls": urls,
        },
    )


def bandit_findings(report: Mapping[str, Any], paths: PathMap, check: str) -> list[Finding]:
    """Findings from bandit's JSON report, for the files in `paths` only."""
    findings: list[Finding] = []
    for item in report.get("results") or ():
        file = paths.get(str(item.get("filename") or ""))
        if file is None:
            continue
        severity = _BANDIT_SEVERITY.get(str(item.get("issue_severity", "")).upper(), "warning")
        line = item.get("line_number")
        findings.append(
            Finding(
                check=check,
                file=file,
                line=line if isinstance(line, int) and line > 0 else None,
                severity=severity,
                rule=str(item.get("test_id") or "bandit"),
                message=_no_quoted_value(clean_message(str(item.get("issue_text") or ""))),
            )
        )
    return findings


_QUOTED_VALUE = re.compile(r"""(Possible hardcoded password): '.*'$""")


def _no_quoted_value(message: str) -> str:
    """bandit's B105-B107 quote the password they found: results are stored, so drop it."""
    return _QUOTED_VALUE.sub(r"\1 (value not shown)", message)


def _bandit_config(root: Path, option: Any) -> str | None:
    """The bandit configuration to pass with -c: bandit only reads pyproject.toml if told."""
    if option is not None:
        if not isinstance(option, str) or not option:
            raise ValueError("security: option 'config' must be a file name")
        path = (root / option).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_file():
            raise ValueError(f"security: config {option!r} is not a file in the repository")
        return str(path)
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or pyproject.is_symlink():
        return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    tool = data.get("tool")
    return str(pyproject) if isinstance(tool, dict) and "bandit" in tool else None


async def secrets(ctx: CheckContext) -> CheckResult:
    """detect-secrets on every changed text file; the values go to `secrets`, never to text."""
    files = [
        f.path for f in ctx.change.present() if not f.binary and _is_regular(Path(ctx.root), f.path)
    ]
    if not files:
        return ctx.skip("no text files changed")
    if importlib.util.find_spec("detect_secrets") is None:
        raise ToolMissing("detect-secrets")
    values: list[str] = []

    async def scan(todo: list[str]) -> tuple[list[Finding], dict[str, Any]]:
        # The values are never stored: a file whose findings are reused has its values found
        # again by the masking (`Masker.for_change`), which every task does anyway.
        found: list[Finding] = []
        for file, line, kind, value in await asyncio.to_thread(_scan_secrets, Path(ctx.root), todo):
            found.append(
                Finding(
                    check=ctx.check,
                    file=file,
                    line=line,
                    severity="error",
                    rule=kind,
                    message=f"{kind} in source (value masked)",
                )
            )
            if value and value not in values:
                values.append(value)
        return found, {}

    findings, _ = await ctx.each_file(files, scan)
    return ctx.result(
        findings,
        what=f"{len(files)} file(s) scanned",
        secrets=values,
        metrics={"files": len(files)},
    )


def _scan_secrets(root: Path, files: list[str]) -> list[tuple[str, int | None, str, str]]:
    """(file, line, type, value) per secret, one per value and line.

    detect-secrets reports one value several times when several plugins match it (an AWS
    secret key is also a high-entropy string and a keyword assignment): the specific type wins.
    """
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import default_settings

    collection = SecretsCollection(root=str(root))
    with _SECRETS_LOCK, default_settings():
        for path in files:
            collection.scan_file(path)
    best: dict[tuple[str, int, str], str] = {}
    for name, secret in collection:
        value = secret.secret_value or ""
        key = (name.replace(os.sep, "/"), int(secret.line_number or 0), value)
        if key not in best or (
            best[key] in _GENERIC_SECRETS and secret.type not in _GENERIC_SECRETS
        ):
            best[key] = secret.type
    return [
        (file, line or None, kind, value)
        for (file, line, value), kind in sorted(best.items(), key=lambda kv: kv[0][:2])
    ]


class PathMap:
    """Maps the names a tool prints (absolute, `./x.py`, resolved through symlinks) back to
    the repo-relative POSIX paths of the change."""

    def __init__(self, root: str | Path, files: Iterable[str]) -> None:
        self._root = Path(root)
        self._map: dict[str, str] = {}
        for rel in files:
            full = self._root / rel
            self._map[os.path.normpath(full)] = rel
            self._map.setdefault(os.path.normpath(os.path.realpath(full)), rel)

    def get(self, name: str) -> str | None:
        if not name:
            return None
        full = os.path.normpath(self._root / name)
        return self._map.get(full) or self._map.get(os.path.realpath(full))


def _regular(ctx: CheckContext, suffixes: tuple[str, ...]) -> list[str]:
    root = Path(ctx.root)
    return [p for p in ctx.files(*suffixes) if _is_regular(root, p)]


def _is_regular(root: Path, path: str) -> bool:
    """A regular file, not a symlink (its target may be outside the repository)."""
    full = root / path
    return full.is_file() and not full.is_symlink()


def _batches(items: Sequence[str], size: int = BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _rules(value: Any, name: str) -> list[str]:
    """A list option of rule codes; checked, since a template may come from the change."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and _RULE.match(v) for v in value
    ):
        raise ValueError(f"option {name!r} must be a list of rule codes (like F401 or E)")
    return list(value)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


__all__ = [
    "PathMap",
    "bandit_findings",
    "format_check",
    "format_diff_files",
    "lint",
    "ruff_findings",
    "secrets",
    "security",
    "syntax",
]
