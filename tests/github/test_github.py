"""`reviewflow github comment` against a fake GitHub on 127.0.0.1 (see conftest.py): one comment
per pull request, found again by its hidden marker and edited in place on later runs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fakegithub import PR, REPO, TOKEN, FakeGitHub
from typer.testing import CliRunner, Result

import reviewflow.github as gh
from reviewflow.cli.github import github_app

MARKER = gh.DEFAULT_MARKER
COMMENTS = f"/repos/{REPO}/issues/{PR}/comments"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(github_app, ["comment", *args], catch_exceptions=False)


def post(report: Path, *extra: str, repo: str = REPO, pr: str = str(PR)) -> Result:
    return invoke("--repo", repo, "--pr", pr, "--report", str(report), *extra)


def write_report(tmp_path: Path, text: str, name: str = "report.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line_error(result: Result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    return lines[0]


# ----------------------------------------------------------------------------- create, update


def test_first_run_creates_the_comment_with_marker_and_auth(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    result = post(write_report(tmp_path, "# Review\n\nverdict: approve\n"))
    assert result.exit_code == 0, result.stderr
    [comment] = fake_github.comments[PR]
    assert result.stdout == f"created comment {comment['html_url']}\n"
    assert comment["body"] == f"{MARKER}\n# Review\n\nverdict: approve\n"

    [get] = fake_github.calls("GET")
    assert get.path == f"{COMMENTS}?per_page=100&page=1"
    [create] = fake_github.calls("POST")
    assert create.path == COMMENTS
    assert create.body == {"body": comment["body"]}
    headers = {k.lower(): v for k, v in create.headers.items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["user-agent"].startswith("reviewflow")
    assert fake_github.calls("PATCH") == []


def test_second_run_updates_the_same_comment(fake_github: FakeGitHub, tmp_path: Path) -> None:
    assert post(write_report(tmp_path, "first push\n")).exit_code == 0
    [comment] = fake_github.comments[PR]

    result = post(write_report(tmp_path, "second push\n"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"updated comment {comment['html_url']}\n"
    assert len(fake_github.comments[PR]) == 1
    assert fake_github.comments[PR][0]["body"] == f"{MARKER}\nsecond push\n"
    [patch] = fake_github.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{comment['id']}"
    assert patch.body == {"body": f"{MARKER}\nsecond push\n"}
    assert len(fake_github.calls("POST")) == 1  # only the first run's


def test_marker_on_page_two_is_found(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.page_size = 2
    for i in range(3):
        fake_github.add_comment(PR, f"comment {i}")
    ours = fake_github.add_comment(PR, f"{MARKER}\nold report", login="github-actions[bot]")
    for i in range(3):
        fake_github.add_comment(PR, f"later comment {i}")

    result = post(write_report(tmp_path, "new report"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"updated comment {ours['html_url']}\n"
    pages = [r.path.rsplit("page=", 1)[1] for r in fake_github.calls("GET")]
    assert pages == ["1", "2"]  # followed the Link header, stopped once found
    [patch] = fake_github.calls("PATCH")
    assert patch.path.endswith(f"/comments/{ours['id']}")
    assert fake_github.calls("POST") == []


def test_other_comments_are_left_alone(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.page_size = 2
    others = [
        fake_github.add_comment(PR, "LGTM"),
        fake_github.add_comment(PR, f"quoting the bot:\n> {MARKER}\n> old"),  # not at the start
        fake_github.add_comment(PR, "<!-- reviewflow:security -->\nanother review"),
    ]
    before = [dict(c) for c in others]
    fake_github.add_comment(PR + 1, f"{MARKER}\nreport of another pull request")

    result = post(write_report(tmp_path, "report"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created comment ")
    assert fake_github.comments[PR][:3] == before
    assert fake_github.comments[PR + 1][0]["body"].endswith("another pull request")
    assert len(fake_github.calls("GET")) == 2  # read every page before creating
    assert fake_github.calls("PATCH") == []


def test_custom_marker_keeps_separate_comments(fake_github: FakeGitHub, tmp_path: Path) -> None:
    report = write_report(tmp_path, "r")
    assert post(report).stdout.startswith("created")
    assert post(report, "--marker", "security").stdout.startswith("created")
    assert post(report, "--marker", "<!-- reviewflow:security -->").stdout.startswith("updated")
    assert post(report).stdout.startswith("updated")
    bodies = [c["body"] for c in fake_github.comments[PR]]
    assert bodies == [f"{MARKER}\nr", "<!-- reviewflow:security -->\nr"]


def test_python_api_returns_what_it_did(fake_github: FakeGitHub) -> None:
    first = gh.post_or_update_comment(REPO, PR, "one", token=TOKEN, api_url=fake_github.url)
    again = gh.post_or_update_comment(REPO, PR, "two", token=TOKEN, api_url=fake_github.url + "/")
    assert first.action == "created" and again.action == "updated"
    assert first.id == again.id == fake_github.comments[PR][0]["id"]
    assert first.html_url.endswith(f"#issuecomment-{first.id}")


def test_api_url_option_wins_over_env(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9/nowhere")
    result = post(write_report(tmp_path, "r"), "--api-url", fake_github.url)
    assert result.exit_code == 0, result.stderr


# ----------------------------------------------------------------------------- truncation


def test_huge_report_is_truncated_with_a_note(fake_github: FakeGitHub, tmp_path: Path) -> None:
    lines = [f"- finding {i}: something long enough to fill the report" for i in range(5000)]
    report = "# Review\n\n```text\n" + "\n".join(lines) + "\n```\n"
    assert len(report) > 2 * gh.MAX_BODY

    result = post(write_report(tmp_path, report))
    assert result.exit_code == 0, result.stderr
    [create] = fake_github.calls("POST")
    body = create.body["body"]
    assert len(body) <= gh.MAX_BODY
    assert body.startswith(f"{MARKER}\n# Review\n")
    assert body.rstrip().endswith("(report truncated; full report in the workflow artifacts)_")
    before_note = body[: body.index("_(report truncated")].rstrip()
    assert before_note.endswith("\n```")  # the open code block was closed before the note
    assert body.count("```") % 2 == 0


def test_report_at_the_limit_is_not_truncated() -> None:
    report = "x" * (gh.MAX_BODY - len(MARKER) - 1)
    assert gh.comment_body(report) == f"{MARKER}\n{report}"
    assert "truncated" in gh.comment_body(report + "y")
    assert len(gh.comment_body(report + "y")) <= gh.MAX_BODY


# ----------------------------------------------------------------------------- bad input (2)


def test_missing_token_is_bad_input(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    assert_one_line_error(
        post(write_report(tmp_path, "r")), 2, "no GitHub credentials: set GITHUB_TOKEN"
    )
    monkeypatch.setenv("GITHUB_TOKEN", "  ")
    assert_one_line_error(
        post(write_report(tmp_path, "r")), 2, "no GitHub credentials: set GITHUB_TOKEN"
    )
    assert fake_github.requests == []


@pytest.mark.parametrize(
    "repo", ["octo-repo", "octo/repo/extra", "octo/", "/repo", "octo/re po", "../etc", "o/..", ""]
)
def test_bad_repo_is_bad_input(fake_github: FakeGitHub, tmp_path: Path, repo: str) -> None:
    result = post(write_report(tmp_path, "r"), repo=repo)
    assert_one_line_error(result, 2, "bad repository", "OWNER/NAME")
    assert fake_github.requests == []


@pytest.mark.parametrize("pr", ["0", "-3", "abc", "1.5", "", "²"])
def test_bad_pr_is_bad_input(fake_github: FakeGitHub, tmp_path: Path, pr: str) -> None:
    assert_one_line_error(post(write_report(tmp_path, "r"), pr=pr), 2, "bad --pr")
    assert fake_github.requests == []


def test_unreadable_report_is_bad_input(fake_github: FakeGitHub, tmp_path: Path) -> None:
    assert_one_line_error(post(tmp_path / "missing.md"), 2, "cannot read --report", "missing.md")
    assert_one_line_error(post(tmp_path), 2, "cannot read --report")  # a directory
    assert fake_github.requests == []


@pytest.mark.parametrize("marker", ["two words", "<!-- a -- b -->", "<!-- -->", "x>"])
def test_bad_marker_is_bad_input(fake_github: FakeGitHub, tmp_path: Path, marker: str) -> None:
    assert_one_line_error(post(write_report(tmp_path, "r"), "--marker", marker), 2, "bad marker")


def test_bad_api_url_is_bad_input(fake_github: FakeGitHub, tmp_path: Path) -> None:
    result = post(write_report(tmp_path, "r"), "--api-url", "ftp://example.com")
    assert_one_line_error(result, 2, "bad API URL")


# ----------------------------------------------------------------------------- GitHub errors (1)


def test_forbidden_is_a_one_line_failure(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", 403, message="Resource not accessible by integration")
    line = assert_one_line_error(post(write_report(tmp_path, "r")), 1)
    assert line.startswith(
        f"error: GitHub API POST {COMMENTS} answered 403: Resource not accessible by integration"
    )
    assert "fork" in line  # points at the likely cause
    assert len(fake_github.calls("POST")) == 1  # a plain 403 is not retried
    assert fake_github.comments.get(PR) is None


def test_bad_credentials_are_reported(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "wrong")
    assert_one_line_error(
        post(write_report(tmp_path, "r")),
        1,
        f"GET {COMMENTS}?per_page=100&page=1",
        "answered 401: Bad credentials",
    )


def test_unreachable_api_is_a_one_line_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = post(write_report(tmp_path, "r"), "--api-url", f"http://127.0.0.1:{port}")
    assert_one_line_error(result, 1, "cannot reach the GitHub API", f"127.0.0.1:{port}")


def test_requests_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gh, "RETRY_DELAYS", (0.0, 0.0))  # a GET is retried, a bounded number
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        client = gh.GitHubClient(TOKEN, f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.3)
        with pytest.raises(gh.GitHubError, match=r"cannot reach the GitHub API.*timed out"):
            client.find_comment(REPO, PR, MARKER)


def test_token_is_not_sent_to_another_host(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.page_size = 1
    fake_github.add_comment(PR, "a")
    fake_github.add_comment(PR, "b")
    fake_github.link_base = "http://elsewhere.invalid"
    result = post(write_report(tmp_path, "r"))
    assert_one_line_error(result, 1, "refusing to send the token to http://elsewhere.invalid")
    assert len(fake_github.requests) == 1


def test_same_host_redirect_is_followed(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.redirect_base = fake_github.url  # e.g. a renamed repository
    result = post(write_report(tmp_path, "r"))
    assert result.exit_code == 0, result.stderr
    first, second = fake_github.calls("GET")
    assert second.path == first.path + "&moved=1"


def test_redirect_to_another_host_is_refused(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.redirect_base = "http://elsewhere.invalid"
    assert_one_line_error(post(write_report(tmp_path, "r")), 1, "answered 301")
    assert len(fake_github.requests) == 1


# ----------------------------------------------------------------------------- retries


def test_retry_on_502_then_success(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("GET", 502, message="Bad Gateway")
    fake_github.fail("PATCH", 503)
    fake_github.add_comment(PR, f"{MARKER}\nold")
    result = post(write_report(tmp_path, "new"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("updated comment ")
    assert len(fake_github.calls("GET")) == 2
    assert len(fake_github.calls("PATCH")) == 2
    assert fake_github.comments[PR][0]["body"] == f"{MARKER}\nnew"


def test_post_lost_in_a_gateway_error_is_not_posted_twice(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.fail("POST", 504, apply=True)  # GitHub created it; the client heard 504
    result = post(write_report(tmp_path, "r"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("updated comment ")
    assert len(fake_github.comments[PR]) == 1
    assert len(fake_github.calls("POST")) == 1


def test_post_refused_by_a_gateway_is_posted_again(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", 502)
    result = post(write_report(tmp_path, "r"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created comment ")
    assert len(fake_github.comments[PR]) == 1
    assert len(fake_github.calls("POST")) == 2


def test_secondary_rate_limit_waits_for_retry_after(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.fail(
        "POST",
        403,
        message="You have exceeded a secondary rate limit",
        headers={"Retry-After": "0"},
    )
    fake_github.fail("GET", 429, headers={"Retry-After": "0"})
    result = post(write_report(tmp_path, "r"))
    assert result.exit_code == 0, result.stderr
    assert len(fake_github.calls("POST")) == 2
    assert len(fake_github.comments[PR]) == 1


def test_long_retry_after_is_not_waited_for(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("GET", 429, message="slow down", headers={"Retry-After": "3600"})
    assert_one_line_error(post(write_report(tmp_path, "r")), 1, "answered 429: slow down")
    assert len(fake_github.calls("GET")) == 1


def test_retries_are_bounded(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("GET", 503, message="Service Unavailable", times=100)
    assert_one_line_error(post(write_report(tmp_path, "r")), 1, "answered 503")
    assert len(fake_github.calls("GET")) == gh.MAX_TRIES


# ----------------------------------------------------------------------------- helpers


def test_marker_names_become_hidden_html_comments() -> None:
    assert gh.normalize_marker("security") == "<!-- reviewflow:security -->"
    assert gh.normalize_marker(" <!-- mine --> ") == "<!-- mine -->"
    assert gh.normalize_marker(MARKER) == MARKER
    with pytest.raises(ValueError):
        gh.normalize_marker("")


def test_python_api_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="bad repository"):
        gh.post_or_update_comment("nope", 1, "r", token=TOKEN)
    with pytest.raises(ValueError, match="bad pull request"):
        gh.post_or_update_comment(REPO, 0, "r", token=TOKEN)
    with pytest.raises(gh.GitHubError, match="no GitHub token"):
        gh.post_or_update_comment(REPO, 1, "r", token="")


def test_comment_deleted_meanwhile_is_created_again(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.add_comment(PR, f"{MARKER}\nold")
    # Found, then deleted by someone before the edit arrives.
    fake_github.fail("PATCH", 404, message="Not Found", then=fake_github.comments[PR].clear)
    result = post(write_report(tmp_path, "new"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created comment ")
    assert [r.method for r in fake_github.requests] == ["GET", "PATCH", "GET", "POST"]
    assert [c["body"] for c in fake_github.comments[PR]] == [f"{MARKER}\nnew"]


def test_validation_errors_are_one_line(fake_github: FakeGitHub, tmp_path: Path) -> None:
    errors = [
        {
            "resource": "IssueComment",
            "code": "custom",
            "message": "body is too long\n(maximum is 65536 characters)",
        }
    ]
    fake_github.fail("POST", 422, message="Validation Failed", extra={"errors": errors})
    line = assert_one_line_error(post(write_report(tmp_path, "r")), 1, "answered 422")
    assert line.endswith("Validation Failed (body is too long (maximum is 65536 characters))")
