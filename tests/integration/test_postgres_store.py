"""What only the PostgreSQL store has: URLs, its error boundary, its row locks.

The Store contract itself runs on PostgreSQL through the `store` fixture
(test_store_base_contract.py and the engine tests); these tests add what SQLite has no equivalent
of. Its migrations: test_store_migrate.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

import pg
from reviewflow.errors import StoreError
from reviewflow.store import open_store
from reviewflow.store.base import Batch, RunRecord, TaskRecord
from reviewflow.store.postgres import PostgresStore, redact

OWNER = "host-a:1:aaaa"


def _create(store: PostgresStore, run_id: str = "r1", tasks: tuple[str, ...] = ("a", "b")) -> None:
    run = RunRecord(
        run_id=run_id,
        workflow="wf",
        state="pending",
        spec="{}",
        meta={"z": "1", "a": "2"},
        created_at=1000.0,
    )
    event = (run_id, None, None, "pending", None, 1000.0, None)
    assert store.create_run(run, [TaskRecord(run_id, n, "blocked") for n in tasks], [event])


# ------------------------------------------------------------------------------- choosing it


def test_open_store_takes_postgres_urls(pg_url: str) -> None:
    scheme, rest = pg_url.split("://", 1)
    assert scheme == "postgresql"
    # postgres:// too, and a URL that went through Path (`--db` is a path option: "//" -> "/")
    for target in (pg_url, f"postgres://{rest}", Path(pg_url)):
        store = open_store(target)
        try:
            assert isinstance(store, PostgresStore)
            assert store.get_run("nope") is None
        finally:
            store.close()


def test_everything_survives_reopen_and_meta_keeps_its_order(pg_url: str) -> None:
    first = PostgresStore(pg_url)
    try:
        _create(first)
        assert first.claim_run("r1", OWNER, 2000.0, expected=None)
        first.write(
            Batch(
                "r1",
                OWNER,
                2000.0,
                run=("running", 1.0, None, None),
                events=[("r1", None, "pending", "running", None, 1.0, None)],
            )
        )
    finally:
        first.close()
    again = PostgresStore(pg_url)
    try:
        run = again.get_run("r1")
        assert (run.state, run.owner, list(run.meta)) == ("running", OWNER, ["z", "a"])
        assert [e.to_state for e in again.get_events("r1")] == ["pending", "running"]
    finally:
        again.close()


# -------------------------------------------------------------------- errors at the boundary


def test_a_connection_error_is_one_line_without_the_password() -> None:
    port = pg._free_port()  # nothing listens there
    for url in (
        f"postgresql://rf:s3cret@127.0.0.1:{port}/db",  # pragma: allowlist secret
        f"postgresql://rf@127.0.0.1:{port}/db?password=s3cret&connect_timeout=5",
    ):
        with pytest.raises(StoreError) as caught:
            PostgresStore(url)
        message = str(caught.value)
        assert message.startswith(f"cannot connect to postgresql://rf@127.0.0.1:{port}/db")
        assert "s3cret" not in message and "\n" not in message
        assert "refused" in message.lower()


def test_redact_hides_passwords_in_every_form() -> None:
    assert redact("postgresql://u:p@h:5432/d") == "postgresql://u@h:5432/d"
    assert redact("postgres://u:p@h1,h2/d?password=p&sslmode=require") == (
        "postgres://u@h1,h2/d?sslmode=require"
    )
    # pragma: allowlist nextline secret
    assert redact("host=h user=u password='p q' dbname=d") == "host=h user=u password=*** dbname=d"
    assert redact("postgresql:///d") == "postgresql:///d"


def test_driver_errors_become_store_errors(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        _create(store)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TABLE events")
        with pytest.raises(StoreError, match="events") as caught:
            store.get_events("r1")
        assert not isinstance(caught.value, psycopg.Error)
    finally:
        store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_run("r1")


def test_a_batch_naming_an_unknown_task_is_refused_whole(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        _create(store)
        assert store.claim_run("r1", OWNER, 2000.0, expected=None)
        row = ("running", 1, None, None, None, None, None, None, None, None, None)
        batch = Batch(
            "r1",
            OWNER,
            3000.0,
            run=("running", 1.0, None, None),
            tasks=[(*row, "a"), (*row, "ghost")],
            events=[("r1", "a", None, "running", 1, 1.0, None)],
        )
        with pytest.raises(StoreError, match="ghost"):
            store.write(batch)
        assert store.get_run("r1").lease_until == 2000.0
        assert {t.state for t in store.get_tasks("r1")} == {"blocked"}
        assert len(store.get_events("r1")) == 1
    finally:
        store.close()


def test_nul_characters_are_stored_as_replacement_characters(pg_url: str) -> None:
    """PostgreSQL text cannot hold NUL; an error message quoting binary output must not make
    every later batch of the run fail."""
    store = PostgresStore(pg_url)
    try:
        _create(store)
        assert store.claim_run("r1", OWNER, 2000.0, expected=None)
        row = ("failed", 1, None, None, None, None, None, "bad \x00 byte", None, None, None)
        store.write(
            Batch(
                "r1",
                OWNER,
                2000.0,
                run=("failed", 1.0, 2.0, "a\x00"),
                tasks=[(*row, "a")],
                events=[("r1", "a", "running", "failed", 1, 2.0, "x\x00y")],
            )
        )
        assert store.get_run("r1").error == "a\ufffd"
        assert {t.name: t.error for t in store.get_tasks("r1")}["a"] == "bad \ufffd byte"
        assert store.get_events("r1")[-1].detail == "x\ufffdy"
    finally:
        store.close()


# ------------------------------------------------------------------------------- row locks


def test_a_reader_following_events_misses_none_while_two_processes_add_them(
    pg_url: str,
) -> None:
    """Event ids come from a sequence (not in commit order across transactions); the run's row
    lock keeps one run's ids in commit order, so paging with after_id skips nothing."""
    owner_side, approver_side, reader = (PostgresStore(pg_url) for _ in range(3))
    try:
        _create(owner_side, tasks=tuple(f"gate{i}" for i in range(20)))
        assert owner_side.claim_run("r1", OWNER, 9e9, expected=None)
        done = threading.Event()

        def owner() -> None:
            for k in range(60):
                owner_side.write(
                    Batch(
                        "r1",
                        OWNER,
                        9e9,
                        events=[
                            ("r1", None, None, f"o{k}", None, 1.0, None),
                            ("r1", None, None, f"o{k}b", None, 1.0, None),
                        ],
                    )
                )

        def approver() -> None:
            for i in range(20):
                approver_side.decide_approval(
                    "r1",
                    f"gate{i}",
                    "approved",
                    "ann",
                    None,
                    1.0,
                    ("r1", f"gate{i}", None, "approved", 1, 1.0, None),
                )

        seen: list[int] = []

        def follow() -> None:
            while True:
                last = done.is_set()
                seen.extend(e.id for e in reader.get_events("r1", seen[-1] if seen else 0))
                if last:
                    return

        threads = [threading.Thread(target=f) for f in (owner, approver)]
        follower = threading.Thread(target=follow)
        follower.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        done.set()
        follower.join(60)
        assert seen == [e.id for e in reader.get_events("r1")]
        assert len(seen) == 1 + 120 + 20
    finally:
        for s in (owner_side, approver_side, reader):
            s.close()
