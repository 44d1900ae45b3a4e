"""A run that cannot proceed says so: when starting it raises, it ends `failed` with the error
in the API, in `reviewflow status`, and `reviewflow resume` reports it instead of crashing.

The fault is a real one: a run stored by a server that only stores runs names a plugin folder
that is gone by the time a server that executes runs is asked to carry it on.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from apihelpers import AUTH, AppFactory
from typer.testing import CliRunner

from reviewflow.cli import app as cli


def test_a_run_whose_start_fails_ends_failed_with_the_error(
    make_client: AppFactory, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "nothing.py").write_text("TASK_TYPES = []\n")
    doc = {"name": "wf", "plugins": ["plugins"], "tasks": {"a": {"run": ["true"]}}}
    idle = make_client(execute=False)
    resp = idle.post("/runs", json=doc, headers=AUTH)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    shutil.rmtree(plugins)

    server = make_client(resume_orphans=False)
    resp = server.post(f"/runs/{run_id}/resume", headers=AUTH)
    assert resp.status_code == 202, resp.text
    doc = server.wait(run_id)
    assert doc["state"] == "failed"
    assert "could not start" in doc["error"] and "plugin folder" in doc["error"]
    assert [t["state"] for t in doc["tasks"]] == ["cancelled"]
    events = server.get(f"/runs/{run_id}/events", headers=AUTH).json()
    assert [(e["task"], e["from"], e["to"]) for e in events] == [
        (None, None, "pending"),
        (None, "pending", "running"),
        ("a", "blocked", "cancelled"),
        (None, "running", "failed"),
    ]

    db = str(tmp_path / "rf.db")
    status = CliRunner().invoke(cli, ["status", run_id, "--db", db])
    assert "failed" in status.output and "could not start" in status.output, status.output
    resume = CliRunner().invoke(cli, ["resume", run_id, "--db", db])
    assert resume.exception is None or isinstance(resume.exception, SystemExit), resume.output
    assert f"run {run_id} already ended: failed" in resume.output


def test_a_stored_run_is_validated_off_the_event_loop_when_it_starts(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run this server did not submit (resumed, an orphan, one a reader child stored) has
    its spec read back and validated on a thread, not on the loop that answers /health."""
    from reviewflow.spec import WorkflowSpec

    on_loop: list[bool] = []
    original = WorkflowSpec.model_validate_json

    def validate_json(cls: type, text: str, **kwargs: Any) -> WorkflowSpec:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return original(text, **kwargs)

    doc = {"name": "wf", "tasks": {"a": {"run": ["true"]}}}
    idle = make_client(execute=False)
    resp = idle.post("/runs", json=doc, headers=AUTH)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]

    monkeypatch.setattr(WorkflowSpec, "model_validate_json", classmethod(validate_json))
    server = make_client(resume_orphans=False)
    resp = server.post(f"/runs/{run_id}/resume", headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert server.wait(run_id)["state"] == "succeeded"
    assert False in on_loop  # read on a thread
    assert True not in on_loop, "the stored spec was validated on the event loop"
