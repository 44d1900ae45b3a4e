"""`reviewflow serve` as a real process on loopback: health, a run executed to its end, live
server-sent events, a chunked body over the limit, and a clean, resumable shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TOKEN = "serve-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp_path / "serve.log").open("w+")
        env = {**os.environ, "REVIEWFLOW_API_TOKENS": f"{TOKEN},ro:reader", "NO_COLOR": "1"}
        env.pop("REVIEWFLOW_DB", None)
        env.pop("REVIEWFLOW_WEBHOOK_SECRET", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reviewflow",
                "serve",
                "--db",
                str(tmp_path / "rf.db"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--max-body-bytes",
                "65536",
                *extra,
            ],
            cwd=tmp_path,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=self.url, timeout=10.0)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def submit(self, tasks: dict[str, Any]) -> str:
        body = {"name": "wf", "tasks": tasks}
        resp = self.http.post("/runs", json=body, headers=AUTH)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["run_id"])

    def status(self, run_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/runs/{run_id}", headers=AUTH).json())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self.http.close()
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
        srv.log.close()


def sh(script: str, **body: Any) -> dict[str, Any]:
    return {"type": "shell", "run": ["sh", "-c", script], **body}


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


def test_a_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "wf", "tasks": {"a": {"run": ["true"]}}, "description": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    resp = server.http.post(
        "/runs", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["field"] == "body"
    assert server.http.get("/runs", headers=AUTH).json()["runs"] == []


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


@pytest.mark.parametrize("log_format", [[], ["--log-format", "json"]], ids=["auto", "json"])
def test_every_log_line_of_the_server_is_json(tmp_path: Path, log_format: list[str]) -> None:
    """stderr is not a terminal here: `auto` means JSON, and uvicorn's lines are JSON too."""
    server = Server(tmp_path, *log_format)
    try:
        assert server.http.get("/health").status_code == 200
        run_id = server.submit({"a": sh("true")})
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            while sock.recv(65536):
                pass
        assert server.stop() in (0, -signal.SIGTERM)
    finally:
        server.stop()
        output = server.output()
        server.log.close()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    events = [doc["event"] for doc in lines]
    assert "server.listen" in events and "server.stop" in events
    assert any(doc.get("logger") == "uvicorn.error" for doc in lines)  # its start-up lines
    health = {(d["event"], d["method"], d["status"]) for d in lines if d.get("path") == "/health"}
    assert health == {("http.request", "GET", 200)}
    assert any(doc.get("path") == "/runs" and doc.get("status") == 201 for doc in lines)
    assert any(doc["event"] == "Invalid HTTP request received." for doc in lines)
    assert run_id
