"""The API in front of `reviewflow worker`s (`serve --no-execute` on PostgreSQL): runs posted
to it are queued for the workers, control endpoints act on them in the database, /metrics
counts the live workers. Real PostgreSQL, a real worker process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelpers import AUTH, RO, RW, Client, sh, workflow

from reviewflow.cluster.queue import Cluster
from reviewflow.server import create_app
from reviewflow.store import PostgresStore


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url)
    yield s
    s.close()


@pytest.fixture
def api(store: PostgresStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.chdir(tmp_path)
    app = create_app(store, tokens=[RW, f"ro:{RO}"], runs_dir=tmp_path / "runs", execute=False)
    with Client(app) as client:
        yield client


@pytest.fixture
def worker(pg_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reviewflow",
                "worker",
                "--db",
                pg_url,
                "--name",
                "api-w1",
                "--lease-ttl",
                "2",
                "--poll-interval",
                "0.1",
                "--grace",
                "1",
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _metric(client: Client, name: str) -> float:
    """A sample's value; 0 while a labelled series has no sample yet."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_posted_run_is_executed_by_a_worker(
    api: Client, store: PostgresStore, worker: subprocess.Popen[bytes]
) -> None:
    run_id = api.submit(workflow({"a": sh("echo hi"), "b": sh("true", needs=["a"])}))
    record = store.get_run(run_id)
    assert record is not None and record.mode == "workers"
    assert api.wait(run_id)["state"] == "succeeded"
    deadline = time.monotonic() + 10
    while _metric(api, "reviewflow_workers_alive") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _metric(api, "reviewflow_workers_alive") == 1
    # the server executes nothing: its histograms come from the workers' events
    while (
        _metric(api, 'reviewflow_task_duration_seconds_count{outcome="succeeded"}') < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert _metric(api, 'reviewflow_task_duration_seconds_count{outcome="succeeded"}') == 2
    assert _metric(api, "reviewflow_claim_latency_seconds_count") == 2


def test_no_workers_leaves_the_run_queued(api: Client, store: PostgresStore) -> None:
    run_id = api.submit(workflow({"a": sh("true")}))
    time.sleep(0.3)
    assert api.task_state(run_id, "a") == "ready"
    assert _metric(api, "reviewflow_workers_alive") == 0


def test_cancel_pause_resume_act_on_a_workers_run(
    api: Client, store: PostgresStore, worker: subprocess.Popen[bytes]
) -> None:
    run_id = api.submit(workflow({"slow": sh("sleep 30"), "after": sh("true", needs=["slow"])}))
    api.wait(run_id, lambda doc: any(t["state"] == "running" for t in doc["tasks"]))
    paused = api.post(f"/runs/{run_id}/pause", headers=AUTH)
    assert paused.status_code == 202, paused.text
    assert paused.json()["how"] == "workers" and paused.json()["state"] == "paused"
    resumed = api.post(f"/runs/{run_id}/resume", headers=AUTH)
    assert resumed.json()["state"] == "running"
    cancelled = api.post(f"/runs/{run_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 202 and cancelled.json()["how"] == "workers"
    doc = api.wait(run_id)
    assert doc["state"] == "cancelled"
    states = {t["name"]: t["state"] for t in doc["tasks"]}
    assert states == {"slow": "cancelled", "after": "cancelled"}


def test_an_executing_server_leaves_workers_runs_alone(
    store: PostgresStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that executes runs must not take a queued workers run over at startup (or
    when asked to resume it): the workers own it."""
    from reviewflow.config import validate_spec

    monkeypatch.chdir(tmp_path)
    spec = validate_spec(workflow({"a": sh("true")}))
    run_id, _ = Cluster(store).submit(spec)
    app = create_app(store, tokens=[RW], runs_dir=tmp_path / "runs", execute=True)
    with Client(app) as client:
        time.sleep(0.3)
        assert client.task_state(run_id, "a") == "ready"
        resumed = client.post(f"/runs/{run_id}/resume", headers=AUTH)
        assert resumed.json()["how"] == "workers"
        time.sleep(0.3)
        assert client.task_state(run_id, "a") == "ready"


def test_a_big_workflow_is_queued_for_the_workers_by_a_child(
    api: Client, store: PostgresStore
) -> None:
    """A body over reading.BIG_BODY is read and queued by a child process, on its own
    connection to the same database."""
    from reviewflow.server.reading import BIG_BODY

    doc = workflow({"a": sh("true"), "b": sh("true", needs=["a"])}, description="x" * BIG_BODY)
    resp = api.post("/runs", json=doc, headers={**AUTH, "Idempotency-Key": "big-1"})
    assert resp.status_code == 201, resp.text
    record = store.get_run("big-1")
    assert record is not None and record.mode == "workers"
    assert {t.name: t.state for t in store.get_tasks("big-1")} == {"a": "ready", "b": "blocked"}
