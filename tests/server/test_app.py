"""The probes every app built by `create_app` (reviewflow.server.app) answers without a token:
/health, /ready (the store answers, its schema is the one this version reads) and /metrics (runs,
tasks and the queue, with or without an engine, and with the store down)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from apihelpers import AUTH, AppFactory, Client, sh, workflow

from reviewflow.store.sqlite import SCHEMA_VERSION


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


def test_ready_names_a_schema_this_version_does_not_read(idle: Client, tmp_path: Path) -> None:
    """A database file another reviewflow version migrated (or a half-restored backup): /ready
    says so, with the version found, instead of answering ready and failing every request."""
    assert idle.get("/ready").json()["schema_version"] == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "rf.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with idle.allow(503):
        resp = idle.get("/ready")
    assert resp.status_code == 503
    assert resp.json() == {
        "status": "unavailable",
        "reason": f"schema version {SCHEMA_VERSION + 1}, this reviewflow needs {SCHEMA_VERSION}",
        "schema_version": SCHEMA_VERSION + 1,
    }
    assert idle.get("/health").status_code == 200  # alive, only not ready
