"""Runs over HTTP: the idempotency key, listing and filtering, reading a run, its events, graph
and logs: the same documents as the CLI's `--json`. What a POST /runs body may be:
tests/server/test_server_submit.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from apihelpers import AUTH, YAML, Client, sh, workflow

from reviewflow.status import run_status

OK = workflow({"a": sh("echo hello-from-a"), "b": sh("echo b", needs=["a"])})


def test_a_yaml_workflow_runs_to_the_end_and_reads_like_status_json(client: Client) -> None:
    run_id = client.submit(OK, meta=["pr=42", "team=core"])
    doc = client.wait(run_id)
    assert doc["state"] == "succeeded"
    assert doc["meta"] == {"pr": "42", "team": "core"}
    store = client.app.state.rf.store  # type: ignore[attr-defined]
    expected = json.loads(json.dumps(run_status(store, run_id), default=str))
    expected["metrics"].pop("duration_s"), doc["metrics"].pop("duration_s")
    assert doc == expected
    assert [t["name"] for t in doc["tasks"]] == ["a", "b"]


def test_the_idempotency_key_is_the_run_id(idle: Client) -> None:
    run_id = idle.submit(OK, key="my-run-1")
    assert run_id == "my-run-1"
    again = idle.post(
        "/runs",
        content=json.dumps(OK),
        headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": "my-run-1"},
    )
    assert again.status_code == 200, again.text
    assert again.json() == {
        "run_id": "my-run-1",
        "workflow": "wf",
        "state": "pending",
        "created": False,
    }
    runs = idle.get("/runs", headers=AUTH).json()["runs"]
    assert [r["run_id"] for r in runs] == ["my-run-1"]
    other = idle.post(
        "/runs",
        content="name: other\ntasks: {x: {run: [true]}}\n",
        headers={**YAML, "Idempotency-Key": "my-run-1"},
    )
    assert other.status_code == 422
    assert other.json()["field"] == "Idempotency-Key"
    bad = idle.post("/runs", content="x", headers={**YAML, "Idempotency-Key": ".hidden"})
    assert bad.status_code == 422 and bad.json()["field"] == "Idempotency-Key"


def test_a_run_stored_by_an_earlier_version_is_the_same_request(idle: Client) -> None:
    """Earlier versions stored a spec with every field written; this one writes only what
    each task sets. The same workflow posted again under the same key is the same request."""
    from reviewflow.config import validate_spec
    from reviewflow.store import RunRecord, TaskRecord

    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    spec = validate_spec(OK)
    record = RunRecord("old-run", "wf", "pending", spec.model_dump_json(), {}, time.time())
    store.create_run(record, [TaskRecord("old-run", n, "blocked") for n in spec.tasks], [])
    again = idle.post(
        "/runs",
        content=json.dumps(OK),
        headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": "old-run"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    graph = idle.get("/runs/old-run/graph", headers=AUTH)  # the old text still reads
    assert graph.status_code == 200 and graph.text.startswith("flowchart"), graph.text
    assert graph.text.count("-->") == 1, graph.text


def test_list_filters_by_state_workflow_and_meta_and_pages(idle: Client) -> None:
    for i in range(5):
        idle.submit(
            workflow({"a": sh("true")}, name=f"wf{i % 2}"),
            key=f"run-{i}",
            meta=[f"pr={i}", "team=core"],
        )
    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    store.request("run-1", "cancel")  # no state change: filters see pending
    runs = idle.get("/runs", headers=AUTH).json()["runs"]
    assert [r["run_id"] for r in runs] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert set(runs[0]) == {
        "run_id",
        "workflow",
        "state",
        "meta",
        "created_at",
        "finished_at",
        "error",
    }

    def ids(**params: object) -> list[str]:
        resp = idle.get("/runs", params=params, headers=AUTH)
        assert resp.status_code == 200, resp.text
        return [r["run_id"] for r in resp.json()["runs"]]

    assert ids(workflow="wf1") == ["run-3", "run-1"]
    assert ids(meta="pr=2") == ["run-2"]
    assert ids(meta=["team=core", "pr=3"]) == ["run-3"]
    assert ids(state="pending", workflow="wf0") == ["run-4", "run-2", "run-0"]
    assert ids(state="succeeded") == []
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = idle.get("/runs", params=params, headers=AUTH).json()
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["run-4", "run-3", "run-2", "run-1", "run-0"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"state": "bogus"}, "state"),
        ({"cursor": "!!"}, "cursor"),
        ({"meta": "x"}, "meta"),
        ({"stat": "failed"}, "stat"),
        ({"workflow": ["a", "b"]}, "workflow"),
    ],
)
def test_bad_list_parameters_are_422(idle: Client, params: dict[str, object], field: str) -> None:
    resp = idle.get("/runs", params=params, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field


@pytest.mark.parametrize(
    "path",
    [
        "/runs/{id}",
        "/runs/{id}/events",
        "/runs/{id}/graph",
        "/runs/{id}/events/stream",
        "/runs/{id}/tasks/a/log",
    ],
)
def test_unknown_runs_are_404_and_malformed_ids_422(idle: Client, path: str) -> None:
    resp = idle.get(path.format(id="no-such-run"), headers=AUTH)
    assert resp.status_code == 404, resp.text
    assert resp.json() == {"error": "no run with id 'no-such-run'", "field": "run_id"}
    resp = idle.get(path.format(id="-bad-id"), headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "run_id"
    resp = idle.get(path.format(id="x" * 201), headers=AUTH)
    assert resp.status_code == 422


def test_events_graph_and_logs(client: Client, tmp_path: Path) -> None:
    run_id = client.submit(
        workflow(
            {
                "a": sh("echo first; exit 1", retry={"max_retries": 1, "base_delay": "10ms"}),
                "b": sh("echo b", needs=["a"]),
            }
        )
    )
    assert client.wait(run_id)["state"] == "failed"
    events = client.get(f"/runs/{run_id}/events", headers=AUTH).json()
    assert events[0]["task"] is None and events[0]["to"] == "pending"
    assert set(events[0]) == {"id", "run_id", "task", "from", "to", "attempt", "at", "detail"}
    assert [e["to"] for e in events if e["task"] == "a"] == [
        "ready",
        "running",
        "retry_wait",
        "ready",
        "running",
        "failed",
    ]
    later = client.get(
        f"/runs/{run_id}/events", params={"after": events[-2]["id"]}, headers=AUTH
    ).json()
    assert later == events[-1:]

    graph = client.get(f"/runs/{run_id}/graph", headers=AUTH)
    assert graph.status_code == 200
    assert graph.headers["content-type"].startswith("text/plain")
    assert graph.text.startswith("flowchart TD")
    assert "a<br/><small>failed</small>" in graph.text and "classDef cancelled" in graph.text

    log = client.get(f"/runs/{run_id}/tasks/a/log", headers=AUTH)
    assert log.status_code == 200 and "first" in log.text
    first = client.get(f"/runs/{run_id}/tasks/a/log", params={"attempt": 1}, headers=AUTH)
    assert first.status_code == 200 and "first" in first.text
    for params, field, code in [({"attempt": 3}, "attempt", 404), ({"attempt": 0}, "attempt", 422)]:
        resp = client.get(f"/runs/{run_id}/tasks/a/log", params=params, headers=AUTH)
        assert resp.status_code == code and resp.json()["field"] == field
    resp = client.get(f"/runs/{run_id}/tasks/b/log", headers=AUTH)
    assert resp.status_code == 404 and "not started" in resp.json()["error"]
    resp = client.get(f"/runs/{run_id}/tasks/zz/log", headers=AUTH)
    assert resp.status_code == 404 and resp.json()["field"] == "task"
