"""Shared fixtures and helpers of the reviewflow core test suite.

No mocks: stores are real (an in-process MemoryStore and a SQLite file under tmp_path), shell
tasks start real subprocesses and python tasks are real functions in tests/tasks_for_tests.py.

Adding a store backend means adding one entry to STORE_BACKENDS: a function that opens a
fresh, empty store for a test and one that opens a *second handle* on the same store (what
another process would see). Every test that takes the `store` fixture then runs on it too.

PostgreSQL is one: a real server started once per session (tests/pg.py), a fresh database per
test. Without server binaries its tests are skipped, unless REVIEWFLOW_REQUIRE_POSTGRES=1 (CI)
turns that into a failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Hypothesis profiles. "default": deterministic examples (derandomized: a busy 2-core CI meets
# the same ones on every run) and no per-example deadline (timing is not what is tested);
# `pytest --hypothesis-profile=long` draws fresh random examples, many more of them (the
# property-based parity test, tests/integration/test_rules_parity.py, runs 1/20 of max_examples).
settings.register_profile("default", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile("default")

# The tests check's coverage map is recorded inside the review's own run here (what the tests
# assert on): a background recorder would outlive its test and the throwaway repository.
# tests/review/test_testmap_record.py sets the other modes itself.
os.environ.setdefault("REVIEWFLOW_RECORD_MAP", "inline")

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    # The python tasks of the tests live in tests/tasks_for_tests.py (`call: tasks_for_tests:...`).
    sys.path.insert(0, str(TESTS_DIR))

import pg  # noqa: E402
from reviewflow.engine import Engine  # noqa: E402
from reviewflow.store import MemoryStore, SQLiteStore  # noqa: E402
from reviewflow.store.base import Store  # noqa: E402
from reviewflow.store.postgres import PostgresStore  # noqa: E402
from rfhelpers import FLUSH, HEARTBEAT, write_files  # noqa: E402


@dataclass(frozen=True)
class StoreBackend:
    """How to open a fresh store for one test, and a second handle on that same store."""

    open: Callable[[Path], Store]
    reopen: Callable[[Store, Path], Store]
    durable: bool
    needs: str | None = None  # a fixture to set up first (it may skip the test)
    cleanup: Callable[[Store, Path], None] | None = None  # after every handle is closed


def _sqlite_open(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "db.sqlite")


def _sqlite_reopen(store: Store, tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "db.sqlite")


def _memory_reopen(store: Store, tmp_path: Path) -> Store:
    return store  # a MemoryStore is only ever shared within the process, by reference


def _pg_open(tmp_path: Path) -> Store:
    return PostgresStore(pg_session().new_database())


def _pg_reopen(store: Store, tmp_path: Path) -> Store:
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url)


def _pg_cleanup(store: Store, tmp_path: Path) -> None:
    assert isinstance(store, PostgresStore)
    pg_session().drop_database(store.url)


STORE_BACKENDS: dict[str, StoreBackend] = {
    "memory": StoreBackend(lambda tmp_path: MemoryStore(), _memory_reopen, durable=False),
    "sqlite": StoreBackend(_sqlite_open, _sqlite_reopen, durable=True),
    "postgres": StoreBackend(
        _pg_open, _pg_reopen, durable=True, needs="pg_server", cleanup=_pg_cleanup
    ),
}


class Stores:
    """Opens and, at teardown, closes the store handles of one test."""

    def __init__(self, backend: StoreBackend, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self._opened: list[Store] = []
        self.main = self._track(backend.open(tmp_path))

    def _track(self, store: Store) -> Store:
        if all(store is not s for s in self._opened):
            self._opened.append(store)
        return store

    def second_handle(self) -> Store:
        """Another handle on the same data, as a second process would open it."""
        return self._track(self.backend.reopen(self.main, self.tmp_path))

    def close(self) -> None:
        for store in reversed(self._opened):
            store.close()
        if self.backend.cleanup is not None:
            self.backend.cleanup(self.main, self.tmp_path)


@pytest.fixture(params=sorted(STORE_BACKENDS), ids=sorted(STORE_BACKENDS))
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    backend = STORE_BACKENDS[request.param]
    if backend.needs:
        request.getfixturevalue(backend.needs)
    opened = Stores(backend, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def store(stores: Stores) -> Store:
    """A fresh store of each backend (ids "memory", "postgres", "sqlite")."""
    return stores.main


# --------------------------------------------------------------------------------- PostgreSQL

_PG: list[pg.PgServer] = []


def pg_session() -> pg.PgServer:
    """The session's server (the `pg_server` fixture must have started it)."""
    assert _PG, "request the pg_server fixture first"
    return _PG[0]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """A real PostgreSQL server for the whole session (see tests/pg.py)."""
    try:
        server = pg.start_session_server()
    except pg.Unavailable as exc:
        if pg.required():
            pytest.fail(f"{exc}, and {pg.ENV_REQUIRE}=1 requires PostgreSQL")
        pytest.skip(str(exc))
    _PG.append(server)
    try:
        yield server
    finally:
        _PG.clear()
        server.stop()


@pytest.fixture
def pg_url(pg_server: pg.PgServer) -> Iterator[str]:
    """URL of a fresh, migrated database (dropped after the test)."""
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[PostgresStore]:
    """A PostgresStore on a fresh, migrated database (closed after the test)."""
    store = PostgresStore(pg_url)
    yield store
    store.close()


@pytest.fixture
def pg_empty_url(pg_server: pg.PgServer) -> Iterator[str]:
    """URL of a fresh database without any schema (dropped after the test)."""
    url = pg_server.new_database(migrated=False)
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite"


@pytest.fixture
def sqlite_stores(sqlite_path: Path) -> Any:
    """Opens SQLiteStore handles on one file and closes them all at teardown."""
    opened: list[SQLiteStore] = []

    def open_one() -> SQLiteStore:
        s = SQLiteStore(sqlite_path)
        opened.append(s)
        return s

    yield open_one
    for s in reversed(opened):
        s.close()


@pytest.fixture
def make_engine(tmp_path: Path) -> Callable[..., Engine]:
    """Engine factory with the suite's fast flush/heartbeat and a runs dir under tmp_path."""

    def make(store: Store, **options: Any) -> Engine:
        options.setdefault("flush_interval", FLUSH)
        options.setdefault("heartbeat_interval", HEARTBEAT)
        options.setdefault("runs_dir", tmp_path / "runs")
        return Engine(store, **options)

    return make


# ------------------------------------------------------------------------------ plugins

PLUGIN_MODULE_PREFIXES = ("reviewflow_plugin_", "rfpt_")
"""Modules the plugin tests create (forgotten after each test)."""


@pytest.fixture
def fresh_registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Private copies of the registries; plugin modules imported by the test are forgotten."""
    from reviewflow import plugins as plugin_folders
    from reviewflow.executors import registry
    from reviewflow.review.checks.registry import checks

    monkeypatch.setattr(registry, "_types", dict(registry._types))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "plugin_errors", {})
    monkeypatch.setattr(checks, "_targets", dict(checks._targets))
    monkeypatch.setattr(checks, "_loaded", False)
    monkeypatch.setattr(checks, "plugin_errors", {})
    monkeypatch.setattr(plugin_folders, "_loaded", {})
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(PLUGIN_MODULE_PREFIXES):
            del sys.modules[name]


@pytest.fixture
def entry_point_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (dist-info on sys.path) with good and broken entry points."""
    site = tmp_path / "site"
    write_files(
        site,
        {
            "rfpt_ep_mod.py": """
            class OkType:
                name = "rfpt_ep_ok"
                def validate(self, spec): pass
                async def execute(self, ctx): return {"ok": ctx.params.get("x")}

            class Raising:
                def __init__(self):
                    raise RuntimeError("cannot build this task type")

            def check(ctx):
                return [{"rule": "r", "message": "m"}]
        """,
            "rfpt_ep-1.0.dist-info/METADATA": (
                "Metadata-Version: 2.1\nName: rfpt-ep\nVersion: 1.0\n"
            ),
            "rfpt_ep-1.0.dist-info/entry_points.txt": """
            [reviewflow.task_types]
            rfpt_ep_ghost = rfpt_ep_not_installed:Ghost
            rfpt_ep_ok = rfpt_ep_mod:OkType
            rfpt_ep_raises = rfpt_ep_mod:Raising

            [reviewflow.checks]
            rfpt-ep-attr = rfpt_ep_mod:no_such_function
            rfpt-ep-check = rfpt_ep_mod:check
            rfpt-ep-ghost = rfpt_ep_not_installed:check
        """,
        },
    )
    monkeypatch.syspath_prepend(str(site))
    return site


# ------------------------------------------------------------------------------ pytest-xdist


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`-n auto --dist loadgroup` in pyproject's addopts), keep the tests
    of a module that share a module-scoped fixture on one worker: such a fixture (a whole
    `reviewflow review`, a chromium) is set up once per worker that runs one of its tests, so
    spreading them would repeat the expensive setup instead of sharing it. Tests that share
    none go wherever a worker is free. A serial run (`-n 0`) ignores the marks."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    shared: dict[int, list[str]] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        module = item.nodeid.split("::", 1)[0]
        keys = [
            f"{module}::{name}"
            for name, defs in sorted(info.name2fixturedefs.items())
            if defs and defs[-1].scope == "module"
        ]
        if keys:
            shared[id(item)] = keys
            for key in keys[1:]:  # fixtures used together: one group
                parent[find(key)] = find(keys[0])
    for item in items:
        if id(item) in shared:
            item.add_marker(pytest.mark.xdist_group(find(shared[id(item)][0])))
