"""What a server does around its requests (reviewflow.server.context): reading a workflow off
the event loop, so /health and /ready answer meanwhile and a read that takes too long is
refused; and at startup, carrying on the runs a dead process left behind.

A workflow names a plugin folder whose module's import waits on a gate: the server is then
provably in the middle of reading that workflow, for as long as the test wants (the gate is a
threading.Event, server_tasks). Big bodies, read by a child process: tests/server/test_reading.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import server_tasks
from apihelpers import AUTH, AppFactory, Client, post_in_background, sh, workflow

from reviewflow.store.base import TASK_COLUMNS, Batch

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


@pytest.mark.parametrize("execute", [True, False])
def test_health_and_ready_answer_while_a_workflow_is_being_read(
    make_client: AppFactory, gated: dict[str, Any], execute: bool
) -> None:
    client = make_client(execute=execute)
    thread, answer = post_in_background(client, gated)
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


# ------------------------------------------------------------- startup: runs left behind

DEAD_OWNER = "{host}:99999999:deadbeef"
"""An owner on this host whose process is gone."""


def _orphan(idle: Client, run_id: str, owner: str = DEAD_OWNER, state: str = "running") -> None:
    """Make `run_id` look like the run of a process that died while its task ran."""
    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    owner = owner.format(host=socket.gethostname())
    now = time.time()
    assert store.claim_run(run_id, owner, now + 60, None)
    row = dict.fromkeys(TASK_COLUMNS)
    row.update(state="running", attempts=1, ready_at=now, started_at=now)
    store.write(
        Batch(
            run_id,
            owner,
            now + 60,
            run=(state, now, None, None),
            tasks=[(*row.values(), "a")],
            events=[
                (run_id, None, "pending", "running", None, now, None),
                (run_id, "a", "blocked", "ready", 0, now, None),
                (run_id, "a", "ready", "running", 1, now, None),
            ],
        )
    )


def test_startup_carries_on_orphaned_runs_and_counts_the_lost_lease(
    make_client: AppFactory,
) -> None:
    idle = make_client(execute=False)
    run_id = idle.submit(workflow({"a": sh("true"), "b": sh("true", needs=["a"])}))
    _orphan(idle, run_id)
    assert idle.status(run_id)["state"] == "running"
    server = make_client()
    final = server.wait(run_id)
    assert final["state"] == "succeeded"
    assert final["tasks"][0]["attempts"] == 2
    details = [e["detail"] or "" for e in server.get(f"/runs/{run_id}/events", headers=AUTH).json()]
    assert any(d.startswith("lost") for d in details)
    assert "reviewflow_lost_leases_total 1.0" in server.get("/metrics").text


def test_startup_takes_over_only_runs_nobody_can_still_be_executing(
    make_client: AppFactory,
) -> None:
    """A paused run waits for `resume`, a fresh pending run for the process that created it,
    a run whose owner may be alive (another host, lease not expired) for that owner."""
    idle = make_client(execute=False)
    runs = {
        name: idle.submit(workflow({"a": sh("true")}), key=name)
        for name in ("dead", "paused", "young", "elsewhere")
    }
    _orphan(idle, runs["dead"])
    _orphan(idle, runs["paused"], state="paused")
    _orphan(idle, runs["elsewhere"], owner="another-host:1:token")
    server = make_client(resume_orphans=False)
    ctx = server.app.state.rf  # type: ignore[attr-defined]
    assert server.portal.call(ctx.resume_orphans) == ["dead"]  # on the server's event loop
    assert server.wait("dead")["state"] == "succeeded"
    assert [server.status(r)["state"] for r in ("paused", "young", "elsewhere")] == [
        "paused",
        "pending",
        "running",
    ]
