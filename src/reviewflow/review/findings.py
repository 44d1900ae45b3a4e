"""One shape for what every check reports, and the masking that keeps secrets out of reports.

A finding is `{check, file, line, severity, rule, message}` whatever tool produced it, so the
summary, the verdict, the Markdown/JSON/SARIF reports and the PR comment need no per-tool code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["error", "warning", "info"]
CheckStatus = Literal["passed", "failed", "skipped", "error"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


class Finding(BaseModel):
    """One problem at one place. `line` is 1-based; None for a whole-file finding."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    check: str
    file: str | None = None
    line: int | None = None
    severity: Severity = "warning"
    rule: str
    message: str


class CheckResult(BaseModel):
    """What one check returns: its status, a one-line summary, findings and numbers.

    `status` is `skipped` when the check had nothing to look at or could not run (a missing
    tool, an unreachable service: `summary` says which), `error` when the check itself broke.
    Whether findings block the review is the summary's decision, not the check's.
    """

    model_config = ConfigDict(extra="forbid")

    check: str
    status: CheckStatus = "passed"
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list, exclude=True)
    """Raw secret values found by a secret scan: used for masking, never written out."""
    cached: dict[str, Any] | None = None
    """Set when this result was reused from an earlier review with the same inputs (the run
    it came from), or when some of its files were (`files_reused`, `files_checked`)."""

    @classmethod
    def from_findings(
        cls, check: str, findings: Iterable[Finding], *, what: str = "", **extra: Any
    ) -> CheckResult:
        """A result whose status follows its findings: failed if any error, else passed."""
        items = list(findings)
        errors = sum(1 for f in items if f.severity == "error")
        warnings = sum(1 for f in items if f.severity == "warning")
        status: CheckStatus = "failed" if errors else "passed"
        counted = f"{errors} error(s), {warnings} warning(s)" if items else "no findings"
        summary = f"{what}: {counted}" if what else counted
        return cls(check=check, status=status, summary=summary, findings=items, **extra)

    @classmethod
    def skipped(cls, check: str, reason: str) -> CheckResult:
        """A check that did not run, and why (`nothing to check`, `install ruff`, ...)."""
        return cls(check=check, status="skipped", summary=f"skipped: {reason}")


MASK = "****"


PREFIX = 8
"""A quote of a secret's first 8 characters or more is masked too: tools cut long lines and
messages (`password='hX7mQ2vL9p…`), and what is left can still be enough to use."""


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value, and every quote of its first 8 or more characters,
    replaced; longest first so no fragment survives."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        if len(secret) <= PREFIX:
            text = text.replace(secret, mask(secret))
            continue
        head, at, parts = secret[:PREFIX], 0, []
        while (found := text.find(head, at)) >= 0:
            end = found + PREFIX
            while (
                end - found < len(secret) and end < len(text) and text[end] == secret[end - found]
            ):
                end += 1
            parts += [text[at:found], mask(secret)]
            at = end
        if parts:
            text = "".join(parts) + text[at:]
    return text


def mask(secret: str) -> str:
    """Keep at most the first 4 characters (enough to recognise a key, not to use it)."""
    return secret[:4] + MASK if len(secret) > 8 else MASK


def mask_data(data: Any, secrets: Iterable[str]) -> Any:
    """Mask every string in a JSON-like value."""
    secrets = list(secrets)
    if not secrets:
        return data
    if isinstance(data, str):
        return mask_text(data, secrets)
    if isinstance(data, dict):
        return {k: mask_data(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask_data(v, secrets) for v in data]
    return data


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clean_message(text: str, limit: int = 500) -> str:
    """One line, no terminal colours, bounded: tool output goes into tables and SARIF."""
    text = _ANSI.sub("", text).replace("\r", " ").strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
