"""The Store contract (the protocol of reviewflow.store.base), run against every backend in
conftest.STORE_BACKENDS. What one backend does beyond it: test_store_sqlite.py,
test_store_memory.py, test_postgres_store.py."""

from __future__ import annotations

import threading
import time

import pytest

from reviewflow.errors import LeaseLost, RunNotFound
from reviewflow.store.base import Batch, RunRecord
from rfhelpers import blocked_tasks, create_run_in, event_tuple, task_row

OWNER_A = "host-a:1:aaaa"
OWNER_B = "host-b:2:bbbb"


# ------------------------------------------------------------------------------ create/read


def test_create_run_then_read_it_back(store) -> None:
    create_run_in(store)
    run = store.get_run("r1")
    assert (run.run_id, run.workflow, run.state, run.spec, run.meta, run.created_at) == (
        "r1",
        "wf",
        "pending",
        '{"name": "wf"}',
        {"pr": "7"},
        1000.0,
    )
    assert (run.owner, run.lease_until, run.request, run.started_at) == (None, None, None, None)
    tasks = store.get_tasks("r1")
    assert [t.name for t in tasks] == ["b", "a", "c"]  # definition order, not alphabetical
    assert all((t.state, t.attempts) == ("blocked", 0) for t in tasks)
    assert [(e.to_state, e.task) for e in store.get_events("r1")] == [("pending", None)]


def test_a_run_read_without_its_spec_has_everything_else(store) -> None:
    # What the engine reads when it already holds the spec it submitted (a 1M-task spec's JSON
    # is ~440 MB): the same run, the spec text left out or kept, never another run's.
    create_run_in(store)
    create_run_in(store, "r2", created_at=2000.0)
    full, lean = store.get_run("r2"), store.get_run("r2", spec=False)
    assert lean is not None and lean.spec in ("", full.spec)
    lean.spec = full.spec
    assert lean == full
    assert store.get_run("nope", spec=False) is None


def test_unknown_run_reads_as_empty(store) -> None:
    assert store.get_run("nope") is None
    assert store.get_tasks("nope") == []
    assert store.get_events("nope") == []


def test_create_run_is_idempotent_and_changes_nothing_the_second_time(store) -> None:
    create_run_in(store)
    before = (store.get_run("r1"), store.get_tasks("r1"), store.get_events("r1"))
    other = RunRecord(
        run_id="r1", workflow="other", state="running", spec="{}", meta={}, created_at=5.0
    )
    assert (
        store.create_run(other, blocked_tasks("r1", ("x",)), [event_tuple("r1", "running")])
        is False
    )
    assert (store.get_run("r1"), store.get_tasks("r1"), store.get_events("r1")) == before


def test_list_runs_most_recent_first(store) -> None:
    for i, created in enumerate([30.0, 10.0, 20.0]):
        create_run_in(store, f"r{i}", created_at=created)
    assert [r.run_id for r in store.list_runs()] == ["r0", "r2", "r1"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["r0", "r2"]


def test_records_read_are_copies(store) -> None:
    create_run_in(store)
    run = store.get_run("r1")
    run.state = "succeeded"
    run.owner = OWNER_A
    store.get_tasks("r1")[0].state = "failed"
    assert store.get_run("r1").state == "pending"
    assert store.get_run("r1").owner is None
    assert store.get_tasks("r1")[0].state == "blocked"


# --------------------------------------------------------------------------- claim/release


def test_claim_run_is_compare_and_swap(store) -> None:
    create_run_in(store)
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=OWNER_B) is False
    assert store.get_run("r1").owner is None
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None) is True
    run = store.get_run("r1")
    assert (run.owner, run.lease_until) == (OWNER_A, 2000.0)
    # a second claimer that still believes the run is unowned loses
    assert store.claim_run("r1", OWNER_B, 3000.0, expected=None) is False
    assert store.get_run("r1").owner == OWNER_A
    # taking over from a known (dead) owner succeeds
    assert store.claim_run("r1", OWNER_B, 3000.0, expected=OWNER_A) is True
    assert (store.get_run("r1").owner, store.get_run("r1").lease_until) == (OWNER_B, 3000.0)


def test_claim_unknown_run_raises(store) -> None:
    with pytest.raises(RunNotFound):
        store.claim_run("nope", OWNER_A, 1.0, expected=None)


def test_release_run_only_by_its_owner(store) -> None:
    create_run_in(store)
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
    store.release_run("r1", OWNER_B)
    assert store.get_run("r1").owner == OWNER_A
    store.release_run("r1", OWNER_A)
    run = store.get_run("r1")
    assert (run.owner, run.lease_until) == (None, None)
    assert store.claim_run("r1", OWNER_B, 2000.0, expected=None)


# ------------------------------------------------------------------------------------ write


def test_write_applies_run_tasks_and_events_and_renews_the_lease(store) -> None:
    create_run_in(store)
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
    batch = Batch(
        run_id="r1",
        owner=OWNER_A,
        lease_until=2500.0,
        run=("running", 1001.0, None, None),
        tasks=[task_row("a", ready_at=1001.0, started_at=1001.5, wait_reason=None)],
        events=[event_tuple("r1", "running", at=1001.0), event_tuple("r1", "running", "a", 1001.5)],
    )
    assert store.write(batch) is None
    run = store.get_run("r1")
    assert (run.state, run.started_at, run.lease_until) == ("running", 1001.0, 2500.0)
    a = {t.name: t for t in store.get_tasks("r1")}["a"]
    assert (a.state, a.attempts, a.ready_at, a.started_at) == ("running", 1, 1001.0, 1001.5)
    assert [(e.task, e.to_state) for e in store.get_events("r1")] == [
        (None, "pending"),
        (None, "running"),
        ("a", "running"),
    ]
    # a batch without run columns leaves them alone but still renews the lease
    assert store.write(Batch(run_id="r1", owner=OWNER_A, lease_until=2600.0)) is None
    run = store.get_run("r1")
    assert (run.state, run.lease_until) == ("running", 2600.0)


def test_write_with_a_wrong_owner_raises_lease_lost_and_applies_nothing(store) -> None:
    create_run_in(store)
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
    before = (store.get_run("r1"), store.get_tasks("r1"), store.get_events("r1"))
    stale = Batch(
        run_id="r1",
        owner=OWNER_B,
        lease_until=9999.0,
        run=("succeeded", 1.0, 2.0, None),
        tasks=[task_row("a", state="succeeded")],
        events=[event_tuple("r1", "succeeded", "a")],
    )
    with pytest.raises(LeaseLost):
        store.write(stale)
    assert (store.get_run("r1"), store.get_tasks("r1"), store.get_events("r1")) == before


def test_write_to_an_unowned_run_raises_lease_lost(store) -> None:
    create_run_in(store)
    with pytest.raises(LeaseLost):
        store.write(Batch(run_id="r1", owner=OWNER_A, lease_until=1.0))


def test_write_to_an_unknown_run_raises(store) -> None:
    with pytest.raises(RunNotFound):
        store.write(Batch(run_id="nope", owner=OWNER_A, lease_until=1.0))


def test_request_is_returned_once_by_the_next_write(store) -> None:
    create_run_in(store)
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
    store.request("r1", "pause")
    assert store.get_run("r1").request == "pause"
    assert store.write(Batch(run_id="r1", owner=OWNER_A, lease_until=2000.0)) == "pause"
    assert store.get_run("r1").request is None
    assert store.write(Batch(run_id="r1", owner=OWNER_A, lease_until=2000.0)) is None
    # a later request replaces an unread one; a write with run columns clears it as well
    store.request("r1", "pause")
    store.request("r1", "cancel")
    batch = Batch(run_id="r1", owner=OWNER_A, lease_until=2000.0, run=("running", 1.0, None, None))
    assert store.write(batch) == "cancel"
    assert store.get_run("r1").request is None


def test_request_waits_for_the_owner_and_survives_a_stale_write(store) -> None:
    create_run_in(store)
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
    store.request("r1", "cancel")
    with pytest.raises(LeaseLost):
        store.write(Batch(run_id="r1", owner=OWNER_B, lease_until=2000.0))
    assert store.write(Batch(run_id="r1", owner=OWNER_A, lease_until=2000.0)) == "cancel"


def test_request_for_an_unknown_run_raises(store) -> None:
    with pytest.raises(RunNotFound):
        store.request("nope", "cancel")


# ----------------------------------------------------------------------------------- events


def test_events_are_ordered_and_paged_with_after_id(store) -> None:
    create_run_in(store, "r1")
    create_run_in(store, "r2")
    assert store.claim_run("r1", OWNER_A, 2000.0, expected=None)
    assert store.claim_run("r2", OWNER_A, 2000.0, expected=None)
    for i in range(3):  # interleave the two runs' events
        store.write(Batch("r1", OWNER_A, 2000.0, events=[event_tuple("r1", f"s{i}", "a", at=i)]))
        store.write(Batch("r2", OWNER_A, 2000.0, events=[event_tuple("r2", f"s{i}", "a", at=i)]))
    store.write(
        Batch(
            "r1",
            OWNER_A,
            2000.0,
            events=[
                event_tuple("r1", "x", "b", at=10),
                event_tuple("r1", "y", "b", at=5),  # order of the batch wins
            ],
        )
    )
    evs = store.get_events("r1")
    assert [e.to_state for e in evs] == ["pending", "s0", "s1", "s2", "x", "y"]
    assert all(e.run_id == "r1" for e in evs)
    ids = [e.id for e in evs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert not set(ids) & {e.id for e in store.get_events("r2")}  # ids are store-wide
    assert [e.to_state for e in store.get_events("r1", after_id=ids[2])] == ["s2", "x", "y"]
    assert store.get_events("r1", after_id=ids[-1]) == []
    assert [e.to_state for e in store.get_events("r1", after_id=0)] == [e.to_state for e in evs]
    # at most `limit` at a time: a reader pages through a big run's events
    assert [e.to_state for e in store.get_events("r1", limit=2)] == ["pending", "s0"]
    page = store.get_events("r1", after_id=ids[1], limit=3)
    assert [e.to_state for e in page] == ["s1", "s2", "x"]
    assert [e.to_state for e in store.get_events("r1", page[-1].id, limit=3)] == ["y"]


# ------------------------------------------------------------------ several handles, threads


def test_a_second_handle_sees_writes_and_is_subject_to_the_lease(stores) -> None:
    store, other = stores.main, stores.second_handle()
    create_run_in(store)
    assert other.get_run("r1").state == "pending"
    assert other.claim_run("r1", OWNER_B, 2000.0, expected=None)
    with pytest.raises(LeaseLost):
        store.write(Batch(run_id="r1", owner=OWNER_A, lease_until=2000.0))
    other.write(Batch("r1", OWNER_B, 2000.0, events=[event_tuple("r1", "running")]))
    assert [e.to_state for e in store.get_events("r1")] == ["pending", "running"]


def test_concurrent_writers_on_separate_handles(stores) -> None:
    n_threads, n_writes = 4, 40
    handles = [stores.second_handle() for _ in range(n_threads)]
    for i in range(n_threads):
        create_run_in(stores.main, f"r{i}")
        assert stores.main.claim_run(f"r{i}", OWNER_A, 2000.0, expected=None)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for k in range(n_writes):
                handles[i].write(
                    Batch(
                        f"r{i}",
                        OWNER_A,
                        2000.0,
                        events=[
                            event_tuple(f"r{i}", f"e{k}", "a", at=time.time()),
                        ],
                    )
                )
                handles[i].get_events(f"r{i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for i in range(n_threads):
        assert [e.to_state for e in stores.main.get_events(f"r{i}")][1:] == [
            f"e{k}" for k in range(n_writes)
        ]
