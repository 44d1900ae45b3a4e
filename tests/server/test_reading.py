"""Big workflow bodies (reviewflow.server.reading): a child process reads one and stores its run,
so the server's event loop and /health stay free meanwhile, a child that reads too long is
stopped, and a bad body is refused naming the field as a small one is.

The workflow names a plugin folder whose module's import waits for a file `release`: the child
is then provably in the middle of reading it, for as long as the test wants. Small bodies, read
on a thread: tests/server/test_context.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from apihelpers import AUTH, AppFactory, post_in_background

from reviewflow.server.reading import BIG_BODY

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
    thread, answer = post_in_background(client, file_gated)
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
    make_client: AppFactory, file_gated: dict[str, Any]
) -> None:
    client = make_client(execute=False, parse_timeout=0.5)
    # The gate is never released: the child is stopped at its bound whether it got as far as
    # the plugin or was still starting (on a busy machine start-up alone can take 0.5 s).
    resp = client.post("/runs", json=file_gated, headers=AUTH)
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
