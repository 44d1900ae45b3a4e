"""The outbox (reviewflow.store.outbox), on every store backend: notification rows are written in
the transaction of the state change that causes them, only for the events a target asked for,
once however often the change is written; claims lease a row to one deliverer (on the
database's clock), a late answer of a presumed-dead one changes nothing, retries back off up to
a cap, and a row fails once its time is up. Delivering them: test_notify_deliver.py."""

from __future__ import annotations

import time

import pytest

from notify_receiver import HOOK_SECRET, failing_notified, hook_target
from reviewflow.states import RunState
from reviewflow.store import outbox
from reviewflow.store.base import Store
from rfhelpers import arun, sh, workflow

NO_RETRY = {"max_retries": 0}


# ------------------------------------------------------------------ written with the change


def test_the_rows_are_written_with_the_runs_end(
    store: Store, make_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)  # in the environment, never in a row
    spec = failing_notified("https://hooks.example/review", events=["run_finished", "run_failed"])
    state = arun(make_engine(store).run(spec, run_id="r1"))
    assert state is RunState.FAILED
    rows = store.list_outbox()
    events = sorted(r.data()["event"] for r in rows)
    assert events == ["run_failed", "run_finished"]
    for r in rows:
        assert (r.state, r.attempts, r.kind, r.run_id) == ("pending", 0, "webhook", "r1")
        assert r.delivery_id == outbox.delivery_id(r.dedupe_key)
        assert r.data()["workflow"] == "notified"
        assert r.data()["outcome"] == "failed"
        assert "exit code 3" in r.data()["error"]
        assert r.target_data()["secret_env"] == "HOOK_SECRET"
        assert HOOK_SECRET not in r.payload + (r.target or "")
    # The same notification again (a resumed run, a re-sent batch) adds nothing.
    again = outbox.OutboxItem("webhook", rows[0].dedupe_key, {"event": "x"}, run_id="r1")
    assert store.enqueue([again]) == 0
    assert len(store.list_outbox()) == 2


def test_a_target_gets_only_the_events_it_asked_for(store: Store, make_engine) -> None:
    spec = workflow(
        {"a": sh("true")},
        notifications=[
            hook_target("https://a.example/", events=["run_failed"]),
            hook_target("https://b/"),
        ],
    )
    arun(make_engine(store).run(spec, run_id="ok"))
    rows = store.list_outbox()
    assert [(r.data()["event"], r.target_data()["url"]) for r in rows] == [
        ("run_finished", "https://b/")
    ]


def test_a_run_without_notifications_writes_no_row(store: Store, make_engine) -> None:
    arun(make_engine(store).run(workflow({"a": sh("exit 1", retry=NO_RETRY)})))
    assert store.list_outbox() == []
    assert store.next_outbox_due() is None


# ------------------------------------------------------------------ claim and finish rules


def test_claims_lease_retry_lost_claims_and_giving_up(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(outbox.RETRY_BASE_ENV, "600")  # k1's retry is not due by itself
    items = [
        outbox.OutboxItem("webhook", "k1", {"event": "run_finished"}, run_id=None),
        outbox.OutboxItem("webhook", "k2", {"event": "run_failed"}, retry_for=0.0),
        outbox.OutboxItem("webhook", "k3", {"event": "run_failed"}),
    ]
    assert store.enqueue(items) == 3
    claimed = store.claim_outbox("a", 60.0, 10)
    assert sorted(r.dedupe_key for r in claimed) == ["k1", "k2", "k3"]
    assert all(r.attempts == 1 for r in claimed)
    assert store.claim_outbox("b", 60.0, 10) == []  # leased to a
    by_key = {r.dedupe_key: r for r in claimed}
    # A presumed-dead deliverer's late answer changes nothing.
    assert store.finish_outbox(by_key["k1"], "b", None, 0.1) is None
    assert store.finish_outbox(by_key["k1"], "a", "HTTP 500", 0.1) == "pending"
    assert store.finish_outbox(by_key["k2"], "a", "HTTP 500", 0.1) == "failed"  # out of time
    assert store.finish_outbox(by_key["k3"], "a", "HTTP 404", 0.1, permanent=True) == "failed"
    rows = {r.dedupe_key: r for r in store.list_outbox()}
    k1 = rows["k1"]
    assert k1.next_at > k1.created_at and k1.lease_owner is None
    assert [a["error"] for a in k1.attempts_list()] == ["HTTP 500"]
    failed = {r.dedupe_key for r in store.list_outbox(failed_only=True)}
    assert failed == {"k1", "k2", "k3"}  # k1: pending after a failed attempt
    assert store.retry_outbox_now() == 1  # k1 (the failed ones are done, none is leased)
    assert len(store.claim_outbox("b", 60.0, 10)) == 1
    again = store.list_outbox()[-1]
    assert again.dedupe_key == "k1" and again.attempts == 2 and again.lease_owner == "b"


def test_backoff_grows_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outbox.RETRY_BASE_ENV, raising=False)
    delays = [outbox.backoff(n, lambda: 0.5) for n in range(1, 15)]
    assert delays[:3] == [2.0, 4.0, 8.0]
    assert max(delays) == outbox.BACKOFF_MAX
    assert outbox.backoff(1, lambda: 0.0) < outbox.backoff(1, lambda: 1.0)  # jitter


def test_a_deliverer_with_a_fast_clock_does_not_take_a_leased_row(
    stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliverers on several hosts share one PostgreSQL database: a lease is measured on the
    database's clock, so a host whose clock runs an hour ahead does not see another's lease
    as ended (it would send the same notification again)."""
    if getattr(stores.main, "dialect", None) != "postgresql":
        pytest.skip("one process, one clock: only PostgreSQL is shared by several hosts")
    first, second = stores.main, stores.second_handle()
    assert first.enqueue([outbox.OutboxItem("webhook", "k1", {"event": "run_finished"})]) == 1
    assert [r.dedupe_key for r in first.claim_outbox("a", 60.0, 10)] == ["k1"]
    real = time.time
    monkeypatch.setattr(outbox.time, "time", lambda: real() + 3600)
    assert second.claim_outbox("b", 60.0, 10) == []
    assert second.retry_outbox_now() == 0  # leased: not made due either
    [row] = second.list_outbox()
    assert (row.lease_owner, row.attempts) == ("a", 1)
