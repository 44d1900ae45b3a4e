"""`reviewflow github ...`: the GitHub side of a review run in CI (the PR comment, the check run).

Its own Typer group, mounted on the app here (`app.add_typer(github_app, name="github")`); the
GitHub code is imported by the commands, so no other command has a GitHub code path. Same exit
codes as the rest of the CLI: 0 done, 1 GitHub refused or could not be reached, 2 bad input;
errors are one line on stderr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..constants import GITHUB_API_URL, GITHUB_CHECK_NAME, GITHUB_MARKER
from .common import EXIT_FAILED, _fail, app

if TYPE_CHECKING:
    from ..github import GitHubClient

DEFAULT_API_URL = GITHUB_API_URL
DEFAULT_MARKER = GITHUB_MARKER
DEFAULT_CHECK_NAME = GITHUB_CHECK_NAME

ApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        metavar="URL",
        help=f"REST API root (default: $GITHUB_API_URL, else {DEFAULT_API_URL}).",
    ),
]

github_app = typer.Typer(
    name="github",
    help="GitHub integration: the review as a pull request comment and as a check run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(github_app, name="github")

_FORK_HINT = (
    " (a pull_request from a fork gets a read-only GITHUB_TOKEN; see docs/github-actions.md)"
)
_CHECKS_HINT = (
    " (the token needs checks: write, which a pull_request from a fork never gets;"
    " see docs/github-actions.md)"
)


@github_app.callback()
def _group() -> None:
    """GitHub integration: the review as a pull request comment and as a check run."""
    # A callback keeps `comment` a named subcommand even while it is the only one.


@github_app.command()
def comment(
    repo: Annotated[
        str,
        typer.Option("--repo", metavar="OWNER/NAME", help="The repository ($GITHUB_REPOSITORY)."),
    ],
    pr: Annotated[str, typer.Option("--pr", metavar="N", help="Pull request number.")],
    report: Annotated[
        Path, typer.Option("--report", metavar="FILE", help="Markdown report to post.")
    ],
    api_url: ApiUrlOpt = None,
    marker: Annotated[
        str,
        typer.Option(
            "--marker",
            metavar="TEXT",
            help="Hidden marker that identifies the comment to update: a name (e.g. security)"
            " or a full HTML comment.",
        ),
    ] = DEFAULT_MARKER,
) -> None:
    """Post the report as one PR comment; later runs edit that comment instead of adding one.

    Credentials: GITHUB_TOKEN (a --token flag would show in process lists), else the GitHub
    App of REVIEWFLOW_GITHUB_APP_ID and REVIEWFLOW_GITHUB_APP_KEY_FILE (docs/github-app.md).
    """
    from ..github import GitHubError, normalize_marker, post_or_update_comment, validate_repo

    try:
        validate_repo(repo)
        marker = normalize_marker(marker)
    except ValueError as exc:
        _fail(str(exc))
    number = pr.strip()
    if not (number.isascii() and number.isdigit()) or int(number) < 1:
        _fail(f"bad --pr {pr!r}: use a positive pull request number")
    try:
        text = report.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        _fail(f"cannot read --report {report}: {exc.strerror or exc}")
    client = _client(repo, api_url)
    try:
        result = post_or_update_comment(repo, int(number), text, marker=marker, client=client)
    except ValueError as exc:
        _fail(str(exc))
    except GitHubError as exc:
        message = str(exc)
        if "Resource not accessible by integration" in message:
            message += _FORK_HINT
        _fail(message, EXIT_FAILED)
    typer.echo(f"{result.action} comment {result.html_url}")


def _api_url(option: str | None) -> str:
    return option or os.environ.get("GITHUB_API_URL", "").strip() or DEFAULT_API_URL


def _client(repo: str, api_url: str | None) -> GitHubClient:
    """A client with GITHUB_TOKEN, else the GitHub App's installation token for `repo`."""
    from ..github import GitHubError
    from ..github_app import NO_CREDENTIALS, AppConfigError, client_for, have_credentials

    if not have_credentials():
        _fail(NO_CREDENTIALS)
    try:
        return client_for(repo, _api_url(api_url))
    except AppConfigError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc))
    except GitHubError as exc:
        _fail(str(exc), EXIT_FAILED)


@github_app.command()
def check(
    repo: Annotated[
        str,
        typer.Option("--repo", metavar="OWNER/NAME", help="The repository ($GITHUB_REPOSITORY)."),
    ],
    sha: Annotated[
        str,
        typer.Option(
            "--sha",
            metavar="SHA",
            help="Full id of the commit the check run belongs to (a pull request's head).",
        ),
    ],
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="DIR",
            help="The review's output folder (`reviewflow review --out`, with report.json).",
        ),
    ] = None,
    in_progress: Annotated[
        bool,
        typer.Option(
            "--in-progress",
            help="Show the check run as in progress (before the review; no --report).",
        ),
    ] = False,
    error: Annotated[
        str | None,
        typer.Option(
            "--error",
            metavar="MESSAGE",
            help="The review could not run: complete the check run as failed with this"
            " message (no --report).",
        ),
    ] = None,
    if_missing: Annotated[
        str | None,
        typer.Option(
            "--error-if-missing",
            metavar="MESSAGE",
            help="With --report: when the folder holds no report.json (the review did not"
            " finish), complete the check run as failed with this message instead of exit 2.",
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option("--name", metavar="TEXT", help="Name of the check run."),
    ] = DEFAULT_CHECK_NAME,
    details_url: Annotated[
        str | None,
        typer.Option("--details-url", metavar="URL", help="Link for the check's Details."),
    ] = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Create or update the commit's check run: conclusion from the verdict, the report as its
    summary, findings on changed lines as annotations. A re-run updates it, never a second one.

    Credentials: GITHUB_TOKEN (it needs checks: write), else the GitHub App of
    REVIEWFLOW_GITHUB_APP_ID and REVIEWFLOW_GITHUB_APP_KEY_FILE (docs/github-app.md).
    """
    from ..github import GitHubError, validate_repo
    from ..github_checks import (
        ReportError,
        error_report,
        load_report,
        publish_check,
        start_check,
        validate_name,
        validate_sha,
    )

    try:
        validate_repo(repo)
        sha = validate_sha(sha)
        validate_name(name)
    except ValueError as exc:
        _fail(str(exc))
    if details_url is not None and not details_url.startswith(("https://", "http://")):
        _fail(f"bad --details-url {details_url!r}: use an http(s) URL")
    given = [o for o, v in (("--report", report), ("--error", error)) if v is not None]
    if in_progress:
        given.insert(0, "--in-progress")
    if len(given) != 1:
        what = " and ".join(given) if given else "none"
        _fail(f"give one of --report DIR, --in-progress or --error MESSAGE (got {what})")
    if if_missing is not None and report is None:
        _fail("--error-if-missing goes with --report DIR")
    loaded = None if error is None else error_report(error)
    if report is not None:
        if if_missing is not None and not (report / "report.json").is_file():
            loaded = error_report(if_missing)
        else:
            try:
                loaded = load_report(report)
            except ReportError as exc:
                _fail(str(exc))
    client = _client(repo, api_url)
    try:
        if loaded is None:
            result = start_check(repo, sha, details_url=details_url, client=client, name=name)
        else:
            result = publish_check(
                repo, sha, loaded, details_url=details_url, client=client, name=name
            )
    except ValueError as exc:
        _fail(str(exc))
    except GitHubError as exc:
        message = str(exc)
        if "Resource not accessible by integration" in message:
            message += _CHECKS_HINT
        _fail(message, EXIT_FAILED)
    state = result.conclusion or result.status
    if result.action == "unchanged":
        typer.echo(
            f"left check run {result.html_url} as it is ({state}: GitHub does not reopen a"
            " completed check run; the result will update or supersede it)"
        )
        return
    note = ""
    if result.superseded:
        note = f"; supersedes {result.superseded}, whose conclusion GitHub keeps"
    typer.echo(
        f"{result.action} check run {result.html_url} ({state}, "
        f"{result.annotations} annotation(s) sent{note})"
    )


@github_app.command(hidden=True)
def credential(
    operation: Annotated[str, typer.Argument(help="get, store or erase (git says which).")],
) -> None:
    """git's credential helper: the GitHub token (or the App's installation token) for the
    GitHub server's repositories, read by git from stdout — never in argv or a URL.

    Configured by review runs for their fetches (github_app.fetch_env); by hand:
    git -c 'credential.https://github.com.helper=!reviewflow github credential' fetch ...
    """
    import sys

    from ..github_app import credential as answer

    raise typer.Exit(answer(operation, sys.stdin, sys.stdout))
