"""Fixtures of the HTTP API tests: apps built by `create_app` on a SQLite file under tmp_path,
driven in-process with FastAPI's TestClient (the app's lifespan, hence its engine, runs on the
client's event loop thread).

Every response goes through `Client.send` (apihelpers), which fails the test on any 5xx the
test did not announce (`client.allow(503)`): the API promises that nothing a client sends
produces a 500.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER_DIR = Path(__file__).resolve().parent
if str(SERVER_DIR) not in sys.path:
    sys.path.insert(0, str(SERVER_DIR))  # apihelpers

from apihelpers import RO, RW, SECRET, AppFactory, Client  # noqa: E402
from serveproc import Server  # noqa: E402

from reviewflow.server import create_app  # noqa: E402
from reviewflow.store import SQLiteStore  # noqa: E402


@pytest.fixture
def make_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppFactory]:
    """Build an app on tmp_path/rf.db (cwd is tmp_path) and enter a Client on it."""
    monkeypatch.chdir(tmp_path)
    opened: list[tuple[Client, SQLiteStore]] = []

    def make(*, execute: bool = True, secret: str | None = SECRET, **options: Any) -> Client:
        store = SQLiteStore(tmp_path / "rf.db")
        options.setdefault("engine_options", {"flush_interval": 0.01, "heartbeat_interval": 0.1})
        app = create_app(
            store,
            tokens=[RW, f"ro:{RO}"],
            webhook_secret=secret,
            execute=execute,
            runs_dir=tmp_path / "runs",
            work_dir=tmp_path / "work",
            sse_poll=0.05,
            **options,
        )
        client = Client(app)
        client.__enter__()
        opened.append((client, store))
        return client

    yield make
    for client, store in reversed(opened):
        client.__exit__(None, None, None)
        store.close()


@pytest.fixture
def client(make_client: AppFactory) -> Client:
    """An app that executes the runs it is given."""
    return make_client()


@pytest.fixture
def idle(make_client: AppFactory) -> Client:
    """An app that only stores runs (`serve --no-execute`)."""
    return make_client(execute=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`reviewflow serve` on a free loopback port, SIGTERMed at teardown."""
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
        srv.log.close()
