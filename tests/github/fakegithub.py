"""A fake GitHub REST API on 127.0.0.1 for the `github comment` tests (no network, no mocks of
urllib): the issue-comment endpoints kept in memory, with GitHub's pagination (Link header) and
scripted failures, and a record of every request the client sent."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-token-123"
REPO = "octo-org/octo-repo"
PR = 7


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """Answer the next matching request(s) with `status` (after handling it if `apply`)."""

    method: str
    status: int
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    apply: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # more JSON fields of the error
    then: Callable[[], None] | None = None  # run when the fault fires


class FakeGitHub:
    """In-memory issue comments of one repository, served over real HTTP."""

    def __init__(self, page_size: int = 100) -> None:
        self.page_size = page_size
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.login = "github-actions[bot]"
        self.link_base: str | None = None  # where Link headers point (default: this server)
        self.redirect_base: str | None = None  # answer the next request 301 to this host
        self._next_id = 1000
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def add_comment(self, pr: int, body: str, login: str = "someone") -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            cid = self._next_id
            doc = {
                "id": cid,
                "body": body,
                "user": {"login": login},
                "html_url": f"https://github.com/{REPO}/pull/{pr}#issuecomment-{cid}",
            }
            self.comments.setdefault(pr, []).append(doc)
            return doc

    def fail(self, method: str, status: int, **kw: Any) -> None:
        self.faults.append(Fault(method, status, **kw))

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    # ------------------------------------------------------------------ HTTP side

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def do_PATCH(self) -> None:
                fake._serve(self)

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.requests.append(Recorded(h.command, h.path, dict(h.headers.items()), body))
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(h, 401, {"message": "Bad credentials"})
        if self.redirect_base is not None:
            location, self.redirect_base = f"{self.redirect_base}{h.path}&moved=1", None
            return self._send(h, 301, {"message": "Moved Permanently"}, {"Location": location})
        fault = next((f for f in self.faults if f.method == h.command and f.times > 0), None)
        if fault is not None:
            fault.times -= 1
            if fault.apply:
                self._route(h, body)  # handled, but the client hears an error
            if fault.then is not None:
                fault.then()
            doc = {"message": fault.message, **fault.extra}
            return self._send(h, fault.status, doc, fault.headers)
        status, doc, headers = self._route(h, body)
        self._send(h, status, doc, headers)

    def _route(self, h: BaseHTTPRequestHandler, body: Any) -> tuple[int, Any, dict[str, str]]:
        url = urllib.parse.urlsplit(h.path)
        parts = url.path.strip("/").split("/")
        query = urllib.parse.parse_qs(url.query)
        prefix = ["repos", *REPO.split("/"), "issues"]
        if parts[:4] != prefix:
            return 404, {"message": "Not Found"}, {}
        rest = parts[4:]
        if len(rest) == 2 and rest[1] == "comments" and rest[0].isdigit():
            pr = int(rest[0])
            if h.command == "GET":
                return self._list(pr, query, url.path)
            if h.command == "POST":
                return 201, self.add_comment(pr, body["body"], self.login), {}
        if len(rest) == 2 and rest[0] == "comments" and rest[1].isdigit() and h.command == "PATCH":
            cid = int(rest[1])
            for comments in self.comments.values():
                for doc in comments:
                    if doc["id"] == cid:
                        doc["body"] = body["body"]
                        return 200, doc, {}
            return 404, {"message": "Not Found"}, {}
        return 404, {"message": "Not Found"}, {}

    def _list(self, pr: int, query: dict[str, list[str]], path: str) -> tuple[int, Any, Any]:
        per_page = min(int(query.get("per_page", ["30"])[0]), self.page_size)
        page = int(query.get("page", ["1"])[0])
        comments = self.comments.get(pr, [])
        chunk = comments[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(comments):
            base = self.link_base or self.url
            nxt = f"{base}{path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next", <{base}{path}?page=99>; rel="last"'
        return 200, chunk, headers

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None
    ) -> None:
        raw = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(raw)
