"""`reviewflow serve` fires the schedules of its database and executes their runs."""

from __future__ import annotations

import time
from pathlib import Path

from apihelpers import AUTH, AppFactory

from reviewflow.config import validate_spec
from reviewflow.schedules import register
from reviewflow.store import SQLiteStore


def test_the_server_fires_and_executes_scheduled_runs(
    make_client: AppFactory, tmp_path: Path
) -> None:
    spec = validate_spec(
        {
            "name": "beat",
            "schedules": [{"interval": "1s", "catchup": "skip", "meta": {"team": "web"}}],
            "tasks": {"noop": {"type": "shell", "run": ["true"]}},
        }
    )
    setup = SQLiteStore(tmp_path / "rf.db")
    register(setup, spec)
    setup.close()
    client = make_client()
    deadline = time.monotonic() + 60
    while True:
        runs = client.get("/runs", headers=AUTH, params=[("meta", "schedule=beat")]).json()["runs"]
        if sum(r["state"] == "succeeded" for r in runs) >= 2:
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.1)
    done = [r for r in runs if r["state"] == "succeeded"]
    assert all(r["run_id"].startswith("beat.") for r in done)
    assert all(r["meta"]["team"] == "web" and r["meta"]["slot"].endswith("Z") for r in done)
