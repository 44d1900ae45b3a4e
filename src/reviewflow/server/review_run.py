"""The review run of a repository checkout: what a template run and a GitHub webhook start.

Five shell tasks, argv lists only (nothing from a request or a payload is ever parsed by a
shell), run one after the other by whichever process executes the run:

    init        git init <work>/<run_id>/repo
    fetch-base  git -C <repo> fetch --depth 1 <base clone URL> <base sha>
    fetch-head  git -C <repo> fetch --depth 1 <head clone URL> <head sha>
    checkout    git -C <repo> checkout --detach <head sha>
    review      reviewflow review <repo> --base <base sha> --template <t>
                    --out <work>/<run_id>/report --db <work>/<run_id>/review.db

Clone URLs must be https (no credentials, query or fragment) and shas 40 hex digits. The
review's own run (its checks) is kept in a SQLite file next to its report, not in the server's
database: no database URL (or its password) ever lands in a task's argv.

A private repository is fetched with the GitHub credentials of the process that executes the
task (GITHUB_TOKEN or a GitHub App, github_app.py): the fetch tasks name
`reviewflow github credential` as git's credential helper for the GitHub server in their
environment, and git asks it for the token — never in argv, a URL, the spec or a log.

With a `PostBack`, the result goes back to GitHub as tasks of the same run, so it is as durable
as the review (a process killed mid-run resumes them; GitHub down: they retry with backoff for
about an hour without holding any other run):

    check-start   reviewflow github check --in-progress      (beside the fetch; details link)
    check-finish  reviewflow github check --report <out>     (after review, whatever it ended:
                  a review that produced no report completes the check as failed, saying so)
    comment       reviewflow github comment --report <out>/report.md   (pull requests)

A check run is per commit and found again by its name, and the comment by its marker, so a
retried or re-run post-back updates what is there instead of adding a second one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import validate_spec
from ..engine import RUN_ID
from ..github_app import APP_ID_ENV, APP_KEY_ENV, fetch_env
from ..spec import WorkflowSpec

SHA = re.compile(r"[0-9a-fA-F]{40}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # a private repository fails instead of waiting


POST_RETRY = {
    "max_retries": 8,
    "base_delay": "15s",
    "max_delay": "10m",
    "retry_on_exit_codes": [1],
}
"""GitHub down or rate limited (exit 1): a post-back is tried again for about an hour; bad
input or a missing report (exit 2) is not worth repeating."""
REVIEW_ENV = [
    # what finds and runs the tools, and what they need to format and reach the network
    *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG", "LANGUAGE"),
    *("LC_*", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "XDG_*", "CI"),
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "REVIEWFLOW_CONCURRENCY"),
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"),
]
"""The variables the review task inherits from the process that executes it, and no others:
it runs the pull request's code (its tests, its build hooks), which must not read the server's
API tokens, notification secrets, SMTP or database passwords, cloud credentials."""
NO_CREDENTIALS_ENV = {
    "GITHUB_TOKEN": "",
    "GH_TOKEN": "",
    APP_ID_ENV: "",
    APP_KEY_ENV: "",
    "REVIEWFLOW_DB": "",
}
"""Set empty on top of REVIEW_ENV, in case a pattern there ever matches them: the review runs
the pull request's code, and gets neither the GitHub credentials (only the fetch and post-back
tasks need them) nor the database URL (the review keeps its own run in a file next to its
report)."""
NO_REPORT = "The review ended without a report (see the run's log on the reviewflow server)."


@dataclass(frozen=True)
class PostBack:
    """Where a review's result goes: the repository's check run of the head and, for a pull
    request, its report comment."""

    repo: str
    pr: int | None = None
    details_url: str | None = None
    api_url: str | None = None
    name: str = "reviewflow"


class BadParam(ValueError):
    """A review parameter is invalid; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def clone_url(url: Any, field: str) -> str:
    """`url` if it is a plain https URL to clone from; else BadParam naming `field`."""
    if not isinstance(url, str) or not url:
        raise BadParam(field, "missing clone URL")
    if len(url) > 2000 or _CONTROL.search(url):
        raise BadParam(field, "clone URL too long or with blanks/control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise BadParam(field, "not a URL") from None
    if parts.scheme != "https" or not host:
        raise BadParam(field, "clone URL must be https://host/...")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BadParam(field, "clone URL must not carry credentials, a query or a fragment")
    return url


def commit(sha: Any, field: str) -> str:
    if not isinstance(sha, str) or not SHA.fullmatch(sha):
        raise BadParam(field, "must be a commit id: 40 hex digits")
    return sha.lower()


def repo_from_url(url: str) -> str:
    """owner/name from a clone URL's path (`https://github.com/o/r.git` → `o/r`)."""
    path = urlsplit(url).path.strip("/")
    path = path.removesuffix(".git")
    return "/".join(path.split("/")[-2:]) or urlsplit(url).hostname or "repo"


def review_run_id(repo: str, pr: int | str | None, sha: str) -> str:
    """A deterministic run id for repo + PR + head sha (a redelivered webhook finds it)."""
    suffix = f"-pr{pr}-{sha}" if pr is not None else f"-{sha}"
    name = _UNSAFE.sub("_", repo.replace("/", "."))
    room = 200 - len("gh-") - len(suffix)
    if len(name) > room:
        digest = hashlib.sha256(repo.encode()).hexdigest()[:8]
        name = f"{name[: room - 9]}_{digest}"
    run_id = f"gh-{name}{suffix}"
    assert RUN_ID.fullmatch(run_id), run_id
    return run_id


def review_spec(
    *,
    template: str,
    repo_url: str,
    sha: str,
    base: str,
    base_url: str | None,
    run_id: str,
    work_dir: Path,
    reviewflow: list[str],
    post_back: PostBack | None = None,
) -> WorkflowSpec:
    """The workflow reviewing `sha` against `base` of a fresh shallow checkout."""
    work = work_dir / run_id
    repo, out, db = str(work / "repo"), str(work / "report"), str(work / "review.db")
    fetch = {"max_retries": 2, "base_delay": "5s"}
    once = {"max_retries": 0}
    credentials = {**GIT_ENV, **fetch_env(reviewflow)}

    def git(*args: str, needs: str | None = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "shell",
            "run": ["git", *args],
            "env": GIT_ENV,
            "timeout": "2m",
            "retry": once,
            **extra,
        }
        if needs:
            body["needs"] = [needs]
        return body

    tasks = {
        "init": git("init", "--quiet", repo),
        "fetch-base": git(
            "-C",
            repo,
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth",
            "1",
            base_url or repo_url,
            base,
            needs="init",
            timeout="10m",
            retry=fetch,
            env=credentials,
        ),
        "fetch-head": git(
            "-C",
            repo,
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth",
            "1",
            repo_url,
            sha,
            needs="fetch-base",
            timeout="10m",
            retry=fetch,
            env=credentials,
        ),
        "checkout": git(
            "-C",
            repo,
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            sha,
            needs="fetch-head",
        ),
        "review": {
            "type": "shell",
            "needs": ["checkout"],
            "inherit_env": REVIEW_ENV,
            "env": NO_CREDENTIALS_ENV,
            "timeout": "60m",
            "retry": once,
            "run": [
                *reviewflow,
                "review",
                repo,
                "--base",
                base,
                "--template",
                template,
                "--out",
                out,
                "--db",
                db,
                "--log-format",
                "json",
            ],
        },
    }
    policy = "fail_fast"
    if post_back is not None:
        tasks.update(_post_back_tasks(post_back, sha, out, reviewflow))
        policy = "continue"  # a failed fetch or review still reports back
    return validate_spec(
        {
            "name": f"review-{template}",
            "description": f"review of {sha} against {base} from {repo_url}",
            "timeout": "90m",
            "failure_policy": policy,
            "tasks": tasks,
        }
    )


def _post_back_tasks(
    post: PostBack, sha: str, out: str, reviewflow: list[str]
) -> dict[str, dict[str, Any]]:
    """The tasks that tell GitHub: in progress at the start, the verdict at the end."""
    check = [*reviewflow, "github", "check", "--repo", post.repo, "--sha", sha]
    check += ["--name", post.name]
    if post.details_url:
        check += ["--details-url", post.details_url]
    if post.api_url:
        check += ["--api-url", post.api_url]

    def task(run: list[str], **extra: Any) -> dict[str, Any]:
        return {"type": "shell", "run": run, "timeout": "5m", "retry": POST_RETRY, **extra}

    tasks = {
        "check-start": task([*check, "--in-progress"]),
        "check-finish": task(
            [*check, "--report", out, "--error-if-missing", NO_REPORT],
            needs=["review", "check-start"],
            trigger="all_done",
        ),
    }
    if post.pr is not None:
        comment = [*reviewflow, "github", "comment", "--repo", post.repo, "--pr", str(post.pr)]
        comment += ["--report", f"{out}/report.md"]
        if post.api_url:
            comment += ["--api-url", post.api_url]
        tasks["comment"] = task(comment, needs=["review"], trigger="all_done")
    return tasks
