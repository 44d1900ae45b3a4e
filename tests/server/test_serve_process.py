"""`reviewflow serve` as a real process on loopback: health, a run executed to its end, live
server-sent events, and a clean, resumable shutdown."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from apihelpers import sh
from serveproc import AUTH, Server


def test_a_real_server_executes_runs_and_streams_them_live(server: Server, tmp_path: Path) -> None:
    assert server.http.get("/ready").json()["status"] == "ready"
    assert server.http.get("/runs").status_code == 401

    run_id = server.submit(
        {
            "env": sh('echo "token=${REVIEWFLOW_API_TOKENS:-unset}"'),
            "slow": sh("sleep 1", needs=["env"]),
            "last": sh("echo done", needs=["slow"]),
        }
    )
    seen: list[dict[str, Any]] = []
    live_state = None
    with server.http.stream(
        "GET", f"/runs/{run_id}/events/stream", headers=AUTH, timeout=30
    ) as resp:
        assert resp.status_code == 200
        event = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                seen.append({"event": event, **data})
                if event == "transition" and data["task"] == "slow" and data["to"] == "running":
                    live_state = server.status(run_id)["state"]  # received while it runs
                if event == "end":
                    break
    assert live_state == "running"
    assert seen[-1] == {"event": "end", "run_id": run_id, "state": "succeeded"}
    transitions = [s for s in seen if s["event"] == "transition"]
    stored = server.http.get(f"/runs/{run_id}/events", headers=AUTH).json()
    assert [t["id"] for t in transitions] == [e["id"] for e in stored]
    assert server.status(run_id)["state"] == "succeeded"
    log = server.http.get(f"/runs/{run_id}/tasks/env/log", headers=AUTH).text
    assert "token=unset" in log  # the server's tokens are not passed on to tasks


def test_shutdown_leaves_running_runs_resumable(server: Server) -> None:
    run_id = server.submit({"long": sh("sleep 60")})
    deadline = time.monotonic() + 10
    while server.status(run_id)["tasks"][0]["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert server.stop() in (0, -signal.SIGTERM), server.output()
    assert "server.stop" in server.output()
    assert time.monotonic() - started < 15
    from reviewflow.store import SQLiteStore

    store = SQLiteStore(Path(server.log.name).parent / "rf.db")
    try:
        record = store.get_run(run_id)
        assert record is not None
        assert record.state == "running" and record.owner is None  # resumable
        assert store.get_tasks(run_id)[0].state == "ready"
    finally:
        store.close()
