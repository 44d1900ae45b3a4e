"""The workers-mode queue (`cluster/queue.py`) driven directly, on a real PostgreSQL: a
submit is idempotent by run id (even when the COMMIT's answer was lost), a batch of runs stores
the new ones whole and leaves existing ones alone, text is stored as written, and a claim holds
back only what a limit really bounds; a run's last two successes recorded at once end it
once, and a task row changed after it was read is not overwritten. Workers running against it:
test_workers.py."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from reviewflow.cluster.queue import Cluster, Outcome, Pending
from reviewflow.states import RUN_TERMINAL
from reviewflow.store.postgres import PostgresStore
from rfhelpers import pg_task_row, py, tasks_by_name, workflow

RUN_ENDS = {s.value for s in RUN_TERMINAL}


class _AnswerLost:
    """The store's pool, whose next connection fails as it is handed back — after its
    transaction committed: a COMMIT applied whose answer the client never got."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.armed = True

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            yield conn
        if self.armed:
            self.armed = False
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def test_a_submit_whose_commit_answer_was_lost_says_what_the_database_holds(
    pg_store: PostgresStore,
) -> None:
    """`run --submit`: the connection drops after COMMIT. The run is there, so the submit
    says it was created (the caller would otherwise retry, or report a failure that is not)."""
    spec = workflow({"a": py("anoop")})
    pool = _AnswerLost(pg_store._pool)
    pg_store._pool = pool  # type: ignore[assignment]
    try:
        assert Cluster(pg_store).submit(spec, run_id="lost-answer") == ("lost-answer", True)
        assert not pool.armed  # the fault did fire
        pool.armed = True  # the same id again, its answer lost too: it existed before
        assert Cluster(pg_store).submit(spec, run_id="lost-answer") == ("lost-answer", False)
    finally:
        pg_store._pool = pool._pool
    assert pg_store.get_run("lost-answer") is not None
    assert {t.name: t.state for t in pg_store.get_tasks("lost-answer")} == {"a": "ready"}


def test_submitting_the_same_run_id_twice_creates_one_run(pg_store: PostgresStore) -> None:
    spec = workflow({"a": py("anoop"), "b": py("anoop", needs=["a"])})
    first, second = Cluster(pg_store), Cluster(pg_store)
    assert first.submit(spec, run_id="once", meta={"pr": "1"}) == ("once", True)
    other = workflow({"x": py("anoop")}, name="other")
    assert second.submit(other, run_id="once", meta={"pr": "2"}) == ("once", False)
    runs = [r for r in pg_store.list_runs(limit=10) if r.run_id == "once"]
    assert len(runs) == 1
    assert (runs[0].workflow, runs[0].meta, runs[0].mode) == ("wf", {"pr": "1"}, "workers")
    assert sorted(t.name for t in pg_store.get_tasks("once")) == ["a", "b"]
    assert [e.to_state for e in pg_store.get_events("once") if e.task is None] == [
        "pending",
        "running",
    ]


def test_a_batch_of_runs_stores_the_new_ones_whole_and_leaves_existing_ones_alone(
    pg_store: PostgresStore,
) -> None:
    """submit_many (a scheduler's batch of slots, one statement): each new run as submit makes
    it — roots ready, a delayed root due, dependents blocked, its first events — an existing id
    untouched, an id twice in the batch one run."""
    cluster = Cluster(pg_store)
    old = workflow({"x": py("anoop")}, name="old")
    assert cluster.submit(old, run_id="kept", meta={"v": "1"}) == ("kept", True)
    spec = workflow(
        {"a": py("anoop"), "b": py("anoop", needs=["a"]), "c": py("anoop", delay="1h")},
        on_failure={"h": py("anoop")},
    )
    done = Cluster(pg_store).submit_many(
        [
            (spec, "n1", {"v": "2"}),
            (spec, "kept", {"v": "3"}),
            (spec, "n2", None),
            (spec, "n1", {"v": "4"}),
        ]
    )
    assert done == [("n1", True), ("kept", False), ("n2", True), ("n1", False)]
    kept = pg_store.get_run("kept")
    assert kept is not None and (kept.workflow, kept.meta) == ("old", {"v": "1"})
    assert [t.name for t in pg_store.get_tasks("kept")] == ["x"]
    assert pg_store.get_run("n1").meta == {"v": "2"}  # type: ignore[union-attr]
    for rid in ("n1", "n2"):
        assert tasks_by_name(pg_store, rid)["a"].state == "ready"
        assert tasks_by_name(pg_store, rid)["b"].state == "blocked"
        assert tasks_by_name(pg_store, rid)["c"].state == "blocked"
        assert tasks_by_name(pg_store, rid)["c"].wait_reason  # says what it waits for
        assert tasks_by_name(pg_store, rid)["h"].state == "blocked"
        run_events = [(e.task, e.to_state) for e in pg_store.get_events(rid)]
        assert run_events == [(None, "pending"), (None, "running"), ("a", "ready")]
    claimed = {(c.run_id, c.name) for c in Cluster(pg_store).claim(10)}
    assert claimed == {("n1", "a"), ("n2", "a"), ("kept", "x")}


def test_another_worker_reads_the_stored_spec_back_as_submitted(pg_store: PostgresStore) -> None:
    """The workers' submit stores each task's non-default fields only (the spec every worker
    parses once per run): a worker that did not submit the run claims the very task specs
    the submitter had, defaults and non-defaults alike."""
    spec = workflow(
        {
            "a": py("anoop", priority="high", timeout="90s", retry={"max_retries": 0}),
            "b": py("anoop", needs=["a"], params={"k": [1, "v"]}, trigger="all_done"),
            "c": {"type": "approval", "on_timeout": "approve", "needs": ["a"]},
        },
        failure_policy="continue",
        concurrency_limits={"k": 2},
    )
    run_id, _ = Cluster(pg_store).submit(spec)
    stored = pg_store.get_run(run_id).spec  # type: ignore[union-attr]
    assert len(stored) < len(spec.model_dump_json())  # the compact format
    other = Cluster(pg_store)
    (a,) = other.claim(1)
    assert (a.run_id, a.name, a.spec) == (run_id, "a", spec.tasks["a"])
    assert other.graphs[run_id].tasks == {**spec.tasks, **spec.on_failure}
    assert other.graphs[run_id].spec == spec


def test_a_stored_task_this_worker_cannot_read_fails_alone(pg_store: PostgresStore) -> None:
    """A worker validates a stored spec's tasks as it reads them: a task it cannot read (a
    spec stored by another version) is claimed with the reason, for its attempt to fail with
    it, and the run's other tasks still run here."""
    spec = workflow({"a": py("anoop"), "b": py("anoop")})
    run_id, _ = Cluster(pg_store).submit(spec)
    with pg_store.session() as conn:
        text = conn.execute("SELECT spec FROM runs WHERE run_id = %s", (run_id,)).fetchone()[0]
        data = json.loads(text)
        data["tasks"]["b"]["priority"] = "urgent"
        conn.execute("UPDATE runs SET spec = %s WHERE run_id = %s", (json.dumps(data), run_id))
    claimed = {c.name: c for c in Cluster(pg_store).claim(2)}
    assert claimed["a"].spec == spec.tasks["a"] and claimed["a"].problem is None
    assert claimed["b"].spec is None
    assert "cannot read the run's workflow here" in (claimed["b"].problem or "")
    assert "urgent" in (claimed["b"].problem or "")


def test_text_with_nul_and_escapes_is_stored_as_written(pg_store: PostgresStore) -> None:
    """Errors and notes are stored through JSON batches: a NUL (which PostgreSQL text cannot
    hold) becomes U+FFFD as everywhere in the store, and a literal backslash-u0000 stays."""
    spec = workflow({"a": py("anoop", retry={"max_retries": 0})})
    cluster = Cluster(pg_store)
    run_id, _ = cluster.submit(spec)
    (a,) = cluster.claim(1)
    note = (run_id, "a", "running", "running", a.attempt, time.time(), "literal \\u0000 kept")
    error = "binary\x00output"
    cluster.record(
        Pending(
            [Outcome(run_id, "a", a.attempt, "failed", error=error, retryable=False)],
            [a.event, note],
        )
    )
    (task,) = pg_store.get_tasks(run_id)
    assert (task.state, task.error) == ("failed", "binary\ufffdoutput")
    details = [e.detail for e in pg_store.get_events(run_id) if e.task == "a"]
    assert "literal \\u0000 kept" in details
    assert "binary\ufffdoutput" in details
    assert pg_store.get_run(run_id).state == "failed"  # type: ignore[union-attr]


def test_a_key_without_a_limit_elsewhere_never_strands_held_tasks(pg_store: PostgresStore) -> None:
    """Run B names key gpu without a limit; run A limits gpu to 1. B's running tasks do not
    count against A's limit (so they cannot hold A's tasks back with no slot ever freed)."""
    cluster = Cluster(pg_store)
    cluster.submit(workflow({"b": py("anoop", concurrency_key="gpu")}, name="b"))
    (b,) = cluster.claim(1)
    a_id, _ = cluster.submit(
        workflow(
            {
                "a1": py("anoop", concurrency_key="gpu", concurrency_limit=1),
                "a2": py("anoop", concurrency_key="gpu", concurrency_limit=1),
            },
            name="a",
        )
    )
    claimed = cluster.claim(5)
    assert [c.name for c in claimed] == ["a1"]  # a2 held by A's own limit, not by B
    assert pg_task_row(pg_store, a_id, "a2")[:2] == ("ready", "key")
    cluster.record(
        Pending([Outcome(a_id, "a1", claimed[0].attempt, "succeeded")], [claimed[0].event, b.event])
    )
    assert [c.name for c in cluster.claim(5)] == ["a2"]


def _waiting_on_the_run_row(store: PostgresStore) -> int:
    """Backends of this database blocked on a lock in the count-off of a record."""
    with store.session() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE runs SET open_main%%'"
        ).fetchone()
    return int(row[0])  # type: ignore[index]


def test_the_last_two_tasks_recorded_at_once_end_the_run_exactly_once(
    pg_store: PostgresStore,
) -> None:
    """Successes of tasks nothing depends on are recorded without the run's lock (its gate
    shared): two workers' record transactions go at once, each counting its task off the run
    row only at its commit. When they hold the last two tasks, exactly one of them sees the
    count reach zero, and the run's outcome is decided once. Both transactions are held at
    their count-off (a third connection holds the run row) until both are in flight."""
    one, two = Cluster(pg_store), Cluster(pg_store)
    run_id, _ = one.submit(workflow({"a": py("anoop"), "b": py("anoop")}))
    (a,) = one.claim(1, start_events=True)
    (b,) = two.claim(1, start_events=True)
    errors: list[BaseException] = []

    def record(cluster: Cluster, claimed: Any) -> None:
        try:
            events = [] if claimed.recorded else [claimed.event]
            outcome = Outcome(run_id, claimed.name, claimed.attempt, "succeeded", result=1)
            assert cluster.record(Pending([outcome], events)) == []
        except BaseException as exc:  # seen by the test thread
            errors.append(exc)

    with psycopg.connect(pg_store.url) as blocker:
        blocker.execute("SELECT 1 FROM runs WHERE run_id = %s FOR NO KEY UPDATE", (run_id,))
        threads = [
            threading.Thread(target=record, args=(one, a)),
            threading.Thread(target=record, args=(two, b)),
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while _waiting_on_the_run_row(pg_store) < 2 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waiting_on_the_run_row(pg_store) == 2, errors
        blocker.rollback()
    for t in threads:
        t.join(30)
    assert not errors
    run = pg_store.get_run(run_id)
    assert run is not None and run.state == "succeeded"
    events = pg_store.get_events(run_id)
    ends = [e for e in events if e.task is None and e.to_state in RUN_ENDS]
    assert [e.to_state for e in ends] == ["succeeded"]
    assert {t.name: t.state for t in pg_store.get_tasks(run_id)} == {
        "a": "succeeded",
        "b": "succeeded",
    }
    ids = [e.id for e in events]
    assert ids == sorted(ids) and ids[-1] == ends[0].id  # the run's end is its last event


class _DiesAfterCommit(Cluster):
    """A worker that dies right after the commit that counted its run's last task off."""

    def _settle(self, counted: dict[str, Any]) -> None:
        pass


def test_a_run_whose_last_recorder_died_before_settling_it_is_settled_by_maintenance(
    pg_store: PostgresStore,
) -> None:
    dying = _DiesAfterCommit(pg_store)
    run_id, _ = dying.submit(workflow({"a": py("anoop")}))
    (a,) = dying.claim(1, start_events=True)
    events = [] if a.recorded else [a.event]
    dying.record(Pending([Outcome(run_id, "a", a.attempt, "succeeded")], events))
    assert pg_store.get_run(run_id).state == "running"  # type: ignore[union-attr]
    Cluster(pg_store).maintain()
    run = pg_store.get_run(run_id)
    assert run is not None and (run.state, run.request) == ("succeeded", None)


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_task_row_changed_after_it_was_read_is_not_overwritten(
    pg_store: PostgresStore, pipelined: bool
) -> None:
    """Task rows are written back guarded by the state and owner they were read in, checked
    on the server (no read-back: in a pipeline the check goes with the COMMIT). A row another
    writer changed in between rolls the whole transaction back, and it is done again on what
    the database holds now."""
    from reviewflow.cluster.queue import _clock

    cluster = Cluster(pg_store)
    run_id, _ = cluster.submit(workflow({"a": py("anoop")}))
    assert [c.name for c in cluster.claim(1)] == ["a"]
    seen: list[str | None] = []

    def go(conn: psycopg.Connection, now: Any) -> None:
        tx = cluster._run_tx(conn, run_id, _clock(now) if pipelined else now)
        row = tx.load(["a"])["a"]
        if not seen:  # first try: another writer takes the row after it was read
            with psycopg.connect(pg_store.url, autocommit=True) as other:
                other.execute(
                    "UPDATE tasks SET owner = 'someone else' WHERE run_id = %s AND name = 'a'",
                    (run_id,),
                )
        seen.append(row.owner)
        tx.succeeded(row, None)
        cluster._finish_txs(conn, [tx])

    cluster._retrying(go, pipelined=pipelined)
    assert seen == [cluster.owner, "someone else"]
    assert pg_task_row(pg_store, run_id, "a")[0] == "succeeded"


def test_successes_in_a_paused_run_are_recorded_under_its_lock_and_the_run_ends_once_resumed(
    pg_store: PostgresStore,
) -> None:
    """A success nothing depends on is recorded under the run's gate shared, unless the run is
    paused or stopping: then the transaction starts again under the run's lock (Escalate)."""
    cluster = Cluster(pg_store)
    run_id, _ = cluster.submit(workflow({"a": py("anoop"), "b": py("anoop")}))
    a, b = cluster.claim(2, start_events=True)
    assert cluster.control(run_id, "pause").value == "paused"
    cluster.record(Pending([Outcome(run_id, a.name, a.attempt, "succeeded")], []))
    assert pg_task_row(pg_store, run_id, a.name)[0] == "succeeded"
    assert pg_store.get_run(run_id).state == "paused"  # type: ignore[union-attr]
    assert cluster.control(run_id, "resume").value == "running"
    cluster.record(Pending([Outcome(run_id, b.name, b.attempt, "succeeded")], []))
    run = pg_store.get_run(run_id)
    assert run is not None and (run.state, run.request) == ("succeeded", None)
    ends = [e.to_state for e in pg_store.get_events(run_id) if e.task is None]
    assert ends == ["pending", "running", "paused", "running", "succeeded"]
