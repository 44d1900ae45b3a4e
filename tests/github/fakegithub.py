"""A fake GitHub REST API on 127.0.0.1 for the `github comment` and `github check` tests (no
network, no mocks of urllib): the issue-comment and check-run endpoints kept in memory, with
GitHub's pagination (Link header) and scripted failures, and a record of every request the client
sent.

Every request is first checked against GitHub's official OpenAPI description (openapi.py): one
that does not match it (an unknown field, a wrong type, a parameter GitHub does not have) is
answered 422 and kept in `violations`, which the `fake_github` fixture requires to be empty at the
end of each test, so a client bug fails the test even where the client would survive the 422.
A few rules GitHub enforces but the description does not state are checked as well
(`github_rules`): a summary's size in bytes, a completed check run's conclusion, line ranges.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openapi import github_openapi

TOKEN = "test-token-123"
REPO = "octo-org/octo-repo"
PR = 7
SHA = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
MAX_OUTPUT_BYTES = 65_535
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: Any
    at: float = 0.0  # time.time() on arrival


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
    hang: bool = False  # answer nothing until the test ends (the client times out)
    path: str = ""  # only requests whose path contains this


class FakeGitHub:
    """In-memory issue comments of one repository, served over real HTTP."""

    def __init__(self, page_size: int = 100) -> None:
        self.page_size = page_size
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.violations: list[str] = []  # requests GitHub's OpenAPI description does not allow
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.app_slug = "github-actions"
        self.release = threading.Event()  # ends the hangs of `Fault(hang=True)`
        self.login = "github-actions[bot]"
        self.link_base: str | None = None  # where Link headers point (default: this server)
        self.redirect_base: str | None = None  # answer the next request 301 to this host
        self._next_id = 1000
        # GitHub App side: JWTs signed by `app_key` (set by a test) buy installation tokens.
        self.app_id = "4242"
        self.app_public_key: Any = None  # a cryptography RSA public key
        self.installation_id = 77
        self.installed = True
        self.tokens: list[str] = []  # installation tokens minted, newest last
        self.accepted = {TOKEN}  # bearer tokens the repository endpoints accept
        self.token_lifetime = 3600
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

    def add_check_run(self, head_sha: str, name: str = "reviewflow", **fields: Any) -> dict:
        """A check run made by someone else (an earlier run, another app)."""
        with self._lock:
            return self._new_check_run({"name": name, "head_sha": head_sha, **fields})

    def runs_for(self, head_sha: str = SHA) -> list[dict[str, Any]]:
        return [r for r in self.check_runs.values() if r["head_sha"] == head_sha]

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
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self.requests.append(Recorded(h.command, h.path, dict(h.headers.items()), raw))
            self.violations.append(f"{h.command} {h.path}: body is not JSON")
            return self._send(h, 400, {"message": "Problems parsing JSON"})
        self.requests.append(
            Recorded(h.command, h.path, dict(h.headers.items()), body, time.time())
        )
        checked = h.path.replace("&moved=1", "")  # the fake's own redirect marker
        problems = github_openapi().problems(h.command, checked, body, bool(raw))
        problems = problems or self.github_rules(h.command, checked, body)
        if problems:
            self.violations.extend(problems)
            errors = [{"code": "invalid", "message": p} for p in problems]
            return self._send(h, 422, {"message": "Invalid request.", "errors": errors})
        if self._app_route(h.path):
            status, doc = self._app(h, body)
            return self._send(h, status, doc)
        if h.headers.get("Authorization") not in {f"Bearer {t}" for t in self.accepted}:
            return self._send(h, 401, {"message": "Bad credentials"})
        if self.redirect_base is not None:
            location, self.redirect_base = f"{self.redirect_base}{h.path}&moved=1", None
            return self._send(h, 301, {"message": "Moved Permanently"}, {"Location": location})
        fault = next(
            (f for f in self.faults if f.method == h.command and f.times > 0 and f.path in h.path),
            None,
        )
        if fault is not None:
            fault.times -= 1
            if fault.apply:
                self._route(h, body)  # handled, but the client hears an error
            if fault.then is not None:
                fault.then()
            if fault.hang:
                self.release.wait(30)
                return None
            doc = {"message": fault.message, **fault.extra}
            return self._send(h, fault.status, doc, fault.headers)
        status, doc, headers = self._route(h, body)
        self._send(h, status, doc, headers)

    @staticmethod
    def _app_route(path: str) -> bool:
        return path.startswith("/app/") or path == f"/repos/{REPO}/installation"

    def revoke_tokens(self) -> None:
        """Every installation token minted so far stops working (GitHub answers 401)."""
        with self._lock:
            self.accepted = {TOKEN}

    def _app(self, h: BaseHTTPRequestHandler, body: Any) -> tuple[int, Any]:
        """The App endpoints: a valid RS256 JWT of `app_id` is required, as GitHub does."""
        import jwt

        auth = h.headers.get("Authorization", "")
        try:
            claims = jwt.decode(
                auth.removeprefix("Bearer "),
                self.app_public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except Exception as exc:  # any JWT problem: GitHub's 401
            return 401, {"message": f"A JSON web token could not be decoded: {exc}"}
        if str(claims["iss"]) != self.app_id or claims["exp"] - claims["iat"] > 600:
            return 401, {"message": "'Expiration time' claim ('exp') is too far in the future"}
        if h.path == f"/repos/{REPO}/installation":
            if not self.installed:
                return 404, {"message": "Not Found"}
            return 200, {"id": self.installation_id, "account": {"login": REPO.split("/")[0]}}
        if h.path == f"/app/installations/{self.installation_id}/access_tokens":
            with self._lock:
                token = f"ghs_installation{len(self.tokens) + 1:04d}"
                self.tokens.append(token)
                self.accepted.add(token)
            expires = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.token_lifetime)
            )
            return 201, {"token": token, "expires_at": expires, "repository_selection": "selected"}
        return 404, {"message": "Not Found"}

    def _route(self, h: BaseHTTPRequestHandler, body: Any) -> tuple[int, Any, dict[str, str]]:
        url = urllib.parse.urlsplit(h.path)
        parts = url.path.strip("/").split("/")
        query = urllib.parse.parse_qs(url.query)
        if parts[:3] != ["repos", *REPO.split("/")]:
            return 404, {"message": "Not Found"}, {}
        if parts[3:4] in (["check-runs"], ["commits"]):
            with self._lock:
                return self._route_checks(h.command, parts[3:], query, url.path, body)
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
        chunk, headers = self._page(self.comments.get(pr, []), query, path)
        return 200, chunk, headers

    def _page(
        self, items: list[Any], query: dict[str, list[str]], path: str
    ) -> tuple[list[Any], dict[str, str]]:
        """One page of `items` and GitHub's Link header to the next (other parameters kept)."""
        per_page = min(int(query.get("per_page", ["30"])[0]), self.page_size, 100)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            base = self.link_base or self.url
            kept = {k: v[0] for k, v in query.items() if k not in ("per_page", "page")}
            params = urllib.parse.urlencode({**kept, "per_page": per_page, "page": page + 1})
            nxt = f"{base}{path}?{params}"
            headers["Link"] = f'<{nxt}>; rel="next", <{base}{path}?page=99>; rel="last"'
        return chunk, headers

    # ------------------------------------------------------------------ check runs

    @staticmethod
    def github_rules(method: str, path: str, body: Any) -> list[str]:
        """What GitHub refuses although its OpenAPI description allows it (checks endpoints)."""
        if "/check-runs" not in path or method not in ("POST", "PATCH"):
            return []
        out: list[str] = []
        if method == "POST" and not _SHA_RE.match(str(body.get("head_sha", ""))):
            out.append(f"{method} {path}: No commit found for SHA: {body.get('head_sha')}")
        if body.get("status") == "completed" and "conclusion" not in body:
            out.append(f"{method} {path}: conclusion is required when status is completed")
        output = body.get("output") or {}
        for key in ("summary", "text"):
            size = len(str(output.get(key, "")).encode("utf-8"))
            if size > MAX_OUTPUT_BYTES:
                out.append(f"{method} {path}: {key} exceeds a maximum bytesize of 65535")
        for i, a in enumerate(output.get("annotations") or []):
            if a["start_line"] < 1 or a["end_line"] < a["start_line"]:
                out.append(f"{method} {path}: annotation {i}: bad line range")
        return out

    def _new_check_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        rid = self._next_id
        run: dict[str, Any] = {
            "id": rid,
            "name": body["name"],
            "head_sha": body["head_sha"],
            "status": "queued",
            "conclusion": None,
            "started_at": _now(),
            "completed_at": None,
            "details_url": None,
            "external_id": "",
            "url": f"{self.url}/repos/{REPO}/check-runs/{rid}",
            "html_url": f"https://github.com/{REPO}/runs/{rid}",
            "app": {"slug": self.app_slug},
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0},
        }
        self.check_runs[rid] = run
        self.annotations[rid] = []
        self._apply(run, {k: v for k, v in body.items() if k not in ("name", "head_sha")})
        return run

    def _apply(self, run: dict[str, Any], body: dict[str, Any]) -> None:
        """GitHub's update: fields replaced, annotations appended. A completed run keeps its
        status and conclusion whatever the update says (GitHub answers 200 all the same)."""
        if run["status"] == "completed":
            body = {k: v for k, v in body.items() if k not in ("status", "conclusion")}
            body.pop("completed_at", None)
        for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
            if key in body:
                run[key] = body[key]
        if "conclusion" in body:
            run["conclusion"], run["status"] = body["conclusion"], "completed"
        if "status" in body:
            run["status"] = body["status"]
            if body["status"] != "completed":
                run["conclusion"], run["completed_at"] = None, None
        if run["status"] == "completed" and run["completed_at"] is None:
            run["completed_at"] = _now()
        output = body.get("output")
        if output:
            for key in ("title", "summary", "text"):
                if key in output:
                    run["output"][key] = output[key]
            for a in output.get("annotations", []):
                self.annotations[run["id"]].append(
                    {
                        "path": a["path"],
                        "start_line": a["start_line"],
                        "end_line": a["end_line"],
                        "start_column": a.get("start_column"),
                        "end_column": a.get("end_column"),
                        "annotation_level": a["annotation_level"],
                        "title": a.get("title", ""),
                        "message": a["message"],
                        "raw_details": a.get("raw_details", ""),
                        "blob_href": f"https://github.com/{REPO}/blob/{run['head_sha']}/{a['path']}",
                    }
                )
            run["output"]["annotations_count"] = len(self.annotations[run["id"]])

    def _route_checks(
        self, method: str, parts: list[str], query: dict[str, list[str]], path: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if parts == ["check-runs"] and method == "POST":
            return 201, self._new_check_run(body), {}
        if len(parts) == 3 and parts[0] == "commits" and parts[2] == "check-runs":
            runs = [r for r in self.check_runs.values() if r["head_sha"] == parts[1]]
            if "check_name" in query:
                runs = [r for r in runs if r["name"] == query["check_name"][0]]
            if "status" in query:
                runs = [r for r in runs if r["status"] == query["status"][0]]
            runs.sort(key=lambda r: r["id"], reverse=True)
            if query.get("filter", ["latest"])[0] == "latest":
                newest: dict[str, dict[str, Any]] = {}
                for r in runs:
                    newest.setdefault(r["name"], r)
                runs = list(newest.values())
            chunk, headers = self._page(runs, query, path)
            return 200, {"total_count": len(runs), "check_runs": chunk}, headers
        if parts[0] == "check-runs" and len(parts) >= 2 and parts[1].isdigit():
            run = self.check_runs.get(int(parts[1]))
            if run is None:
                return 404, {"message": "Not Found"}, {}
            if len(parts) == 2 and method == "PATCH":
                if run["app"]["slug"] != self.app_slug:
                    return (
                        403,
                        {
                            "message": "Invalid app_id `1` - check run can only be modified"
                            " by the GitHub App that created it."
                        },
                        {},
                    )
                self._apply(run, body)
                return 200, run, {}
            if len(parts) == 3 and parts[2] == "annotations" and method == "GET":
                chunk, headers = self._page(self.annotations[run["id"]], query, path)
                return 200, chunk, headers
        return 404, {"message": "Not Found"}, {}

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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
