"""/docs: the API reference from the vendored Swagger UI, under the dashboard's CSP, with no
request leaving the server (no CDN) and no serious or critical axe-core violation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from test_pages import axe_violations

from conftest import Server

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)  # no database is read
def test_docs_shows_every_route_from_shipped_files_under_the_csp(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    page.add_init_script(WATCH_CSP)
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        response = page.goto(server.url + "/docs")
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp
        expect(page.locator(".information-container .title")).to_contain_text("reviewflow")
        stream = page.locator(".opblock-summary-path", has_text="/runs/{run_id}/events/stream")
        expect(stream.first).to_be_visible()
        assert page.locator(".opblock").count() >= 10  # every route, not an error box
        stream.first.click()  # an operation opens: its parameters render
        expect(page.locator(".opblock.is-open .parameters-container")).to_be_visible()
        assert axe_violations(page) == []  # Swagger UI's colours are darkened in docs.css
        assert page.evaluate("window.__csp") == []
        assert errors == []
        assert hosts == {urlsplit(server.url).netloc}  # nothing from a CDN or elsewhere
    finally:
        page.close()
