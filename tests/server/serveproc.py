"""`reviewflow serve` as a real process on loopback, for the tests that need its socket, its
signals or its stderr (tests/server is on sys.path; the `server` fixture is in conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

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
