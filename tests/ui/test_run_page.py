"""The run page in a real browser: live states without a reload, the log following, approval
buttons, run control, and what a read-only token may see and do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import RO, RW, Server, save_screenshot

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


def waiter(flag: Path, before: str = "", after: str = "released") -> dict[str, Any]:
    """A shell task that waits (bounded: 120 s) until `flag` exists."""
    script = (
        f"echo {before or 'waiting'}; i=0; while [ ! -e '{flag}' ] && [ $i -lt 2400 ]; do "
        f"sleep 0.05; i=$((i+1)); done; [ -e '{flag}' ] && echo {after}"
    )
    return {"type": "shell", "run": ["sh", "-c", script]}


def row(page: Any, task: str) -> Any:
    return page.locator(f'#tasks-body tr[data-task="{task}"]')


def test_a_task_turns_green_without_a_reload_and_its_log_follows(
    server: Server, open_page: Any, browser: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    run_id = server.submit(
        {
            "name": "live",
            "tasks": {
                "wait": waiter(flag, before="line-one"),
                "after": {"type": "shell", "run": ["true"], "needs": ["wait"]},
            },
        }
    )
    page = open_page(f"/ui/runs/{run_id}")
    expect(page.locator("#main")).to_have_attribute("data-ready", "true")
    expect(row(page, "wait")).to_have_attribute("data-state", "running")
    expect(row(page, "after")).to_have_attribute("data-state", "blocked")
    expect(row(page, "wait").locator(".badge")).to_have_text("running")  # not colour alone
    row(page, "wait").get_by_role("button").click()
    expect(page.locator("#task-log")).to_contain_text("line-one")
    page.evaluate("window.__noReload = true")
    flag.touch()
    expect(row(page, "wait")).to_have_attribute("data-state", "succeeded")
    expect(row(page, "after")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    expect(page.locator("#task-log")).to_contain_text("released")
    assert page.evaluate("window.__noReload") is True  # the same page: no reload happened
    # the node's colour becomes the Mermaid report's colour of its state (the graph is
    # repainted a moment after the table)
    page.wait_for_function(
        "() => rfGraph.nodes().filter(n => n.data('label').startsWith('wait'))"
        ".data('fill') === '#dafbe1'"
    )
    expect(page.locator(".attempts tbody tr")).to_have_count(1)
    expect(page.locator(".attempts tbody tr td").nth(5)).to_have_text("0")  # exit code
    save_screenshot(browser, page, f"run-page-{server.db}")


def _approval_run(server: Server) -> str:
    return server.submit(
        {
            "name": "gated",
            "tasks": {
                "checks": {"type": "shell", "run": ["true"]},
                "gate": {"type": "approval", "needs": ["checks"]},
                "merge": {"type": "shell", "run": ["true"], "needs": ["gate"]},
            },
        }
    )


def test_approve_button_lets_the_run_continue(server: Server, open_page: Any) -> None:
    run_id = _approval_run(server)
    page = open_page(f"/ui/runs/{run_id}")
    expect(row(page, "gate")).to_have_attribute("data-state", "running")
    row(page, "gate").get_by_role("button").click()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#run-state")).to_have_text("succeeded")
    expect(row(page, "merge")).to_have_attribute("data-state", "succeeded")


def test_reject_needs_a_comment_and_fails_the_run(
    server: Server, open_page: Any, browser: Any
) -> None:
    run_id = _approval_run(server)
    page = open_page(f"/ui/runs/{run_id}")
    expect(row(page, "gate")).to_have_attribute("data-state", "running")
    row(page, "gate").get_by_role("button").click()
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#run-message")).to_contain_text("needs a comment")
    page.locator("#approval-comment").fill("<img src=x onerror=window.__xss=1> not yet")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#run-state")).to_have_text("failed")
    expect(row(page, "merge")).not_to_have_attribute("data-state", "succeeded")
    expect(page.locator("#task-body")).to_contain_text("<img src=x onerror=window.__xss=1>")
    assert page.evaluate("window.__xss") is None
    save_screenshot(browser, page, f"run-page-rejected-{server.db}")


def test_pause_resume_and_cancel_buttons(server: Server, open_page: Any, tmp_path: Path) -> None:
    run_id = server.submit(
        {
            "name": "steer",
            "tasks": {
                "first": waiter(tmp_path / "never"),
                "second": {"type": "shell", "run": ["true"], "needs": ["first"]},
            },
        }
    )
    page = open_page(f"/ui/runs/{run_id}")
    expect(row(page, "first")).to_have_attribute("data-state", "running")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#run-state")).to_have_text("paused")
    assert server.state(run_id) == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#run-state")).to_have_text("running")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#run-state")).to_have_text("cancelled")
    assert server.state(run_id) == "cancelled"
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()


def test_read_only_sees_no_buttons_and_a_forged_post_is_refused(
    server: Server, open_page: Any, tmp_path: Path
) -> None:
    run_id = _approval_run(server)
    page = open_page(f"/ui/runs/{run_id}", token=RO)
    expect(row(page, "gate")).to_have_attribute("data-state", "running")
    row(page, "gate").get_by_role("button").click()
    expect(page.locator("#task-title")).to_have_text("gate")
    assert page.locator(".controls").count() == 0
    assert page.locator("#approve").count() == 0
    assert page.get_by_role("button", name="Cancel").count() == 0
    forged = page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('meta[name="rf-csrf"]').content;
            const r = await fetch(`/runs/${id}/tasks/gate/approve`,
                {method: "POST", body: "{}",
                 headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"}});
            return r.status;
        }""",
        run_id,
    )
    assert forged == 403
    assert server.state(run_id) == "running"
    # a read-write session without the CSRF header is refused too
    writer = open_page(f"/ui/runs/{run_id}", token=RW)
    status = writer.evaluate(
        "async (id) => (await fetch(`/runs/${id}/cancel`, {method: 'POST'})).status", run_id
    )
    assert status == 403
    assert server.state(run_id) == "running"


def test_values_from_runs_and_logs_render_as_text(
    server: Server, open_page: Any, browser: Any
) -> None:
    evil = "<img src=x onerror=window.__xss=1>"
    run_id = server.submit(
        {
            "name": "evil",
            "tasks": {
                "boom": {
                    "type": "shell",
                    "run": ["sh", "-c", f"echo '{evil}'; exit 3"],
                    "retry": {"max_retries": 0},
                },
            },
        },
        meta=[f"title={evil}"],
    )
    page = open_page("/")
    expect(page.locator(f'#runs-body tr[data-run-id="{run_id}"]')).to_contain_text(evil)
    page.goto(f"{server.url}/ui/runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("failed")
    row(page, "boom").get_by_role("button").click()
    expect(page.locator("#task-log")).to_have_text(evil + "\n")
    expect(page.locator(".attempts tbody tr td").nth(5)).to_have_text("3")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#main img").count() == 0
    csp = server.http.get(f"/ui/runs/{run_id}").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
