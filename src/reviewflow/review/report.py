"""The verdict and the three reports: report.md (people), report.json (tools), report.sarif
(GitHub code scanning, SARIF 2.1.0).

Only findings on added or changed lines count by default: a review is about the change, not
about the debt around it (`--all-findings` shows and counts everything in the changed files).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from ..diagram import STATE_STYLES
from ..statedir import make_dirs
from ..version import __version__
from .change import Change
from .findings import CheckResult, Finding, mask_text
from .template import Gates

Decision = Literal["approve", "comment", "request_changes", "waiting_for_approval"]
WAITING: Decision = "waiting_for_approval"
"""The reports written while an approval gate waits: the checks' findings, no decision yet
(`reviewflow review` in CI stops there; the summary rewrites them once a person decides)."""
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
ICONS = {
    "approve": "✅",
    "comment": "💬",
    "request_changes": "❌",
    "waiting_for_approval": "⏳",
    "passed": "✅",
    "failed": "❌",
    "skipped": "⏭️",
    "error": "⚠️",
}
MAX_ROWS_PER_CHECK = 50
BROKEN_BY_THE_CHANGE = frozenset({"test-failed", "test-error"})
"""Rules about what the change broke rather than about a line: a failing test counts
wherever it is, even on an unchanged line of a changed test file."""
INCOMPLETE_MARKERS = ("not installed", "unreachable")


@dataclass
class Verdict:
    """The decision with the reasons for it and what it was computed from."""

    decision: Decision
    reasons: list[str]
    shown: list[Finding]
    hidden: int
    counts: dict[str, int]
    coverage: float | None
    incomplete: list[str] = field(default_factory=list)


def incomplete(result: CheckResult) -> bool:
    """A check that could not do its job (tool missing, service down, dependency failed)."""
    return result.status == "skipped" and (
        bool(result.metrics.get("incomplete"))
        or any(m in result.summary for m in INCOMPLETE_MARKERS)
    )


def decide(
    results: Mapping[str, CheckResult],
    change: Change,
    gates: Gates,
    *,
    all_findings: bool = False,
    approval: Mapping[str, Any] | None = None,
) -> Verdict:
    """Apply the gates: any broken gate → request_changes; otherwise findings or checks that
    could not run → comment; otherwise approve."""
    shown: list[Finding] = []
    hidden = 0
    for result in results.values():
        for f in result.findings:
            # Narrowed to changed lines only inside changed files: a test the change broke
            # counts wherever it is.
            if (
                all_findings
                or f.file is None
                or f.rule in BROKEN_BY_THE_CHANGE
                or change.get(f.file.removeprefix("./")) is None
                or change.touches(f.file, f.line)
            ):
                shown.append(f)
            else:
                hidden += 1
    counts = Counter(f.severity for f in shown)
    counted = {s: counts.get(s, 0) for s in ("error", "warning", "info")}
    reasons: list[str] = []
    if gates.max_errors is not None and counted["error"] > gates.max_errors:
        reasons.append(f"{counted['error']} error(s) on changed lines (max {gates.max_errors})")
    if gates.max_warnings is not None and counted["warning"] > gates.max_warnings:
        reasons.append(f"{counted['warning']} warning(s) (max {gates.max_warnings})")
    coverage = None
    for result in results.values():
        value = result.metrics.get("changed_line_coverage")
        if isinstance(value, int | float):
            coverage = float(value)
    if (
        gates.min_changed_line_coverage is not None
        and coverage is not None
        and coverage < gates.min_changed_line_coverage
    ):
        reasons.append(
            f"changed-line coverage {coverage:.1f}% (min {gates.min_changed_line_coverage:g}%)"
        )
    if gates.fail_on_check_error:
        for name, result in results.items():
            if result.status == "error":
                reasons.append(f"check {name} could not run: {result.summary}")
    if approval is not None and approval.get("decision") == "rejected":
        who = approval.get("approver") or "a reviewer"
        said = f": {approval['comment']}" if approval.get("comment") else ""
        reasons.append(f"rejected by {who}{said}")
    if (
        gates.min_changed_line_coverage is not None
        and coverage is None
        and any(f.rule == "no-tests" for r in results.values() for f in r.findings)
    ):
        reasons.append(
            "no tests ran: changed-line coverage not measured "
            f"(min {gates.min_changed_line_coverage:g}%)"
        )
    not_done = [n for n, r in results.items() if incomplete(r)]
    if gates.require_all_checks:
        reasons.extend(f"check {n} could not run: {results[n].summary}" for n in not_done)
    decision: Decision
    if reasons:
        decision = "request_changes"
    elif shown or not_done:
        decision = "comment"
    else:
        decision = "approve"
    return Verdict(decision, reasons, shown, hidden, counted, coverage, not_done)


def _duration(view: Mapping[str, Any]) -> float | None:
    start, end = view.get("started_at"), view.get("finished_at")
    return round(end - start, 3) if start is not None and end is not None else None


def report_json(
    verdict: Verdict,
    results: Mapping[str, CheckResult],
    change: Change,
    *,
    run_id: str,
    template: str,
    view: Mapping[str, Mapping[str, Any]],
    approval: Mapping[str, Any] | None,
    gates: Gates,
) -> dict[str, Any]:
    """The machine-readable report (report.json)."""
    return {
        "verdict": verdict.decision,
        "reasons": verdict.reasons,
        "run_id": run_id,
        "template": template,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "change": {
            "root": change.root,
            "base": change.base,
            "base_ref": change.base_ref,
            "head": change.head,
            "dirty": change.dirty,
            "files": [{"path": f.path, "status": f.status, "lines": f.lines} for f in change.files],
        },
        "gates": gates.model_dump(mode="json"),
        "counts": {**verdict.counts, "hidden": verdict.hidden},
        "changed_line_coverage": verdict.coverage,
        "incomplete_checks": verdict.incomplete,
        "approval": dict(approval) if approval else None,
        "checks": {
            name: {
                "status": r.status,
                "summary": r.summary,
                "metrics": r.metrics,
                "duration_s": _duration(view.get(name, {})),
                "findings": len(r.findings),
                "cached": r.cached,
            }
            for name, r in results.items()
        },
        "findings": [f.model_dump(mode="json") for f in verdict.shown],
    }


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def mermaid_view(
    view: Mapping[str, Mapping[str, Any]], override: Mapping[str, str] | None = None
) -> str:
    """The run's DAG as a Mermaid flowchart, nodes styled by state."""
    ids = {name: f"t{i}" for i, name in enumerate(view)}
    states = {name: (override or {}).get(name, v.get("state", "")) for name, v in view.items()}
    lines = ["flowchart LR"]
    for name, state in states.items():
        label = f"{name}<br/><small>{state}</small>".replace('"', "#quot;")
        lines.append(f'    {ids[name]}["{label}"]:::{state}')
    for name, v in view.items():
        for dep in v.get("needs", []):
            if dep in ids:
                lines.append(f"    {ids[dep]} --> {ids[name]}")
    for state in sorted(set(states.values())):
        if state in STATE_STYLES:
            lines.append(f"    classDef {state} {STATE_STYLES[state]}")
    return "\n".join(lines)


def report_markdown(
    doc: Mapping[str, Any], results: Mapping[str, CheckResult], verdict: Verdict, diagram: str
) -> str:
    """The human report (report.md): verdict, a table per check, the DAG, timings."""
    d = verdict.decision
    change = doc["change"]
    out = [f"## {ICONS[d]} reviewflow: {d.replace('_', ' ')}", ""]
    head = (change["head"] or "no commit")[:12]
    dirty = " + uncommitted changes" if change["dirty"] else ""
    out.append(
        f"Template `{doc['template']}` · run `{doc['run_id']}` · "
        f"{len(change['files'])} changed file(s) · base `{change['base'][:12]}` "
        f"({change['base_ref']}) → `{head}`{dirty}"
    )
    out.append("")
    for reason in verdict.reasons:
        out.append(f"- **{_cell(reason)}**")
    if verdict.reasons:
        out.append("")
    c = verdict.counts
    line = f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} note(s) on changed lines"
    if verdict.hidden:
        line += f"; {verdict.hidden} more on unchanged lines (`--all-findings` shows them)"
    if verdict.coverage is not None:
        line += f"; changed-line coverage {verdict.coverage:.1f}%"
    out += [line, ""]
    if doc.get("approval"):
        a = doc["approval"]
        out += [
            f"Approval: **{a.get('decision')}** by {_cell(a.get('approver'))}"
            + (f" — {_cell(a['comment'])}" if a.get("comment") else ""),
            "",
        ]
    out += ["| check | status | summary | findings | time |", "|---|---|---|---|---|"]
    for name, r in results.items():
        info = doc["checks"][name]
        took = f"{info['duration_s']:.1f}s" if info["duration_s"] is not None else ""
        shown = sum(1 for f in verdict.shown if f.check == name)
        out.append(
            f"| {_cell(name)} | {ICONS[r.status]} {r.status}{_reuse(r.cached)} | "
            f"{_cell(r.summary)} | {shown} | {took} |"
        )
    out.append("")
    reused = [n for n, r in results.items() if r.cached and r.cached.get("run")]
    if reused:
        out += [
            f"Cached: {', '.join(reused)} reused the result of an earlier review whose inputs "
            "(files, tool versions, configuration) were the same; `--no-cache` re-runs them.",
            "",
        ]
    by_check: dict[str, list[Finding]] = {}
    for f in verdict.shown:
        by_check.setdefault(f.check, []).append(f)
    for name, items in by_check.items():
        out += [
            f"### {_cell(name)}",
            "",
            "| location | severity | rule | message |",
            "|---|---|---|---|",
        ]
        for f in items[:MAX_ROWS_PER_CHECK]:
            where = f"{f.file}:{f.line}" if f.file and f.line else (f.file or "")
            # A backtick in a file name would end the code span: shown as a prime instead.
            shown_at = f"`{_cell(where).replace('`', chr(0x2032))}`" if where else "—"
            out.append(f"| {shown_at} | {f.severity} | {_cell(f.rule)} | {_cell(f.message)} |")
        if len(items) > MAX_ROWS_PER_CHECK:
            out.append(f"| … | | | {len(items) - MAX_ROWS_PER_CHECK} more in report.json |")
        out.append("")
    out += [
        "<details><summary>Workflow</summary>",
        "",
        "```mermaid",
        diagram,
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


def _reuse(cached: Mapping[str, Any] | None) -> str:
    """What the status cell says of a reused result."""
    if not cached:
        return ""
    if cached.get("run"):
        return " · cached"
    reused, checked = cached.get("files_reused", 0), cached.get("files_checked", 0)
    return f" · cached for {reused} of {reused + checked} file(s)"


INFORMATION_URI = "https://github.com/reviewflow/reviewflow"
"""The tool's home, shown by code scanning next to each alert."""
CHECK_HELP: dict[str, tuple[str, str]] = {
    "syntax": (
        "The file must parse as Python: nothing else can check it until it does.",
        "https://docs.python.org/3/reference/index.html",
    ),
    "lint": (
        "ruff check, with the project's own ruff configuration.",
        "https://docs.astral.sh/ruff/rules/",
    ),
    "format": (
        "ruff format would rewrite this file: run `ruff format` on it.",
        "https://docs.astral.sh/ruff/formatter/",
    ),
    "tests": (
        "The project's tests, run with coverage: tests must pass and the changed lines be run.",
        "https://docs.pytest.org/en/stable/",
    ),
    "security": (
        "bandit, a security linter for Python.",
        "https://bandit.readthedocs.io/en/latest/plugins/index.html",
    ),
    "secrets": (
        "A value that looks like a credential is in the source: revoke it, then read it from "
        "the environment or a secret store.",
        "https://github.com/Yelp/detect-secrets",
    ),
    "docs": (
        "The public API changed: say so where users read (README, docs, CHANGELOG).",
        "https://peps.python.org/pep-0008/#public-and-internal-interfaces",
    ),
    "dependencies": (
        "pip-audit on the changed dependency files: known vulnerabilities and unpinned versions.",
        "https://pypi.org/project/pip-audit/",
    ),
    "performance": (
        "The project's benchmark, run on the base and on the change: a slowdown past the "
        "threshold is a finding.",
        "https://docs.python.org/3/library/timeit.html",
    ),
    "metadata": (
        "Front matter that site generators and feeds read.",
        "https://jekyllrb.com/docs/front-matter/",
    ),
    "headings": (
        "One title, no skipped levels: the outline readers and screen readers navigate by.",
        "https://www.w3.org/WAI/tutorials/page-structure/headings/",
    ),
    "readability": (
        "Flesch reading ease and Flesch-Kincaid grade of the prose.",
        "https://en.wikipedia.org/wiki/Flesch%E2%80%93Kincaid_readability_tests",
    ),
    "spelling": (
        "A word the dictionary and the project do not know.",
        "https://github.com/codespell-project/codespell",
    ),
    "links": (
        "A relative link or image must lead to a page the site will serve.",
        "https://www.markdownguide.org/basic-syntax/#links",
    ),
    "length": (
        "Word count of the prose and length of the title (search results cut long titles).",
        "https://developers.google.com/search/docs/appearance/title-link",
    ),
}
"""Per check: help text and where to read more, for the SARIF rules code scanning shows."""
ADVISORY_URI = "https://osv.dev/vulnerability/"
RULE_URIS = {
    "uncovered": "https://coverage.readthedocs.io/en/latest/",
    "coverage-below-threshold": "https://coverage.readthedocs.io/en/latest/",
    "test-deps-missing": "https://packaging.python.org/en/latest/tutorials/installing-packages/",
}
"""Rules whose page is not their check's (a coverage rule of the tests check)."""


def report_sarif(
    verdict: Verdict,
    *,
    root: str,
    results: Mapping[str, CheckResult] | None = None,
    secrets: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """SARIF 2.1.0 that GitHub code scanning accepts whole: one rule per check/rule pair with
    help and a help URI, one result per finding, each with a location (a finding about no
    file points at the project's configuration, or the repository root) and fingerprints
    that follow it across pushes (a hash of the flagged line's text, not its number)."""
    rules: dict[str, dict[str, Any]] = {}
    out = []
    seen: Counter[str] = Counter()
    fallback = "pyproject.toml" if (Path(root) / "pyproject.toml").is_file() else "."
    lines = _LineReader(Path(root), secrets)
    for f in verdict.shown:
        rule_id = f"{f.check}/{f.rule}"
        if rule_id not in rules:
            rules[rule_id] = _sarif_rule(f, rule_id, results)
        region = {"startLine": max(1, f.line)} if f.file and f.line else None
        location: dict[str, Any] = {
            "artifactLocation": {"uri": quote(f.file or fallback), "uriBaseId": "%SRCROOT%"}
        }
        if region is not None:
            location["region"] = region
        text = lines.get(f.file, f.line) if region is not None else ""
        key = f"{rule_id}\0{f.file or ''}\0{text.strip() if text else f.message}"
        seen[key] += 1
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        out.append(
            {
                "ruleId": rule_id,
                "ruleIndex": list(rules).index(rule_id),
                "level": SARIF_LEVELS[f.severity],
                "message": {"text": f.message or f.rule},
                "locations": [{"physicalLocation": location}],
                "partialFingerprints": {
                    "primaryLocationLineHash": f"{digest}:{seen[key]}",
                    "reviewflow/v1": f"{digest}:{seen[key]}",
                },
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "reviewflow",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": list(rules.values()),
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(root).as_uri() + "/"}},
                "results": out,
            }
        ],
    }


def _sarif_rule(
    f: Finding, rule_id: str, results: Mapping[str, CheckResult] | None
) -> dict[str, Any]:
    text, uri = CHECK_HELP.get(f.check, ("", INFORMATION_URI))
    metrics = results[f.check].metrics if results and f.check in results else {}
    urls = metrics.get("rule_urls")
    if isinstance(urls, dict) and isinstance(urls.get(f.rule), str):
        uri = urls[f.rule]
    elif f.rule in RULE_URIS:
        uri = RULE_URIS[f.rule]
    elif f.check == "dependencies" and f.rule[:4] in ("GHSA", "PYSE", "CVE-", "OSV-"):
        uri = ADVISORY_URI + quote(f.rule)
    help_text = f"{f.check}: {f.rule}. {text}".strip() + f" More: {uri}"
    return {
        "id": rule_id,
        "name": _rule_name(f.check, f.rule),
        "shortDescription": {"text": f"{f.check}: {f.rule}"},
        "help": {"text": help_text},
        "helpUri": uri,
        "defaultConfiguration": {"level": SARIF_LEVELS[f.severity]},
    }


class _LineReader:
    """The text of a flagged line (masked), read once per file, for the fingerprints."""

    def __init__(self, root: Path, secrets: list[str] | tuple[str, ...]) -> None:
        self._root = root.resolve()
        self._secrets = list(secrets)
        self._files: dict[str, list[str]] = {}

    def get(self, file: str | None, line: int | None) -> str:
        if not file or not line:
            return ""
        if file not in self._files:
            self._files[file] = []
            try:
                path = (self._root / file).resolve()
                if path.is_relative_to(self._root) and path.is_file():
                    text = path.read_bytes()[:4_000_000].decode("utf-8", "replace")
                    self._files[file] = mask_text(text, self._secrets).splitlines()
            except (OSError, ValueError, RuntimeError):
                pass
        rows = self._files[file]
        return rows[line - 1] if 0 < line <= len(rows) else ""


def _rule_name(check: str, rule: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in f"{check} {rule}").split()
    return "".join(w[:1].upper() + w[1:] for w in words) or "Finding"


def write_reports(
    out: Path, doc: Mapping[str, Any], markdown: str, sarif: Mapping[str, Any]
) -> dict[str, str]:
    """Write the three files (atomically each) and return their paths."""
    make_dirs(out)
    paths = {}
    for name, text in (
        ("report.md", markdown),
        ("report.json", json.dumps(doc, indent=2, default=str) + "\n"),
        ("report.sarif", json.dumps(sarif, indent=2) + "\n"),
    ):
        target = out / name
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        paths[name] = str(target)
    return paths
