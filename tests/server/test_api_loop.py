"""One request never freezes the server: reading and validating a workflow, building a status
and the store's calls run off the event loop, so /health and /ready answer meanwhile.

A workflow names a plugin folder whose module's import waits on a gate: the server is then
provably in the middle of reading that workflow, for as long as the test wants. Small bodies are
read on a thread (the gate is a threading.Event, server_tasks); big ones by a child process (the
gate is a file).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import server_tasks
import yaml
from apihelpers import AUTH, AppFactory, Client

from reviewflow.server.reading import BIG_BODY

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


# ------------------------------------------------------------- big bodies: a child reads them

FILE_GATE_PLUGIN = """\
import pathlib
import time

pathlib.Path("reading").touch()
deadline = time.monotonic() + 20
while not pathlib.Path("release").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def _big(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` made larger than reading.BIG_BODY (a long description)."""
    return {**doc, "description": "x" * (BIG_BODY + 1)}


@pytest.fixture
def file_gated(tmp_path: Path) -> dict[str, Any]:
    """A big workflow whose reading (in a child process) waits for the file `release`."""
    folder = tmp_path / "filegate"
    folder.mkdir()
    (folder / "file_gate.py").write_text(FILE_GATE_PLUGIN)
    return _big({"name": "gated", "plugins": ["filegate"], "tasks": {"a": {"run": ["true"]}}})


def _wait_for(path: Path, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("execute", [True, False])
def test_health_answers_while_a_child_reads_a_big_workflow(
    make_client: AppFactory, file_gated: dict[str, Any], tmp_path: Path, execute: bool
) -> None:
    client = make_client(execute=execute)
    thread, answer = _post_in_background(client, file_gated)
    try:
        assert _wait_for(tmp_path / "reading"), "the workflow was never read"
        health = client.get("/health")
        ready = client.get("/ready")
        assert "response" not in answer  # still being read
        assert health.status_code == 200 and ready.status_code == 200
    finally:
        (tmp_path / "release").touch()
        thread.join(30)
    resp = answer["response"]
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    if execute:
        assert client.wait(run_id)["state"] == "succeeded"
    again = client.post("/runs", json=file_gated, headers={**AUTH, "Idempotency-Key": run_id})
    assert again.status_code == 200 and again.json()["created"] is False


def test_a_child_that_reads_too_long_is_stopped(
    make_client: AppFactory, file_gated: dict[str, Any], tmp_path: Path
) -> None:
    client = make_client(execute=False, parse_timeout=0.5)
    resp = client.post("/runs", json=file_gated, headers=AUTH)
    assert (tmp_path / "reading").exists()
    assert resp.status_code == 422, resp.text
    assert "longer than 0.5 s" in resp.json()["error"]
    assert client.get("/runs", headers=AUTH).json()["runs"] == []


@pytest.mark.parametrize("ctype", ["application/json", "application/yaml"])
def test_a_big_bad_workflow_is_refused_naming_the_field(
    make_client: AppFactory, ctype: str
) -> None:
    client = make_client(execute=False)
    doc = _big({"name": "wf", "tasks": {"a": {"run": ["true"], "needs": ["zz"]}}})
    body = json.dumps(doc) if ctype == "application/json" else yaml.safe_dump(doc)
    resp = client.post("/runs", content=body, headers={**AUTH, "Content-Type": ctype})
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "tasks.a.needs"
    assert "unknown dependency" in resp.json()["error"]
