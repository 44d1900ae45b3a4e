"""The runs page in a real browser over 1,000 runs: state counts, filters by state, workflow,
text and metadata, pages walked to the end, live states; and `reviewflow ui`'s one-time login."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT_MS, Server, save_screenshot
from reviewflow.store import RunRecord, open_store

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


def seed(db: Path | str, n: int) -> None:
    store = open_store(db)  # a SQLite file or the PostgreSQL database the server uses
    try:
        for i in range(n):
            store.create_run(
                RunRecord(
                    run_id=f"seed-{i:04d}",
                    workflow="nightly" if i % 4 == 0 else "pr-check",
                    state="failed" if i % 10 == 0 else "succeeded",
                    spec='{"name": "x", "tasks": {}}',
                    meta={"repo": "octo/widgets" if i % 2 else "octo/other"},
                    created_at=1_700_000_000.0 + i,
                    started_at=1_700_000_000.0 + i,
                    finished_at=1_700_000_001.5 + i,
                ),
                [],
                [],
            )
    finally:
        store.close()


def shown(page: Any) -> list[str]:
    return list(page.locator("#runs-body tr").evaluate_all("rs => rs.map(r => r.dataset.runId)"))


def test_filters_counts_and_pages_over_1000_runs(
    server: Server, open_page: Any, browser: Any, tmp_path: Path
) -> None:
    seed(server.db_target, 1000)
    page = open_page("/")
    expect(page.locator("#counts")).to_contain_text("all: 1000")
    expect(page.locator("#counts")).to_contain_text("failed: 100")
    expect(page.locator("#runs-body tr")).to_have_count(50)
    assert shown(page)[0] == "seed-0999"
    save_screenshot(browser, page, f"runs-page-{server.db}")

    # every page once, newest first, to the end
    seen = shown(page)
    for _ in range(25):
        if page.locator("#next-page").is_disabled():
            break
        last, previous_first = seen[-1], shown(page)[0]
        page.locator("#next-page").click()
        first = page.locator("#runs-body tr").first
        expect(first).not_to_have_attribute("data-run-id", previous_first)
        page_ids = shown(page)
        assert page_ids[0] < last
        seen += page_ids
    assert seen == [f"seed-{i:04d}" for i in range(999, -1, -1)]

    page.locator("#first-page").click()
    page.locator("#f-state").select_option("failed")
    expect(page.locator("#runs-body tr").first).to_have_attribute("data-run-id", "seed-0990")
    assert all(r.endswith("0") for r in shown(page))
    page.locator("#f-q").fill("SEED-00")
    page.locator("#f-workflow").fill("nightly")
    page.locator("#f-meta").fill("repo=octo/other")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#runs-body tr")).to_have_count(5)  # 0, 20, 40, 60, 80
    assert shown(page) == ["seed-0080", "seed-0060", "seed-0040", "seed-0020", "seed-0000"]
    expect(page.locator("#counts")).to_contain_text("all: 25")
    assert "q=SEED-00" in page.url  # a filtered view is a link to share

    # live: a new run appears and its state changes without a reload
    page.goto(server.url + "/")
    run_id = server.submit({"name": "fresh", "tasks": {"a": {"type": "shell", "run": ["true"]}}})
    row = page.locator(f'#runs-body tr[data-run-id="{run_id}"]')
    expect(row).to_contain_text("succeeded", timeout=WAIT_MS)
    row.get_by_role("link").click()
    expect(page.locator("#run-state")).to_have_text("succeeded")


def test_reviewflow_ui_logs_in_once_with_the_printed_url(browser: Any, tmp_path: Path) -> None:
    db = tmp_path / "rf.db"
    seed(db, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVIEWFLOW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reviewflow", "ui", "--db", str(db), "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        url = lines[1].strip()
        assert url.startswith("http://127.0.0.1:") and "/#token=" in url, lines
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        expect(page.locator("#counts")).to_contain_text("all: 3")
        assert "token" not in page.url  # the fragment is gone from the address bar
        # the same URL in another browser does not log in a second time
        other = browser.new_context().new_page()
        other.set_default_timeout(WAIT_MS)
        other.goto(url)
        expect(other.locator("#login-status")).to_contain_text("not known")
        assert other.locator("#runs-body").count() == 0
        context.close()
        other.context.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    token = url.split("#token=")[1]
    assert token not in out  # nothing the server logged holds the token
