"""The API on the PostgreSQL store: a run executed through it, and /ready following the
database's migrations (skipped without PostgreSQL, unless REVIEWFLOW_REQUIRE_POSTGRES=1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from apihelpers import RO, RW, Client, sh, workflow

from reviewflow.server import create_app
from reviewflow.store import PostgresStore, migrate


@pytest.fixture
def pg_client(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Client, str]]:
    monkeypatch.chdir(tmp_path)
    store = PostgresStore(pg_url)
    app = create_app(
        store,
        tokens=[RW, f"ro:{RO}"],
        runs_dir=tmp_path / "runs",
        engine_options={"flush_interval": 0.01, "heartbeat_interval": 0.1},
    )
    try:
        with Client(app) as client:
            yield client, pg_url
    finally:
        store.close()


def test_a_run_through_the_api_on_postgresql(pg_client: tuple[Client, str]) -> None:
    client, url = pg_client
    run_id = client.submit(
        workflow({"a": sh("echo hi"), "b": sh("true", needs=["a"])}), meta=["pr=1"]
    )
    assert client.wait(run_id)["state"] == "succeeded"
    page = client.get(
        "/runs", params={"meta": "pr=1"}, headers={"Authorization": f"Bearer {RO}"}
    ).json()
    assert [r["run_id"] for r in page["runs"]] == [run_id]
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["schema_version"] == migrate.latest()

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (migrate.latest(),))
    with client.allow(503):
        ready = client.get("/ready")
    assert ready.status_code == 503
    assert "reviewflow db upgrade" in ready.json()["reason"]
