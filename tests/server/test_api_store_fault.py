"""A store fault in a server that executes runs: the run is interrupted (the database refused a
write), and `POST /runs/{id}/resume` carries it on here once the store writes again — even
within the lease the interrupted attempt left, which no live process holds any more."""

from __future__ import annotations

import time
from typing import Any

import pytest
from apihelpers import AUTH, AppFactory

from reviewflow.errors import StoreError
from reviewflow.store import SQLiteStore


def test_a_run_interrupted_by_a_store_fault_resumes_through_the_api(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [1_000_000]  # every write refused until the execution ended
    write = SQLiteStore.write

    def refusing(self: SQLiteStore, batch: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise StoreError(f"{self.path}: database or disk is full")
        return write(self, batch)

    monkeypatch.setattr(SQLiteStore, "write", refusing)
    server = make_client(resume_orphans=False)
    resp = server.post(
        "/runs", json={"name": "wf", "tasks": {"a": {"run": ["true"]}}}, headers=AUTH
    )
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    running = server.app.state.rf.running  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while run_id in running or failures[0] == 1_000_000:  # until a refused write ended it
        assert time.monotonic() < deadline, "the run was never interrupted"
        time.sleep(0.02)
    failures[0] = 0  # room again
    assert server.status(run_id)["state"] in ("pending", "running")

    resp = server.post(f"/runs/{run_id}/resume", headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert server.wait(run_id)["state"] == "succeeded"
