"""Post the review report as one pull-request comment that later runs update in place.

A review runs on every push to a pull request; a new comment per push would bury the discussion,
so the comment carries a hidden marker (an HTML comment, invisible once rendered) and the next run
finds it and edits it. The marker is the only key: no state is kept between runs, and the token's
own login is not needed (GitHub Actions' token may not read `/user`).

Only the standard library is used (urllib), so the `github comment` command costs no dependency.
Every request has a timeout; transient answers (5xx, a timeout, a rate limit with a short
Retry-After or X-RateLimit-Reset) are retried a bounded number of times, so a run never hangs on
GitHub. The same client serves `github check` (github_checks.py).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from .constants import GITHUB_API_URL, GITHUB_MARKER
from .errors import GitHubError as GitHubError
from .errors import GitHubHTTPError as GitHubHTTPError

DEFAULT_API_URL = GITHUB_API_URL
DEFAULT_MARKER = GITHUB_MARKER
MAX_BODY = 65_536
"""GitHub refuses a comment body longer than this many characters."""
TRUNCATION_NOTE = "_(report truncated; full report in the workflow artifacts)_"
TIMEOUT = 30.0
"""Seconds per request (connect and each read)."""
MAX_TRIES = 3
RETRY_DELAYS: tuple[float, ...] = (2.0, 5.0)
"""Backoff before the 2nd and 3rd try when GitHub gives no Retry-After."""
MAX_RETRY_AFTER = 30.0
"""A longer Retry-After is not waited for: the run fails with the message instead of stalling."""
MAX_PAGES = 50
"""100 comments a page: 5,000 comments are searched for the marker, then a new one is posted."""
RETRY_STATUSES = frozenset({500, 502, 503, 504})
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_MARKER_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
USER_AGENT = "reviewflow"


@dataclass(frozen=True)
class CommentResult:
    """What `post_or_update_comment` did, so callers can print or link the comment."""

    action: str  # "created" or "updated"
    id: int
    html_url: str


def normalize_marker(marker: str) -> str:
    """Accept a full HTML comment or a bare name (`security` -> `<!-- reviewflow:security -->`).

    A bare name keeps two reviews of one pull request in separate comments without the user
    writing HTML; anything that would end the HTML comment early (and so show in the rendered
    comment, or break the match) is refused.
    """
    text = marker.strip()
    if text.startswith("<!--") and text.endswith("-->"):
        inner = text[4:-3]
        if not inner.strip() or "--" in inner or "\n" in inner:
            raise ValueError(f"bad marker {marker!r}: use <!-- name --> without '--' inside")
        return text
    if not _MARKER_NAME_RE.match(text):
        raise ValueError(
            f"bad marker {marker!r}: use a name of letters, digits and _.:/- "
            "or a full HTML comment <!-- ... -->"
        )
    return f"<!-- reviewflow:{text} -->"


def validate_repo(repo: str) -> str:
    """OWNER/NAME is checked before any request, so a typo fails fast and no path is injected."""
    if not REPO_RE.match(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"bad repository {repo!r}: use OWNER/NAME, e.g. octo-org/octo-repo")
    return repo


def comment_body(report: str, marker: str = DEFAULT_MARKER) -> str:
    """The marker on the first line, then the report, cut to fit GitHub's limit.

    The cut falls at a line end when one is near, and an open ``` fence is closed so the note
    does not render inside a code block.
    """
    marker = normalize_marker(marker)
    body = f"{marker}\n{report}"
    if len(body) <= MAX_BODY:
        return body
    tail = f"\n\n{TRUNCATION_NOTE}\n"
    fence = "\n```"
    room = MAX_BODY - len(marker) - 1 - len(tail) - len(fence)
    kept = report[:room]
    newline = kept.rfind("\n")
    if newline >= room - 2_000:
        kept = kept[:newline]
    if _open_fence(kept):
        kept += fence
    return f"{marker}\n{kept}{tail}"


def _open_fence(text: str) -> bool:
    fences = sum(1 for line in text.splitlines() if line.lstrip().startswith("```"))
    return fences % 2 == 1


class GitHubClient:
    """A few REST calls with auth headers, timeouts, bounded retries and one-line errors."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float | None = None,
        refresh: Callable[[], str] | None = None,
    ) -> None:
        """`refresh`, when given, returns a new token after a 401 (a GitHub App's installation
        token can be revoked before it expires); the request is then tried once more."""
        if not token:
            raise GitHubError("no GitHub token given")
        base = api_url.rstrip("/")
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"bad API URL {api_url!r}: use http(s)://host[/path]")
        self.base = base
        self._origin = _origin(base)
        self._token = token
        self._refresh = refresh
        self.timeout = TIMEOUT if timeout is None else timeout
        self._opener = urllib.request.build_opener(_SameOriginRedirects())

    def request(
        self,
        method: str,
        url_or_path: str,
        payload: dict[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """Send one request (retried when GitHub says it is transient); returns JSON, headers.

        A request that is not idempotent (a POST by default; a PATCH that appends check-run
        annotations) is not retried on 5xx or a timeout: GitHub may have done it before the
        gateway gave up, and a blind retry would do it twice (the caller re-checks instead).
        Rate limits are retried for every method: GitHub refused before doing anything.
        """
        if idempotent is None:
            idempotent = method != "POST"
        url = url_or_path if "://" in url_or_path else self.base + url_or_path
        self._check_origin(url)
        shown = _shown_path(url, self.base)
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        refreshed = False
        for attempt in range(1, MAX_TRIES + 1):
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    headers = {k.lower(): v for k, v in resp.headers.items()}
            except urllib.error.HTTPError as exc:
                raw_err, err_headers = _drain(exc)
                if exc.code == 401 and self._refresh is not None and not refreshed:
                    self._token, refreshed = self._refresh(), True
                    continue
                message = _error_message(raw_err, exc.reason)
                wait = _retry_wait(idempotent, exc.code, err_headers, attempt)
                if wait is None:
                    error = GitHubHTTPError(method, shown, exc.code, message)
                    error.ambiguous = not idempotent and exc.code in RETRY_STATUSES
                    raise error from None
                time.sleep(wait)
                continue
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
                if timed_out and idempotent and attempt < MAX_TRIES:
                    time.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])
                    continue
                unreachable = GitHubError(
                    f"cannot reach the GitHub API at {self.base} ({method} {shown}): {reason}"
                )
                unreachable.ambiguous = timed_out and not idempotent
                raise unreachable from None
            try:
                doc = json.loads(raw) if raw.strip() else None
            except ValueError:
                raise GitHubError(
                    f"GitHub API {method} {shown} answered something that is not JSON"
                ) from None
            return doc, headers
        raise AssertionError("unreachable")  # pragma: no cover

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
        }

    def _check_origin(self, url: str) -> None:
        """The token goes only to the configured API host, whatever a Link header says."""
        scheme, netloc = _origin(url)
        if (scheme, netloc) != self._origin:
            raise GitHubError(f"refusing to send the token to {scheme}://{netloc}")

    def find_comment(self, repo: str, pr: int, marker: str) -> dict[str, Any] | None:
        """The first comment of the pull request whose body starts with the marker, if any."""
        url: str | None = f"/repos/{repo}/issues/{pr}/comments?per_page=100&page=1"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            doc, headers = self.request("GET", url)
            if not isinstance(doc, list):
                raise GitHubError(f"GitHub API GET {_shown_path(url, self.base)}: expected a list")
            for comment in doc:
                body = comment.get("body") if isinstance(comment, dict) else None
                if isinstance(body, str) and body.lstrip().startswith(marker):
                    return cast(dict[str, Any], comment)
            url = _next_link(headers.get("link", ""))
        return None

    def create_comment(self, repo: str, pr: int, body: str) -> dict[str, Any]:
        doc, _ = self.request("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": body})
        return _comment(doc, "POST")

    def update_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        doc, _ = self.request(
            "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", {"body": body}
        )
        return _comment(doc, "PATCH")


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only for a GET on the same host (GitHub's moved-repository answer).

    urllib's default handler would resend the Authorization header to any host, and turn a
    redirected POST into a GET; refusing makes the 3xx an ordinary error message instead.
    """

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if req.get_method() != "GET" or _origin(newurl) != _origin(req.full_url):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


def post_or_update_comment(
    repo: str,
    pr: int,
    body: str,
    *,
    token: str = "",
    api_url: str = DEFAULT_API_URL,
    marker: str = DEFAULT_MARKER,
    client: GitHubClient | None = None,
) -> CommentResult:
    """Create the pull request's report comment, or edit the one an earlier run created.

    `body` is the report (Markdown); the marker is put on its first line and the text is
    truncated to GitHub's limit here, so every caller gets the same comment shape.
    """
    validate_repo(repo)
    if isinstance(pr, bool) or not isinstance(pr, int) or pr < 1:
        raise ValueError(f"bad pull request number {pr!r}: use a positive integer")
    marker = normalize_marker(marker)
    text = comment_body(body, marker)
    client = client or GitHubClient(token, api_url)
    for attempt in range(1, MAX_TRIES + 1):
        existing = client.find_comment(repo, pr, marker)
        if existing is not None:
            try:
                doc = client.update_comment(repo, int(existing["id"]), text)
            except GitHubHTTPError as exc:
                # Deleted between the search and the edit: search again (then create).
                if exc.status == 404 and attempt < MAX_TRIES:
                    continue
                raise
            return CommentResult("updated", int(doc["id"]), str(doc.get("html_url", "")))
        try:
            doc = client.create_comment(repo, pr, text)
        except GitHubHTTPError as exc:
            # The comment may exist despite the gateway error: look again before re-posting.
            if exc.status in RETRY_STATUSES and attempt < MAX_TRIES:
                time.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])
                continue
            raise
        return CommentResult("created", int(doc["id"]), str(doc.get("html_url", "")))
    raise AssertionError("unreachable")  # pragma: no cover


def _drain(exc: urllib.error.HTTPError) -> tuple[bytes, dict[str, str]]:
    """The error's body and headers; the response is closed so no socket is left open."""
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    try:
        raw = exc.read() if exc.fp is not None else b""
    except OSError:
        raw = b""
    finally:
        exc.close()
    return raw, headers


def _comment(doc: Any, method: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
        raise GitHubError(f"GitHub API {method} answered without a comment id")
    return doc


def _retry_wait(
    idempotent: bool, status: int, headers: dict[str, str], attempt: int
) -> float | None:
    """Seconds to wait before trying again, or None when the error is final."""
    if attempt >= MAX_TRIES:
        return None
    retry_after = _seconds(headers.get("retry-after"))
    if status in (403, 429):
        # A secondary rate limit says Retry-After; a plain 403 (no permission) does not.
        limited = retry_after is not None or headers.get("x-ratelimit-remaining") == "0"
        if not limited:
            return None
        if retry_after is None:
            reset = _seconds(headers.get("x-ratelimit-reset"))
            retry_after = None if reset is None else max(0.0, reset - time.time())
    elif status in RETRY_STATUSES:
        if not idempotent:
            return None
    else:
        return None
    if retry_after is None:
        return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
    return retry_after if retry_after <= MAX_RETRY_AFTER else None


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _error_message(raw: bytes, reason: Any) -> str:
    """GitHub's JSON `message` (plus the first `errors` entry), on one line."""
    message = ""
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        message = str(doc.get("message") or "")
        errors = doc.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            is_dict = isinstance(first, dict)
            detail = (first.get("message") or first.get("code")) if is_dict else first
            if detail:
                message = f"{message} ({detail})" if message else str(detail)
    if not message:
        message = raw.decode("utf-8", "replace").strip()[:200] or str(reason or "no message")
    return " ".join(message.split())


def _next_link(link: str) -> str | None:
    match = _LINK_NEXT_RE.search(link)
    return match.group(1) if match else None


def _shown_path(url: str, base: str) -> str:
    """The URL without the API host, as GitHub's docs write endpoints."""
    if url.startswith(base):
        return url[len(base) :] or "/"
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
