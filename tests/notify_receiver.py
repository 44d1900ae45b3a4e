"""A webhook receiver on 127.0.0.1 for the notification tests: it fails, hangs or answers as the
test scripts it, records every request and checks each signature.

`plan` is a list of behaviours consumed one per request ("fail": 500, "hang": record, then hold
the request until `release()` or the bound, "ok": 200, or a status code such as "404"); once it
is used up, every request is answered by `then`. Tests wait on progress (`wait_for`), never on time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reviewflow.spec import WorkflowSpec
from rfhelpers import sh, workflow

HANG_BOUND = 60.0
"""Seconds a hung request is held at most (a test that forgets release() does not hang)."""


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: str  # ok | fail | hang | a status code
    signature_ok: bool | None  # None: no secret to check against
    at: float = field(default_factory=time.time)

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def delivery_id(self) -> str:
        return self.headers.get("X-Reviewflow-Delivery", "")


class Receiver:
    """Start with `with Receiver(...) as r:`; `r.url` is where to send."""

    def __init__(
        self, plan: list[str] | None = None, then: str = "ok", secret: str | None = None
    ) -> None:
        self.plan = list(plan or [])
        self.then = then
        self.secret = secret
        self.requests: list[Request] = []
        self.cond = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.cond:
                    answer = receiver.plan.pop(0) if receiver.plan else receiver.then
                    request = Request(
                        self.path,
                        dict(self.headers.items()),
                        body,
                        answer,
                        receiver._check(self.headers.get("X-Reviewflow-Signature"), body),
                    )
                    receiver.requests.append(request)
                    receiver.cond.notify_all()
                if answer == "hang":
                    receiver._release.wait(HANG_BOUND)
                    answer = "ok"
                status = int(answer) if answer.isdigit() else 200 if answer == "ok" else 500
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the sender gave up (its timeout): that attempt counts as failed

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _check(self, header: str | None, body: bytes) -> bool | None:
        if self.secret is None:
            return None
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return header is not None and hmac.compare_digest(header, expected)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """Let hung requests answer (200)."""
        self._release.set()

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout: float = 60.0) -> bool:
        """Wait until `predicate(requests)` holds (checked at every request)."""
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.requests), timeout)

    def answered_ok(self) -> dict[str, Request]:
        """Delivery id -> the request answered 200 (the delivered one)."""
        with self.cond:
            return {r.delivery_id: r for r in self.requests if r.answer == "ok"}


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


HOOK_SECRET = "s3cret-for-tests"  # pragma: allowlist secret
"""The webhook targets' signing secret, read from the environment variable HOOK_SECRET."""


def hook_target(url: str, **fields: Any) -> dict[str, Any]:
    """A workflow's webhook notification target, signed with HOOK_SECRET, 1 s per attempt."""
    return {"kind": "webhook", "url": url, "secret_env": "HOOK_SECRET", "timeout": 1, **fields}


def failing_notified(url: str, **fields: Any) -> WorkflowSpec:
    """Workflow "notified": one task that fails at once, notifying a webhook target at `url`."""
    task = sh("exit 3", retry={"max_retries": 0})
    return workflow({"a": task}, name="notified", notifications=[hook_target(url, **fields)])
