"""`reviewflow github check` against a fake GitHub on 127.0.0.1 that checks every request against
GitHub's OpenAPI description (conftest.py): one check run per head commit, completed from a
review's output folder, its findings as annotations in batches of 50, retried through gateway
errors, timeouts and rate limits without a duplicate run or annotation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fakegithub import REPO, SHA, TOKEN, FakeGitHub
from openapi import github_openapi
from typer.testing import CliRunner, Result

import reviewflow.github as gh
import reviewflow.github_checks as checks
from reviewflow.cli.github import github_app

RUNS = f"/repos/{REPO}/check-runs"
LIST = f"/repos/{REPO}/commits/{SHA}/check-runs"
REPORT_MD = "## ❌ reviewflow: request changes\n\n| check | finding |\n|---|---|\n"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(github_app, ["check", *args], catch_exceptions=False)


def publish(folder: Path, *extra: str, sha: str = SHA, repo: str = REPO) -> Result:
    return invoke("--repo", repo, "--sha", sha, "--report", str(folder), *extra)


def finding(i: int, severity: str = "warning", **kw: Any) -> dict[str, Any]:
    doc = {
        "check": "lint",
        "file": f"src/mod{i % 4}.py",
        "line": i + 1,
        "severity": severity,
        "rule": f"R{i}",
        "message": f"problem {i}",
    }
    return {**doc, **kw}


def write_review(
    tmp_path: Path,
    verdict: str = "request_changes",
    findings: list[dict[str, Any]] | None = None,
    markdown: str | None = REPORT_MD,
    name: str = "reviewflow-report",
) -> Path:
    """A review's output folder as `reviewflow review --out` writes it."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    findings = [finding(0, "error")] if findings is None else findings
    counts = {s: sum(f.get("severity") == s for f in findings) for s in ("error", "warning")}
    counts["info"] = sum(f.get("severity") == "info" for f in findings)
    doc = {
        "verdict": verdict,
        "reasons": [],
        "run_id": "review-1",
        "counts": {**counts, "hidden": 0},
        "findings": findings,
    }
    (folder / "report.json").write_text(json.dumps(doc), encoding="utf-8")
    if markdown is not None:
        (folder / "report.md").write_text(markdown, encoding="utf-8")
    return folder


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


def annotation_batches(fake: FakeGitHub) -> list[int]:
    sent = [r for r in fake.requests if r.method in ("POST", "PATCH") and r.path.startswith(RUNS)]
    return [len((r.body.get("output") or {}).get("annotations", [])) for r in sent]


# ----------------------------------------------------------------------------- create, update


def test_first_run_creates_the_check_run(fake_github: FakeGitHub, tmp_path: Path) -> None:
    findings = [
        finding(0, "error"),
        finding(1, "warning", file="./src/b.py"),
        finding(2, "info"),
        finding(3, "error", line=None),  # a whole-file finding: summary only
        finding(4, "warning", file=None, line=None),  # about the whole change
    ]
    result = publish(write_review(tmp_path, "request_changes", findings))
    assert result.exit_code == 0, result.stderr
    [run] = fake_github.runs_for(SHA)
    assert result.stdout == f"created check run {run['html_url']} (failure, 3 annotation(s) sent)\n"

    [listing] = fake_github.calls("GET")
    assert listing.path == f"{LIST}?check_name=reviewflow&filter=all&per_page=100&page=1"
    [create] = fake_github.calls("POST")
    assert create.path == RUNS
    body = create.body
    assert body["name"] == "reviewflow" and body["head_sha"] == SHA
    assert body["status"] == "completed" and body["conclusion"] == "failure"
    assert body["external_id"] == "review-1"
    assert body["output"]["summary"] == REPORT_MD
    assert body["output"]["title"] == "Changes requested: 2 error(s), 2 warning(s), 1 note(s)"
    assert body["output"]["annotations"] == [
        {
            "path": "src/mod0.py",
            "start_line": 1,
            "end_line": 1,
            "annotation_level": "failure",
            "title": "lint: R0",
            "message": "problem 0",
        },
        {
            "path": "src/b.py",
            "start_line": 2,
            "end_line": 2,
            "annotation_level": "warning",
            "title": "lint: R1",
            "message": "problem 1",
        },
        {
            "path": "src/mod2.py",
            "start_line": 3,
            "end_line": 3,
            "annotation_level": "notice",
            "title": "lint: R2",
            "message": "problem 2",
        },
    ]
    headers = {k.lower(): v for k, v in create.headers.items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert fake_github.calls("PATCH") == []


def test_rerun_updates_the_same_check_run(fake_github: FakeGitHub, tmp_path: Path) -> None:
    findings = [finding(i, "error") for i in range(3)]
    assert publish(write_review(tmp_path, "request_changes", findings)).exit_code == 0
    [run] = fake_github.runs_for(SHA)

    # The same head again (a re-run of the job), with the same verdict.
    again = write_review(tmp_path, "request_changes", [finding(0, "error")], "## again\n")
    result = publish(again)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"updated check run {run['html_url']} (failure, 0 annotation(s) sent)\n"
    assert fake_github.runs_for(SHA) == [run]  # one check run, updated
    assert run["conclusion"] == "failure" and run["output"]["summary"] == "## again\n"
    assert len(fake_github.calls("POST")) == 1  # the first run's create only
    [patch] = fake_github.calls("PATCH")
    assert patch.path == f"{RUNS}/{run['id']}"
    assert "annotations" not in patch.body["output"]  # GitHub appends: none sent twice
    assert len(fake_github.annotations[run["id"]]) == 3


def test_a_changed_verdict_supersedes_the_completed_run(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    """GitHub keeps a completed run's conclusion whatever an update says: a re-run whose verdict
    changed (a flaky test passed) needs a new run, which GitHub shows in place of the old."""
    assert publish(write_review(tmp_path, "request_changes", [finding(0, "error")])).exit_code == 0
    [old] = fake_github.runs_for(SHA)
    result = publish(write_review(tmp_path, "approve", []))
    assert result.exit_code == 0, result.stderr
    old_run, new_run = fake_github.runs_for(SHA)
    assert old_run is old and old["conclusion"] == "failure"
    assert new_run["conclusion"] == "success"
    assert result.stdout == (
        f"created check run {new_run['html_url']} (success, 0 annotation(s) sent; "
        f"supersedes {old['html_url']}, whose conclusion GitHub keeps)\n"
    )
    # A third run with that verdict updates the newest run.
    assert publish(write_review(tmp_path, "approve", [])).stdout.startswith(
        f"updated check run {new_run['html_url']} (success"
    )
    assert len(fake_github.runs_for(SHA)) == 2


def test_in_progress_does_not_reopen_a_completed_run(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    assert publish(write_review(tmp_path, "comment", [])).exit_code == 0
    [run] = fake_github.runs_for(SHA)
    result = invoke("--repo", REPO, "--sha", SHA, "--in-progress")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"left check run {run['html_url']} as it is (neutral: ")
    assert fake_github.calls("PATCH") == [] and len(fake_github.calls("POST")) == 1
    assert run["status"] == "completed"


def test_rerun_sends_only_the_new_annotations(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.page_size = 2  # the held annotations are read across pages
    first = [finding(i) for i in range(5)]
    assert publish(write_review(tmp_path, "comment", first)).exit_code == 0
    # finding 0 now reported twice on its line: held once, so sent once more.
    result = publish(write_review(tmp_path, "comment", [*first, finding(7), finding(0)]))
    assert result.exit_code == 0, result.stderr
    assert "(neutral, 2 annotation(s) sent)" in result.stdout
    [run] = fake_github.runs_for(SHA)
    messages = [a["message"] for a in fake_github.annotations[run["id"]]]
    assert sorted(messages) == sorted([f"problem {i}" for i in (0, 1, 2, 3, 4, 7, 0)])
    pages = [r.path for r in fake_github.calls("GET") if "/annotations" in r.path]
    assert [p.rsplit("page=", 1)[1] for p in pages] == ["1", "2", "3"]


def test_other_check_runs_are_left_alone(fake_github: FakeGitHub, tmp_path: Path) -> None:
    other_sha = "f" * 40
    tests = fake_github.add_check_run(SHA, name="tests", status="completed", conclusion="success")
    older = fake_github.add_check_run(other_sha, status="completed", conclusion="failure")
    before = [json.dumps(tests), json.dumps(older)]
    result = publish(write_review(tmp_path, "approve", []))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created check run ")
    assert [json.dumps(tests), json.dumps(older)] == before
    assert [r["name"] for r in fake_github.runs_for(SHA)] == ["tests", "reviewflow"]


def test_the_newest_run_of_the_name_is_updated(fake_github: FakeGitHub, tmp_path: Path) -> None:
    old = fake_github.add_check_run(SHA, status="completed", conclusion="failure")
    new = fake_github.add_check_run(SHA, status="in_progress")
    result = publish(write_review(tmp_path, "approve", []))
    assert result.stdout.startswith(f"updated check run {new['html_url']} (success")
    assert old["conclusion"] == "failure" and new["conclusion"] == "success"


def test_a_run_of_another_app_is_not_taken_over(fake_github: FakeGitHub, tmp_path: Path) -> None:
    theirs = fake_github.add_check_run(SHA, status="in_progress")
    theirs["app"] = {"slug": "someone-elses-app"}  # only that app may edit it
    result = publish(write_review(tmp_path, "approve", []))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created check run ")
    assert [r.method for r in fake_github.requests] == ["GET", "PATCH", "POST"]
    assert theirs["status"] == "in_progress"
    assert [r["app"]["slug"] for r in fake_github.runs_for(SHA)] == [
        "someone-elses-app",
        "github-actions",
    ]


@pytest.mark.parametrize(
    ("verdict", "conclusion", "title"),
    [
        ("approve", "success", "Approved"),
        ("comment", "neutral", "Comments"),
        ("request_changes", "failure", "Changes requested"),
        # A review stopped at its approval gate in CI: a person must act.
        ("waiting_for_approval", "action_required", "Waiting for approval"),
    ],
)
def test_conclusion_follows_the_verdict(
    fake_github: FakeGitHub, tmp_path: Path, verdict: str, conclusion: str, title: str
) -> None:
    result = publish(write_review(tmp_path, verdict, [finding(0, "info")]))
    assert result.exit_code == 0, result.stderr
    assert f"({conclusion}, 1 annotation(s) sent)" in result.stdout
    [run] = fake_github.runs_for(SHA)
    assert (run["status"], run["conclusion"]) == ("completed", conclusion)
    assert run["output"]["title"] == f"{title}: 0 error(s), 0 warning(s), 1 note(s)"
    assert run["completed_at"] is not None


def test_in_progress_then_completed(fake_github: FakeGitHub, tmp_path: Path) -> None:
    details = "https://github.com/octo-org/octo-repo/actions/runs/42"
    started = invoke("--repo", REPO, "--sha", SHA, "--in-progress", "--details-url", details)
    assert started.exit_code == 0, started.stderr
    [run] = fake_github.runs_for(SHA)
    assert (
        started.stdout
        == f"created check run {run['html_url']} (in_progress, 0 annotation(s) sent)\n"
    )
    assert run["status"] == "in_progress" and run["conclusion"] is None
    assert run["details_url"] == details and run["started_at"]

    done = publish(write_review(tmp_path, "approve", [finding(0)]), "--details-url", details)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith(f"updated check run {run['html_url']} (success")
    assert fake_github.runs_for(SHA) == [run]
    assert run["status"] == "completed" and len(fake_github.annotations[run["id"]]) == 1


def test_a_name_keeps_two_reviews_apart(fake_github: FakeGitHub, tmp_path: Path) -> None:
    folder = write_review(tmp_path, "approve", [])
    assert publish(folder).stdout.startswith("created")
    assert publish(folder, "--name", "reviewflow (security)").stdout.startswith("created")
    assert publish(folder, "--name", "reviewflow (security)").stdout.startswith("updated")
    names = [r["name"] for r in fake_github.runs_for(SHA)]
    assert names == ["reviewflow", "reviewflow (security)"]


def test_report_json_path_and_missing_markdown(fake_github: FakeGitHub, tmp_path: Path) -> None:
    folder = write_review(tmp_path, "request_changes", [], markdown=None)
    doc = json.loads((folder / "report.json").read_text())
    doc["reasons"] = ["check tests could not run"]
    (folder / "report.json").write_text(json.dumps(doc))
    result = publish(folder / "report.json")  # the file itself is accepted too
    assert result.exit_code == 0, result.stderr
    [run] = fake_github.runs_for(SHA)
    summary = run["output"]["summary"]
    assert summary.startswith("## reviewflow: request changes")
    assert "- check tests could not run" in summary


# ----------------------------------------------------------------------------- batches, limits


def test_120_findings_go_in_3_batches(fake_github: FakeGitHub, tmp_path: Path) -> None:
    severities = ("error", "warning", "info")
    findings = [finding(i, severities[i % 3]) for i in range(120)]
    findings += [finding(500, "error", line=None), finding(501, "info", file=None)]
    result = publish(write_review(tmp_path, "request_changes", findings))
    assert result.exit_code == 0, result.stderr
    assert "(failure, 120 annotation(s) sent)" in result.stdout
    assert annotation_batches(fake_github) == [50, 50, 20]
    [create] = fake_github.calls("POST")
    middle, last = fake_github.calls("PATCH")
    [run] = fake_github.runs_for(SHA)
    assert middle.path == last.path == f"{RUNS}/{run['id']}"
    for patch in (middle, last):  # an append keeps the summary (GitHub requires it with output)
        assert patch.body["output"]["summary"] == create.body["output"]["summary"]
    # Completed by the last request: every append lands while the run is in progress.
    assert create.body["status"] == "in_progress" and "conclusion" not in create.body
    assert set(middle.body) == {"output"}
    assert (last.body["status"], last.body["conclusion"]) == ("completed", "failure")
    held = fake_github.annotations[run["id"]]
    assert len(held) == run["output"]["annotations_count"] == 120
    levels = [a["annotation_level"] for a in held]
    assert levels == ["failure"] * 40 + ["warning"] * 40 + ["notice"] * 40  # errors first
    expected = {(f["file"], f["line"], f["message"]) for f in findings[:120]}
    assert {(a["path"], a["start_line"], a["message"]) for a in held} == expected
    assert all(a["start_line"] == a["end_line"] for a in held)


def test_annotations_are_capped(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "MAX_ANNOTATIONS", 60)
    findings = [finding(i, "info") for i in range(70)] + [finding(99, "error")]
    result = publish(write_review(tmp_path, "comment", findings))
    assert result.exit_code == 0, result.stderr
    assert annotation_batches(fake_github) == [50, 10]
    [run] = fake_github.runs_for(SHA)
    held = fake_github.annotations[run["id"]]
    assert held[0]["message"] == "problem 99"  # the error is kept, notices dropped
    assert "11 more finding(s) on changed lines are not annotated" in run["output"]["summary"]


def test_long_messages_and_titles_are_cut(fake_github: FakeGitHub, tmp_path: Path) -> None:
    long = finding(0, "error", message="x" * 70_000, rule="r" * 400)
    assert publish(write_review(tmp_path, "request_changes", [long])).exit_code == 0
    [run] = fake_github.runs_for(SHA)
    [held] = fake_github.annotations[run["id"]]
    assert len(held["message"]) == checks.MAX_MESSAGE and held["message"].endswith("…")
    assert len(held["title"]) == 255


def test_summary_is_cut_to_65535_bytes(fake_github: FakeGitHub, tmp_path: Path) -> None:
    rows = [f"| ✅ | finding {i:04} — ünïcödé |" for i in range(2000)]
    markdown = "## report\n\n```text\n" + "\n".join(rows) + "\n```\n"
    # Within the documented 65,535 characters, over the 65,535 bytes GitHub counts.
    assert len(markdown) <= checks.MAX_OUTPUT_BYTES < len(markdown.encode("utf-8"))
    result = publish(write_review(tmp_path, "comment", [finding(1)], markdown))
    assert result.exit_code == 0, result.stderr
    [run] = fake_github.runs_for(SHA)
    summary = run["output"]["summary"]
    assert len(summary.encode("utf-8")) <= checks.MAX_OUTPUT_BYTES
    assert summary.startswith("## report\n")
    assert summary.rstrip().endswith(gh.TRUNCATION_NOTE)
    assert summary[: summary.index(gh.TRUNCATION_NOTE)].rstrip().endswith("\n```")
    assert summary.count("```") % 2 == 0


def test_a_summary_within_the_limit_is_kept() -> None:
    text = "é" * (checks.MAX_OUTPUT_BYTES // 2) + "x"  # 65,535 bytes exactly
    assert checks.fit_output(text) == text
    assert gh.TRUNCATION_NOTE in checks.fit_output(text + "x")


def test_the_fake_refuses_what_github_refuses(fake_github: FakeGitHub) -> None:
    """The checks the tests rely on can fail: a misspelt field, an annotation level GitHub
    does not have, a summary over 65,535 bytes, a query parameter GitHub does not take."""
    client = gh.GitHubClient(TOKEN, fake_github.url)
    base = {"name": "reviewflow", "head_sha": SHA, "status": "completed", "conclusion": "success"}
    bad_bodies = [
        {**base, "output": {"title": "t", "summary": "s", "anotations": []}},
        {**base, "output": {"title": "t", "summary": "s", "annotations": [{"path": "a"}]}},
        {**base, "conclusion": "passed", "output": {"title": "t", "summary": "s"}},
        {**base, "output": {"title": "t", "summary": "✅" * 30_000}},
        {**base, "completed_at": "yesterday"},
        {"name": "reviewflow", "head_sha": SHA, "status": "completed"},
    ]
    found = []
    for body in bad_bodies:
        with pytest.raises(gh.GitHubHTTPError, match="answered 422: Invalid request"):
            client.request("POST", RUNS, body)
        found.append(" ".join(fake_github.violations))
        fake_github.violations.clear()
    with pytest.raises(gh.GitHubHTTPError, match="answered 422"):
        client.request("GET", f"{LIST}?name=reviewflow")
    found.append(" ".join(fake_github.violations))
    fake_github.violations.clear()
    assert all(found), found  # each one was caught
    assert "'anotations' was unexpected" in found[0]
    assert "'start_line' is a required property" in found[1]
    assert "maximum bytesize of 65535" in found[3]
    assert "is not a 'date-time'" in found[4]
    assert "unknown query parameter 'name'" in found[-1]
    assert fake_github.check_runs == {}


def test_the_description_is_the_vendored_octokit_package() -> None:
    spec = github_openapi()
    assert spec.source["package"] == "@octokit/openapi"
    assert spec.source["version"] and spec.source["integrity"].startswith("sha512-")
    ids = {op.operation_id for op in spec.operations}
    assert {"checks/create", "checks/update", "checks/list-for-ref"} <= ids
    assert {"issues/list-comments", "issues/create-comment", "issues/update-comment"} <= ids


# ----------------------------------------------------------------------------- retries


def test_502_then_success(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("GET", 502, message="Bad Gateway")
    fake_github.fail("POST", 502, message="Bad Gateway")  # refused before creating
    result = publish(write_review(tmp_path, "approve", [finding(0)]))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created check run ")
    assert len(fake_github.calls("POST")) == 2
    [run] = fake_github.runs_for(SHA)
    assert len(fake_github.annotations[run["id"]]) == 1


def test_create_lost_in_a_gateway_error_is_not_made_twice(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.fail("POST", 504, apply=True)  # GitHub created it; the client heard 504
    result = publish(write_review(tmp_path, "approve", [finding(0), finding(1)]))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created check run ")
    [run] = fake_github.runs_for(SHA)
    assert len(fake_github.calls("POST")) == 1
    assert len(fake_github.annotations[run["id"]]) == 2  # read back, not sent again


def test_append_lost_in_a_gateway_error_is_not_sent_twice(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.fail("PATCH", 502, apply=True)  # the 2nd batch was appended; client heard 502
    findings = [finding(i) for i in range(120)]
    result = publish(write_review(tmp_path, "comment", findings))
    assert result.exit_code == 0, result.stderr
    [run] = fake_github.runs_for(SHA)
    held = fake_github.annotations[run["id"]]
    assert len(held) == 120
    assert len({(a["path"], a["start_line"]) for a in held}) == 120


def test_a_timed_out_read_is_retried(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gh, "TIMEOUT", 0.5)
    fake_github.fail("GET", 0, hang=True)  # the first listing never answers
    fake_github.fail("POST", 0, hang=True, apply=True)  # created, but the answer never comes
    result = publish(write_review(tmp_path, "approve", [finding(0)]))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created check run ")
    assert len(fake_github.runs_for(SHA)) == 1
    assert len(fake_github.calls("POST")) == 1


def test_rate_limit_waits_for_the_reset(fake_github: FakeGitHub, tmp_path: Path) -> None:
    reset = str(int(time.time()) + 1)
    fake_github.fail(
        "POST",
        403,
        message="API rate limit exceeded for installation ID 1.",
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )
    result = publish(write_review(tmp_path, "approve", [finding(0)]))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created check run ")
    assert len(fake_github.calls("POST")) == 2
    assert len(fake_github.runs_for(SHA)) == 1


def test_secondary_rate_limit_on_an_append_waits(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("PATCH", 429, headers={"Retry-After": "0"})
    result = publish(write_review(tmp_path, "comment", [finding(i) for i in range(60)]))
    assert result.exit_code == 0, result.stderr
    [run] = fake_github.runs_for(SHA)
    assert len(fake_github.annotations[run["id"]]) == 60
    assert len(fake_github.calls("PATCH")) == 2


def test_a_far_reset_is_not_waited_for(fake_github: FakeGitHub, tmp_path: Path) -> None:
    reset = str(int(time.time()) + 3600)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    fake_github.fail("GET", 403, message="API rate limit exceeded", headers=headers)
    line = assert_one_line_error(publish(write_review(tmp_path)), 1, "answered 403")
    assert "API rate limit exceeded" in line
    assert len(fake_github.requests) == 1
    assert fake_github.check_runs == {}


def test_retries_are_bounded(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", 502, times=100)
    assert_one_line_error(publish(write_review(tmp_path)), 1, f"POST {RUNS} answered 502")
    assert len(fake_github.calls("POST")) == gh.MAX_TRIES
    assert fake_github.check_runs == {}


# ----------------------------------------------------------------------------- the token


def test_the_token_is_never_printed(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_review(tmp_path, "comment", [finding(i) for i in range(60)])
    outcomes = [publish(folder)]  # success
    fake_github.fail("PATCH", 500, message="Internal Server Error", times=100)
    outcomes.append(publish(folder))
    fake_github.faults.clear()
    fake_github.fail("GET", 422, message="Validation Failed", extra={"errors": ["bad"]})
    outcomes.append(publish(folder))
    outcomes.append(invoke("--repo", REPO, "--sha", SHA, "--in-progress", "--api-url", "ftp://x"))
    outcomes.append(publish(folder, "--api-url", "http://127.0.0.1:9"))  # unreachable
    monkeypatch.setenv("GITHUB_TOKEN", "wrong-" + TOKEN)
    outcomes.append(publish(folder))  # 401
    assert [r.exit_code for r in outcomes] == [0, 1, 1, 2, 1, 1]
    for r in outcomes:
        assert TOKEN not in r.stdout + r.stderr
    for recorded in fake_github.requests:
        assert TOKEN not in json.dumps(recorded.body)


# ----------------------------------------------------------------------------- bad input (2)


def test_missing_token_is_bad_input(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    assert_one_line_error(
        publish(write_review(tmp_path)), 2, "no GitHub credentials: set GITHUB_TOKEN"
    )
    assert fake_github.requests == []


@pytest.mark.parametrize("repo", ["octo-repo", "octo/repo/x", "../etc", "o/..", ""])
def test_bad_repo_is_bad_input(fake_github: FakeGitHub, tmp_path: Path, repo: str) -> None:
    assert_one_line_error(publish(write_review(tmp_path), repo=repo), 2, "bad repository")
    assert fake_github.requests == []


@pytest.mark.parametrize(
    "sha", ["", "abc123", SHA[:39], SHA + "0", "g" * 40, "HEAD", f"{SHA[:20]}/../{SHA[:17]}"]
)
def test_bad_sha_is_bad_input(fake_github: FakeGitHub, tmp_path: Path, sha: str) -> None:
    assert_one_line_error(publish(write_review(tmp_path), sha=sha), 2, "bad --sha")
    assert fake_github.requests == []


def test_sha_in_capitals_is_accepted(fake_github: FakeGitHub, tmp_path: Path) -> None:
    assert publish(write_review(tmp_path), sha=SHA.upper()).exit_code == 0
    assert fake_github.calls("POST")[0].body["head_sha"] == SHA


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "report.json: not found"),
        ("{not json", "report.json: not JSON"),
        ("[1, 2]", "report.json: expected a JSON object"),
        ('{"findings": []}', "report.json: verdict None is not one of"),
        ('{"verdict": "lgtm"}', "report.json: verdict 'lgtm' is not one of"),
        ('{"verdict": "approve", "findings": {"a": 1}}', "findings must be a list"),
    ],
)
def test_bad_report_folder_is_bad_input(
    fake_github: FakeGitHub, tmp_path: Path, content: str | None, fragment: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    if content is not None:
        (folder / "report.json").write_text(content, encoding="utf-8")
    line = assert_one_line_error(publish(folder), 2, fragment)
    assert str(folder) in line
    assert fake_github.requests == []


def test_report_must_be_the_output_folder(fake_github: FakeGitHub, tmp_path: Path) -> None:
    folder = write_review(tmp_path)
    assert_one_line_error(publish(tmp_path / "nowhere"), 2, "does not exist", "--out")
    assert_one_line_error(publish(folder / "report.md"), 2, "is a file", "output folder")
    assert fake_github.requests == []


def test_report_in_progress_and_error_go_one_at_a_time(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    folder = str(write_review(tmp_path))
    cases = {
        "--in-progress and --report": ["--report", folder, "--in-progress"],
        "--in-progress and --error": ["--in-progress", "--error", "x"],
        "--report and --error": ["--report", folder, "--error", "x"],
        "none": [],
    }
    for got, args in cases.items():
        result = invoke("--repo", REPO, "--sha", SHA, *args)
        assert_one_line_error(result, 2, "give one of --report DIR, --in-progress", f"(got {got})")
    assert fake_github.requests == []


def test_a_review_that_could_not_run_fails_the_check(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    assert invoke("--repo", REPO, "--sha", SHA, "--in-progress").exit_code == 0
    message = "reviewflow review exited with code 2 and wrote no report; see the job log"
    result = invoke("--repo", REPO, "--sha", SHA, "--error", message)
    assert result.exit_code == 0, result.stderr
    [run] = fake_github.runs_for(SHA)
    assert result.stdout == f"updated check run {run['html_url']} (failure, 0 annotation(s) sent)\n"
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["output"]["title"] == "The review could not run"
    assert message in run["output"]["summary"]


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--details-url", "javascript:alert(1)", "bad --details-url"),
        ("--name", "", "bad check name"),
        ("--name", "two\nlines", "bad check name"),
        ("--name", "x" * 101, "bad check name"),
        ("--api-url", "ftp://example.com", "bad API URL"),
    ],
)
def test_bad_options_are_bad_input(
    fake_github: FakeGitHub, tmp_path: Path, option: str, value: str, fragment: str
) -> None:
    assert_one_line_error(publish(write_review(tmp_path), option, value), 2, fragment)
    assert fake_github.requests == []


# ----------------------------------------------------------------------------- GitHub errors (1)


def test_no_permission_is_a_one_line_failure(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", 403, message="Resource not accessible by integration")
    line = assert_one_line_error(publish(write_review(tmp_path)), 1, f"POST {RUNS} answered 403")
    assert "checks: write" in line and "fork" in line
    assert len(fake_github.calls("POST")) == 1  # a plain 403 is not retried
