"""Cancel, pause, resume and approval decisions over HTTP (reviewflow.server.control): on a run
executed here, on one nobody executes, and on ids that name no run."""

from __future__ import annotations

import time
from typing import Any

import pytest
from apihelpers import AUTH, AppFactory, Client, sh, workflow

JSON = {**AUTH, "Content-Type": "application/json"}


def post(
    client: Client, path: str, body: dict[str, Any] | None = None, code: int = 202
) -> dict[str, Any]:
    resp = (
        client.post(path, json=body, headers=AUTH)
        if body is not None
        else client.post(path, headers=AUTH)
    )
    assert resp.status_code == code, resp.text
    return dict(resp.json())


def test_cancel_a_run_executing_here(client: Client) -> None:
    run_id = client.submit(workflow({"slow": sh("sleep 30"), "after": sh("true", needs=["slow"])}))
    client.wait(run_id, lambda d: d["tasks"][0]["state"] == "running")
    doc = post(client, f"/runs/{run_id}/cancel")
    assert doc["action"] == "cancel" and doc["how"] == "here"
    final = client.wait(run_id, timeout=10)
    assert final["state"] == "cancelled"
    assert [t["state"] for t in final["tasks"]] == ["cancelled", "cancelled"]
    again = client.post(f"/runs/{run_id}/cancel", headers=AUTH)
    assert again.status_code == 409 and again.json()["field"] == "run_id"
    assert client.post(f"/runs/{run_id}/pause", headers=AUTH).status_code == 409
    assert client.post(f"/runs/{run_id}/resume", headers=AUTH).status_code == 409


def test_pause_then_resume_a_run_executing_here(client: Client) -> None:
    run_id = client.submit(workflow({"a": sh("sleep 0.4"), "b": sh("true", needs=["a"])}))
    client.wait(run_id, lambda d: d["tasks"][0]["state"] == "running")
    doc = post(client, f"/runs/{run_id}/pause")
    assert doc == {"run_id": run_id, "action": "pause", "state": "paused", "how": "here"}
    client.wait(run_id, lambda d: d["tasks"][0]["state"] == "succeeded")
    time.sleep(0.2)
    paused = client.status(run_id)
    assert paused["state"] == "paused" and paused["tasks"][1]["state"] == "ready"
    assert post(client, f"/runs/{run_id}/resume")["how"] == "here"
    assert client.wait(run_id)["state"] == "succeeded"


def test_a_run_nobody_executes(idle: Client) -> None:
    run_id = idle.submit(workflow({"a": sh("true")}))
    resp = idle.post(f"/runs/{run_id}/pause", headers=AUTH)
    assert resp.status_code == 409 and "not being executed" in resp.json()["error"]
    assert post(idle, f"/runs/{run_id}/resume")["how"] == "queued"  # for a worker
    doc = post(idle, f"/runs/{run_id}/cancel")
    assert doc["how"] == "here" and doc["state"] == "cancelled"  # taken over to cancel it
    assert idle.status(run_id)["state"] == "cancelled"


def test_unknown_and_malformed_run_ids(client: Client) -> None:
    for action in ("cancel", "pause", "resume"):
        resp = client.post(f"/runs/nope/{action}", headers=AUTH)
        assert resp.status_code == 404 and resp.json()["field"] == "run_id"
        resp = client.post(f"/runs/.nope/{action}", headers=AUTH)
        assert resp.status_code == 422 and resp.json()["field"] == "run_id"


GATED = workflow(
    {
        "build": sh("true"),
        "gate": {"type": "approval", "needs": ["build"], "params": {"approvers": ["alice"]}},
        "ship": sh("true", needs=["gate"]),
    }
)


def _waiting(client: Client) -> str:
    run_id = client.submit(GATED)
    client.wait(run_id, lambda d: d["tasks"][1]["state"] == "running")
    return run_id


def test_approve_over_http(client: Client) -> None:
    run_id = _waiting(client)
    resp = client.post(f"/runs/{run_id}/tasks/gate/approve", json={"by": "mallory"}, headers=AUTH)
    assert resp.status_code == 403 and resp.json()["field"] == "by"
    doc = post(
        client, f"/runs/{run_id}/tasks/gate/approve", {"by": "alice", "comment": "ok"}, code=200
    )
    assert doc == {
        "run_id": run_id,
        "task": "gate",
        "decision": "approved",
        "by": "alice",
        "detail": "approved by alice: ok",
    }
    again = client.post(f"/runs/{run_id}/tasks/gate/approve", json={"by": "alice"}, headers=AUTH)
    assert again.status_code == 409
    assert client.wait(run_id)["state"] == "succeeded"
    events = client.get(f"/runs/{run_id}/events", headers=AUTH).json()
    assert any(e["detail"] == "approved by alice: ok" for e in events)


def test_reject_over_http(client: Client) -> None:
    run_id = _waiting(client)
    resp = client.post(f"/runs/{run_id}/tasks/gate/reject", json={"by": "alice"}, headers=AUTH)
    assert resp.status_code == 422 and resp.json()["field"] == "comment"
    resp = client.post(f"/runs/{run_id}/tasks/gate/reject", headers=AUTH)
    assert resp.status_code == 422 and resp.json()["field"] == "body"
    doc = post(
        client,
        f"/runs/{run_id}/tasks/gate/reject",
        {"by": "alice", "comment": "not today"},
        code=200,
    )
    assert doc["decision"] == "rejected"
    final = client.wait(run_id)
    assert final["state"] == "failed"
    assert "not today" in (final["tasks"][1]["error"] or "")


def test_approval_requests_that_cannot_apply(idle: Client) -> None:
    run_id = idle.submit(GATED)
    cases = [
        ("gate/approve", {"by": "alice"}, 409, "task", "not waiting"),  # still blocked
        ("build/approve", {}, 409, "task", "not an approval task"),
        ("nope/approve", {}, 404, "task", "approval tasks: gate"),
        ("gate/approve", {"extra": 1}, 422, "extra", "Extra inputs"),
        ("gate/approve", {"by": ""}, 422, "by", ""),
        ("-x/approve", {}, 422, "task", ""),
    ]
    for path, body, code, field, words in cases:
        resp = idle.post(f"/runs/{run_id}/tasks/{path}", json=body, headers=AUTH)
        assert resp.status_code == code, (path, resp.text)
        assert resp.json()["field"] == field, resp.json()
        assert words in resp.json()["error"], resp.json()
    resp = idle.post(f"/runs/{run_id}/tasks/gate/approve", content="{", headers=JSON)
    assert resp.status_code == 422 and resp.json()["field"] == "body"
    resp = idle.post("/runs/nope/tasks/gate/approve", headers=AUTH)
    assert resp.status_code == 404 and resp.json()["field"] == "run_id"


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_on_a_run_nobody_executes_gets_it_going(
    make_client: AppFactory,
    decision: str,
) -> None:
    server = make_client()
    run_id = _waiting(server)
    server.app.state.rf.engine.shutdown()  # type: ignore[attr-defined]  # the server "stops"
    server.wait(run_id, lambda d: d["owner"] is None and d["tasks"][1]["state"] == "ready")
    later = make_client(resume_orphans=False)
    body = {"by": "alice", "comment": "why"}
    post(later, f"/runs/{run_id}/tasks/gate/{decision}", body, code=200)
    final = later.wait(run_id)
    assert final["state"] == ("succeeded" if decision == "approve" else "failed")
