"""The run page of a review run (its verdict, findings and reports) and the timeline of
attempts, in a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import EVIL, Server, review_run, save_screenshot, wait_for_end

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


def test_review_run_shows_verdict_findings_and_reports(
    server: Server, open_page: Any, browser: Any, tmp_path: Path
) -> None:
    run_id = review_run(server, tmp_path / "report")
    page = open_page(f"/ui/runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    expect(page.locator("#review")).to_be_visible()
    expect(page.locator("#review-verdict .verdict")).to_have_text("request changes")
    expect(page.locator("#review-reasons li")).to_have_text(["1 error finding (secrets)"])
    findings = page.locator("#findings-body tr")
    expect(findings).to_have_count(2)
    expect(findings.nth(0).locator("td").nth(0)).to_have_text("error")  # not colour alone
    expect(findings.nth(0).locator("td").nth(2)).to_have_text(f"app/{EVIL}.py")
    expect(findings.nth(0).locator("td").nth(5)).to_have_text(f"{EVIL} an AWS key")
    expect(page.locator("#findings-note")).to_have_text("2 findings.")
    assert page.evaluate("window.__xss") is None
    links = page.locator("#review-files a")
    expect(links).to_have_text(["report.md", "report.json", "report.sarif"])
    # the timeline has a bar per attempt, outcome written out
    expect(page.locator("#timeline li")).to_have_count(3)
    expect(page.locator('#timeline li[data-task="summary"] .gantt-info')).to_contain_text(
        "succeeded"
    )
    save_screenshot(browser, page, f"review-run-page-{server.db}")
    # the report link opens report.md as plain text (its markup is not rendered)
    links.nth(0).click()
    expect(page.locator("body")).to_contain_text(f"{EVIL} request changes")
    assert page.locator("img").count() == 0


def test_reports_are_served_only_from_the_runs_own_folder(server: Server, tmp_path: Path) -> None:
    run_id = review_run(server, tmp_path / "report")
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_text('{"run_id": "someone-else", "verdict": "approve"}')
    (other / "report.md").write_text("secret")
    posted = server.submit(
        {
            "name": "review-fake",
            "tasks": {
                "summary": {
                    "type": "python",
                    "call": "uitasks:summarize",
                    "needs": ["wait"],
                    "params": {"out": str(other)},
                },
                "wait": {"type": "approval"},
            },
        }
    )
    http = server.http
    wait_for_end(server, run_id)
    md = http.get(f"/ui/runs/{run_id}/reports/report.md")
    assert md.status_code == 200, md.text
    assert md.headers["content-type"].startswith("text/plain")
    assert "script-src 'self'" in md.headers["content-security-policy"]
    assert http.get(f"/ui/runs/{run_id}/reports/report.sarif").json()["version"] == "2.1.0"
    # a folder holding another run's report.json shows nothing from it
    assert http.get(f"/ui/api/runs/{posted}/review").json() == {"review": True, "written": False}
    assert http.get(f"/ui/runs/{posted}/reports/report.md").status_code == 404
    # no other name and no path reaches the file system
    for bad in ("summary.md", "..%2Freport.md", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):
        assert http.get(f"/ui/runs/{run_id}/reports/{bad}").status_code in (404, 422), bad
    assert http.get(f"/ui/api/runs/{server_plain_run(server)}/review").json() == {"review": False}


def server_plain_run(server: Server) -> str:
    return server.submit({"name": "plain", "tasks": {"a": {"type": "shell", "run": ["true"]}}})
