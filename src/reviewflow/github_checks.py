"""Publish a review as the GitHub check run of a commit: conclusion, report, annotations.

A check run is what branch protection and the pull request's merge box read, and its
annotations put each finding next to the changed line in "Files changed". One check run per head
commit and name: a re-run finds it (list-for-ref, `check_name`) and updates it, so pushing the
same commit twice, or re-running a job, never shows two.

GitHub appends annotations on every update and has no call to remove them, so sending a
finding twice would show it twice: before appending to a check run that already exists, the
ones it holds are read and only the missing ones are sent. That also makes every step safe to
repeat, which is how an answer lost in a gateway error is handled: look again, send what is
missing (never a blind retry of a create or an append).

The HTTP side (token, timeouts, retries on 5xx and rate limits, one-line errors) is github.py's
client; this module only knows the Checks API.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import github as gh
from .constants import GITHUB_CHECK_NAME
from .errors import ReportError as ReportError
from .github import _next_link

CHECK_NAME = GITHUB_CHECK_NAME
CONCLUSIONS = {
    "approve": "success",
    "comment": "neutral",
    "request_changes": "failure",
    "waiting_for_approval": "action_required",
}
"""The review's verdict → the check run's conclusion (a review stopped at its approval gate in
CI: a person must act, on the page of `--details-url`)."""
LEVELS = {"error": "failure", "warning": "warning", "info": "notice"}
"""A finding's severity → the annotation's level."""
VERDICT_TITLES = {
    "approve": "Approved",
    "comment": "Comments",
    "request_changes": "Changes requested",
    "waiting_for_approval": "Waiting for approval",
}
MAX_OUTPUT_BYTES = 65_535
"""GitHub's limit for output.summary and output.text: the docs say characters, the API counts
UTF-8 bytes ("summary exceeds a maximum bytesize of 65535"; a report has emoji)."""
ANNOTATIONS_PER_REQUEST = 50
"""The Checks API takes at most 50 annotations per create or update."""
MAX_ANNOTATIONS = 1_000
"""20 requests at most; past that the findings are in the report (errors are sent first)."""
MAX_TITLE = 255
MAX_MESSAGE = 4_000
"""Characters of a finding's message in its annotation (GitHub allows 64 KB; the whole text is
in the report)."""
MAX_NAME = 100
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class CheckReport:
    """What a check run shows, read from a review's output folder."""

    verdict: str
    conclusion: str
    title: str
    summary: str
    annotations: list[dict[str, Any]] = field(default_factory=list)
    external_id: str | None = None
    left_out: int = 0
    """Findings with a line that were not sent as annotations (over MAX_ANNOTATIONS)."""


@dataclass(frozen=True)
class CheckRunResult:
    """What `publish_check` / `start_check` did, so callers can print or link the check run."""

    action: str  # "created", "updated" or "unchanged" (a completed run is not reopened)
    id: int
    html_url: str
    status: str
    conclusion: str | None
    annotations: int  # sent by this call (a re-run sends only those GitHub does not hold)
    requests: int  # create/update requests, annotation batches included
    superseded: str | None = None
    """The completed run of the commit whose conclusion GitHub would not change (its URL)."""


def validate_sha(sha: str) -> str:
    """A full commit id (SHA-1 or SHA-256): a check run belongs to one commit, and a short or
    symbolic name would be resolved by nobody."""
    value = sha.strip().lower()
    if not SHA_RE.match(value):
        raise ValueError(f"bad --sha {sha!r}: use the full 40-character commit id (git rev-parse)")
    return value


def validate_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME or _CONTROL_RE.search(name):
        raise ValueError(f"bad check name {name!r}: use 1 to {MAX_NAME} printable characters")
    return name


def load_report(folder: Path) -> CheckReport:
    """Read DIR/report.json (and DIR/report.md for the summary) as `reviewflow review` wrote
    them; ReportError names the file and the field when they cannot be used."""
    if folder.is_file() and folder.name == "report.json":
        folder = folder.parent
    path = folder / "report.json"
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ReportError(f"--report {folder} {what}: give the review's output folder (--out)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(
            f"{path}: not found (is {folder} a `reviewflow review --out` folder?)"
        ) from None
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReportError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path}: expected a JSON object")
    verdict = doc.get("verdict")
    if verdict not in CONCLUSIONS:
        raise ReportError(f"{path}: verdict {verdict!r} is not one of {', '.join(CONCLUSIONS)}")
    findings = doc.get("findings", [])
    if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
        raise ReportError(f"{path}: findings must be a list of objects")
    annotations = annotations_of(findings)
    left_out = max(0, len(annotations) - MAX_ANNOTATIONS)
    try:
        markdown = (folder / "report.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        markdown = _plain_summary(doc)
    if left_out:
        markdown += (
            f"\n\n_{left_out} more finding(s) on changed lines are not annotated here "
            f"(at most {MAX_ANNOTATIONS:,}); all are in report.json._\n"
        )
    run_id = doc.get("run_id")
    return CheckReport(
        verdict=verdict,
        conclusion=CONCLUSIONS[verdict],
        title=_title(verdict, doc.get("counts")),
        summary=fit_output(markdown),
        annotations=annotations[:MAX_ANNOTATIONS],
        external_id=str(run_id)[:100] if run_id else None,
        left_out=left_out,
    )


def error_report(message: str) -> CheckReport:
    """What the check run shows when the review could not run (no report to publish): a
    failure, so a check left in progress does not wait forever and a required check blocks."""
    text = message.strip() or "The review could not run."
    return CheckReport(
        verdict="error",
        conclusion="failure",
        title="The review could not run",
        summary=fit_output(f"## reviewflow could not run\n\n{text}\n"),
    )


def annotations_of(findings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One annotation per finding that has a file and a line, errors first; a finding about a
    whole file or the whole change is in the summary only (an annotation needs a line)."""
    out = []
    for f in findings:
        path, line = f.get("file"), f.get("line")
        if not isinstance(path, str) or isinstance(line, bool) or not isinstance(line, int):
            continue
        path = path.strip().removeprefix("./")
        if not path or path.startswith("/") or ".." in path.split("/") or line < 1:
            continue
        given = f.get("severity")
        severity = given if isinstance(given, str) and given in LEVELS else "warning"
        check, rule = str(f.get("check") or "reviewflow"), str(f.get("rule") or "finding")
        message = str(f.get("message") or rule)
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        out.append(
            {
                "path": path,
                "start_line": line,
                "end_line": line,
                "annotation_level": LEVELS[severity],
                "title": f"{check}: {rule}"[:MAX_TITLE],
                "message": message,
            }
        )
    rank = {"failure": 0, "warning": 1, "notice": 2}
    return sorted(out, key=lambda a: rank[a["annotation_level"]])


def fit_output(text: str, limit: int = MAX_OUTPUT_BYTES) -> str:
    """The text cut to `limit` UTF-8 bytes: at a line end when one is near, an open ``` fence
    closed, and a note saying where the rest is."""
    if len(text.encode("utf-8")) <= limit:
        return text
    tail = f"\n\n{gh.TRUNCATION_NOTE}\n"
    fence = "\n```"
    room = limit - len(tail.encode("utf-8")) - len(fence)
    kept = text.encode("utf-8")[:room].decode("utf-8", "ignore")
    newline = kept.rfind("\n")
    if newline >= len(kept) - 2_000:
        kept = kept[:newline]
    fences = sum(1 for row in kept.splitlines() if row.lstrip().startswith("```"))
    if fences % 2:
        kept += fence
    return kept + tail


def publish_check(
    repo: str,
    sha: str,
    report: CheckReport,
    *,
    token: str = "",
    api_url: str = gh.DEFAULT_API_URL,
    name: str = CHECK_NAME,
    details_url: str | None = None,
    client: gh.GitHubClient | None = None,
) -> CheckRunResult:
    """Complete the commit's check run with the report (creating it if no run made one)."""
    output = {"title": report.title, "summary": report.summary}
    fields: dict[str, Any] = {
        "status": "completed",
        "conclusion": report.conclusion,
        "completed_at": _now(),
    }
    if report.external_id:
        fields["external_id"] = report.external_id
    if details_url:
        fields["details_url"] = details_url
    client = client or gh.GitHubClient(token, api_url)
    return _converge(client, repo, sha, name, fields, output, report.annotations)


def start_check(
    repo: str,
    sha: str,
    *,
    token: str = "",
    api_url: str = gh.DEFAULT_API_URL,
    name: str = CHECK_NAME,
    details_url: str | None = None,
    client: gh.GitHubClient | None = None,
) -> CheckRunResult:
    """Show the commit's check run as in progress before the review starts, so the pull
    request says a review is coming instead of nothing."""
    output = {
        "title": "Review in progress",
        "summary": f"reviewflow is reviewing `{sha[:12]}`; the report follows here.",
    }
    fields: dict[str, Any] = {"status": "in_progress", "started_at": _now()}
    if details_url:
        fields["details_url"] = details_url
    return _converge(client or gh.GitHubClient(token, api_url), repo, sha, name, fields, output, [])


def _converge(
    client: gh.GitHubClient,
    repo: str,
    sha: str,
    name: str,
    fields: dict[str, Any],
    output: dict[str, str],
    annotations: list[dict[str, Any]],
) -> CheckRunResult:
    """Bring the check run to the wanted state from whatever GitHub holds; repeated (bounded)
    when a create or an append may or may not have happened."""
    gh.validate_repo(repo)
    sha = validate_sha(sha)
    validate_name(name)
    posted: list[bool] = []  # a create was sent (maybe done despite the error it got)
    for attempt in range(1, gh.MAX_TRIES + 1):
        try:
            return _once(client, repo, sha, name, fields, output, annotations, posted)
        except gh.GitHubError as exc:
            if not exc.ambiguous or attempt >= gh.MAX_TRIES:
                raise
            time.sleep(gh.RETRY_DELAYS[min(attempt, len(gh.RETRY_DELAYS)) - 1])
    raise AssertionError("unreachable")  # pragma: no cover


def _once(
    client: gh.GitHubClient,
    repo: str,
    sha: str,
    name: str,
    fields: dict[str, Any],
    output: dict[str, str],
    annotations: list[dict[str, Any]],
    posted: list[bool],
) -> CheckRunResult:
    existing = find_check_run(client, repo, sha, name)
    completing = fields["status"] == "completed"
    superseded = None
    if existing is not None and existing.get("status") == "completed":
        if not completing:
            # GitHub never reopens a completed check run: it stays as it is until the result.
            return _result("unchanged", existing, 0, 0)
        if existing.get("conclusion") != fields["conclusion"]:
            # A completed run keeps its conclusion whatever an update says (GitHub answers 200
            # and changes nothing): the new conclusion needs a new run, which GitHub shows and
            # branch protection reads in place of the older one.
            superseded, existing = existing, None
    todo = annotations
    if existing is not None and annotations:
        todo = _missing(annotations, list_annotations(client, repo, int(existing["id"])))
    doc: Any = None
    if existing is not None:
        batches, hold = _batches(todo, completing)
        path = f"/repos/{repo}/check-runs/{int(existing['id'])}"
        body = {**_first(fields, hold), "output": _with(output, batches[0])}
        try:
            doc, _ = client.request("PATCH", path, body, idempotent=not batches[0])
        except gh.GitHubHTTPError as exc:
            # Made by another app under the same name (only its app may edit it): ours is new.
            if exc.status != 403 or "rate limit" in exc.detail.lower():
                raise
            existing, todo = None, annotations
    if existing is None:
        batches, hold = _batches(todo, completing)
        first = _first(fields, hold)
        if hold:
            first["status"] = "in_progress"
        body = {"name": name, "head_sha": sha, **first, "output": _with(output, batches[0])}
        posted.append(True)
        doc, _ = client.request("POST", f"/repos/{repo}/check-runs", body)
    run = _check_run(doc)
    path = f"/repos/{repo}/check-runs/{run['id']}"
    for i, batch in enumerate(batches[1:], start=2):
        last = fields if hold and i == len(batches) else {}
        body = {**last, "output": _with(output, batch)}
        doc, _ = client.request("PATCH", path, body, idempotent=False)
        run = _check_run(doc)
    action = "created" if existing is None or posted else "updated"
    return _result(action, run, len(todo), len(batches), superseded)


_COMPLETION = frozenset({"status", "conclusion", "completed_at"})


def _batches(todo: list[dict[str, Any]], completing: bool) -> tuple[list[list[Any]], bool]:
    """The annotations in requests of 50, and whether the completion waits for the last one:
    with more than one batch, every append lands while the run is in progress, and it never
    shows a conclusion with half its annotations."""
    size = ANNOTATIONS_PER_REQUEST
    batches = [todo[i : i + size] for i in range(0, len(todo), size)] or [[]]
    return batches, completing and len(batches) > 1


def _first(fields: dict[str, Any], hold: bool) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if not (hold and k in _COMPLETION)}


def _with(output: dict[str, str], batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {**output, "annotations": batch} if batch else dict(output)


def _result(
    action: str,
    run: dict[str, Any],
    annotations: int,
    requests: int,
    superseded: dict[str, Any] | None = None,
) -> CheckRunResult:
    return CheckRunResult(
        action=action,
        id=int(run["id"]),
        html_url=str(run.get("html_url") or ""),
        status=str(run.get("status") or ""),
        conclusion=run.get("conclusion"),
        annotations=annotations,
        requests=requests,
        superseded=None if superseded is None else str(superseded.get("html_url") or ""),
    )


def find_check_run(
    client: gh.GitHubClient, repo: str, sha: str, name: str
) -> dict[str, Any] | None:
    """The newest check run of the commit with this name, if any (all pages, bounded)."""
    query = urllib.parse.urlencode(
        {"check_name": name, "filter": "all", "per_page": 100, "page": 1}
    )
    url: str | None = f"/repos/{repo}/commits/{sha}/check-runs?{query}"
    newest: dict[str, Any] | None = None
    for _ in range(gh.MAX_PAGES):
        if url is None:
            break
        doc, headers = client.request("GET", url)
        runs = doc.get("check_runs") if isinstance(doc, dict) else None
        if not isinstance(runs, list):
            raise gh.GitHubError(f"GitHub API GET {url.split('?')[0]}: expected check_runs")
        for run in runs:
            if (
                isinstance(run, dict)
                and run.get("name") == name
                and isinstance(run.get("id"), int)
                and (newest is None or run["id"] > newest["id"])
            ):
                newest = run
        url = _next_link(headers.get("link", ""))
    return newest


def list_annotations(client: gh.GitHubClient, repo: str, run_id: int) -> list[dict[str, Any]]:
    """The annotations a check run already holds (all pages, bounded)."""
    url: str | None = f"/repos/{repo}/check-runs/{run_id}/annotations?per_page=100&page=1"
    found: list[dict[str, Any]] = []
    for _ in range(gh.MAX_PAGES):
        if url is None:
            break
        doc, headers = client.request("GET", url)
        if not isinstance(doc, list):
            raise gh.GitHubError(f"GitHub API GET {url.split('?')[0]}: expected a list")
        found += [a for a in doc if isinstance(a, dict)]
        url = _next_link(headers.get("link", ""))
    return found


def _key(a: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        a.get("path"),
        a.get("start_line"),
        a.get("end_line"),
        a.get("annotation_level"),
        a.get("title") or "",
        a.get("message"),
    )


def _missing(wanted: list[dict[str, Any]], held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`wanted` less what the check run holds, counted (a finding reported twice on one line
    is sent twice, once)."""
    have = Counter(_key(a) for a in held)
    out = []
    for a in wanted:
        key = _key(a)
        if have[key] > 0:
            have[key] -= 1
        else:
            out.append(a)
    return out


def _check_run(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
        raise gh.GitHubError("GitHub API answered without a check run id")
    return doc


def _title(verdict: str, counts: Any) -> str:
    title = VERDICT_TITLES[verdict]
    if isinstance(counts, dict):
        n = {k: counts.get(k) if isinstance(counts.get(k), int) else 0 for k in LEVELS}
        title += f": {n['error']} error(s), {n['warning']} warning(s), {n['info']} note(s)"
    return title


def _plain_summary(doc: Mapping[str, Any]) -> str:
    """A summary from report.json alone, when report.md is missing."""
    lines = [f"## reviewflow: {str(doc['verdict']).replace('_', ' ')}", ""]
    reasons = doc.get("reasons")
    if isinstance(reasons, list):
        lines += [f"- {r}" for r in reasons if isinstance(r, str)]
    return "\n".join(lines) + "\n"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
