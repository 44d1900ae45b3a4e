"""The Workers and Metrics pages, keyboard use, and axe-core on every page, in a real browser
(on SQLite and on PostgreSQL: the `server` fixture is parametrised)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Server, review_run, save_screenshot, wait_for_end

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

AXE = "/ui/static/vendor/axe-core-4.14.1.js"
README_SHOT = os.environ.get("REVIEWFLOW_README_SCREENSHOT")
"""Set to a path (docs/img/run-page.png) to write the README's run page screenshot there."""


def axe_violations(page: Any) -> list[str]:
    """axe-core (vendored, loaded from the server: the page's CSP allows 'self') on the page;
    the serious and critical violations, one line each."""
    page.add_script_tag(url=AXE)
    found = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def finished_runs(server: Server, tmp_path: Path) -> list[str]:
    """Three finished runs of two workflows: a review, a build with a retried and a failed task."""
    runs = [review_run(server, tmp_path / "report")]
    flag = tmp_path / "flaky-once"
    flaky = f"if [ -e '{flag}' ]; then exit 0; fi; touch '{flag}'; exit 1"
    runs.append(
        server.submit(
            {
                "name": "build",
                "failure_policy": "continue",
                "tasks": {
                    "compile": {"type": "shell", "run": ["true"]},
                    "flaky": {
                        "type": "shell",
                        "run": ["sh", "-c", flaky],
                        "retry": {"max_retries": 2, "base_delay": 0},
                    },
                    "broken": {"type": "shell", "run": ["false"], "retry": {"max_retries": 0}},
                },
            }
        )
    )
    for run_id in runs:
        wait_for_end(server, run_id)
    return runs


def test_every_page_passes_axe_and_the_run_page_is_keyboard_usable(
    server: Server, open_page: Any, browser: Any, tmp_path: Path
) -> None:
    review, build = finished_runs(server, tmp_path)
    page = open_page("/")
    expect(page.locator("#runs-body tr")).to_have_count(2)
    pages = {
        "runs": "/",
        "run": f"/ui/runs/{build}",
        "review-run": f"/ui/runs/{review}",
        "workers": "/ui/workers",
        "metrics": "/ui/metrics",
    }
    problems = []
    for name, path in pages.items():
        page.goto(server.url + path)
        if name in ("run", "review-run", "metrics"):
            expect(page.locator("#main")).to_have_attribute("data-ready", "true")
        if name == "review-run":
            expect(page.locator("#findings-body tr")).to_have_count(2)
        if name == "run":
            expect(page.locator("#timeline li")).to_have_count(4)  # flaky ran twice
        problems += [f"{name}: {p}" for p in axe_violations(page)]
    login = browser.new_page()
    login.goto(server.url + "/")
    expect(login.locator("#login-form")).to_be_visible()
    problems += [f"login: {p}" for p in axe_violations(login)]
    login.close()
    assert not problems, "\n".join(problems)

    # keyboard only: skip link, then Tab to a task's button, Enter opens its panel
    page.goto(f"{server.url}/ui/runs/{build}")
    expect(page.locator("#main")).to_have_attribute("data-ready", "true")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    button = page.locator('#tasks-body tr[data-task="broken"] button')
    for _ in range(200):  # bounded: the page has fewer focusable elements
        page.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#task-title")).to_have_text("broken")
    expect(page.locator(".attempts tbody tr td").nth(4)).to_have_text("failed")  # as text
    expect(page.locator('#timeline li[data-task="broken"] .gantt-info')).to_contain_text("failed")
    save_screenshot(browser, page, f"run-page-finished-{server.db}")
    if README_SHOT and server.db == "sqlite":
        Path(README_SHOT).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=README_SHOT, full_page=True)


def test_metrics_page_draws_charts_of_the_database(
    server: Server, open_page: Any, browser: Any, tmp_path: Path
) -> None:
    finished_runs(server, tmp_path)
    page = open_page("/ui/metrics")
    expect(page.locator("#main")).to_have_attribute("data-ready", "true")
    expect(page.locator(".chart canvas")).to_have_count(5)
    # 3 review tasks + compile, flaky (retried), broken (failed): 6 finished, 1 failed
    expect(page.locator("#c-throughput-sum")).to_have_text(
        "6 tasks finished (1 failed), 2 runs finished."
    )
    expect(page.locator("#c-rates-sum")).to_contain_text("16.7% failed, 16.7% needed a retry")
    expect(page.locator("#c-workflows-sum")).to_have_text("build: 3, review-security: 3")
    expect(page.locator(".u-legend").first).to_contain_text("tasks succeeded")  # named series
    save_screenshot(browser, page, f"metrics-page-{server.db}")
    page.select_option("#m-workflow", "build")
    expect(page.locator("#c-throughput-sum")).to_have_text(
        "3 tasks finished (1 failed), 1 runs finished."
    )
    assert "workflow=build" in page.url
    page.select_option("#m-range", "7d")
    expect(page.locator("#metrics-status")).to_contain_text("42 buckets")


@pytest.fixture
def worker(server: Server) -> Iterator[subprocess.Popen[bytes] | None]:
    if server.db != "postgresql":
        yield None
        return
    with (server.cwd / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reviewflow",
                "worker",
                "--db",
                server.db_target,
                "--name",
                "ui-worker-1",
                "--concurrency",
                "3",
            ],
            cwd=server.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield proc
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_workers_page(server: Server, open_page: Any, browser: Any, worker: Any) -> None:
    page = open_page("/ui/workers")
    if worker is None:  # SQLite: no workers, and the page says why
        expect(page.locator("#workers-empty")).to_be_visible()
        expect(page.locator("#workers-empty")).to_contain_text("PostgreSQL")
        expect(page.locator("#workers-table")).to_be_hidden()
    else:
        row = page.locator('#workers-body tr[data-worker="ui-worker-1"]')
        expect(row).to_be_visible()
        expect(row.locator("td").nth(2)).to_have_text("running")  # the state as text
        expect(row.locator("td").nth(5)).to_have_text("0 / 3")
        expect(page.locator("#workers-status")).to_contain_text("1 live worker")
    expect(page.locator('header nav a[aria-current="page"]')).to_have_text("Workers")
    save_screenshot(browser, page, f"workers-page-{server.db}")
