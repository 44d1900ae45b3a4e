"""Helpers of the HTTP API tests (tests/server is on sys.path; import `apihelpers`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from fastapi.testclient import TestClient

RW, RO = "rw-token-123", "ro-token-456"
SECRET = "webhook-secret"  # pragma: allowlist secret
AUTH = {"Authorization": f"Bearer {RW}"}
RO_AUTH = {"Authorization": f"Bearer {RO}"}
YAML = {"Content-Type": "application/yaml", **AUTH}
TERMINAL = {"succeeded", "failed", "cancelled"}


class Client(TestClient):
    """TestClient that refuses unexpected server errors."""

    allowed_5xx: frozenset[int] = frozenset()

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = super().send(request, **kwargs)
        code = response.status_code
        if code >= 500 and code not in self.allowed_5xx:
            response.read()
            raise AssertionError(
                f"{request.method} {request.url.path} answered {code}: {response.text[:500]}"
            )
        return response

    @contextmanager
    def allow(self, *codes: int) -> Iterator[None]:
        saved = self.allowed_5xx
        self.allowed_5xx = saved | set(codes)
        try:
            yield
        finally:
            self.allowed_5xx = saved

    # ------------------------------------------------------------------ helpers

    def submit(
        self,
        doc: dict[str, Any] | str,
        *,
        key: str | None = None,
        meta: list[str] | None = None,
        expect: int = 201,
    ) -> str:
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        headers = {**YAML, **({"Idempotency-Key": key} if key else {})}
        resp = self.post(
            "/runs", content=text, headers=headers, params=[("meta", m) for m in meta or []]
        )
        assert resp.status_code == expect, resp.text
        return str(resp.json()["run_id"])

    def status(self, run_id: str) -> dict[str, Any]:
        resp = self.get(f"/runs/{run_id}", headers=AUTH)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def wait(
        self,
        run_id: str,
        done: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Poll the run's status until `done` (default: the run ended)."""
        done = done or (lambda doc: doc["state"] in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status(run_id)
            if done(doc):
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting on {run_id}: {doc['state']}")
            time.sleep(0.02)

    def task_state(self, run_id: str, task: str) -> str:
        return next(t["state"] for t in self.status(run_id)["tasks"] if t["name"] == task)


def workflow(tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": fields.pop("name", "wf"), **fields, "tasks": tasks}


def sh(script: str, **body: Any) -> dict[str, Any]:
    return {"type": "shell", "run": ["sh", "-c", script], **body}


AppFactory = Callable[..., Client]
"""The `make_client` fixture: `make_client(execute=..., secret=..., **create_app options)`."""


def post_in_background(client: Client, doc: dict[str, Any]) -> tuple[threading.Thread, dict]:
    """POST `doc` to /runs on a thread: the test acts while the server reads it."""
    answer: dict[str, Any] = {}

    def post() -> None:
        answer["response"] = client.post("/runs", json=doc, headers=AUTH)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, answer
