"""Submitting, listing and reading runs over HTTP: the same documents as the CLI's `--json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apihelpers import AUTH, YAML, AppFactory, Client, sh, workflow

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


def test_a_json_workflow_is_accepted_too(client: Client) -> None:
    resp = client.post("/runs", json=OK, headers=AUTH)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["created"] is True and body["workflow"] == "wf"
    assert resp.headers["location"] == f"/runs/{body['run_id']}"
    assert client.wait(body["run_id"])["state"] == "succeeded"


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


@pytest.mark.parametrize(
    ("body", "ctype", "field", "words"),
    [
        ("name: wf\ntasks:\n  a: {run: [true]\n", "application/yaml", "body", "line"),
        (
            "name: wf\ntasks:\n  a: {run: [true], timeot: 5}\n",
            "text/yaml",
            "tasks.a.timeot",
            "unknown field",
        ),
        (
            "name: wf\ntasks:\n  a: {run: [true], needs: [zz]}\n",
            "application/yaml",
            "tasks.a.needs",
            "unknown dependency",
        ),
        ("name: wf\ntasks: {}\n", "application/yaml", "tasks", "at least one task"),
        ("- just\n- a list\n", "application/yaml", "body", "mapping"),
        (
            "name: wf\ntasks:\n  a: {run: ['${HOME}']}\n",
            "application/yaml",
            "tasks.a.run[0]",
            "HOME is not set",
        ),
        ('{"name": "wf", "tasks": ', "application/json", "body", "invalid JSON"),
        ('["a"]', "application/json", "body", "JSON object"),
        (
            '{"name": "wf", "tasks": {"a": {"run": ["true"], "retry": {"max_retries": -1}}}}',
            "application/json",
            "tasks.a.retry.max_retries",
            "greater than or equal",
        ),
        ('{"name": "wf", "tasks": {"a": {"run": 5}}}', "application/json", "tasks.a.run", ""),
        (b"name: \xff\n", "application/yaml", "body", "UTF-8"),
        (
            '{"name": "wf", "tasks": {"a": {"run": ["echo", "\\ud800"]}}}',
            "application/json",
            "body",
            "surrogate",
        ),
        (
            'name: wf\ntasks:\n  a: {run: [echo, "\\udc00"]}\n',
            "application/yaml",
            "body",
            "escape",  # libyaml refuses the escape itself: "invalid Unicode character escape"
        ),
    ],
)
def test_bad_workflows_are_422_naming_the_field(
    idle: Client, body: str | bytes, ctype: str, field: str, words: str
) -> None:
    resp = idle.post("/runs", content=body, headers={**AUTH, "Content-Type": ctype})
    assert resp.status_code == 422, resp.text
    doc = resp.json()
    assert doc["field"] == field, doc
    assert words in doc["error"], doc
    assert idle.get("/runs", headers=AUTH).json()["runs"] == []


def test_unsupported_content_type_is_415(idle: Client) -> None:
    resp = idle.post("/runs", content="hello", headers={**AUTH, "Content-Type": "text/plain"})
    assert resp.status_code == 415 and resp.json()["field"] == "Content-Type"
    resp = idle.post("/runs", content="hello", headers=AUTH)
    assert resp.status_code == 415


def test_bad_meta_is_422(idle: Client) -> None:
    resp = idle.post(
        "/runs",
        params={"meta": "novalue"},
        content=json.dumps(OK),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and resp.json()["field"] == "meta"


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


def test_a_template_run_is_a_review_of_a_checkout(idle: Client, tmp_path: Path) -> None:
    sha, base = "a" * 40, "B" * 40
    body = {
        "template": "pr",
        "params": {"repo_url": "https://github.com/o/r.git", "sha": sha, "base": base, "pr": 7},
    }
    resp = idle.post("/runs", json=body, headers={**AUTH, "Idempotency-Key": "tpl-1"})
    assert resp.status_code == 201, resp.text
    doc = idle.status("tpl-1")
    assert doc["workflow"] == "review-pr"
    assert doc["meta"] == {"template": "pr", "repo": "o/r", "sha": sha, "base": "b" * 40, "pr": "7"}
    assert [t["name"] for t in doc["tasks"]] == [
        "init",
        "fetch-base",
        "fetch-head",
        "checkout",
        "review",
    ]
    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    spec = json.loads(store.get_run("tpl-1").spec)
    review = spec["tasks"]["review"]["run"]
    assert review[:2] == ["reviewflow", "review"]
    assert str(tmp_path / "work" / "tpl-1" / "repo") in review
    assert spec["tasks"]["fetch-head"]["run"][-2:] == ["https://github.com/o/r.git", sha]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (
            {"repo_url": "http://github.com/o/r", "sha": "a" * 40, "base": "b" * 40},
            "params.repo_url",
        ),
        (
            {"repo_url": "https://u:p@github.com/o/r", "sha": "a" * 40, "base": "b" * 40},
            "params.repo_url",
        ),
        ({"repo_url": "--upload-pack=x", "sha": "a" * 40, "base": "b" * 40}, "params.repo_url"),
        ({"repo_url": "https://github.com/o/r", "sha": "a" * 39, "base": "b" * 40}, "params.sha"),
        ({"repo_url": "https://github.com/o/r", "sha": "a" * 40}, "params.base"),
        (
            {"repo_url": "https://github.com/o/r", "sha": "a" * 40, "base": "b" * 40, "x": 1},
            "params.x",
        ),
    ],
)
def test_bad_template_parameters_are_422(
    idle: Client, params: dict[str, object], field: str
) -> None:
    resp = idle.post("/runs", json={"template": "pr", "params": params}, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field
    resp = idle.post(
        "/runs",
        json={
            "template": "nope",
            "params": {"repo_url": "https://github.com/o/r", "sha": "a" * 40, "base": "b" * 40},
        },
        headers=AUTH,
    )
    assert resp.status_code == 422 and resp.json()["field"] == "template"


def test_health_ready_and_metrics_need_no_token(client: Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "reason": None, "schema_version": 1}
    run_id = client.submit(
        workflow(
            {
                "a": sh("exit 3", retry={"max_retries": 1, "base_delay": "10ms"}),
                "b": sh("true", priority="high"),
            },
            failure_policy="continue",
        )
    )
    client.wait(run_id)
    text = client.get("/metrics").text
    assert "reviewflow_workers_alive 1.0" in text
    assert 'reviewflow_runs{state="failed"} 1.0' in text
    assert "reviewflow_task_retries_total 1.0" in text
    assert 'reviewflow_task_duration_seconds_count{outcome="succeeded"} 1.0' in text
    assert "reviewflow_claim_latency_seconds_count 3.0" in text
    assert "reviewflow_store_up 1.0" in text
    assert "reviewflow_lost_leases_total 0.0" in text


def test_metrics_without_an_engine_and_with_the_store_down(make_client: AppFactory) -> None:
    idle = make_client(execute=False)
    for key in ("q1", "q2"):
        idle.submit(workflow({"a": sh("true", priority="high"), "b": sh("true")}), key=key)
    text = idle.get("/metrics").text
    assert "reviewflow_workers_alive 0.0" in text
    assert 'reviewflow_tasks{state="blocked"} 4.0' in text
    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    store.close()
    with idle.allow(503):
        assert idle.get("/ready").status_code == 503
        assert "reviewflow_store_up 0.0" in idle.get("/metrics").text


def test_ready_tasks_are_counted_by_priority(make_client: AppFactory) -> None:
    client = make_client(concurrency=1)
    run_id = client.submit(
        workflow(
            {
                "first": sh("sleep 30", priority="high"),
                "low": sh("true", priority="low"),
                "medium": sh("true"),
            }
        )
    )
    client.wait(run_id, lambda d: [t["state"] for t in d["tasks"]] == ["running", "ready", "ready"])
    text = client.get("/metrics").text
    assert 'reviewflow_queue_depth{priority="1"} 1.0' in text
    assert 'reviewflow_queue_depth{priority="2"} 1.0' in text
    assert 'reviewflow_tasks{state="running"} 1.0' in text
    assert client.post(f"/runs/{run_id}/cancel", headers=AUTH).status_code == 202
    assert client.wait(run_id)["state"] == "cancelled"
