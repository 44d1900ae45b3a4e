"""What the SQLite store (reviewflow.store.sqlite) does beyond the Store contract
(test_store_base_contract.py): its file keeps everything across a reopen, a flush does not
rewrite a run's spec, and files written by older versions are still read."""

from __future__ import annotations

import sqlite3

from reviewflow.store import SQLiteStore
from reviewflow.store.base import Batch
from rfhelpers import blocked_tasks, create_run_in, event_tuple, run_record, task_row

OWNER_A = "host-a:1:aaaa"


def test_sqlite_store_keeps_everything_across_reopen(tmp_path) -> None:
    path = tmp_path / "sub" / "db.sqlite"  # the directory is created
    first = SQLiteStore(path)
    try:
        create_run_in(first)
        assert first.claim_run("r1", OWNER_A, 2000.0, expected=None)
        first.write(
            Batch(
                "r1",
                OWNER_A,
                2000.0,
                run=("running", 1.0, None, None),
                tasks=[task_row("a")],
                events=[event_tuple("r1", "running")],
            )
        )
    finally:
        first.close()
    again = SQLiteStore(path)
    try:
        run = again.get_run("r1")
        assert (run.state, run.owner) == ("running", OWNER_A)
        assert {t.name: t.state for t in again.get_tasks("r1")}["a"] == "running"
        assert [e.to_state for e in again.get_events("r1")] == ["pending", "running"]
    finally:
        again.close()


def test_sqlite_write_does_not_rewrite_the_spec(tmp_path) -> None:
    """Every flush updates the run row (lease, state): a spec stored in that row was written
    again by each one (44 MB a flush for a 100k-task run, quadratic in the run's size)."""
    path = tmp_path / "db.sqlite"
    store = SQLiteStore(path)
    try:
        big = '{"name": "wf", "description": "' + "x" * 1_000_000 + '"}'
        record = run_record()
        record.spec = big
        assert store.create_run(record, blocked_tasks(), [])
        assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
        with sqlite3.connect(path) as other:  # an empty log: what follows is the writes' own
            assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        wal = path.with_name(path.name + "-wal")
        for i in range(3):  # the row changes size each time: no in-place overwrite
            store.write(Batch("r1", OWNER_A, 2000.0, ("running", 1.0, None, "e" * i), [], []))
        assert wal.stat().st_size < 100_000  # 3 MB (3 copies of the spec) before
        assert store.get_run("r1").spec == big
    finally:
        store.close()


def test_sqlite_reads_the_spec_of_runs_stored_in_the_run_row(tmp_path) -> None:
    """Databases written before run_specs existed keep each spec in runs.spec."""
    path = tmp_path / "db.sqlite"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, workflow, state, spec, meta, created_at)"
            " VALUES ('old', 'wf', 'succeeded', '{\"name\": \"old\"}', '{}', 1.0)"
        )
    store = SQLiteStore(path)
    try:
        assert store.get_run("old").spec == '{"name": "old"}'
        assert [r.run_id for r in store.list_runs()] == ["old"]
    finally:
        store.close()
