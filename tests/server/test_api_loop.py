"""One request never freezes the server: reading and validating a workflow, building a status
and the store's calls run off the event loop, so /health and /ready answer meanwhile.

A workflow names a plugin folder whose module's import waits on a gate (server_tasks): the
server is then provably in the middle of reading that workflow, for as long as the test wants.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import server_tasks
from apihelpers import AUTH, AppFactory, Client

GATE_PLUGIN = """\
import server_tasks

server_tasks.READING.set()
server_tasks.RELEASE.wait(server_tasks.GATE_WAIT)
"""


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A workflow whose reading waits until the test sets server_tasks.RELEASE."""
    folder = tmp_path / "gate"
    folder.mkdir()
    (folder / "gate_plugin.py").write_text(GATE_PLUGIN)
    server_tasks.READING.clear()
    server_tasks.RELEASE.clear()
    yield {"name": "gated", "plugins": ["gate"], "tasks": {"a": {"run": ["true"]}}}
    server_tasks.RELEASE.set()


def _post_in_background(client: Client, doc: dict[str, Any]) -> tuple[threading.Thread, dict]:
    answer: dict[str, Any] = {}

    def post() -> None:
        answer["response"] = client.post("/runs", json=doc, headers=AUTH)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, answer


@pytest.mark.parametrize("execute", [True, False])
def test_health_and_ready_answer_while_a_workflow_is_being_read(
    make_client: AppFactory, gated: dict[str, Any], execute: bool
) -> None:
    client = make_client(execute=execute)
    thread, answer = _post_in_background(client, gated)
    try:
        assert server_tasks.READING.wait(10), "the server never started reading the workflow"
        health = client.get("/health")
        ready = client.get("/ready")
        runs = client.get("/runs", headers=AUTH)
        # the POST cannot have been answered: its workflow is still being read
        assert "response" not in answer
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert runs.status_code == 200 and runs.json()["runs"] == []
    finally:
        server_tasks.RELEASE.set()
        thread.join(30)
    assert answer["response"].status_code == 201, answer["response"].text


def test_a_workflow_that_takes_too_long_to_read_is_refused(
    make_client: AppFactory, gated: dict[str, Any]
) -> None:
    client = make_client(execute=False, parse_timeout=0.2)
    resp = client.post("/runs", json=gated, headers=AUTH)
    assert server_tasks.READING.is_set()
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "body"
    assert "longer than 0.2 s" in resp.json()["error"]
    server_tasks.RELEASE.set()
    assert client.get("/runs", headers=AUTH).json()["runs"] == []
