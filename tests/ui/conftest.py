"""Fixtures of the dashboard tests: a real `reviewflow serve` process on 127.0.0.1 and Debian's
chromium driven by Playwright (no browser download: `executable_path`).

Without /usr/bin/chromium (or the playwright package) the tests skip and say why; with
REVIEWFLOW_REQUIRE_BROWSER=1 (set by .ci/run, which installs chromium) they fail instead.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path(os.environ.get("REVIEWFLOW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RW, RO = "ui-writer-token", "ui-reader-token"
ARTIFACTS = Path(os.environ.get("REVIEWFLOW_UI_ARTIFACTS", Path(__file__).parent / "artifacts"))
WAIT_MS = 30_000  # how long a page may take to show what a test waits for (busy CI)


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per UI test module, closed with it: Playwright's sync API keeps an event
    loop running in the main thread while it is open, and every later test calling
    asyncio.run() would fail (a session-wide browser broke tests/unit in CI)."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("REVIEWFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"REVIEWFLOW_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    # expect() has its own 5 s default, which page.set_default_timeout does not change: a
    # busy CI machine must slow these tests down, not fail them.
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`reviewflow serve` on a SQLite file (or a PostgreSQL URL) in `cwd`."""

    def __init__(self, cwd: Path, db: str) -> None:
        self.cwd = cwd
        self.db = "sqlite"
        self.db_target = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "serve.log"
        env = {**os.environ, "REVIEWFLOW_API_TOKENS": f"{RW},ro:{RO}", "NO_COLOR": "1"}
        for key in ("REVIEWFLOW_DB", "REVIEWFLOW_WEBHOOK_SECRET"):
            env.pop(key, None)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reviewflow", "serve", "--db", db, "--port", str(self.port)],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.http = httpx.Client(
            base_url=self.url, timeout=10.0, headers={"Authorization": f"Bearer {RW}"}
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def submit(self, doc: dict[str, Any], meta: list[str] | None = None) -> str:
        params = [("meta", m) for m in meta or []]
        resp = self.http.post("/runs", json=doc, params=params)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["run_id"])

    def state(self, run_id: str) -> str:
        return str(self.http.get(f"/runs/{run_id}").json()["state"])

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """`reviewflow serve` on a SQLite file, then on a fresh PostgreSQL database (conftest's
    pg_url: the tests' own PostgreSQL server): every page test runs on both."""
    db = str(tmp_path / "rf.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    srv = Server(tmp_path, db)
    srv.db = request.param
    yield srv
    srv.close()


@pytest.fixture
def open_page(browser: Any, server: Server) -> Iterator[Callable[..., Any]]:
    """A new logged-in browser page (token RW or RO) on `path`; console errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_(path: str = "/", token: str = RW) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if msg.type == "error" else None,
        )
        page.goto(f"{server.url}/#token={token}")
        page.wait_for_selector("#runs-body", state="attached")  # logged in: the runs page
        if path != "/":
            page.goto(server.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()
    # 401/403: refused requests the tests make on purpose; 404: a task with no log (yet)
    unexpected = [e for e in errors if not any(f"status of {c}" in e for c in (401, 403, 404))]
    assert not unexpected, unexpected


def save_screenshot(browser: Any, page: Any, name: str) -> Path:
    """Save a PNG of the page under tests/ui/artifacts and check that it is not blank: the
    browser decodes it and counts its colours (a blank or failed page has one or two)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    data = page.screenshot(path=str(path), full_page=False)
    checker = browser.new_page()
    try:
        colours = checker.evaluate(
            """async (b64) => {
                const img = new Image();
                img.src = "data:image/png;base64," + b64;
                await img.decode();
                const c = document.createElement("canvas");
                c.width = img.width; c.height = img.height;
                const g = c.getContext("2d");
                g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                const seen = new Set();
                for (let i = 0; i < d.length; i += 4 * 97) {
                    seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
                }
                return seen.size;
            }""",
            base64.b64encode(data).decode(),
        )
    finally:
        checker.close()
    assert colours > 8, f"{path} looks blank ({colours} colours)"
    return path


EVIL = "<img src=x onerror=window.__xss=1>"

# A stand-in for review.runner:summarize (importable by the server: it runs in tmp_path),
# writing the three reports as a review does.
SUMMARIZE = """
import json, pathlib

def summarize(ctx):
    out = pathlib.Path(ctx.params["out"])
    out.mkdir(parents=True, exist_ok=True)
    findings = [
        {"check": "secrets", "severity": "error", "file": "app/EVIL.py", "line": 3,
         "rule": "aws-key", "message": "EVIL an AWS key"},
        {"check": "lint", "severity": "warning", "file": "app/x.py", "line": None,
         "rule": "E501", "message": "line too long"},
    ]
    doc = {"verdict": "request_changes", "reasons": ["1 error finding (secrets)"],
           "run_id": ctx.run_id, "template": "security",
           "counts": {"error": 1, "warning": 1, "note": 0, "hidden": 0},
           "checks": {"secrets": {"status": "failed", "summary": "1 secret", "findings": 1}},
           "findings": findings}
    (out / "report.json").write_text(json.dumps(doc))
    (out / "report.md").write_text("# Review\\n\\nEVIL request changes\\n")
    (out / "report.sarif").write_text(json.dumps({"version": "2.1.0", "runs": []}))
    return {"verdict": "request_changes"}
""".replace("EVIL", EVIL)


def review_run(server: Server, out: Path) -> str:
    (server.cwd / "uitasks.py").write_text(SUMMARIZE)
    return server.submit(
        {
            "name": "review-security",
            "tasks": {
                "change": {"type": "shell", "run": ["true"]},
                "secrets": {"type": "shell", "run": ["true"], "needs": ["change"]},
                "summary": {
                    "type": "python",
                    "call": "uitasks:summarize",
                    "needs": ["secrets"],
                    "params": {"out": str(out)},
                },
            },
        }
    )


def wait_for_end(server: Server, run_id: str) -> None:
    """Until the run's event stream says it ended (the stream closes then)."""
    with server.http.stream("GET", f"/runs/{run_id}/events/stream", timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("event: end"):
                return
    raise AssertionError(f"the stream of {run_id} closed without an end event")
