"""Schedules through the HTTP API: list / add / pause / resume / delete with the CLI's
validation (422 naming the field), write endpoints behind a write token; on SQLite and on
PostgreSQL, and seen by the CLI on the same database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apihelpers import AUTH, RO, RO_AUTH, RW, AppFactory, Client

from reviewflow.server import create_app
from reviewflow.store import PostgresStore

JSON = {"Content-Type": "application/json", **AUTH}
NOOP = {"noop": {"type": "shell", "run": ["true"]}}


def beat(**extra: Any) -> dict[str, Any]:
    return {"name": "beat", "tasks": NOOP, **extra}


@pytest.fixture
def api(make_client: AppFactory) -> Client:
    return make_client(schedules=False)  # nothing fires: the rows stay as the requests left them


def test_add_list_pause_resume_delete(api: Client, tmp_path: Path) -> None:
    body = beat(schedules=[{"cron": "0 3 * * 1-5", "timezone": "Europe/Paris"}])
    added = api.post("/schedules", content=yaml.safe_dump(body), headers={
        "Content-Type": "application/yaml", **AUTH})  # fmt: skip
    assert added.status_code == 201, added.text
    (doc,) = added.json()["schedules"]
    assert (doc["id"], doc["when"], doc["paused"], doc["error"]) == (
        "beat",
        "0 3 * * 1-5 (Europe/Paris)",
        False,
        None,
    )
    flags = api.post(
        "/schedules",
        json={"name": "probe", "tasks": NOOP},
        headers=AUTH,
        params=[("interval", "30s"), ("catchup", "skip"), ("name", "probe-30s"),
                ("meta", "kind=probe")],
    )  # fmt: skip
    assert flags.status_code == 201, flags.text
    (probe,) = flags.json()["schedules"]
    assert (probe["id"], probe["interval"], probe["catchup"], probe["meta"]) == (
        "probe-30s",
        30.0,
        "skip",
        {"kind": "probe"},
    )
    listed = api.get("/schedules", headers=RO_AUTH).json()["schedules"]
    assert [s["id"] for s in listed] == ["beat", "probe-30s"]
    assert api.get("/schedules/beat", headers=RO_AUTH).json() == doc

    paused = api.post("/schedules/beat/pause", headers=AUTH)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    resumed = api.post("/schedules/beat/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    # The CLI sees what the API did, on the same database file.
    cli = subprocess.run(
        [sys.executable, "-m", "reviewflow", "schedule", "list", "--db", "rf.db", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert cli.returncode == 0, cli.stderr
    assert [s["id"] for s in json.loads(cli.stdout)] == ["beat", "probe-30s"]

    assert api.delete("/schedules/beat", headers=AUTH).status_code == 204
    assert api.get("/schedules/beat", headers=AUTH).status_code == 404
    gone = api.delete("/schedules/beat", headers=AUTH)
    assert gone.status_code == 404 and gone.json()["field"] == "schedule_id"
    for action in ("pause", "resume"):
        missing = api.post(f"/schedules/nope/{action}", headers=AUTH)
        assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_write_endpoints_need_a_write_token(api: Client) -> None:
    api.post("/schedules", json=beat(schedules=[{"interval": "1m"}]), headers=AUTH)
    body = json.dumps(beat(schedules=[{"interval": "1m"}]))
    ro_json = {"Content-Type": "application/json", **RO_AUTH}
    assert api.post("/schedules", content=body, headers=ro_json).status_code == 403
    assert api.post("/schedules/beat/pause", headers=RO_AUTH).status_code == 403
    assert api.post("/schedules/beat/resume", headers=RO_AUTH).status_code == 403
    assert api.delete("/schedules/beat", headers=RO_AUTH).status_code == 403
    assert api.get("/schedules").status_code == 401
    assert api.post("/schedules/beat/pause").status_code == 401
    (row,) = api.get("/schedules", headers=RO_AUTH).json()["schedules"]
    assert row["paused"] is False  # nothing the refused requests asked for happened


@pytest.mark.parametrize(
    ("schedules", "params", "field", "message"),
    [
        ([{"cron": "61 * * * *"}], [], "schedules.0.cron", "invalid cron"),
        ([{"cron": "* * * * *", "timezone": "Mars/Base"}], [], "schedules.0.timezone",
         "unknown time zone"),
        ([], [("cron", "61 * * * *")], "cron", "invalid cron"),
        ([], [("cron", "* * * * *"), ("timezone", "Mars/Base")], "timezone", "unknown time zone"),
        ([], [("interval", "0.1s")], "interval", "at least 1 s"),
        ([], [("interval", "1m"), ("jitter", "5m")], "jitter", "shorter than the interval"),
        ([], [("cron", "* * * * *"), ("catchup", "some")], "catchup", ""),
        ([], [("jitter", "5s")], "jitter", "goes with cron or interval"),
        ([], [], "schedules", "no schedules"),
        ([], [("interval", "1m"), ("meta", "novalue")], "meta", "key=value"),
    ],
)  # fmt: skip
def test_bad_schedules_are_422_naming_the_field(
    api: Client, schedules: list[Any], params: list[tuple[str, str]], field: str, message: str
) -> None:
    resp = api.post("/schedules", json=beat(schedules=schedules), headers=AUTH, params=params)
    assert resp.status_code == 422, resp.text
    error = resp.json()
    assert error["field"] == field and message in error["error"]
    assert "Traceback" not in resp.text and len(error["error"].splitlines()) == 1
    assert api.get("/schedules", headers=AUTH).json()["schedules"] == []


def test_an_unsupported_body_is_415(api: Client) -> None:
    resp = api.post("/schedules", content="x", headers={"Content-Type": "text/plain", **AUTH})
    assert resp.status_code == 415 and resp.json()["field"] == "Content-Type"


def test_the_api_shows_why_a_schedule_fails(api: Client, tmp_path: Path) -> None:
    import dataclasses
    import time

    from reviewflow.engine import Engine
    from reviewflow.schedules import Scheduler
    from reviewflow.store import SQLiteStore

    assert api.post("/schedules", json=beat(schedules=[{"interval": "1s"}]),
                    headers=AUTH).status_code == 201  # fmt: skip
    store = SQLiteStore(tmp_path / "rf.db")
    try:
        row = store.get_schedule("beat")
        assert row is not None
        spec = json.loads(row.spec)
        spec["tasks"]["noop"]["type"] = "gone-plugin"
        store.put_schedule(dataclasses.replace(row, spec=json.dumps(spec), next_fire=0.0,
                                               next_slot=time.time() - 1))  # fmt: skip
        engine = Engine(store)
        Scheduler(store, lambda spec, rid, meta: engine.submit(spec, run_id=rid, meta=meta)).tick()
    finally:
        store.close()
    doc = api.get("/schedules/beat", headers=RO_AUTH).json()
    assert "gone-plugin" in doc["error"]


@pytest.fixture
def pg_api(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.chdir(tmp_path)
    store = PostgresStore(pg_url)
    app = create_app(
        store, tokens=[RW, f"ro:{RO}"], runs_dir=tmp_path / "runs", execute=False,
        schedules=False,
    )  # fmt: skip
    try:
        with Client(app) as client:
            yield client
    finally:
        store.close()


def test_schedules_through_the_api_on_postgresql(pg_api: Client) -> None:
    added = pg_api.post(
        "/schedules", json={"name": "pgbeat", "tasks": NOOP}, headers=AUTH,
        params=[("cron", "*/10 * * * * *")],
    )  # fmt: skip
    assert added.status_code == 201, added.text
    assert pg_api.post("/schedules/pgbeat/pause", headers=AUTH).json()["paused"] is True
    (row,) = [s for s in pg_api.get("/schedules", headers=RO_AUTH).json()["schedules"]
              if s["id"] == "pgbeat"]  # fmt: skip
    assert row["paused"] is True and row["when"] == "*/10 * * * * *"
    assert pg_api.delete("/schedules/pgbeat", headers=AUTH).status_code == 204
    assert pg_api.get("/schedules/pgbeat", headers=AUTH).status_code == 404


def test_a_server_without_an_engine_queues_scheduled_runs_for_workers(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --no-execute` on PostgreSQL fires schedules into the workers' queue (a claim's
    runs stored in one statement): each run is there with its first task ready."""
    import time

    monkeypatch.chdir(tmp_path)
    store = PostgresStore(pg_url)
    app = create_app(store, tokens=[RW], runs_dir=tmp_path / "runs", execute=False)
    try:
        with Client(app) as client:
            added = client.post(
                "/schedules", json={"name": "queued", "tasks": NOOP}, headers=AUTH,
                params=[("interval", "1s"), ("catchup", "skip")],
            )  # fmt: skip
            assert added.status_code == 201, added.text
            deadline = time.monotonic() + 60
            while not (
                runs := client.get(
                    "/runs", headers=AUTH, params={"meta": "schedule=queued"}
                ).json()["runs"]
            ):
                assert time.monotonic() < deadline, "no scheduled run"
                time.sleep(0.1)  # fmt: skip
        run = store.get_run(runs[0]["run_id"])
        assert run is not None and run.mode == "workers" and run.meta["schedule"] == "queued"
        assert [t.state for t in store.get_tasks(run.run_id)] == ["ready"]
    finally:
        store.close()
